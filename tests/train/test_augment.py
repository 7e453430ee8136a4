"""Domain randomisation: camera and codec degradations of a frame, seeded and shape-preserving."""

import numpy as np

from vidseg.train.augment import degrade


def _image() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (64, 96, 3)).astype(np.uint8).repeat(2, 0).repeat(2, 1)


def test_strength_zero_leaves_the_image_alone():
    image = _image()
    assert degrade(image, np.random.default_rng(0), 0.0) is image


def test_degradations_keep_shape_and_dtype_and_follow_the_seed():
    image = _image()
    outs = [degrade(image, np.random.default_rng(s), 1.0) for s in range(12)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs)
    assert sum(np.abs(o.astype(int) - image).mean() > 2 for o in outs) >= 10
    np.testing.assert_array_equal(degrade(image, np.random.default_rng(3), 1.0), outs[3])
    strong = degrade(image, np.random.default_rng(5), 2.0)  # strength 2 stays valid (JPEG quality, gains)
    assert strong.shape == image.shape
