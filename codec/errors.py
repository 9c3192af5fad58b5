"""Exceptions a user can meet. Each carries a one-line message fit for the CLI."""


class FpcError(Exception):
    """Any failure caused by the input or the environment rather than by a bug."""


class InputError(FpcError):
    """The source media could not be read (not an image/video, malformed, too large)."""


class FormatError(FpcError):
    """An .fpc file is malformed: bad magic, impossible sizes, missing chunks."""


class VersionError(FormatError):
    """An .fpc file was written by an incompatible (newer) major version."""


class CorruptError(FormatError):
    """A CRC check failed: the bytes were damaged after writing."""


class DivergenceError(CorruptError):
    """A frame decoded to something the encoder never produced (reconstruction CRC mismatch)."""

    def __init__(self, frame_index: int, message: str | None = None) -> None:
        self.frame_index = frame_index
        super().__init__(
            message
            or f"frame {frame_index}: reconstruction CRC mismatch (decoder diverged from encoder); "
            "stopping at the first bad frame"
        )


class PredictorUnavailable(FpcError):
    """The predictor (or its exact weights) that a file needs is not installed."""


class OutputError(FpcError):
    """The output cannot be written (exists without --force, would overwrite an input, ...)."""


class UsageError(FpcError):
    """The call itself is wrong (a value out of range, an output name that would
    destroy data); the CLI exits 2 for it, as for any usage error."""
