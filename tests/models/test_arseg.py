"""AR-Seg pairs: the nonkey path's conventions (warp, downscale, CReFF), specs, sizes, MACs and exportability."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidseg.errors import ConfigError
from vidseg.models import build
from vidseg.models.arseg import CReFF
from vidseg.models.profile import count_macs, count_params

PAIRS = ["arseg-psp18-camvid", "arseg-bise18-camvid", "arseg-psp18-cityscapes", "arseg-bise18-cityscapes"]


def _capture_fusion_inputs(model):
    """Record what the LR net's CReFF receives: (warped key features, LR feature)."""
    seen = {}
    model.lr.fuse_attention.register_forward_pre_hook(lambda mod, args: seen.update(hr=args[0], lr=args[1]))
    return seen


def _run_nonkey(model, height, width, key_features, motion, **stage_kw):
    stage = model.stages(**stage_kw)["nonkey"]
    image = torch.randint(0, 256, (1, 3, height, width), dtype=torch.uint8)
    with torch.no_grad():
        return stage(image, key_features, motion)


def test_arseg_warp_with_zero_motion_shifts_by_half_a_feature_pixel_and_fades_the_border():
    model = build("arseg-bise18-cityscapes")
    seen = _capture_fusion_inputs(model)
    h, w = model.feature_size(64, 96)  # 8 x 12
    zero = torch.zeros(1, 2, h, w)
    _run_nonkey(model, 64, 96, torch.ones(1, 256, h, w), zero)
    warped = seen["hr"][0, 0]
    assert torch.allclose(warped[1:-1, 1:-1], torch.ones(h - 2, w - 2), atol=1e-6)
    assert torch.allclose(warped[1:-1, 0], torch.full((h - 2,), 0.5))  # border column: half faded by zero padding
    assert torch.allclose(warped[0, 0], torch.tensor(0.25))
    ramp = torch.arange(w, dtype=torch.float32).expand(1, 256, h, w).contiguous()
    _run_nonkey(model, 64, 96, ramp, zero)
    x = torch.arange(1, w - 1, dtype=torch.float32)
    assert torch.allclose(seen["hr"][0, 0, 3, 1:-1], x * w / (w - 1) - 0.5, atol=1e-5)  # sample at x*W/(W-1) - 1/2


def test_exact_warp_option_is_the_identity_for_zero_motion():
    model = build("arseg-bise18-cityscapes", warp_convention="exact")
    seen = _capture_fusion_inputs(model)
    h, w = model.feature_size(64, 96)
    feats = torch.randn(1, 256, h, w)
    _run_nonkey(model, 64, 96, feats, torch.zeros(1, 2, h, w))
    assert torch.allclose(seen["hr"], feats, atol=1e-6)
    with pytest.raises(ConfigError, match="warp convention"):
        build("arseg-bise18-cityscapes", warp_convention="nearest")


@pytest.mark.parametrize(("height", "width", "scale"), [(64, 96, 0.5), (70, 99, 0.3)])
def test_nonkey_downscales_the_normalised_frame_bilinearly_with_align_corners(height, width, scale):
    model = build("arseg-psp18-cityscapes")
    seen = {}
    model.lr.layer0.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    stage = model.stages(lr_scale=scale)["nonkey"]
    image, key_features, motion = stage.example_inputs(height, width)
    with torch.no_grad():
        stage(image, key_features, motion)
        full = model.preprocess(image)
    size = (int(height * scale), int(width * scale))
    expected = F.interpolate(full, size=size, mode="bilinear", align_corners=True)
    assert seen["x"].shape[-2:] == size
    assert torch.allclose(seen["x"], expected, atol=1e-5)
    with pytest.raises(ConfigError, match="lr_scale"):
        model.stages(lr_scale=1.5)


def test_creff_matches_an_independent_unfold_derivation():
    torch.manual_seed(1)
    creff = CReFF(3)
    for conv in (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv):  # depthwise, with bias
        assert conv.weight.shape == (3, 1, 3, 3) and conv.bias.shape == (3,)
        torch.nn.init.normal_(conv.bias)
    hr, lr = torch.randn(2, 3, 9, 11), torch.randn(2, 3, 5, 6)
    with torch.no_grad():
        out = creff(hr, lr)
        up = F.interpolate(lr, size=(9, 11), mode="bilinear", align_corners=True)
        q = F.conv2d(up, creff.lr_query_conv.weight, creff.lr_query_conv.bias, padding=1, groups=3)
        k = F.conv2d(hr, creff.hr_key_conv.weight, creff.hr_key_conv.bias, padding=1, groups=3)
        v = F.conv2d(hr, creff.hr_value_conv.weight, creff.hr_value_conv.bias, padding=1, groups=3)
        kk = F.unfold(k, 7, padding=3).view(2, 3, 49, 99)  # zero-padded neighbours, offset (dy, dx) -> dy*7+dx
        vv = F.unfold(v, 7, padding=3).view(2, 3, 49, 99)
        scores = (q.view(2, 3, 1, 99) * kk).sum(1)  # raw dot products, no 1/sqrt(C)
        attn = scores.softmax(dim=1)
        expected = up + (attn.unsqueeze(1) * vv).sum(2).view(2, 3, 9, 11)
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("name", PAIRS)
def test_specs_and_parameters(name):
    model = build(name)
    spec = model.spec
    camvid, imagenet, coincheung = (0.39068785, 0.40521392, 0.41434407), (0.485, 0.456, 0.406), (0.3257, 0.369, 0.3223)
    # arseg.md §1.1, §2.1, §6: palette, classes, C, feature stride, mean, HR/LR params; the stages' logits stride
    # (BiSeNet's x8 upsample is the labels step's, logits_upsample: the seed's logits are at stride 1 after it)
    digest = {
        "arseg-psp18-camvid": ("camvid12", 12, 64, 1, 1, 1, camvid, 17_461_979, 17_463_899),
        "arseg-bise18-camvid": ("camvid12", 12, 256, 8, 8, 8, camvid, 13_423_012, 13_430_692),
        "arseg-psp18-cityscapes": ("cityscapes19", 19, 512, 8, 8, 1, imagenet, 16_779_622, 16_779_622),
        "arseg-bise18-cityscapes": ("cityscapes19", 19, 256, 8, 8, 8, coincheung, 13_425_721, 13_433_401),
    }[name]
    palette, classes, channels, fstride, lstride, upsample, mean, hr_params, lr_params = digest
    assert (spec.palette, spec.num_classes, spec.feature_channels) == (palette, classes, channels)
    assert (spec.feature_stride, spec.logits_stride, spec.logits_upsample, spec.mean) == (fstride, lstride, upsample,
                                                                                          mean)
    assert spec.methods == ("per-frame", "arseg") and spec.lr_scale == 0.5
    assert count_params(model.hr) == hr_params and count_params(model.lr) == lr_params
    assert set(model.checkpoint_parts()) == {"hr", "lr"}
    alone = build(name.removeprefix("arseg-"))
    assert alone.spec.methods == ("per-frame",) and count_params(alone.net) == hr_params


def test_psp_camvid_nonkey_returns_log_probabilities():
    model = build("arseg-psp18-camvid")
    stage = model.stages()["nonkey"]
    with torch.no_grad():
        logits, fused = stage(*stage.example_inputs(32, 48))
    assert logits.shape == (1, 12, 32, 48) and fused.shape == (1, 64, 32, 48)
    assert torch.allclose(logits.exp().sum(1), torch.ones(1, 32, 48), atol=1e-5)


def test_full_resolution_bisenet_camvid_pair():
    """One forward per stage at the seed's resolution (720x960, a few seconds on 2 cores)."""
    model = build("arseg-bise18-camvid")
    seen = _capture_fusion_inputs(model)
    stages = model.stages()
    image = torch.randint(0, 256, (1, 3, 720, 960), dtype=torch.uint8)
    with torch.no_grad():
        logits, features = stages["key"](image)
        assert logits.shape == (1, 12, 90, 120) and features.shape == (1, 256, 90, 120)  # x8 in the labels step
        motion = torch.zeros(1, 2, 90, 120)
        logits2, fused = stages["nonkey"](image, features, motion)
    assert seen["lr"].shape == (1, 256, 46, 60)  # LR feature at 360x480 (nearest x2 quirk)
    assert logits2.shape == (1, 12, 90, 120) and fused.shape == (1, 256, 90, 120)


@pytest.mark.parametrize(
    ("name", "size", "key_gmacs", "nonkey_gmacs"),
    [  # arseg.md §7 (without the aux heads, which the stages do not run; psp-cityscapes HR aux = 19.48 G)
        ("arseg-psp18-camvid", (720, 960), 308.64, 77.04 + 1.73 + 4.34),
        ("arseg-psp18-cityscapes", (1024, 2048), 559.46 - 19.48, 134.92 + 0.77 + 1.64),
    ],
)
def test_macs_match_the_digest(name, size, key_gmacs, nonkey_gmacs):
    with torch.device("meta"):
        model = build(name)
        stages = model.stages()
        macs = {}
        for stage_name, stage in stages.items():
            inputs = [torch.empty(s, dtype=d) for s, d in stage.input_shapes(*size).values()]
            macs[stage_name] = count_macs(stage, *inputs) / 1e9
    assert macs["key"] == pytest.approx(key_gmacs, abs=0.02)
    assert macs["nonkey"] == pytest.approx(nonkey_gmacs, abs=0.02)


@pytest.mark.parametrize("name", PAIRS)
def test_stages_export_with_torch_export(name):
    model = build(name)
    for stage_name, stage in model.stages().items():
        inputs = stage.example_inputs(32, 48)
        program = torch.export.export(stage, inputs)
        with torch.no_grad():
            eager = stage(*inputs)
        exported = program.module()(*inputs)
        for a, b in zip(exported, eager, strict=True):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), (name, stage_name)


@pytest.mark.slow
def test_nonkey_stage_exports_to_onnx_with_standard_operators():
    pytest.importorskip("onnxscript")
    stage = build("arseg-bise18-cityscapes").stages()["nonkey"]
    inputs = stage.example_inputs(32, 48)
    program = torch.onnx.export(
        stage, inputs, dynamo=True, input_names=list(stage.input_names), output_names=list(stage.output_names)
    )
    graph = program.model_proto.graph
    assert [i.name for i in graph.input] == list(stage.input_names)
    assert [o.name for o in graph.output] == list(stage.output_names)
    domains = {node.domain for node in graph.node}
    assert domains <= {"", "ai.onnx"}, domains
    assert "GridSample" in {node.op_type for node in graph.node}
