"""Engine.process_uploaded: frames already on the device give exactly what process_frame gives."""

import numpy as np
import pytest
from engine_tiny import TinyModel, make_frames

from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine, SourceFrame
from vidseg.errors import ShapeError


def test_process_uploaded_matches_process_frame_and_checks_the_size():
    frames = make_frames(5)
    model = TinyModel().eval()
    config = EngineConfig(method="flowwarp", keyframe_interval=3, device="cpu")
    plain = Engine(config, model=model)
    resident = Engine(config, model=model)
    for i, image in enumerate(frames):
        a = plain.process_frame(image)
        b = resident.process_uploaded(SourceFrame(i, image), resident.upload(image))
        assert np.array_equal(a.labels, b.labels) and (a.is_key, a.key_distance) == (b.is_key, b.key_distance)
    with pytest.raises(ShapeError, match="process_uploaded"):
        resident.process_uploaded(SourceFrame(5, frames[0]), resident.upload(frames[0][:32]))
    assert resident.notes == ()
