"""vidseg's codec motion vectors are motion-vector-extractor's (`mvextractor`), block for block."""

import numpy as np
import pytest

from vidseg.video.decode import open_video

from .conftest import encode, translation_frames

# mvextractor's columns, in its order (FFmpeg's AVMotionVector less `flags`).
PEER_FIELDS = ("source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale")


def test_vectors_equal_motion_vector_extractor(clip_dir):
    videocap = pytest.importorskip("mvextractor.videocap", reason="motion-vector-extractor is not installed")
    images = translation_frames((96, 160), 16, (2.5, -1.25), seed=7)
    # B-frames too, so that future (list-1) and bi-predicted blocks are compared as well as past ones.
    path = encode(clip_dir / "peer.mp4", images, gop=8, bframes=2)
    with open_video(path, motion=True) as video:
        ours = [(f.pict_type, None if f.motion is None else f.motion.blocks) for f in video]
    cap = videocap.VideoCap()
    assert cap.open(str(path))
    theirs = []
    while True:
        ok, _image, vectors, kind = cap.read()
        if not ok:
            break
        theirs.append((kind, vectors))
    cap.release()
    assert len(ours) == len(theirs) == 16
    sources = set()
    for i, ((kind, blocks), (peer_kind, peer_vectors)) in enumerate(zip(ours, theirs, strict=True)):
        assert kind == peer_kind, f"frame {i}"
        rows = (np.zeros((0, 10), np.int64) if blocks is None
                else np.stack([blocks[name].astype(np.int64) for name in PEER_FIELDS], axis=1))
        assert rows.shape == peer_vectors.shape and np.array_equal(rows, peer_vectors), f"frame {i}"
        sources |= set(rows[:, 0].tolist())
    assert {"I", "P", "B"} <= {kind for kind, _ in ours}
    assert sources == {-1, 1}  # both directions were compared, not only empty arrays
