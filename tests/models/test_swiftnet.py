"""SwiftNet-R18 (GSVNet's keyframe network) and GSVNet's BiSeNet-R18: seed layouts, shapes, MACs, per-frame model.

Numbers are the digest's (shared/reference/gsvnet.md §7-§8, §11; the state_dict listing is copied to
tests/models/data/gsvnet_state_dicts.txt).
"""

from __future__ import annotations

import pytest
import torch
from statedicts import load_listing, random_state_dict
from torch import Tensor, nn

from vidseg.models import build
from vidseg.models.bisenet_gsv import BiSeNetGSV
from vidseg.models.checkpoints import load_checkpoint
from vidseg.models.profile import count_macs, count_params
from vidseg.models.swiftnet import SWIFTNET18_CITYSCAPES, SwiftNet, scaled_size

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")


def seed_listing(title_prefix: str) -> tuple[dict[str, tuple[int, ...]], int]:
    """(key -> shape, parameter count) of the listing section whose title starts with title_prefix."""
    section = next(s for t, s in load_listing("gsvnet").items() if t.startswith(title_prefix))
    return {e.key: e.shape for e in section.entries}, section.params


def random_state(title_prefix: str, seed: int = 0) -> dict[str, Tensor]:
    """A state_dict with exactly the listing's keys and shapes (random values), as the seed's file holds it."""
    section = next(s for t, s in load_listing("gsvnet").items() if t.startswith(title_prefix))
    return random_state_dict(section, prefix="", seed=seed)


def shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# --- layouts and parameter counts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "title", "params"),
    [(SwiftNet, "SwiftNet-R18", 11_797_071), (BiSeNetGSV, "BiSeNet-R18", 13_494_777)],
)
def test_state_dict_layout_and_params_match_the_seed(cls, title, params):
    listing, listed_params = seed_listing(title)
    net = cls()
    assert shapes(net) == listing
    assert count_params(net) == listed_params == params


def test_bisenet_aux_heads_hold_the_listed_parameters():
    net = BiSeNetGSV()
    aux = sum(p.numel() for n, p in net.named_parameters() if n.startswith(("heads.0.", "heads.1.")))
    assert aux == 600_614


def test_seed_state_dict_loads_strictly_and_runs():
    model = build("swiftnet18")
    state = random_state("SwiftNet-R18")
    load_checkpoint(model, state)
    net = model.checkpoint_parts()["model"]
    for key, value in state.items():
        assert torch.equal(net.state_dict()[key], value), key
    logits, feats = model.stages()["key"](torch.randint(0, 256, (1, 3, 96, 160), dtype=torch.uint8))
    assert logits.shape == (1, 19, 24, 40) and feats.shape == (1, 128, 24, 40)
    assert torch.isfinite(logits).all()


def test_seed_file_with_dataparallel_prefix_loads(tmp_path):
    state = {"module." + k: v for k, v in random_state("BiSeNet-R18").items()}
    path = tmp_path / "cityscapes-bisenet-R18.pth"
    torch.save({"state_dict": state}, path)
    net = BiSeNetGSV()
    load_checkpoint(net, path)
    assert torch.equal(net.state_dict()["heads.2.conv_1x1.bias"], state["module.heads.2.conv_1x1.bias"])


def test_img_mean_std_buffers_hold_the_seed_values_and_are_unused():
    net = SwiftNet().eval()
    assert net.backbone.img_mean.flatten().tolist() == pytest.approx([73.15, 82.90, 72.3])
    assert net.backbone.img_std.flatten().tolist() == pytest.approx([47.67, 48.49, 47.73])
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        before = net(x)
        net.backbone.img_mean.fill_(1e3)
        net.backbone.img_std.fill_(1e-3)
        assert torch.equal(net(x), before)


def test_seed_block_skip_is_post_relu():
    """The seed's BasicBlock returns (relu(out), out) with an in-place ReLU: both are the rectified tensor, so the
    ladder skips are the ordinary block outputs (what `SwiftNetResNet18` feeds the upsampling blocks)."""
    out = torch.randn(2, 3, 4, 4) + torch.randn(2, 3, 4, 4)
    relu = nn.ReLU(inplace=True)(out)
    assert relu is out and bool((out >= 0).all())


# --- shapes, strides, MACs (full resolution on the meta device) --------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "size", "out", "gmacs"),
    [
        (SwiftNet, (1024, 2048), (256, 512), 103.57),
        (SwiftNet, (768, 1536), (192, 384), 58.26),
        (SwiftNet, (512, 1024), (128, 256), 25.89),
        (BiSeNetGSV, (1024, 2048), (128, 256), 103.72),
        (BiSeNetGSV, (768, 1536), (96, 192), 58.34),
        (BiSeNetGSV, (512, 1024), (64, 128), 25.93),
    ],
)
def test_output_stride_and_macs_match_the_digest(cls, size, out, gmacs):
    with torch.device("meta"):
        net = cls().eval()
        x = torch.empty(1, 3, *size)
    assert net(x).shape == (1, 19, *out)
    assert count_macs(net, x) / 1e9 == pytest.approx(gmacs, abs=0.006)


def test_spp_pools_are_aspect_ratio_aware():
    """For a 768x1536 input (layer4 24x48, ar = 2) the pools are 8x16, 4x8, 2x4 (gsvnet.md §7)."""
    net = SwiftNet().eval()
    seen = []
    hooks = [
        net.backbone.spp.spp[i + 1].register_forward_hook(lambda m, a, o: seen.append(tuple(a[0].shape[-2:])))
        for i in range(3)
    ]
    with torch.device("meta"):
        net.to("meta")(torch.empty(1, 3, 768, 1536))
    for h in hooks:
        h.remove()
    assert seen == [(8, 16), (4, 8), (2, 4)]


# --- the per-frame model ------------------------------------------------------------------------------------------


def test_per_frame_model_normalises_rgb_with_the_seed_stats():
    model = build("swiftnet18")
    assert model.spec.mean == (73.15, 82.90, 72.3) and model.spec.scale == 1.0
    image = torch.randint(0, 256, (1, 3, 32, 64), dtype=torch.uint8)
    x = model.preprocess(image)
    r = (image[:, 0].float() - 73.15) / 47.67
    assert torch.allclose(x[:, 0], r, atol=1e-5)
    assert model.methods == ("per-frame",)
    assert SWIFTNET18_CITYSCAPES.logits_stride == 4 and not SWIFTNET18_CITYSCAPES.logits_align_corners


def test_input_scale_075_resizes_inside_the_key_stage():
    model = build("swiftnet18", input_scale=0.75)
    stage = model.stages()["key"]
    seen = []
    hook = model.net.backbone.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[-2:])))
    logits, _ = stage(torch.randint(0, 256, (1, 3, 128, 256), dtype=torch.uint8))
    hook.remove()
    assert seen == [(96, 192)] and logits.shape == (1, 19, 24, 48)
    assert model.feature_size(128, 256) == (24, 48)
    assert scaled_size(1022, 0.75) == 1022 // 4 * 3


def test_key_stage_exports_with_torch_export():
    stage = build("swiftnet18").stages()["key"].eval()
    (image,) = stage.example_inputs(64, 128)
    ep = torch.export.export(stage, (image,))
    logits, feats = ep.module()(image)
    ref = stage(image)
    assert torch.allclose(logits, ref[0], atol=1e-4) and feats.shape == ref[1].shape


@pytest.mark.parametrize("name", ["swiftnet18", "gsvnet-swiftnet18", "gsvnet-bisenet18", "sanet", "sanet-tiny"])
def test_models_build_in_eval_mode_with_their_spec(name):
    from vidseg.models import list_models

    assert name in list_models()
    model = build(name)
    assert not model.training and model.spec.name == name
    spec = model.spec
    assert spec.seed and spec.source and spec.license and spec.palette == "cityscapes19"
    assert spec.num_classes == 19 and spec.input_size == (1024, 2048)
    stages = model.stages()
    flowwarp = name.startswith("gsvnet-")
    assert set(stages) == ({"key", "flow", "refine"} if flowwarp else {"key"})
    assert set(spec.methods) == ({"per-frame", "flowwarp"} if flowwarp else {"per-frame"})
    assert all(not stage.training for stage in stages.values())
    for stage in stages.values():
        assert len(stage.input_names) == len(stage.input_shapes(64, 128))
