import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidseg.errors import ShapeError
from vidseg.video.decode import Frame, open_video
from vidseg.video.motion import MotionChain, MotionField

from .conftest import encode, translation_frames

# PyAV's MotionVectors.to_ndarray() dtype (AVMotionVector).
MV_DTYPE = np.dtype(
    [("source", "int32"), ("w", "uint8"), ("h", "uint8"), ("src_x", "int16"), ("src_y", "int16"),
     ("dst_x", "int16"), ("dst_y", "int16"), ("flags", "uint64"), ("motion_x", "int32"), ("motion_y", "int32"),
     ("motion_scale", "uint16")],
    align=True,
)


def mvs(*blocks) -> np.ndarray:
    """blocks: (x0, y0, w, h, dx, dy, source) with dx, dy in pixels; encoded like FFmpeg (centre, quarter-pel)."""
    out = np.zeros(len(blocks), MV_DTYPE)
    for i, (x0, y0, w, h, dx, dy, source) in enumerate(blocks):
        out[i] = (source, w, h, 0, 0, x0 + w // 2, y0 + h // 2, 0, round(dx * 4), round(dy * 4), 4)
    out["src_x"] = out["dst_x"] + out["motion_x"] // 4
    out["src_y"] = out["dst_y"] + out["motion_y"] // 4
    return out


def frame(index, pict_type="P", motion=None) -> Frame:
    return Frame(index, np.zeros((1, 1, 3), np.uint8), index / 25, pict_type, motion)


def constant(size, dx, dy, cell=4) -> MotionField:
    f = MotionField.zeros(size, cell=cell)
    f.vectors[0], f.vectors[1] = dx, dy
    return f


# ------------------------------------------------------------------------------------------------- FFmpeg facts
def test_ffmpeg_sign_convention(h264_clip):
    """Content moving by (+2, +1) px per frame: each pixel came from (-2, -1) in the previous frame, and FFmpeg's
    motion / motion_scale is exactly that backward offset (src = dst + motion / scale)."""
    path, _ = h264_clip
    with open_video(path, motion=True) as video:
        fields = [f.motion for f in video if f.motion is not None]
    assert len(fields) == 11
    for m in fields:
        assert set(np.unique(m.ref[m.valid])) == {-1}
        share = np.mean((m.vectors[0][m.valid] == -2) & (m.vectors[1][m.valid] == -1))
        assert share > 0.8, f"only {share:.0%} of vectors are (-2, -1)"


def test_mpeg4_half_pel_scale(clip_dir):
    images = translation_frames((64, 96), 4, (2, 1), seed=11)
    path = encode(clip_dir / "mv_mpeg4.avi", images, codec="mpeg4")
    with open_video(path, motion=True) as video:
        m = [f.motion for f in video][2]
    assert np.median(m.vectors[0][m.valid]) == -2 and np.median(m.vectors[1][m.valid]) == -1


def test_multi_reference_vectors_are_not_labelled(clip_dir):
    """Documented limitation: with several reference frames, FFmpeg exports vectors to t-2 with source -1 too."""
    images = translation_frames((64, 96), 12, (2, 1), seed=12)
    path = encode(clip_dir / "refs3.mp4", images, options={"refs": "3"})
    with open_video(path, motion=True) as video:
        xs = np.concatenate([f.motion.vectors[0][f.motion.valid] for f in video if f.motion is not None])
    assert np.any(xs == -4.0)  # points two frames back, still marked "past"


# ------------------------------------------------------------------------------------------------- rasterising
def test_rasterises_block_sizes_onto_cells():
    blocks = mvs(
        (0, 0, 16, 16, -1.0, 0.5, -1),
        (16, 0, 8, 8, 2.0, 0.0, -1), (24, 0, 8, 8, 0.25, 0.0, -1),
        (16, 8, 16, 8, -3.0, 1.0, -1),
        (0, 16, 8, 16, 1.5, -1.5, -1),
        # (8..16, 16..32) and (16..32, 16..32) have no vector: intra
    )
    m = MotionField.from_vectors(blocks, (32, 32), cell=4)
    assert m.grid == (8, 8)
    expect_x = np.zeros((8, 8), np.float32)
    expect_x[0:4, 0:4] = -1.0
    expect_x[0:2, 4:6] = 2.0
    expect_x[0:2, 6:8] = 0.25
    expect_x[2:4, 4:8] = -3.0
    expect_x[4:8, 0:2] = 1.5
    valid = np.zeros((8, 8), bool)
    valid[0:4, :] = True
    valid[4:8, 0:2] = True
    assert np.array_equal(m.valid, valid)
    assert np.array_equal(m.vectors[0], expect_x)
    assert np.array_equal(m.ref, np.where(valid, -1, 0))
    assert m.vectors[1][0, 0] == 0.5 and m.vectors[1][5, 1] == -1.5


def test_bipredicted_block_keeps_past_vector_and_future_only_is_marked():
    blocks = mvs((0, 0, 16, 16, 4.0, 0.0, 1), (0, 0, 16, 16, -1.0, 0.0, -1), (16, 0, 16, 16, 3.0, 0.0, 1))
    m = MotionField.from_vectors(blocks, (16, 32), cell=8)
    assert m.vectors[0].tolist() == [[-1.0, -1.0, 3.0, 3.0], [-1.0, -1.0, 3.0, 3.0]]
    assert m.ref.tolist() == [[-1, -1, 1, 1], [-1, -1, 1, 1]]
    assert m.valid.all()


def test_blocks_past_the_frame_edge_are_clipped():
    """66x38 frame: macroblocks cover 80x48; blocks beyond the edge are cut, partial cells kept."""
    blocks = mvs(*[(x, y, 16, 16, 1.0, 0.0, -1) for y in range(0, 48, 16) for x in range(0, 80, 16)])
    m = MotionField.from_vectors(blocks, (38, 66), cell=4)
    assert m.grid == (10, 17) and m.valid.all()
    vectors, valid = m.to_dense()
    assert vectors.shape == (2, 38, 66) and valid.all() and np.all(vectors[0] == 1.0)


def test_empty_vector_array_is_all_invalid():
    m = MotionField.from_vectors(np.zeros(0, MV_DTYPE), (16, 16), cell=4)
    assert not m.valid.any() and not m.ref.any()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_transforms_blocks_and_vectors(k):
    rng = np.random.default_rng(k)
    blocks = mvs(*[(x, y, 16, 16, *rng.integers(-8, 8, 2) / 4, -1) for y in range(0, 32, 16) for x in range(0, 48, 16)
                   if (x, y) != (16, 16)])
    plain = MotionField.from_vectors(blocks, (32, 48), cell=4)
    turned = MotionField.from_vectors(blocks, (32, 48), cell=4, rotation=90 * k)
    assert turned.size == ((48, 32) if k % 2 else (32, 48))
    assert np.array_equal(turned.valid, np.rot90(plain.valid, k))
    vx, vy = np.rot90(plain.vectors[0], k), np.rot90(plain.vectors[1], k)
    # a CCW quarter turn maps (x, y) to (y, W-1-x): vectors (dx, dy) -> (dy, -dx)
    expect = {1: (vy, -vx), 2: (-vx, -vy), 3: (-vy, vx)}[k]
    assert np.array_equal(turned.vectors[0], expect[0] + 0.0)
    assert np.array_equal(turned.vectors[1], expect[1] + 0.0)


# ------------------------------------------------------------------------------------------------- densifying
def _random_field(size=(32, 48), cell=4, seed=0, invalid=0.2):
    rng = np.random.default_rng(seed)
    gh, gw = -(-size[0] // cell), -(-size[1] // cell)
    vectors = (rng.integers(-32, 32, (2, gh, gw)) / 4).astype(np.float32)
    valid = rng.random((gh, gw)) > invalid
    return MotionField(vectors, valid, np.where(valid, -1, 0).astype(np.int8), size, cell)


@pytest.mark.parametrize("mode", ["area", "nearest"])
def test_dense_at_image_size_replicates_blocks(mode):
    m = _random_field(invalid=0.0)
    vectors, valid = m.to_dense(mode=mode)
    assert vectors.dtype == np.float32 and vectors.shape == (2, 32, 48) and valid.all()
    assert np.array_equal(vectors, m.vectors.repeat(4, 1).repeat(4, 2))


def test_dense_scales_each_axis_by_its_ratio():
    m = constant((64, 96), 3.0, -2.0)
    for mode in ("area", "nearest", "bilinear"):
        vectors, valid = m.to_dense((8, 24), mode=mode)  # 1/8 in y, 1/4 in x
        assert vectors.shape == (2, 8, 24) and valid.all()
        assert np.allclose(vectors[0], 3.0 / 4) and np.allclose(vectors[1], -2.0 / 8)


def test_area_mode_averages_valid_cells_only():
    m = MotionField.zeros((8, 8), cell=4)
    m.vectors[0] = [[1.0, 2.0], [3.0, 100.0]]
    m.valid[1, 1] = False
    vectors, valid = m.to_dense((1, 1), mode="area")
    assert vectors[0, 0, 0] == pytest.approx((1 + 2 + 3) / 3 / 8)  # mean of valid cells, scaled by 1/8
    assert valid[0, 0]
    m.valid[0, 1] = m.valid[1, 0] = False
    assert not m.to_dense((1, 1), mode="area")[1][0, 0]  # a quarter valid: not valid


def test_bilinear_mode_interpolates_between_cell_centres():
    m = MotionField.zeros((4, 8), cell=4)
    m.vectors[0] = [[0.0, 4.0]]
    vectors, valid = m.to_dense(mode="bilinear")
    # cell centres at x = 1.5 and 5.5; clamped outside
    assert np.allclose(vectors[0, 0], [0, 0, 0.5, 1.5, 2.5, 3.5, 4, 4])
    m.valid[0, 1] = False
    vectors, valid = m.to_dense(mode="bilinear")
    assert np.allclose(vectors[0, 0, :6], 0.0)  # the invalid cell does not leak into its valid neighbour
    assert np.allclose(vectors[0, 0, 6:], 4.0)  # where no valid cell is near, the field's fill value
    assert valid[0].tolist() == [True] * 4 + [False] * 4


def test_arseg_mode_matches_arseg_resize():
    """AR-Seg (evaluation.py): flow * (h_feat / H_img) for both components, bilinear align_corners=True."""
    m = _random_field((32, 48), invalid=0.2)
    h, w = 5, 11  # deliberately different ratios per axis
    vectors, valid = m.to_dense((h, w), mode="arseg")
    per_pixel = m.vectors.repeat(4, 1).repeat(4, 2)  # invalid cells keep their (fill) values, as in AR-Seg
    expect = F.interpolate(torch.from_numpy(per_pixel)[None] * (h / 32), size=(h, w), mode="bilinear",
                           align_corners=True)[0].numpy()
    assert np.allclose(vectors, expect, atol=1e-6)
    exact, _ = m.to_dense((h, w), mode="bilinear")
    assert not np.allclose(vectors[0], exact[0], atol=0.05)  # x is scaled by h/H, not w/W


def test_dense_rejects_unknown_mode():
    with pytest.raises(ShapeError):
        MotionField.zeros((8, 8)).to_dense(mode="cubic")


# ------------------------------------------------------------------------------------------------- chaining
def test_exact_chain_accumulates_sub_pixel_motion_arseg_rounds_it_away():
    size = (32, 48)
    hop = constant(size, -0.25, 0.5)
    exact, arseg = MotionChain(size, mode="exact"), MotionChain(size, mode="arseg")
    for chain in (exact, arseg):
        assert chain.push(frame(0, "I")).valid.all()
    for t in range(1, 6):
        e = exact.push(frame(t, motion=hop))
        a = arseg.push(frame(t, motion=hop))
    inner = (slice(8, -8), slice(8, -8))
    assert np.allclose(e.vectors[0][2:-2, 2:-2], -1.25) and np.allclose(e.vectors[1][2:-2, 2:-2], 2.5)
    assert e.valid.all() and a.valid.all()
    # AR-Seg: np.round(-0.25) = 0 and np.round(0.5) = 0 (half to even) at every hop
    assert a.cell == 1 and np.all(a.vectors[0][inner] == 0) and np.all(a.vectors[1][inner] == 0)


def test_exact_chain_composes_through_the_reference_position():
    """m_{t->k}(p) = m_{t->t-1}(p) + m_{t-1->k}(p + m_{t->t-1}(p)): a left half moving differently from the right
    half shows whether the lookup happens at p + m (it must) or at p."""
    size = (16, 64)
    first = constant(size, 0.0, 0.0)
    first.vectors[0][:, :8] = 10.0  # frame 1: left half came from 10 px to the right
    second = constant(size, -16.0, 0.0)  # frame 2: everything came from 16 px to the left
    chain = MotionChain(size)
    chain.push(frame(0, "I"))
    chain.push(frame(1, motion=first))
    out = chain.push(frame(2, motion=second))
    # cell 12 (centre x=49.5) came from x=33.5 in frame 1: right half, total -16; cell 6 (x=25.5) from x=9.5,
    # inside cell 2 (left half, +10): total -6
    assert out.vectors[0][0, 12] == pytest.approx(-16.0)
    assert out.vectors[0][0, 6] == pytest.approx(-6.0)


def test_chain_marks_intra_invalid_and_propagates_it():
    size = (16, 32)
    hop1 = constant(size, 0.0, 0.0)
    hop1.valid[:, 0:2] = False  # intra on the left (cells 0-1)
    hop1.ref[:, 0:2] = 0
    hop1.vectors[0][:, 0:2] = 99.0  # whatever the codec left there must not be used
    hop2 = constant(size, -8.0, 0.0)  # cell 3 (x=13.5) comes from x=5.5: into the intra region
    chain = MotionChain(size)
    chain.push(frame(0, "I"))
    c1 = chain.push(frame(1, motion=hop1))
    assert not c1.valid[:, 0:2].any() and c1.valid[:, 2:].all()
    assert np.all(c1.vectors[0][:, 0:2] == 0.0)  # documented fill: zero hop
    c2 = chain.push(frame(2, motion=hop2))
    assert not c2.valid[:, 2:4].any()  # lands in the invalid region -> invalid
    assert c2.valid[:, 5:].all()
    assert np.allclose(c2.vectors[0][:, 5:], -8.0)


def test_frame_without_motion_after_key_is_all_invalid():
    chain = MotionChain((8, 8))
    chain.push(frame(0, "I"))
    out = chain.push(frame(1, "P", motion=None))
    assert not out.valid.any() and np.all(out.vectors == 0)


def test_b_frames_chain_through_the_last_anchor_and_are_not_anchors():
    """Display order I0 B1 B2 P3 B4: B1/B2/P3 reference I0 (past anchor), B4 references P3."""
    size = (16, 32)
    chain = MotionChain(size)
    chain.push(frame(0, "I"))
    b1 = chain.push(frame(1, "B", constant(size, -1.0, 0.0)))
    assert np.allclose(b1.vectors[0], -1.0)
    b2 = constant(size, -2.0, 0.0)
    b2.ref[:, :4] = 1  # future-only blocks
    out = chain.push(frame(2, "B", b2))
    assert not out.valid[:, :4].any() and out.valid[:, 4:].all()
    p3 = chain.push(frame(3, "P", constant(size, -3.0, 0.0)))
    assert np.allclose(p3.vectors[0][:, 2:], -3.0)  # through I0, not through the B-frames
    b4 = chain.push(frame(4, "B", constant(size, -1.0, 0.0)))
    assert np.allclose(b4.vectors[0][:, 2:], -4.0)


def test_key_resets_chain():
    size = (8, 16)
    chain = MotionChain(size)
    chain.push(frame(0, "I"))
    chain.push(frame(1, motion=constant(size, -1.0, 0.0)))
    key = chain.push(frame(2, motion=constant(size, -1.0, 0.0)), is_key=True)
    assert chain.key_index == 2 and np.all(key.vectors == 0) and key.valid.all()
    out = chain.push(frame(3, motion=constant(size, -1.0, 0.0)))
    assert np.allclose(out.vectors[0][:, 1:], -1.0)


def test_chain_needs_a_key_first_and_matching_fields():
    chain = MotionChain((8, 8))
    with pytest.raises(ShapeError):
        chain.push(frame(0, "P", constant((8, 8), 0, 0)))
    chain.push(frame(0, "I"))
    with pytest.raises(ShapeError):
        chain.push(frame(1, motion=constant((8, 8), 0, 0, cell=8)))
    with pytest.raises(ShapeError):
        chain.push(frame(1, motion=constant((8, 16), 0, 0)))


def _arseg_merge_motion(fields: list[tuple[np.ndarray, np.ndarray]], size) -> np.ndarray:
    """AR-Seg's mergeMotion (arseg.md §3.3) written out: per pixel, frames 1..d of an IPPP GOP; each field is
    (mv [H,W,2] in quarter-pel, ref_idx [H,W]). Returns the integer displacement of frame d to frame 0."""
    height, width = size
    link = {}
    for f, (mv, ref_idx) in enumerate(fields, start=1):
        intra = (ref_idx < 0) | (ref_idx >= 3)
        mv = np.where(intra[..., None], 0, mv)
        ref_idx = np.where(intra, 0, ref_idx)
        out = np.zeros((height, width, 3), np.int64)
        for y in range(height):
            for x in range(width):
                x2 = int(np.clip(x + np.round(mv[y, x, 0] / 4), 0, width - 1))
                y2 = int(np.clip(y + np.round(mv[y, x, 1] / 4), 0, height - 1))
                f2 = max(0, f - ref_idx[y, x] - 1)
                out[y, x] = link[f2][y2, x2] if f2 in link else (x2, y2, f2)
        link[f] = out
    d = len(fields)
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([link[d][..., 0] - xs, link[d][..., 1] - ys])


def test_arseg_chain_reproduces_arseg_merge_motion():
    size = (12, 20)
    rng = np.random.default_rng(0)
    chain = MotionChain(size, mode="arseg")
    chain.push(frame(0, "I"))
    fields = []
    for t in range(1, 5):
        mv = rng.integers(-12, 13, (*size, 2))  # quarter-pel, includes exact halves (round half to even)
        ref_idx = np.where(rng.random(size) < 0.15, -1, 0)  # some intra pixels
        fields.append((mv, ref_idx))
        field = MotionField(np.ascontiguousarray(mv.transpose(2, 0, 1) / 4, dtype=np.float32), ref_idx == 0,
                            np.where(ref_idx == 0, -1, 0).astype(np.int8), size, 1)
        out = chain.push(frame(t, motion=field))
        assert np.array_equal(out.vectors, _arseg_merge_motion(fields, size))


# ------------------------------------------------------------------------------------------------- real clips
def _chain_errors(path, velocity, mode, margin=16, valid_only=False):
    errors, shares = [], []
    with open_video(path, motion=True) as video:
        chain = MotionChain(video.size, mode=mode)
        for f in video:
            field = chain.push(f)
            d = f.index - chain.key_index
            vectors, valid = field.to_dense()
            truth = -d * np.asarray(velocity, np.float32).reshape(2, 1, 1)
            inner = (slice(margin, -margin), slice(margin, -margin))
            epe = np.sqrt(((vectors - truth) ** 2).sum(0))[inner]
            errors.append(float(epe[valid[inner]].mean() if valid_only else epe.mean()))
            shares.append(float(valid[inner].mean()))
    return (errors, shares) if valid_only else errors


def test_chain_to_keyframe_on_encoded_translation(clip_dir):
    velocity = (0.5, -0.25)  # sub-pixel: exact mode follows it, per-hop rounding loses it
    images = translation_frames((96, 128), 12, velocity, seed=13)
    path = encode(clip_dir / "subpel.mp4", images, gop=12)
    exact = _chain_errors(path, velocity, "exact")
    arseg = _chain_errors(path, velocity, "arseg")
    assert max(exact) < 0.25, exact
    assert arseg[11] > 3.0, arseg  # 11 hops of (0.5, -0.25) rounded to (0, 0) each


@pytest.mark.parametrize("pyramid", ["none", "normal"])
def test_chain_with_b_frames_on_encoded_translation(clip_dir, pyramid):
    """B-frames chain through their list-0 reference: the last I/P frame, or a reference B-frame of a pyramid."""
    velocity = (2, 1)
    images = translation_frames((96, 128), 12, velocity, seed=14)
    path = encode(clip_dir / f"bframes_{pyramid}.mp4", images, gop=12, bframes=3,
                  options={"x264-params": f"log-level=error:b-pyramid={pyramid}:b-adapt=0"})
    with open_video(path, motion=True) as video:
        frames = list(video)
    types = "".join(f.pict_type for f in frames)
    assert types == "IBBBPBBBPBBP"
    reference_b = [f.index for f in frames if f.pict_type == "B" and f.reference]
    assert reference_b == ([] if pyramid == "none" else [2, 6, 9])
    assert all(f.reference for f in frames if f.pict_type in "IP")
    errors, shares = _chain_errors(path, velocity, "exact", valid_only=True)
    assert max(errors) < 0.25, (types, errors)
    for t, share in zip(types, shares, strict=True):
        # P-frames are predicted from the past throughout; x264's B-frames take many blocks from the future
        # reference only (invalid here: its chain is not known yet in display order); measured 12-45 %.
        assert share > (0.9 if t in "IP" else 0.05), (types, shares)


def test_mpeg4_b_frames_are_not_references(clip_dir):
    images = translation_frames((64, 96), 7, (1, 0), seed=15)
    path = encode(clip_dir / "mpeg4_b.avi", images, codec="mpeg4", bframes=2)
    with open_video(path, motion=True) as video:
        frames = list(video)
    assert "B" in {f.pict_type for f in frames}
    assert all(f.reference == (f.pict_type != "B") for f in frames)


def test_synthetic_street_epe_to_keyframe(clip_dir):
    """Chained codec motion vs the exact flow to the keyframe of a synthetic street clip (vidseg.synthetic),
    mean EPE over pixels visible in the keyframe; benchmarks/motion_epe.py prints the full table."""
    synthetic = pytest.importorskip("vidseg.synthetic")
    info = synthetic.write_clip(clip_dir / "street.mp4", synthetic.SceneConfig(height=128, width=256, seed=0), 12,
                                gop=12)
    errors = {"exact": [], "arseg": [], "zero": []}
    with open_video(info.path, motion=True) as video:
        chains = {mode: MotionChain(video.size, mode=mode) for mode in ("exact", "arseg")}
        for f in video:
            fields = {mode: chain.push(f) for mode, chain in chains.items()}
            if f.index == 0:
                continue
            gt = synthetic.load_ground_truth(info.path, f.index)
            truth, visible = gt["flow_key"].transpose(2, 0, 1), ~gt["occ_key"]
            for mode, field in fields.items():
                vectors, _ = field.to_dense(mode="bilinear" if mode == "exact" else "nearest")
                errors[mode].append(float(np.sqrt(((vectors - truth) ** 2).sum(0))[visible].mean()))
            errors["zero"].append(float(np.sqrt((truth**2).sum(0))[visible].mean()))
    for d in range(1, 12):
        exact, arseg, zero = errors["exact"][d - 1], errors["arseg"][d - 1], errors["zero"][d - 1]
        assert exact < 0.8 + 0.25 * d, (d, errors)  # measured 0.54 (d=1), 1.36 (d=3) .. 2.63 (d=11)
        assert exact < 0.2 * zero, (d, errors)
        assert exact <= arseg + 0.05, (d, errors)  # sub-pixel chaining never loses to per-hop rounding


@pytest.mark.parametrize("size,out", [((38, 66), (5, 11)), ((64, 96), (8, 12))])
def test_area_mode_matches_overlap_weights(size, out):
    """The box integral equals an explicit overlap-weight average, for non-integer footprints and partial cells
    (38x66 frame, 4 px cells -> 5x11) and for whole cells per output pixel (64x96 -> 8x12, the block-sum path)."""
    m = _random_field(size, invalid=0.3, seed=3)
    (height, width), (h, w) = size, out

    def weights(n_out, n_in, n_cells):
        lo = np.arange(n_out)[:, None] * (n_in / n_out)
        c_lo = np.arange(n_cells)[None, :] * 4.0
        return np.clip(np.minimum(lo + n_in / n_out, np.minimum(c_lo + 4, n_in)) - np.maximum(lo, c_lo), 0, None)

    ay, ax = weights(h, height, m.grid[0]), weights(w, width, m.grid[1])
    valid = m.valid.astype(float)
    weight = ay @ valid @ ax.T
    expect = np.stack([ay @ (m.vectors[c] * valid) @ ax.T for c in range(2)]) / np.maximum(weight, 1e-12)
    expect *= np.array([w / width, h / height]).reshape(2, 1, 1)
    vectors, ok = m.to_dense((h, w), mode="area")
    has = weight > 0
    assert np.allclose(vectors[:, has], expect[:, has], atol=1e-5)
    assert np.array_equal(ok, weight >= 0.5 * (height / h) * (width / w))

