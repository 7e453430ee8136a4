"""The engine's labels of a BiSeNet model (stride-8 logits, `ModelSpec.logits_upsample`) are the seed's: its x8
upsample, its resize to the frame (align_corners=True), argmax; returned logits are the seed's full x8 map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine
from vidseg.models.demo import build_demo


@pytest.mark.filterwarnings("ignore:frame size changed")
@pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "nchw"])
def test_per_frame_labels_and_logits_are_the_seeds_at_any_frame_size(channels_last):
    model = build_demo(pretrained=False)
    with torch.no_grad():
        model.hr.final_conv.bias.zero_()  # labels that vary over the frame
    engine = Engine(EngineConfig(method="per-frame", device="cpu", channels_last=channels_last, return_logits=True),
                    model=model)
    rng = np.random.default_rng(3)
    for size in ((128, 256), (120, 160), (100, 132)):  # the x8 map is the frame / is 128x160 / 104x144
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        result = engine.process_frame(image)
        with torch.no_grad():
            x = model.preprocess(torch.from_numpy(image).permute(2, 0, 1)[None])
            x8 = nn.Upsample(scale_factor=8, mode="bilinear", align_corners=False)(model.hr.final_conv(
                model.hr.features(x)))
            want = F.interpolate(x8, size=size, mode="bilinear", align_corners=True).argmax(1)[0]
        assert len(np.unique(result.labels)) > 3
        np.testing.assert_array_equal(result.labels, want.numpy(), err_msg=str(size))
        assert result.logits.shape == x8.shape[1:]
        np.testing.assert_allclose(result.logits, x8[0].numpy(), atol=1e-5)
