"""codec/colour_index.py: the compiled colour indexing the GIF writer and the palette
keyframe canvas use, against NumPy's np.unique on the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from fpcodec.codec.colour_index import index_colours


def _reference(img, mask, offset):
    c = img[..., :3].astype(np.int64)
    packed = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    colours, inverse = np.unique(packed[mask], return_inverse=True)
    idx = np.zeros(mask.shape, np.uint8)
    idx[mask] = inverse + offset
    return colours, idx


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("channels", [3, 4])
def test_matches_np_unique_under_a_mask(seed, channels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    table = rng.integers(0, 256, (n, channels), dtype=np.uint8)
    img = table[rng.integers(0, n, (37, 53))]
    img = img[:, ::-1] if seed % 2 else img  # a strided view, as the writer passes
    mask = rng.random((37, 53)) < 0.7
    offset = seed % 2
    got = index_colours(img, mask, 256 - offset, offset)
    want = _reference(img, mask, offset)
    assert got is not None
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_more_colours_than_the_limit_is_none_and_the_limit_itself_fits():
    img = np.zeros((4, 64, 3), np.uint8)
    img[..., 0] = np.arange(256, dtype=np.uint8).reshape(4, 64)
    mask = np.ones((4, 64), bool)
    assert index_colours(img, mask, 255) is None
    colours, idx = index_colours(img, mask, 256)
    assert len(colours) == 256 and np.array_equal(idx.ravel(), np.arange(256))


def test_an_empty_mask_has_no_colours():
    colours, idx = index_colours(np.ones((3, 3, 3), np.uint8), np.zeros((3, 3), bool), 0)
    assert colours.size == 0 and not idx.any()


def test_a_table_that_cannot_fit_uint8_indices_is_refused():
    with pytest.raises(ValueError):
        index_colours(np.zeros((1, 1, 3), np.uint8), np.ones((1, 1), bool), 256, 1)


def test_near_lossless_canvas_lookup_equals_searchsorted():
    """palette_nearlossless's compiled lookup against the NumPy form it replaced: the
    leftmost table entry of each visible canvas colour, -1 where none or invisible."""
    from fpcodec.codec.palette_nearlossless import _canvas_indices

    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 16, 256):
        table = rng.integers(0, 4, (n, 3), dtype=np.uint8) * 60  # repeated colours too
        canvas = rng.integers(0, 4, (31, 29, 4), dtype=np.uint8) * 60
        canvas[..., 3] = rng.integers(0, 2, (31, 29)) * 255
        packed = (
            (table[:, 0].astype(np.int64) << 16) | (table[:, 1].astype(np.int64) << 8) | table[:, 2]
        )
        order = np.argsort(packed, kind="stable")
        keys = packed[order]
        c = canvas[..., :3].astype(np.int64)
        want = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
        pos = np.clip(np.searchsorted(keys, want), 0, n - 1)
        found = (keys[pos] == want) & (canvas[..., 3] != 0)
        assert np.array_equal(_canvas_indices(table, canvas), np.where(found, order[pos], -1))
