"""SwNet-seq (vidseg.models.swnet_seq) and GSVNet's FlowNetS option: registry, grids and GMACs, the seeds' files
(saved here in their layouts from random weights), the engine's key-referenced flowwarp, vidseg-run and
vidseg-eval end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from statedicts import load_listing, random_state_dict
from test_flownet import seed_state

from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine
from vidseg.errors import CheckpointError
from vidseg.kernels import ops
from vidseg.models import build
from vidseg.models.checkpoints import load_checkpoint, load_weights
from vidseg.models.flowwarp import ideal_delay_filters
from vidseg.models.profile import count_macs, count_params

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")


def gsvnet_listing(title_prefix: str, seed: int) -> dict[str, torch.Tensor]:
    section = next(s for t, s in load_listing("gsvnet").items() if t.startswith(title_prefix))
    return random_state_dict(section, prefix="", seed=seed)


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory) -> tuple[Path, Path]:
    """cityscapes-swnet-R18.pt (a plain SwiftNet state_dict, GSVNet's listing) and FlowNet2-S_checkpoint.pth.tar
    (NVIDIA's {"state_dict", "epoch", "best_EPE"}), random values."""
    root = tmp_path_factory.mktemp("weights")
    swift, flow = root / "cityscapes-swnet-R18.pt", root / "FlowNet2-S_checkpoint.pth.tar"
    torch.save(gsvnet_listing("SwiftNet-R18", 1), swift)
    torch.save({"epoch": 7, "best_EPE": 3.25, "state_dict": seed_state(flow_up_bias=False, seed=2)}, flow)
    return swift, flow


@pytest.fixture(scope="module")
def swnet(seed_files):
    model = build("swnet-seq")
    load_weights(model, ",".join(map(str, seed_files)))
    return model


def meta_stages(name: str, res: tuple[int, int]) -> dict[str, tuple[tuple[int, ...], float]]:
    """stage -> (first output's shape, GMACs) at res, counted on the meta device."""
    with torch.device("meta"):
        model = build(name)
        out = {}
        for stage_name, stage in model.stages().items():
            inputs = [torch.empty(s, dtype=d) for s, d in stage.input_shapes(*res).values()]
            out[stage_name] = (tuple(stage(*inputs)[0].shape), count_macs(stage, *inputs) / 1e9)
    return out


# --- registry, grids, counts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "scale", "grid"),
                         [("swnet-seq", 0.75, (192, 384)), ("swnet-seq-0.5", 0.5, (128, 256)),
                          ("swnet-seq-1.0", 1.0, (256, 512))])
def test_swnet_seq_runs_flow_and_warp_on_the_key_logits_grid(name, scale, grid):
    with torch.device("meta"):
        model = build(name)
    spec = model.spec
    assert spec.name == name and spec.flow_reference == "key" and spec.methods == ("per-frame", "flowwarp")
    assert spec.extra["key_scale"] == scale and count_params(model) == spec.extra["params"] == 50_473_577
    assert set(model.checkpoint_parts()) == {"segnet", "flow"}
    stages = meta_stages(name, (1024, 2048))
    assert stages["key"][0] == (1, 19, *grid)  # SwiftNet: output stride 4 of the scaled frame
    assert stages["flow"][0] == (1, 2, *grid) and stages["refine"][0] == (1, 19, *grid)
    assert stages["refine"][1] == 0.0  # a pure warp
    assert grid[0] % 64 == 0 and grid[1] % 64 == 0  # FlowNet2-S runs unpadded at the seed's three scales


def test_gmacs_follow_the_seed_scales():
    key = {n: meta_stages(n, (1024, 2048)) for n in ("swnet-seq-0.5", "swnet-seq", "swnet-seq-1.0")}
    assert key["swnet-seq"]["key"][1] == pytest.approx(58.26, abs=0.01)  # reference/gsvnet.md §7 (768x1536)
    assert key["swnet-seq-0.5"]["key"][1] == pytest.approx(25.89, abs=0.01)
    assert key["swnet-seq-1.0"]["key"][1] == pytest.approx(103.57, abs=0.01)
    flow = {n: v["flow"][1] for n, v in key.items()}  # FlowNetS is fully convolutional at multiples of 64
    assert flow["swnet-seq"] == pytest.approx(2.25 * flow["swnet-seq-0.5"])
    assert flow["swnet-seq-1.0"] == pytest.approx(4.0 * flow["swnet-seq-0.5"])
    assert flow["swnet-seq"] < key["swnet-seq"]["key"][1] / 9


# --- checkpoints -------------------------------------------------------------------------------------------------


def test_seed_files_load_strictly_into_their_parts(seed_files, swnet):
    swift, flow = seed_files
    assert torch.equal(swnet.segnet.state_dict()["logits.conv.weight"],
                       torch.load(swift, weights_only=True)["logits.conv.weight"])
    nvidia = torch.load(flow, weights_only=True)["state_dict"]
    assert all(torch.equal(swnet.flownet.state_dict()[k], v) for k, v in nvidia.items())
    other = build("swnet-seq-0.5")
    for path in (flow, swift):  # one file at a time: the part is recognised from the keys
        load_weights(other, str(path))
    assert torch.equal(other.flownet.conv1[0].weight, swnet.flownet.conv1[0].weight)


def test_weights_that_leave_a_part_the_method_runs_untrained_are_refused(seed_files):
    """Only the SwiftNet file: flowwarp would run a random FlowNet2-S (every non-keyframe noise, exit 0). Refused,
    naming the files; per-frame (which runs no flow) and --random-weights still load."""
    from vidseg.engine.loading import load_model
    from vidseg.models.checkpoints import load_weight_parts

    swift, flow = seed_files
    with pytest.raises(CheckpointError, match=r"leaves part\(s\) flow of model 'swnet-seq' untrained, and flowwarp "
                                              r"runs them: .*FlowNet2-S_checkpoint\.pth\.tar"):
        load_model(EngineConfig(model="swnet-seq", weights=str(swift)))
    assert load_model(EngineConfig(model="swnet-seq", weights=str(swift), method="per-frame")) is not None
    assert load_model(EngineConfig(model="swnet-seq", weights=str(swift), random_weights=True)) is not None
    assert load_weight_parts(build("swnet-seq"), f"{swift},{flow}") == {"segnet", "flow"}
    assert load_weight_parts(build("swnet-seq"), str(flow)) == {"flow"}


def test_the_two_files_load_in_either_order(seed_files, swnet):
    swift, flow = seed_files
    model = build("swnet-seq")
    load_weights(model, f"{flow},{swift}")
    for name in ("segnet", "flownet"):
        assert all(torch.equal(a, b) for a, b in zip(getattr(model, name).state_dict().values(),
                                                      getattr(swnet, name).state_dict().values(), strict=True))
    with pytest.raises(CheckpointError, match="does not fit part 'segnet'"):  # the same file twice: both flow
        load_weights(build("swnet-seq"), f"{flow},{flow}")


def test_nvidia_file_does_not_fit_gsvnets_flownets_and_says_what_it_fits(seed_files):
    model = build("gsvnet-swiftnet18-flownets")
    with pytest.raises(CheckpointError, match=r"4 missing keys: upsampled_flow6_to_5\.bias") as err:
        load_checkpoint(model, seed_files[1], part="flow")
    assert "swnet-seq (part 'flow')" in str(err.value)


def test_gsvnet_bundle_with_flownets_loads_both_parts(tmp_path):
    """gsvnet_*_r18.tar trained with --optical-flow-network flownet: the flow net under "state_dict_of" saved from
    nn.DataParallel (`module.` prefix), the GSV module under "state_dict"."""
    gsv = gsvnet_listing("GSV End2End", 3)
    gsv["grm.ideal_dk.filter_copy_s"] = ideal_delay_filters()
    flow = {"module." + k: v for k, v in seed_state(flow_up_bias=True, seed=4).items()}
    path = tmp_path / "gsvnet_swnet_r18.tar"
    torch.save({"state_dict": gsv, "state_dict_of": flow, "epoch": 3}, path)
    model = build("gsvnet-swiftnet18-flownets")
    load_weights(model, str(path))
    assert torch.equal(model.flownet.upsampled_flow3_to_2.bias, flow["module.upsampled_flow3_to_2.bias"])
    assert torch.equal(model.gsv.grm.intra_net.intra_net[0].weight, gsv["grm.intra_net.intra_net.0.weight"])
    assert count_params(model) == model.spec.extra["params"] == 50_683_670


def test_gsvnet_flownets_stage_feeds_previous_first_and_keeps_gsvnets_units():
    """GSVNet's trainer: FlowNetS gets cat[previous, current] (FlowLight the reverse); its raw output (1/8 of its
    1/8-scale input) is upsampled to the 1/8 grid without rescaling and divided by 4."""
    model = build("gsvnet-swiftnet18-flownets")
    with torch.no_grad():
        for p in model.flownet.parameters():
            p.zero_()
        model.flownet.predict_flow2.bias.copy_(torch.tensor([8.0, -4.0]))
    seen = []
    model.flownet.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    stage = model.stages()["flow"]
    current = torch.full((1, 3, 64, 128), 250, dtype=torch.uint8)
    previous = torch.zeros((1, 3, 64, 128), dtype=torch.uint8)
    with torch.no_grad():
        (flow,) = stage(current, previous)
    assert flow.shape == (1, 2, 8, 16)
    assert torch.allclose(flow[:, 0], torch.tensor(2.0)) and torch.allclose(flow[:, 1], torch.tensor(-1.0))
    (x,) = seen
    assert float(x[:, :3].mean()) < 0 < float(x[:, 3:].mean())  # previous (dark) first, current (bright) second
    assert build("gsvnet-swiftnet18").flow == "light"


# --- the engine: the keyframe's logits warped to every non-keyframe --------------------------------------------------


def test_flowwarp_warps_the_keyframe_logits_with_flow_from_the_keyframe(swnet):
    gen = torch.Generator().manual_seed(0)
    frames = [torch.randint(0, 256, (64, 128, 3), generator=gen, dtype=torch.uint8) for _ in range(4)]
    config = EngineConfig(model="swnet-seq", method="flowwarp", keyframe_interval=3, device="cpu",
                          return_logits=True)
    refs = []
    real_flow = swnet.flownet.flow
    swnet.flownet.flow = lambda x0, x1: refs.append(x1) or real_flow(x0, x1)
    try:
        engine = Engine(config, model=swnet)
        results = list(engine.run(np.stack([f.numpy() for f in frames])))
        engine.close()
    finally:
        del swnet.flownet.flow
    assert [r.is_key for r in results] == [True, False, False, True]
    chw = [f.permute(2, 0, 1)[None] for f in frames]
    key_on_grid = F.interpolate(chw[0].float(), size=(12, 24), mode="bilinear", align_corners=True)
    for ref in refs[-2:]:  # frames 1 and 2 (after the backend's warm-up call) both start from keyframe 0
        torch.testing.assert_close(ref, key_on_grid)
    stages = swnet.stages()
    with torch.no_grad():
        key_logits, _ = stages["key"](chw[0])
        (flow,) = stages["flow"](chw[2], chw[0])
        (expected,) = stages["refine"](key_logits, flow)
    assert results[2].logits.shape == (19, 12, 24)  # the 0.75-scale frame's stride-4 grid: 48x96 / 4
    np.testing.assert_allclose(results[2].logits, expected[0].numpy(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(expected, ops.warp(key_logits, flow, "exact"))


# --- command line, end to end -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from vidseg.synthetic import SceneConfig, write_clip

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_clip(path, SceneConfig(height=64, width=128, seed=5), 7, gop=12)
    return path


def test_vidseg_run_swnet_seq_with_the_seed_files(clip, seed_files, tmp_path, capsys):
    from vidseg.cli import run as cli

    weights = ",".join(map(str, seed_files))
    out = tmp_path / "out"
    code = cli.main([str(clip), "--model", "swnet-seq", "--weights", weights, "--method", "flowwarp",
                     "--keyframe-interval", "3", "--device", "cpu", "--save", "npz", "--out", str(out),
                     "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "7 (3 keyframes)" in printed and "stage flow" in printed and "stage refine" in printed
    labels = np.load(out / "clip_labels.npz")
    assert list(labels["index"]) == list(range(7)) and labels["labels_000004"].shape == (64, 128)


def test_vidseg_eval_reports_avg_and_min_miou_over_the_seeds_distances(clip, seed_files, tmp_path, capsys):
    from vidseg.cli import eval as cli

    out = tmp_path / "eval.json"
    code = cli.main(["--data", str(clip.parent), "--dataset", "synthetic", "--model", "swnet-seq", "--weights",
                     ",".join(map(str, seed_files)), "--method", "flowwarp", "--keyframe-interval", "3",
                     "--device", "cpu", "--json", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mIoU avg" in printed and "mIoU min" in printed and "mIoU d=2" in printed
    kd = json.loads(out.read_text())["results"]["key_distance"]
    assert kd["frames"] == {"0": 3, "1": 2, "2": 2}  # keys at 0, 3, 6 of 7 frames (interval i=2 -> 3)


# --- vidseg-bench's seeds suite ---------------------------------------------------------------------------------


def test_seeds_suite_has_the_swnet_seq_rows_beside_the_seeds_frames_per_second():
    from vidseg.bench.harness import gmacs_per_frame
    from vidseg.bench.suites import get_suite

    suite = get_suite("seeds", "cuda")
    targets = {t.case: t for t in suite.targets if t.seed == "SwNet-seq"}
    rows = {(c.model, c.method, c.keyframe_interval) for c in suite.cases if c.name in targets}
    assert rows >= {("swnet-seq", "flowwarp", i + 1) for i in (1, 2, 3, 4)}  # i = 1..4 at 0.75
    assert rows >= {(m, "flowwarp", 3) for m in ("swnet-seq-0.5", "swnet-seq", "swnet-seq-1.0")}  # i = 2
    assert targets["SwNet-seq i=2 s0.75"].fps == 181.0 and "GTX 1060: 58" in targets["SwNet-seq i=2 s0.75"].note
    assert targets["SwNet-seq i=2 s0.75"].baseline == "SwiftNet-R18 per-frame s0.75"
    case = next(c for c in suite.cases if c.name == "SwNet-seq i=2 s0.75")
    key, flow = 58.26, meta_stages("swnet-seq", (1024, 2048))["flow"][1]
    assert gmacs_per_frame(case, (1024, 2048), suite.round_frames) == pytest.approx((key + 2 * flow) / 3, abs=0.01)
