"""Codec motion blocks -> a regular grid of cells: the rasteriser behind `MotionField.from_vectors`.

FFmpeg exports one `AVMotionVector` per block and prediction direction (`vidseg.video.motion`'s module doc has the
conventions). A cell takes the vector of the block that contains its centre; where a cell lies in a past (list-0)
and a future (list-1) block, the past one wins. Two implementations of that one rule, giving identical grids:

  * `rasterise_cells`: the general one, for any block layout and cell size: every (cell, block) pair is listed
    and scattered. Its cost grows with the number of *cells* (32,400 at 960x540 with 4 px cells).
  * `rasterise`: what decoding uses. The codecs that export vectors (H.264, MPEG-1/2/4, H.263) code blocks of 8
    or 16 pixels on an 8-pixel lattice, so every block edge lies on a coarse grid of g pixels (g = the largest
    power of two dividing every edge: 8, or 16). When ``cell`` divides g the blocks are painted on that coarse grid
    (a block-id map, 4x fewer cells than 4 px cells; a few whole-array scatters, no per-cell pairs), the map is
    expanded to cells and the vectors are gathered through it: a cell's centre lies in a block exactly when its
    coarse cell does. About 2.5x cheaper; when blocks of one direction overlap (no exporting codec does that) or
    ``cell`` does not divide g it hands over to `rasterise_cells`, so the result never depends on which ran.

Both return (vectors float32 [2, gh, gw] in pixels of the display frame, ref int8 [gh, gw]: -1 past, +1 future,
0 no vector), on the grid of the display (rotated) frame.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["rasterise", "rasterise_cells", "block_rects"]


def block_rects(mvs: np.ndarray, size: tuple[int, int], rotation: int = 0):
    """Blocks of FFmpeg's vectors (PyAV ``MotionVectors.to_ndarray()``) of a picture of ``size`` (H, W, coded
    orientation) as rectangles [x0, x1) x [y0, y1) and backward vectors (dx, dy) in the display frame, rotated by
    ``rotation`` degrees counter-clockwise (a multiple of 90, as ``np.rot90(image, rotation // 90)``)."""
    height, width = size
    w = mvs["w"].astype(np.int64)
    h = mvs["h"].astype(np.int64)
    x0 = mvs["dst_x"].astype(np.int64) - w // 2  # dst is the block centre
    y0 = mvs["dst_y"].astype(np.int64) - h // 2
    scale = np.maximum(mvs["motion_scale"], 1).astype(np.float32)
    dx = (mvs["motion_x"] / scale).astype(np.float32)
    dy = (mvs["motion_y"] / scale).astype(np.float32)
    return _rotate_blocks(x0, x0 + w, y0, y0 + h, dx, dy, (rotation // 90) % 4, width, height)


def rasterise(mvs: np.ndarray, size: tuple[int, int], cell: int, rotation: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """The cell grid of codec blocks, painted on the coarsest grid their edges allow (see the module doc)."""
    gh, gw = _grid(_out_size(size, rotation), cell)
    if not len(mvs):
        return np.zeros((2, gh, gw), np.float32), np.zeros((gh, gw), np.int8)
    x0, x1, y0, y1, dx, dy = block_rects(mvs, size, rotation)
    edges = np.bitwise_or.reduce(np.abs(np.concatenate([x0, x1, y0, y1])))
    coarse = int(edges & -edges)  # the largest power of two that divides every block edge
    if coarse == 0 or coarse % cell:
        return rasterise_cells(mvs, size, cell, rotation)
    factor = coarse // cell
    ch, cw = -(-gh // factor), -(-gw // factor)  # the coarse grid covers every cell
    source = mvs["source"]
    past = _paint(x0, x1, y0, y1, source < 0, coarse, ch, cw)
    future = _paint(x0, x1, y0, y1, source > 0, coarse, ch, cw)
    if past is None or future is None:  # overlapping blocks of one direction: the general rule decides
        return rasterise_cells(mvs, size, cell, rotation)
    # Past wins; -1 (no block) picks the zero appended to each table.
    block = _expand(np.where(past >= 0, past, future), factor, gh, gw)
    vectors = np.empty((2, gh, gw), np.float32)
    np.take(np.append(dx, np.float32(0)), block, out=vectors[0])
    np.take(np.append(dy, np.float32(0)), block, out=vectors[1])
    ref = np.take(np.append(np.sign(source).astype(np.int8), np.int8(0)), block)
    return vectors, ref


def rasterise_cells(mvs: np.ndarray, size: tuple[int, int], cell: int, rotation: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The cell grid of codec blocks, every (cell, block) pair scattered: any layout, any cell size."""
    gh, gw = _grid(_out_size(size, rotation), cell)
    vectors = np.zeros((2, gh, gw), np.float32)
    ref = np.zeros((gh, gw), np.int8)
    if len(mvs):
        x0, x1, y0, y1, dx, dy = block_rects(mvs, size, rotation)
        rows, cols, idx = _cells_of_blocks(x0, x1, y0, y1, cell, gh, gw)
        src = np.sign(mvs["source"]).astype(np.int8)[idx]
        # Future first, then past: a bi-predicted block ends up with its past (list-0) vector.
        for direction in (1, -1):
            sel = src == direction
            r, c, i = rows[sel], cols[sel], idx[sel]
            vectors[0, r, c] = dx[i]
            vectors[1, r, c] = dy[i]
            ref[r, c] = direction
    return vectors, ref


# --------------------------------------------------------------------------------------------------- helpers
def _out_size(size: tuple[int, int], rotation: int) -> tuple[int, int]:
    return (size[1], size[0]) if (rotation // 90) % 2 else (size[0], size[1])


def _grid(size: tuple[int, int], cell: int) -> tuple[int, int]:
    return math.ceil(size[0] / cell), math.ceil(size[1] / cell)


def _paint(x0, x1, y0, y1, selected: np.ndarray, coarse: int, ch: int, cw: int) -> np.ndarray | None:
    """Block-id map [ch, cw] (int32, -1 where no block) of the selected blocks, whose edges are multiples of
    `coarse`: one scatter per coarse cell of the largest block (4 for 16 px blocks on the 8 px grid), into a map
    with a margin as wide as that block, so that blocks reaching past the picture need no bounds checks. None
    when two selected blocks share a coarse cell, or a block spans more than 16 coarse cells (no exporting
    codec codes either)."""
    which = np.flatnonzero(selected).astype(np.int32)
    if not len(which):
        return np.full((ch, cw), -1, np.int32)
    r0, c0 = y0[which] // coarse, x0[which] // coarse
    ny, nx = (y1[which] - y0[which]) // coarse, (x1[which] - x0[which]) // coarse
    span_y, span_x = int(ny.max()), int(nx.max())
    if span_y * span_x > 16:
        return None
    rows, cols = ch + 2 * span_y, cw + 2 * span_x
    ids = np.full(rows * cols + 1, -1, np.int32)  # the last entry takes the cells a smaller block does not have
    base = np.clip(r0 + span_y, 0, rows - 1) * cols + np.clip(c0 + span_x, 0, cols - 1)
    if (ny == span_y).all() and (nx == span_x).all():  # one block shape: every block has every offset
        has_y = has_x = [None] * 16
    else:
        has_y, has_x = [ny > oy for oy in range(span_y)], [nx > ox for ox in range(span_x)]
    painted = 0
    for oy in range(span_y):
        for ox in range(span_x):
            flat = base + (oy * cols + ox)
            if has_y[oy] is None:
                painted += len(flat)
            else:
                has = has_y[oy] & has_x[ox]
                flat = np.where(has, flat, rows * cols)
                painted += int(np.count_nonzero(has))
            ids[flat] = which
    ids = ids[:-1]
    # Every cell painted once (blocks far outside the picture would be clamped onto one another: caught here).
    if np.count_nonzero(ids >= 0) != painted:
        return None
    return ids.reshape(rows, cols)[span_y:span_y + ch, span_x:span_x + cw]


def _expand(grid: np.ndarray, factor: int, gh: int, gw: int) -> np.ndarray:
    """A coarse grid [..., ch, cw] with each cell repeated factor x factor, the last row and column cut so that
    it is [..., gh, gw]; C-contiguous."""
    if factor == 1:
        return np.ascontiguousarray(grid[..., :gh, :gw])
    for axis, n in ((-2, gh), (-1, gw)):
        repeats = np.full(grid.shape[axis], factor)
        repeats[-1] -= repeats.sum() - n
        grid = np.repeat(grid, repeats, axis=axis)
    return grid


def _rotate_blocks(x0, x1, y0, y1, dx, dy, k: int, width: int, height: int):
    """Block rectangles [x0,x1) x [y0,y1) and vectors of a W x H picture, rotated k*90 degrees counter-clockwise
    (as np.rot90(image, k)): pixel (x, y) goes to (y, W-1-x) for k = 1."""
    if k == 0:
        return x0, x1, y0, y1, dx, dy
    if k == 1:
        return y0, y1, width - x1, width - x0, dy, -dx
    if k == 2:
        return width - x1, width - x0, height - y1, height - y0, -dx, -dy
    return height - y1, height - y0, x0, x1, -dy, dx


def _cells_of_blocks(x0, x1, y0, y1, cell: int, gh: int, gw: int):
    """(rows, cols, block index) of every cell whose centre lies in a block, for all blocks at once."""
    half = (cell - 1) / 2
    r0 = np.maximum(np.ceil((y0 - half) / cell), 0).astype(np.int32)
    r1 = np.minimum(np.floor((y1 - 1 - half) / cell), gh - 1).astype(np.int32)
    c0 = np.maximum(np.ceil((x0 - half) / cell), 0).astype(np.int32)
    c1 = np.minimum(np.floor((x1 - 1 - half) / cell), gw - 1).astype(np.int32)
    ny = np.maximum(r1 - r0 + 1, 0)
    nx = np.maximum(c1 - c0 + 1, 0)
    count = ny * nx
    idx = np.repeat(np.arange(len(count), dtype=np.int32), count)
    local = np.arange(int(count.sum()), dtype=np.int32) - np.repeat(np.cumsum(count, dtype=np.int32) - count, count)
    dy, dx = np.divmod(local, nx[idx])
    return r0[idx] + dy, c0[idx] + dx, idx
