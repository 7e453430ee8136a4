"""GSVNet (gsvnet-swiftnet18, gsvnet-bisenet18): seed layouts, stage shapes, the must-match conventions of
shared/reference/gsvnet.md (§2 normalisation/BGR, §1 0.75 key scale and 1/8 bottleneck, §3-§4 flow units and the
align_corners=True warp, §5 edge map, zero slot, ideal-delay candidates), the reference guided_sv_conv, export.

`_seed_*` functions transcribe the seed's computations from the digest (conv3d delay kernels, x2 Upsample
modules, linspace base grid + grid_sample, 22-channel warp, BGR loader + tensor_flip_channel) independently of
vidseg's implementation, so the stages are checked against the seed's formulas, not against themselves.
"""

from __future__ import annotations

import re

import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from statedicts import DATA, load_listing, random_state_dict
from torch import Tensor

from vidseg.kernels import ops, reference
from vidseg.models import build
from vidseg.models.checkpoints import load_checkpoint
from vidseg.models.flowwarp import (
    FLOW_DIVISOR,
    FlowLight,
    GSVNetModel,
    GuidedSpatiallyVaryingConv,
    gsv_edge_map,
    ideal_delay_filters,
)
from vidseg.models.profile import count_macs, count_params

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")

BGR_MEAN, BGR_STD = (72.3, 82.90, 73.15), (47.73, 48.49, 47.67)  # GSVNet's SwiftNet transform, B,G,R


def seed_listing(title_prefix: str) -> tuple[dict[str, tuple[int, ...]], int]:
    """(key -> shape, parameter count) of the listing section whose title starts with title_prefix."""
    section = next(s for t, s in load_listing("gsvnet").items() if t.startswith(title_prefix))
    return {e.key: e.shape for e in section.entries}, section.params


def random_state(title_prefix: str, seed: int = 0) -> dict[str, Tensor]:
    """A state_dict with exactly the listing's keys and shapes (random values), as the seed's file holds it."""
    section = next(s for t, s in load_listing("gsvnet").items() if t.startswith(title_prefix))
    return random_state_dict(section, prefix="", seed=seed)


def gsv_state(seed: int = 0) -> dict[str, Tensor]:
    """The seed's GSV file (End2End keys) with random weights and the fixed ideal-delay filters it ships."""
    state = random_state("GSV End2End", seed)
    state["grm.ideal_dk.filter_copy_s"] = ideal_delay_filters()
    return state


@pytest.fixture(scope="module")
def gsvnet() -> GSVNetModel:
    """gsvnet-swiftnet18 with all three seed parts loaded (random values, exact keys)."""
    model = build("gsvnet-swiftnet18")
    load_checkpoint(model, random_state("SwiftNet-R18", 1), part="segnet")
    load_checkpoint(model, random_state("FlowLight", 2), part="flow")
    load_checkpoint(model, gsv_state(3), part="gsv")
    return model.eval()


def uint8_frames(n: int, height: int, width: int, seed: int = 0) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (1, 3, height, width), generator=gen).float()
    frames = []
    for i in range(n):  # a slowly shifting, slightly noisy scene
        f = torch.roll(base, shifts=(i, 2 * i), dims=(2, 3)) + torch.randn(base.shape, generator=gen) * 4
        frames.append(f.clamp(0, 255).to(torch.uint8))
    return frames


# --- seed transcriptions -------------------------------------------------------------------------------------------


def _bil(x: Tensor, size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def _seed_load(u8: Tensor) -> Tensor:
    """PIL RGB -> FlipChannels (BGR) -> ToTensor -> x255 -> Normalize(B,G,R stats)."""
    x = u8.flip(1).float()
    return (x - torch.tensor(BGR_MEAN).view(1, 3, 1, 1)) / torch.tensor(BGR_STD).view(1, 3, 1, 1)


def _seed_warp(ref: Tensor, flow: Tensor) -> Tensor:
    """MC_Module_Batch + GridSampler: flow / 4, linspace base grid + 2 * flow / (n - 1), grid_sample (ac=True)."""
    flow = flow / 4
    _, _, h, w = flow.shape
    col = torch.linspace(-1, 1, h).unsqueeze(1).expand(h, w)
    row = torch.linspace(-1, 1, w).unsqueeze(0).expand(h, w)
    base = torch.stack([row, col], dim=2)
    adj = flow.permute(0, 2, 3, 1).clone()
    adj[..., 0] /= w - 1
    adj[..., 1] /= h - 1
    grid = adj * 2 + base
    return F.grid_sample(ref, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _seed_gsv(grm: GuidedSpatiallyVaryingConv, x: Tensor, image: Tensor):
    """GuidedSpatiallyVaryingConv.forward: conv3d delay kernels, x2 Upsample modules, (B,11,19,h,w) product-sum."""
    intra = grm.intra_net.intra_net(image).unsqueeze(1)
    lap = torch.ones(1, 1, 3, 3)
    lap[0, 0, 1, 1] = -8
    edge = F.conv2d(x.argmax(1, keepdim=True).float(), lap, padding=1)
    edge[edge != 0.0] = 1.0
    g = grm.guide
    feat = g.guide_conv(torch.cat((intra.squeeze(1), edge), 1))
    inter = g.guide_deconv(g.guide_conv_feat(feat))  # the Sequential as the seed runs it: Upsample(x2) modules
    guide = g.guide_decoder(feat + inter).unsqueeze(2)
    guide = guide / (guide.sum(1, keepdim=True) + 1e-9)
    xs = x.unsqueeze(1)
    short = F.conv3d(xs, grm.ideal_dk.filter_copy_s, padding=(0, 1, 1))
    cand = torch.cat((torch.cat((xs, short), 1), intra), 1)
    return (guide * cand).sum(1), guide, edge


def _seed_clip(model: GSVNetModel, frames: list[Tensor]) -> Tensor:
    """GSVNet_Trainer.forward (eval, light flow): keyframe at 0.75 through the 1/8 bottleneck, then propagate."""
    height, width = frames[0].shape[-2:]
    h, w = height // 8, width // 8
    images = [_seed_load(f) for f in frames]
    low = _bil(images[0], (height // 4 * 3, width // 4 * 3))
    low = low[:, [2, 1, 0]]  # tensor_flip_channel
    pred = _bil(model.segnet(low), (h, w))
    prev_image = images[0]
    for image in images[1:]:
        a, b = _bil(image, (h, w)), _bil(prev_image, (h, w))
        flow = _bil(model.flownet(torch.cat([a, b], 1)), (h, w))
        mc = _seed_warp(torch.cat((pred, b), 1), flow)  # 22 channels warped together
        pred = _seed_gsv(model.gsv.grm, mc[:, :19], a)[0]
        prev_image = image
    return pred


def _run_stages(model: GSVNetModel, frames: list[Tensor]) -> Tensor:
    st = model.stages()
    logits, features = st["key"](frames[0])
    assert features is logits
    for prev, cur in zip(frames[:-1], frames[1:], strict=True):
        (flow,) = st["flow"](cur, prev)
        (logits,) = st["refine"](cur, logits, flow)
    return logits


# --- layouts, parameters, shapes, MACs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "title", "params"),
    [("segnet", "SwiftNet-R18", 11_797_071), ("flow", "FlowLight", 186_402), ("gsv", "GSV End2End", 210_085)],
)
def test_parts_have_the_seed_layout_and_params(part, title, params):
    listing, listed = seed_listing(title)
    module = build("gsvnet-swiftnet18").checkpoint_parts()[part]
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == listing
    assert count_params(module) == listed == params


def test_model_params_and_frozen_delay_filters():
    sn, bn = build("gsvnet-swiftnet18"), build("gsvnet-bisenet18")
    assert count_params(sn) == 12_193_558 and count_params(bn) == 13_891_264
    assert count_params(sn.gsv, trainable_only=True) == 210_004  # the 81 delay-filter values are frozen
    assert torch.equal(sn.gsv.grm.ideal_dk.filter_copy_s, ideal_delay_filters())
    assert set(sn.checkpoint_parts()) == {"segnet", "flow", "gsv"}
    assert sn.methods == ("per-frame", "flowwarp")


def test_delay_filters_are_the_listed_ones():
    listed = re.findall(r"filter (\d): (\[\[.*\]\])", (DATA / "gsvnet_state_dicts.txt").read_text())
    f = ideal_delay_filters()
    assert len(listed) == 9
    for idx, text in listed:
        assert f[int(idx), 0, 0].tolist() == eval(text)  # noqa: S307 - the digest's own literal


@pytest.mark.parametrize("name", ["gsvnet-swiftnet18", "gsvnet-bisenet18"])
def test_stage_shapes_at_full_resolution(name):
    with torch.device("meta"):
        model = build(name)
    st = model.stages()
    ins = {k: torch.empty(s, dtype=d, device="meta") for k, (s, d) in st["refine"].input_shapes(1024, 2048).items()}
    logits, _ = st["key"](ins["image"])
    (flow,) = st["flow"](ins["image"], ins["image"])
    (out,) = st["refine"](**ins)
    assert logits.shape == out.shape == (1, 19, 128, 256) and flow.shape == (1, 2, 128, 256)
    assert model.feature_size(1024, 2048) == (128, 256)


@pytest.mark.parametrize(
    ("name", "stage", "gmacs"),
    [
        ("gsvnet-swiftnet18", "key", 58.26),  # segnet at 768x1536
        ("gsvnet-bisenet18", "key", 58.34),
        ("gsvnet-swiftnet18", "flow", 0.39),  # FlowLight at 128x256
        ("gsvnet-swiftnet18", "refine", 2.31),  # GSV at 128x256 (the delay conv3d is not a conv layer)
    ],
)
def test_stage_macs_match_the_digest(name, stage, gmacs):
    with torch.device("meta"):
        st = build(name).stages()[stage]
        ins = [torch.empty(s, dtype=d) for s, d in st.input_shapes(1024, 2048).values()]
    assert count_macs(st, *ins) / 1e9 == pytest.approx(gmacs, abs=0.006)


def test_average_macs_per_frame_for_l3():
    with torch.device("meta"):
        st = build("gsvnet-swiftnet18").stages()
        macs = {
            n: count_macs(s, *[torch.empty(sh, dtype=d) for sh, d in s.input_shapes(1024, 2048).values()])
            for n, s in st.items()
        }
    avg = (macs["key"] + 2 * (macs["flow"] + macs["refine"])) / 3 / 1e9
    assert avg == pytest.approx(21.22, abs=0.01)  # README "21.3G Avg. FLOPS" (conv MACs)


# --- end-to-end against the seed's formulas -----------------------------------------------------------------------


def test_stages_reproduce_the_seed_clip(gsvnet):
    frames = uint8_frames(3, 128, 256)
    with torch.no_grad():
        ours, seed = _run_stages(gsvnet, frames), _seed_clip(gsvnet, frames)
    assert ours.shape == seed.shape == (1, 19, 16, 32)
    assert torch.allclose(ours, seed, rtol=1e-4, atol=1e-4 * seed.abs().max())


def test_bisenet_variant_reproduces_the_seed_key_frame():
    model = build("gsvnet-bisenet18").eval()
    frame = uint8_frames(1, 128, 256)[0]
    with torch.no_grad():
        ours, _ = model.stages()["key"](frame)
        x = frame.flip(1).float() / 255  # BGR loader, ToTensor, Normalize(B,G,R ImageNet stats)
        x = (x - torch.tensor([0.406, 0.456, 0.485]).view(1, 3, 1, 1)) / torch.tensor([0.225, 0.224, 0.229]).view(
            1, 3, 1, 1
        )
        seed = _bil(model.segnet(_bil(x, (96, 192))[:, [2, 1, 0]]), (16, 32))
    assert torch.allclose(ours, seed, rtol=1e-4, atol=1e-4 * seed.abs().max())


# --- conventions, one at a time ---------------------------------------------------------------------------------


def test_segnet_sees_rgb_at_075_and_flow_net_sees_bgr_at_one_eighth(gsvnet):
    seen = {}
    h1 = gsvnet.segnet.register_forward_pre_hook(lambda m, a: seen.__setitem__("seg", a[0]))
    h2 = gsvnet.flownet.register_forward_pre_hook(lambda m, a: seen.__setitem__("flow", a[0]))
    h3 = gsvnet.gsv.grm.intra_net.register_forward_pre_hook(lambda m, a: seen.__setitem__("intra", a[0]))
    cur, prev = uint8_frames(2, 64, 96)
    st = gsvnet.stages()
    with torch.no_grad():
        logits, _ = st["key"](cur)
        (flow,) = st["flow"](cur, prev)
        st["refine"](cur, logits, flow)
    for h in (h1, h2, h3):
        h.remove()
    assert seen["seg"].shape[-2:] == (48, 72)  # H // 4 * 3, W // 4 * 3
    red = _bil((cur[:, 0:1].float() - 73.15) / 47.67, (48, 72))
    assert torch.allclose(seen["seg"][:, 0:1], red, atol=1e-4)
    assert seen["flow"].shape == (1, 6, 8, 12)
    blue = _bil((cur[:, 2:3].float() - 72.3) / 47.73, (8, 12))
    blue_prev = _bil((prev[:, 2:3].float() - 72.3) / 47.73, (8, 12))
    assert torch.allclose(seen["flow"][:, 0:1], blue, atol=1e-4)  # current frame first, channel 0 = B
    assert torch.allclose(seen["flow"][:, 3:4], blue_prev, atol=1e-4)
    assert torch.allclose(seen["intra"], seen["flow"][:, :3], atol=1e-6)  # GSV nets see the same BGR image


def test_key_logits_go_through_the_one_eighth_bottleneck(gsvnet):
    frame = uint8_frames(1, 128, 256)[0]
    with torch.no_grad():
        logits, _ = gsvnet.stages()["key"](frame)
        direct = gsvnet.segnet(_bil(gsvnet.preprocess(frame), (96, 192)))
    assert direct.shape[-2:] == (24, 48)  # SwiftNet: stride 4 of the 0.75-scaled frame
    assert torch.allclose(logits, _bil(direct, (16, 32)), atol=1e-5)
    assert gsvnet.spec.logits_stride == 8 and gsvnet.spec.logits_align_corners


def test_flow_units_are_raw_over_4_on_the_one_eighth_grid():
    model = build("gsvnet-swiftnet18").eval()
    with torch.no_grad():  # a flow net whose raw output is the constant (8, 4)
        model.flownet.toflow.weight.zero_()
        model.flownet.toflow.bias.copy_(torch.tensor([8.0, 4.0]))
    cur, prev = uint8_frames(2, 128, 256)
    st = model.stages()
    with torch.no_grad():
        (flow,) = st["flow"](cur, prev)
    assert flow.shape == (1, 2, 16, 32)  # raw is 4x8 (1/32 of the frame), upsampled without rescaling
    assert torch.allclose(flow[:, 0], torch.full((1, 16, 32), 2.0))
    assert torch.allclose(flow[:, 1], torch.ones(1, 16, 32))
    assert FLOW_DIVISOR == 4.0
    # ... and the refine stage moves content by exactly that many pixels of the 1/8 grid (backward warp).
    prev_logits = torch.randn(1, 19, 16, 32)
    warped = ops.warp(prev_logits, flow, "gsvnet")
    assert torch.allclose(warped[..., :-1, :-2], prev_logits[..., 1:, 2:], atol=1e-5)
    assert torch.allclose(warped, _seed_warp(prev_logits, flow * 4), atol=1e-5)


def test_warp_is_align_corners_true_and_zero_flow_is_identity():
    x = torch.randn(2, 19, 16, 32)
    assert torch.allclose(ops.warp(x, torch.zeros(2, 2, 16, 32), "gsvnet"), x, atol=1e-5)
    flow = torch.randn(2, 2, 16, 32) * 3
    assert torch.allclose(ops.warp(x, flow, "gsvnet"), _seed_warp(x, flow * 4), atol=1e-5)
    assert torch.allclose(_seed_warp(x, torch.zeros(2, 2, 16, 32)), x, atol=1e-5)
    # torch >= 1.3's default (align_corners=False) with the seed's grid is NOT the identity: the pitfall.
    col = torch.linspace(-1, 1, 16).unsqueeze(1).expand(16, 32)
    row = torch.linspace(-1, 1, 32).unsqueeze(0).expand(16, 32)
    grid = torch.stack([row, col], 2).expand(2, 16, 32, 2)
    assert (F.grid_sample(x, grid, align_corners=False) - x).abs().max() > 0.1


def test_edge_map_marks_the_border_unless_the_label_is_zero():
    lap = torch.ones(1, 1, 3, 3)
    lap[0, 0, 1, 1] = -8
    logits = torch.zeros(1, 19, 6, 8)
    logits[:, 5] = 1.0  # label 5 everywhere
    edge = gsv_edge_map(logits, lap)[0, 0]
    border = torch.ones(6, 8)
    border[1:-1, 1:-1] = 0
    assert torch.equal(edge, border)
    logits = torch.zeros(1, 19, 6, 8)
    logits[:, 0] = 1.0  # road everywhere: the zero padding matches, no edge
    assert gsv_edge_map(logits, lap).sum() == 0
    logits[:, 3, 2:4, 3:5] = 2.0  # a 2x2 blob of label 3: its pixels and their 8-neighbours
    edge = gsv_edge_map(logits, lap)[0, 0]
    assert edge[1:5, 2:6].sum() == 16 and edge.sum() == 16


def test_zero_slot_takes_part_in_the_normalisation():
    s, a = torch.randn(1, 3, 4, 5), torch.randn(1, 3, 4, 5)
    g = torch.zeros(1, 11, 4, 5)
    g[:, 9] = 2.0  # all the weight on the zero slot
    assert reference.guided_sv_conv(s, g, a).abs().max() < 1e-6
    g[:, 0] = 2.0  # centre and zero slot equally: half the centre
    assert torch.allclose(reference.guided_sv_conv(s, g, a), 0.5 * s, atol=1e-6)
    g = torch.zeros(1, 11, 4, 5)
    g[:, 10] = 1.0
    assert torch.allclose(reference.guided_sv_conv(s, g, a), a, atol=1e-6)


def _loop_guided_sv_conv(s: Tensor, g: Tensor, a: Tensor) -> Tensor:
    """The definition, pixel by pixel: 11 candidates per pixel, weights normalised by their sum + 1e-9."""
    n, k, h, w = s.shape
    out = torch.zeros(n, k, h, w, dtype=torch.float64)
    s, g, a = s.double(), g.double(), a.double()
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    for b in range(n):
        for i in range(h):
            for j in range(w):
                total = g[b, :, i, j].sum() + 1e-9
                acc = g[b, 0, i, j] * s[b, :, i, j]
                for slot, (dy, dx) in enumerate(offsets, start=1):
                    y, x = i + dy, j + dx
                    if 0 <= y < h and 0 <= x < w:
                        acc = acc + g[b, slot, i, j] * s[b, :, y, x]
                acc = acc + g[b, 10, i, j] * a[b, :, i, j]
                out[b, :, i, j] = acc / total
    return out


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (2, 5, 5, 7), (1, 19, 1, 6)])
def test_reference_guided_sv_conv_matches_a_loop(shape):
    n, k, h, w = shape
    s, a = torch.randn(n, k, h, w), torch.randn(n, k, h, w)
    g = torch.rand(n, 11, h, w)
    g[g < 0.3] = 0  # ReLU output: some exact zeros
    out = reference.guided_sv_conv(s, g, a)
    assert out.dtype == s.dtype
    assert torch.allclose(out.double(), _loop_guided_sv_conv(s, g, a), atol=1e-5)
    half = reference.guided_sv_conv(s.half(), g.half(), a.half())
    assert half.dtype == torch.float16
    assert torch.allclose(
        half.double(), _loop_guided_sv_conv(s.half().float(), g.half().float(), a.half().float()), atol=2e-3
    )


def test_reference_guided_sv_conv_rejects_wrong_shapes():
    from vidseg.errors import ShapeError

    with pytest.raises(ShapeError, match="11"):
        reference.guided_sv_conv(torch.randn(1, 3, 4, 4), torch.rand(1, 10, 4, 4), torch.randn(1, 3, 4, 4))
    with pytest.raises(ShapeError):
        reference.guided_sv_conv(torch.randn(1, 3, 4, 4), torch.rand(1, 11, 4, 4), torch.randn(1, 2, 4, 4))


def test_gsv_module_matches_the_seed_formula_with_ideal_and_trained_filters():
    grm = GuidedSpatiallyVaryingConv().eval()
    grm.load_state_dict({k[len("grm.") :]: v for k, v in gsv_state(5).items()})
    x, image = torch.randn(2, 19, 16, 24) * 3, torch.randn(2, 3, 16, 24)
    assert grm.ideal_dk.ideal
    with torch.no_grad():
        seed, guide, edge = _seed_gsv(grm, x, image)
        assert torch.allclose(grm(x, image), seed, atol=1e-5)
        assert torch.allclose(grm.combine_general(x, *grm.weights(x, image)[:2]), seed, atol=1e-5)
        raw, _, ours_edge = grm.weights(x, image)
        assert torch.equal(ours_edge, edge)
        norm = raw / (raw.sum(1, keepdim=True) + 1e-9)
        assert torch.allclose(norm, guide.squeeze(2), atol=1e-6)
    # A checkpoint with trained (non-ideal) delay filters switches to the general path on load.
    state = {k[len("grm.") :]: v for k, v in gsv_state(5).items()}
    state["ideal_dk.filter_copy_s"] = torch.randn(9, 1, 1, 3, 3)
    grm.load_state_dict(state)
    assert not grm.ideal_dk.ideal
    with torch.no_grad():
        assert torch.allclose(grm(x, image), _seed_gsv(grm, x, image)[0], atol=1e-5)


def test_guide_net_handles_sizes_the_seed_cannot():
    """The seed's x2 Upsample needs h, w divisible by 4; vidseg resizes to the encoder sizes (same result there)."""
    grm = GuidedSpatiallyVaryingConv().eval()
    with torch.no_grad():
        out = grm(torch.randn(1, 19, 90, 159), torch.randn(1, 3, 90, 159))  # a 720x1276 frame's 1/8 grid
    assert out.shape == (1, 19, 90, 159)


def test_refine_stage_has_declared_input_shapes(gsvnet):
    st = gsvnet.stages()["refine"]
    shapes = st.input_shapes(256, 512, batch=2)
    assert shapes == {
        "image": ((2, 3, 256, 512), torch.uint8),
        "prev_logits": ((2, 19, 32, 64), torch.float32),
        "flow": ((2, 2, 32, 64), torch.float32),
    }
    out = st.run(**dict(zip(st.input_names, st.example_inputs(256, 512), strict=True)))
    assert out["logits"].shape == (1, 19, 32, 64)


# --- export --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage_name", ["key", "flow", "refine"])
def test_stages_export_with_torch_export(gsvnet, stage_name):
    st = gsvnet.stages()[stage_name]
    ins = st.example_inputs(64, 128)
    ep = torch.export.export(st, ins)
    with torch.no_grad():
        ref = st(*ins)
        got = ep.module()(*ins)
    for g, r in zip(got, ref, strict=True):
        assert torch.allclose(g, r, atol=1e-4 * max(1.0, float(r.abs().max())))


STANDARD_ONNX = {
    "Add", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "Concat", "Constant", "Conv", "Div", "Equal",
    "Expand", "Gather", "GatherND", "GridSample", "Identity", "LeakyRelu", "MaxPool", "Mul", "Not", "Pad", "Range",
    "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Shape", "Slice", "Sub", "Transpose", "Unsqueeze",
    "Where",
}  # fmt: skip


@pytest.mark.parametrize("stage_name", ["flow", "refine"])
def test_stages_export_to_onnx_with_standard_ops(gsvnet, stage_name, tmp_path):
    st = gsvnet.stages()[stage_name]
    ins = st.example_inputs(64, 128)
    program = torch.onnx.export(
        st, ins, dynamo=True, input_names=list(st.input_names), output_names=list(st.output_names), verbose=False
    )
    path = tmp_path / f"{stage_name}.onnx"
    program.save(str(path))
    graph = onnx.load(str(path)).graph
    assert {n.op_type for n in graph.node} <= STANDARD_ONNX
    assert all(n.domain in ("", "ai.onnx") for n in graph.node)
    assert [i.name for i in graph.input] == list(st.input_names)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: x.numpy() for n, x in zip(st.input_names, ins, strict=True)})
    with torch.no_grad():
        ref = st(*ins)
    for g, r in zip(got, ref, strict=True):
        assert torch.allclose(torch.from_numpy(g), r, atol=1e-4 * max(1.0, float(r.abs().max())))


@pytest.mark.slow
def test_key_stage_exports_to_onnx(gsvnet, tmp_path):
    st = gsvnet.stages()["key"]
    ins = st.example_inputs(128, 256)
    program = torch.onnx.export(st, ins, dynamo=True, verbose=False)
    path = tmp_path / "key.onnx"
    program.save(str(path))
    assert {n.op_type for n in onnx.load(str(path)).graph.node} <= STANDARD_ONNX
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: ins[0].numpy()})
    with torch.no_grad():
        ref = st(*ins)
    assert torch.allclose(torch.from_numpy(got[0]), ref[0], atol=1e-4 * float(ref[0].abs().max()))


def test_flow_light_shapes():
    net = FlowLight().eval()
    with torch.no_grad():
        assert net(torch.randn(1, 6, 128, 256)).shape == (1, 2, 32, 64)
