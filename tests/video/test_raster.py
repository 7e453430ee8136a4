"""The coarse-grid rasteriser gives the general one's grids, and codec fields are rasterised once, when read."""

import pickle
import threading
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from vidseg.video.motion import MotionField
from vidseg.video.raster import rasterise, rasterise_cells

from .test_motion import mvs

# Partitions of a macroblock: (w, h) and the (x, y) offset of each block.
PARTITIONS = (
    (((16, 16), (0, 0)),),
    (((16, 8), (0, 0)), ((16, 8), (0, 8))),
    (((8, 16), (0, 0)), ((8, 16), (8, 0))),
    tuple(((8, 8), (x, y)) for y in (0, 8) for x in (0, 8)),
)


def h264_like(size: tuple[int, int], seed: int, *, future: bool = True, offset: int = 0) -> np.ndarray:
    """Macroblocks covering the picture (past its edge, like H.264's), each intra or split into 16x16, 16x8,
    8x16 or 8x8 blocks with quarter-pel vectors: past, future or both (bi-predicted)."""
    rng = np.random.default_rng(seed)
    blocks = []
    for y in range(offset, size[0] + offset, 16):
        for x in range(offset, size[1] + offset, 16):
            if rng.random() < 0.15:
                continue  # intra: no vector
            for (w, h), (dx0, dy0) in PARTITIONS[rng.integers(len(PARTITIONS))]:
                kinds = (-1, 1, 0) if future else (-1,)
                kind = kinds[rng.integers(len(kinds))]
                for source in ((-1, 1) if kind == 0 else (kind,)):
                    blocks.append((x + dx0, y + dy0, w, h, *(rng.integers(-64, 64, 2) / 4), source))
    return mvs(*blocks)


@pytest.mark.parametrize("size", [(64, 96), (38, 66), (540, 960)])
@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_coarse_grid_equals_general_rasteriser(size, rotation):
    for seed in range(3):
        blocks = h264_like(size, seed)
        for cell in (1, 2, 3, 4, 8, 16):
            fast = rasterise(blocks, size, cell, rotation)
            general = rasterise_cells(blocks, size, cell, rotation)
            for a, b in zip(fast, general, strict=True):
                assert a.dtype == b.dtype and a.flags.c_contiguous
                assert np.array_equal(a, b), (seed, cell)


def test_layouts_the_coarse_grid_does_not_fit_fall_back_to_the_general_rule():
    # Blocks on a 4-pixel lattice (cell 8 does not divide it), and overlapping blocks of one direction.
    shifted = h264_like((48, 64), 1, offset=4)
    overlapping = mvs((0, 0, 16, 16, 1.0, 0.0, -1), (8, 8, 16, 16, -2.0, 0.5, -1), (16, 0, 16, 16, 0.25, 0.0, 1))
    for blocks, size in ((shifted, (48, 64)), (overlapping, (32, 32))):
        for cell in (1, 4, 8):
            fast = rasterise(blocks, size, cell)
            general = rasterise_cells(blocks, size, cell)
            assert all(np.array_equal(a, b) for a, b in zip(fast, general, strict=True))
    # The overlap is resolved as the general rule resolves it; the past block wins over the future one.
    vectors, ref = rasterise(overlapping, (32, 32), 8)
    assert ref.tolist() == [[-1, -1, 1, 1], [-1, -1, -1, 1], [0, -1, -1, 0], [0, 0, 0, 0]]
    assert vectors[0, 1, 2] == -2.0 and vectors[0, 0, 3] == 0.25


def test_codec_field_keeps_its_blocks_and_rasterises_once_for_all_readers():
    blocks = h264_like((64, 96), 5)
    field = MotionField.from_vectors(blocks, (64, 96), cell=4, rotation=90)
    assert field.blocks is blocks and field.size == (96, 64) and field.grid == (24, 16)
    seen = []
    readers = [threading.Thread(target=lambda: seen.append(field.vectors)) for _ in range(4)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert all(v is seen[0] for v in seen) and field.vectors is seen[0]
    vectors, ref = rasterise_cells(blocks, (64, 96), 4, 90)
    assert np.array_equal(field.vectors, vectors) and np.array_equal(field.ref, ref)
    assert np.array_equal(field.valid, ref != 0)
    copy = pickle.loads(pickle.dumps(field))
    assert np.array_equal(copy.vectors, vectors) and np.array_equal(copy.blocks, blocks) and copy.size == (96, 64)
    with pytest.raises(FrozenInstanceError):
        field.cell = 8  # type: ignore[misc]
    eager = MotionField(vectors, ref != 0, ref, (96, 64), 4)
    assert eager.blocks is None and eager.vectors is vectors
