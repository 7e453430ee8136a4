"""Real zoo stages through the ONNX path at a small resolution: the custom-op paths of two seeds.

Few and small on purpose: each ONNX export of a ResNet-18 network takes tens of seconds on 2 cores. Every
model of the zoo was checked the same way when this was written (see the export issue's note).
"""

from __future__ import annotations

import onnx
import pytest
import torch

from vidseg.export import onnx as vonnx
from vidseg.export import trt_onnx_ops
from vidseg.export.trt_check import graph_operators
from vidseg.models import build

CASES = [
    pytest.param("gsvnet-swiftnet18", "refine", {"GridSample"}, id="gsvnet-refine"),  # GSVNet warp (align_corners=True)
    pytest.param("arseg-psp18-camvid", "nonkey", {"GridSample"}, id="arseg-nonkey",
                 marks=pytest.mark.slow),  # AR-Seg warp + CReFF
    # FlowNet2-S: transposed convs, and the flow cropped back from the padded 64-multiple (Slice)
    pytest.param("swnet-seq", "flow", {"ConvTranspose", "Slice"}, id="swnet-seq-flow"),
    # GSVNet's FlowNetS: padding-0 transposed convs cropped to the skips (Slice), average pool before flow2
    pytest.param("gsvnet-swiftnet18-flownets", "flow", {"ConvTranspose", "Slice", "AveragePool"},
                 id="gsvnet-flownets-flow"),
    pytest.param("swnet-seq", "refine", {"GridSample"}, id="swnet-seq-refine"),  # the keyframe logits' warp
]


@pytest.mark.parametrize(("model_name", "stage_name", "expected_ops"), CASES)
def test_zoo_stage_exports_validates_and_fits_tensorrt(model_name, stage_name, expected_ops, tmp_path):
    torch.manual_seed(0)
    stage = build(model_name).stages()[stage_name].eval()
    report = vonnx.export_onnx(stage, tmp_path / "s.onnx", 64, 128, stage_name=stage_name)
    assert report.exporter == "dynamo"
    assert report.validation.passed, report.validation.summary()
    assert report.trt_problems == ()
    ops = graph_operators(onnx.load(str(report.path)))
    assert expected_ops <= ops and ops <= set(trt_onnx_ops.SUPPORTED)
