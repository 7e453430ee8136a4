"""SANet ("sanet": sanet.py with the PixelShuffle head; "sanet-tiny": bilinear head), PATCHED reading of
shared/reference/sanet.md: seed layout, parameters, shapes, MACs, SCE/SFF conventions, export.

The state_dict listing is copied to tests/models/data/sanet_state_dicts.txt.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from statedicts import load_listing, random_state_dict
from torch import Tensor

from vidseg.models import build
from vidseg.models.checkpoints import load_checkpoint
from vidseg.models.profile import count_macs, count_params
from vidseg.models.sanet import SCE, SFF, SANet

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")

SECTIONS = {"sanet": "sanet.py: PATCHED", "sanet-tiny": "sanet_tiny.py: PATCHED"}


def seed_listing(title_prefix: str) -> tuple[dict[str, tuple[int, ...]], int]:
    """(key -> shape, parameter count) of the listing section whose title starts with title_prefix."""
    section = next(s for t, s in load_listing("sanet").items() if t.startswith(title_prefix))
    return {e.key: e.shape for e in section.entries}, section.params


def random_state(title_prefix: str, seed: int = 0) -> dict[str, Tensor]:
    """A state_dict with exactly the listing's keys and shapes (random values), as the seed's file holds it."""
    section = next(s for t, s in load_listing("sanet").items() if t.startswith(title_prefix))
    return random_state_dict(section, prefix="", seed=seed)


@pytest.mark.parametrize(
    ("name", "params", "inference_params"),
    [("sanet", 13_030_292, 12_566_548), ("sanet-tiny", 12_560_954, 12_412_135)],
)
def test_layout_and_params_match_the_patched_seed(name, params, inference_params):
    listing, listed = seed_listing(SECTIONS[name])
    net = build(name).checkpoint_parts()["model"]
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == listing
    assert len(listing) == 219
    assert count_params(net) == listed == params
    assert sum(p.numel() for n, p in net.named_parameters() if not n.startswith("conv_out16.")) == inference_params


def test_as_shipped_layout_differs_only_in_sff1_conv_low():
    shipped, _ = seed_listing("sanet.py: SANet(n_classes=19, output_aux=True) AS SHIPPED")
    patched, _ = seed_listing(SECTIONS["sanet"])
    diff = {k for k in shipped if shipped[k] != patched[k]}
    assert diff == {"sff1.conv_low.0.weight"} and shipped.keys() == patched.keys()


@pytest.mark.parametrize("name", ["sanet", "sanet-tiny"])
def test_seed_state_dict_loads_strictly_and_runs(name, tmp_path):
    state = random_state(SECTIONS[name])
    path = tmp_path / "sanet.pth"
    torch.save({"module." + k: v for k, v in state.items()}, path)  # as nn.DataParallel saves
    model = build(name)
    load_checkpoint(model, path)
    net = model.checkpoint_parts()["model"]
    assert torch.equal(net.state_dict()["sff1.conv_1.weight"], state["sff1.conv_1.weight"])
    logits, feats = model.stages()["key"](torch.randint(0, 256, (1, 3, 96, 160), dtype=torch.uint8))
    assert logits.shape == (1, 19, 96, 160) and feats.shape == (1, 128, 12, 20)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("name", "size", "gmacs"),
    [
        ("sanet", (1024, 2048), 154.62),
        ("sanet", (768, 1536), 86.98),
        ("sanet", (512, 1024), 38.66),
        ("sanet", (720, 960), 51.09),
        ("sanet-tiny", (1024, 2048), 149.60),
        ("sanet-tiny", (720, 960), 49.44),
    ],
)
def test_full_resolution_shapes_and_macs_match_the_digest(name, size, gmacs):
    """Inference MACs (aux head off); logits at the input size when H, W are divisible by 8 (720x960 included)."""
    with torch.device("meta"):
        stage = build(name).stages()["key"]
        image = torch.empty(1, 3, *size, dtype=torch.uint8)
    logits, feats = stage(image)
    assert logits.shape == (1, 19, *size) and feats.shape == (1, 128, (size[0] + 7) // 8, (size[1] + 7) // 8)
    assert count_macs(stage, image) / 1e9 == pytest.approx(gmacs, abs=0.006)


def test_per_module_macs_match_the_digest():
    with torch.device("meta"):
        net = SANet().eval()
        x = torch.empty(1, 3, 1024, 2048)
    inputs = {}
    for name in ("resnet", "sce", "sff1", "sff2", "conv_out32"):
        getattr(net, name).register_forward_pre_hook(lambda m, a, n=name: inputs.__setitem__(n, a))
    net(x)
    per = {name: count_macs(getattr(net, name), *args) for name, args in inputs.items()}
    expect = {"resnet": 58.89 + 25.23 + 3 * 17.18, "sce": 0.27, "sff1": 2.72, "sff2": 6.04, "conv_out32": 9.93}
    for name, value in expect.items():
        assert per[name] / 1e9 == pytest.approx(value, abs=0.03), name


def test_sce_pools_aspect_ratio_aware_grids():
    sce = SCE().eval()
    seen = []
    for m in sce.spp:
        m.register_forward_hook(lambda mod, a, o: seen.append(tuple(a[0].shape[-2:])))
    with torch.no_grad():
        out = sce(torch.randn(1, 512, 32, 64))
    assert seen == [(6, 12), (3, 6), (2, 4), (1, 2)] and out.shape == (1, 128, 32, 64)


def test_sce_attention_is_sigmoid_plus_one():
    """With the 128->4 conv zeroed (the seed's init), every branch gets weight 1.5."""
    sce = SCE().eval()
    with torch.no_grad():
        sce.spatial_attention[1].weight.zero_()
        x = torch.randn(1, 512, 12, 20)
        ctx = []
        for m in sce.spp:
            m.register_forward_hook(lambda mod, a, o: ctx.append(F.interpolate(o, size=(12, 20), mode="nearest")))
        out = sce(x)
        base = sce.reduce_channel(x)
    assert torch.allclose(out, base + 1.5 * sum(ctx), atol=1e-5)


def _seed_sff(sff: SFF, x_low: Tensor, x_high: Tensor) -> Tensor:
    """The seed's SFF.forward, with its cat/transpose/flatten interleave and reshape/transpose de-interleave."""
    b = x_high.shape[0]
    low = F.interpolate(sff.conv_low(x_low), size=x_high.shape[2:], mode="bilinear", align_corners=True)
    high = sff.conv_high(x_high)

    def gem(z):
        return (F.adaptive_avg_pool2d(z**3, 1) + 1e-12) ** (1 / 3)

    d = torch.cat([gem(low).unsqueeze(1), gem(high).unsqueeze(1)], dim=1)
    d = d.transpose(1, 2).flatten(1, 2)
    d = sff.conv_1(d.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
    d = sff.conv_2(d.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
    d = torch.sigmoid(d.reshape(b, sff.out_channels, 2, 1, 1).transpose(1, 2).transpose(0, 1))
    return d[0] * low + d[1] * high


def test_sff_matches_the_seed_interleave():
    sff = SFF(128, 256, 16).eval()
    with torch.no_grad():
        sff.conv_1.weight.copy_(torch.randn(1, 1, 5))  # asymmetric kernels expose any interleave error
        sff.conv_2.weight.copy_(torch.randn(1, 1, 5))
        x_low, x_high = torch.randn(2, 128, 4, 6), torch.randn(2, 256, 8, 12)
        assert torch.allclose(sff(x_low, x_high), _seed_sff(sff, x_low, x_high), atol=1e-5)


def test_pixel_shuffle_and_bilinear_heads():
    net = SANet().eval()
    tiny = SANet(pixel_shuffle=False).eval()
    f = torch.randn(1, 128, 5, 7)
    with torch.no_grad():
        raw = net.conv_out32.conv_out(net.conv_out32.conv(f))
        assert torch.equal(net.conv_out32(f), F.pixel_shuffle(raw, 8))
        out = tiny.conv_out32(f)
    assert out.shape == (1, 19, 40, 56)


def test_normalisation_is_imagenet_rgb():
    model = build("sanet")
    assert model.spec.mean == (0.485, 0.456, 0.406) and model.spec.scale == 255.0
    assert model.spec.channel_order == "RGB" and model.spec.logits_stride == 1
    assert model.methods == ("per-frame",)


@pytest.mark.parametrize("name", ["sanet", "sanet-tiny"])
def test_key_stage_exports_with_torch_export(name):
    stage = build(name).stages()["key"].eval()
    (image,) = stage.example_inputs(64, 128)
    ep = torch.export.export(stage, (image,))
    with torch.no_grad():
        got, ref = ep.module()(image), stage(image)
    for g, r in zip(got, ref, strict=True):
        assert torch.allclose(g, r, atol=1e-4 * max(1.0, float(r.abs().max())))


@pytest.mark.slow
def test_key_stage_exports_to_onnx(tmp_path):
    import onnx
    import onnxruntime as ort

    stage = build("sanet").stages()["key"].eval()
    (image,) = stage.example_inputs(64, 128)
    program = torch.onnx.export(stage, (image,), dynamo=True, verbose=False)
    path = tmp_path / "sanet.onnx"
    program.save(str(path))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "DepthToSpace" in ops and all(n.domain in ("", "ai.onnx") for n in onnx.load(str(path)).graph.node)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: image.numpy()})
    with torch.no_grad():
        ref = stage(image)
    assert torch.allclose(torch.from_numpy(got[0]), ref[0], atol=1e-4 * float(ref[0].abs().max()))
