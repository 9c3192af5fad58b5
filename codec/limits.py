"""Hard caps applied before any allocation driven by untrusted sizes.

The decoder reads sizes from bytes it does not trust; every allocation is checked
against these first, so a forged header cannot make it allocate gigabytes or loop
for hours.
"""

from __future__ import annotations

from .errors import FormatError

MAX_SIDE = 16384
# 8K UHD (7680x4320 = 33.2 Mpx) fits; one RGBA frame at the cap is 128 MiB.
MAX_PIXELS = 1 << 25
MAX_FRAMES = 1_000_000
MAX_HEADER_BYTES = 1 << 16
MAX_NAME_BYTES = 64
MAX_DURATION_MS = 655_350  # GIF's largest delay (65535 centiseconds)
MAX_PALETTE = 4096
DEFAULT_KEYFRAME_INTERVAL = 120  # frames between keyframes unless asked otherwise
# the lossy encoder's search presets (lossy/presets.py), named here so that the CLI can
# offer them without importing the compiled coder
SPEED_PRESETS = ("slow", "fast")


def check_dimensions(
    width: int, height: int, what: str = "frame", exc: type[Exception] = FormatError
) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise exc(f"{what} size {width}x{height} outside 1..{MAX_SIDE}")
    if width * height > MAX_PIXELS:
        raise exc(f"{what} size {width}x{height} exceeds the {MAX_PIXELS} pixel cap")


def max_frame_payload(width: int, height: int) -> int:
    """Largest payload a frame chunk may claim.

    Every coding path falls back to storing raw RGBA when it would exceed this,
    so a larger length field can only come from damage or forgery.
    """
    return 4 * width * height + 4096


def max_plane_bytes(width: int, height: int, channels: int = 4, bytes_per_sample: int = 1) -> int:
    """Bound handed to every decompressor: no stream may inflate beyond a frame's raw size."""
    return channels * width * height * bytes_per_sample + 1024


def row_bands(
    height: int, width: int, pixels: int = 1 << 20, multiple: int = 1
) -> list[tuple[int, int]]:
    """(first, end) rows of bands of about `pixels` pixels, each but the last a whole
    `multiple` of rows: whole-frame temporaries of a frame at the size cap (float64
    or int64, several per pixel) are gigabytes, one band's are megabytes."""
    step = max(1, pixels // max(1, width) // multiple) * multiple
    return [(y, min(height, y + step)) for y in range(0, height, step)]
