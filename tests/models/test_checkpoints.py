"""Checkpoints in the seeds' layouts: every model and part loads a file built from the digest's listing (keys,
shapes, `module.` prefix, alias duplicates) strictly, runs, and round-trips; bad files raise CheckpointError."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from statedicts import Section, load_listing, random_state_dict

from vidseg.errors import CheckpointError
from vidseg.models import build
from vidseg.models.checkpoints import (
    arseg_checkpoint_scale,
    find_arseg_checkpoints,
    load_checkpoint,
    lr_scale_in_names,
    matching_models,
    read_state_dict,
    save_checkpoint,
    weight_files,
)

ARSEG = load_listing("arseg")
ETC_PSP = next(s for t, s in load_listing("etc").items() if "pspnet_18" in t)
PSP_CITY = "cityscapes-psp18 HR and LR/AR (same class)"


def _without(section: Section, prefix: str) -> Section:
    return Section(section.title, section.header, [e for e in section.entries if not e.key.startswith(prefix)])


def _listing(title: str, *, drop: str | None = None) -> Section:
    section = ETC_PSP if title == "etc" else ARSEG[title]
    return _without(section, drop) if drop else section


# (model, part, listing, folder the file sits in, as AR-Seg stores them)
CASES = [
    ("arseg-psp18-camvid", "hr", _listing("camvid-psp18 HR"), "HR"),
    ("arseg-psp18-camvid", "lr", _listing("camvid-psp18 LR/AR"), "AR"),
    ("arseg-bise18-camvid", "hr", _listing("camvid-bise18 HR"), "HR"),
    ("arseg-bise18-camvid", "lr", _listing("camvid-bise18 LR/AR"), "AR"),
    ("arseg-psp18-cityscapes", "hr", _listing(PSP_CITY, drop="fuse_attention."), "HR"),  # the HR file lacks CReFF
    ("arseg-psp18-cityscapes", "lr", _listing(PSP_CITY), "AR"),
    ("arseg-bise18-cityscapes", "hr", _listing("cityscapes-bise18 HR"), "HR"),
    ("arseg-bise18-cityscapes", "lr", _listing("cityscapes-bise18 LR/AR"), "AR"),
    ("psp18-camvid", "model", _listing("camvid-psp18 HR"), "HR"),
    ("bise18-camvid", "model", _listing("camvid-bise18 HR"), "HR"),
    ("psp18-cityscapes", "model", _listing(PSP_CITY, drop="fuse_attention."), "HR"),
    ("bise18-cityscapes", "model", _listing("cityscapes-bise18 HR"), "HR"),
    ("etc-psp18-cityscapes", "model", _listing("etc"), "ckpt"),
]
IDS = [f"{m}:{p}" for m, p, _, _ in CASES]
H, W = 48, 64


def _write(tmp_path: Path, folder: str, state: dict, name: str = "PSPNet_resnet18_0.5_99_.pth") -> Path:
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _check_stage_outputs(model, stage_name: str, outputs: tuple) -> None:
    spec = model.spec
    logits, features = outputs
    fh, fw = model.feature_size(H, W)
    assert features.shape == (1, spec.feature_channels, fh, fw)
    ratio = spec.feature_stride // spec.logits_stride  # logits pixels per feature pixel
    assert logits.shape == (1, spec.num_classes, fh * ratio, fw * ratio), stage_name
    assert torch.isfinite(logits).all() and torch.isfinite(features).all()


@pytest.mark.parametrize(("name", "part", "listing", "folder"), CASES, ids=IDS)
def test_seed_layout_file_loads_strictly_and_runs(tmp_path, name, part, listing, folder):
    state = random_state_dict(listing)  # keys as on disk: 'module.' + key, alias keys holding the same tensor
    assert all(k.startswith("module.") for k in state)
    path = _write(tmp_path, folder, state)
    model = load_checkpoint(build(name), path)  # part auto-detected
    loaded = model.checkpoint_parts()[part].state_dict()
    for entry in listing.entries:
        canonical = entry.alias_of or entry.key
        assert torch.equal(loaded[canonical], state["module." + entry.key]), entry.key
    stage_name = "nonkey" if part == "lr" else "key"
    stage = model.stages()[stage_name]
    with torch.no_grad():
        _check_stage_outputs(model, stage_name, stage(*stage.example_inputs(H, W)))


@pytest.mark.parametrize("name", sorted({m for m, _, _, _ in CASES}))
def test_seed_layout_round_trip(tmp_path, name):
    model = build(name)
    listings = {p: lst for m, p, lst, _ in CASES if m == name}
    fresh = build(name)
    for part, module in model.checkpoint_parts().items():
        path = save_checkpoint(model, tmp_path / part / "w.pth", part=part)
        on_disk = torch.load(path, weights_only=True)
        expected = listings[part]
        if name in ("arseg-psp18-cityscapes", "psp18-cityscapes") and part in ("hr", "model"):
            expected = ARSEG[PSP_CITY]  # we write the class's full layout; the seed's HR file lacks CReFF
        assert set(on_disk) == {"module." + k for k in expected.keys}
        load_checkpoint(fresh, path, part=part)
        for key, value in module.state_dict().items():
            assert torch.equal(fresh.checkpoint_parts()[part].state_dict()[key], value)


def test_whole_model_vidseg_layout_round_trip(tmp_path):
    model = build("arseg-bise18-camvid")
    with pytest.raises(CheckpointError, match="pass part="):
        save_checkpoint(model, tmp_path / "x.pth")
    path = save_checkpoint(model, tmp_path / "whole.pth", seed_layout=False)
    fresh = load_checkpoint(build("arseg-bise18-camvid"), path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


def test_wrapped_state_dicts_and_in_memory_dicts(tmp_path):
    state = random_state_dict(_listing("camvid-bise18 HR"))
    for wrapped in ({"state_dict": state}, {"model": {"state_dict": state}, "epoch": 3}, {"net": state, "opt": {}}):
        load_checkpoint(build("bise18-camvid"), _write(tmp_path, "w", wrapped))
    load_checkpoint(build("bise18-camvid"), state)


def test_etc_transfer_layout_drops_training_only_entries(tmp_path):
    state = {k.replace("module.", "module.student."): v for k, v in random_state_dict(ETC_PSP).items()}
    state["module.flow_model.conv.weight"] = torch.zeros(2, 2)
    state["module.teacher.layer0.0.weight"] = torch.zeros(3)
    state["criterion.weight"] = torch.zeros(19)
    model = load_checkpoint(build("etc-psp18-cityscapes"), _write(tmp_path, "ckpt", state))
    assert torch.equal(model.net.cls[4].bias, state["module.student.cls.4.bias"])


def test_optional_prefix_is_tolerated_and_said(tmp_path, caplog):
    state = random_state_dict(_listing(PSP_CITY, drop="fuse_attention."))
    with caplog.at_level(logging.INFO, logger="vidseg.models.checkpoints"):
        load_checkpoint(build("arseg-psp18-cityscapes"), _write(tmp_path, "HR", state))
    assert "fuse_attention.*" in caplog.text and "'hr'" in caplog.text
    # the phase-1 training file (no final_conv alias, no CReFF) fits the HR part as well
    phase1 = random_state_dict(ARSEG["cityscapes-psp18 phase-1 training class"])
    load_checkpoint(build("psp18-cityscapes"), phase1)


@pytest.mark.parametrize(("name", "title", "head"), [
    ("etc-psp18-cityscapes", "etc", "aux."),
    ("bise18-cityscapes", "cityscapes-bise18 HR", "conv_out16."),
    ("arseg-psp18-cityscapes", PSP_CITY, "aux."),
])
def test_files_stripped_of_training_only_heads_load_and_give_the_same_labels(tmp_path, name, title, head):
    """Deployment checkpoints often drop the auxiliary heads; no stage runs them, so the labels are unchanged."""
    state = random_state_dict(_listing(title))
    stripped = {k: v for k, v in state.items() if not k.startswith(f"module.{head}")}
    assert len(stripped) < len(state)
    outputs = []
    for sd in (state, stripped):
        model = build(name).eval()
        parts = model.checkpoint_parts()
        part = "lr" if "lr" in parts else next(iter(parts))
        load_checkpoint(model, _write(tmp_path, "AR" if part == "lr" else "ckpt", sd), part=part)
        outputs.append(parts[part].state_dict())
    shared = [k for k in outputs[0] if not k.startswith(head)]
    assert all(torch.equal(outputs[0][k], outputs[1][k]) for k in shared)


def test_equal_fits_need_a_part_or_an_hr_ar_folder(tmp_path):
    state = random_state_dict(_listing(PSP_CITY))  # an LR/AR file: the HR part (same class) fits it too
    with pytest.raises(CheckpointError, match=r"fits parts 'hr', 'lr' of model 'arseg-psp18-cityscapes' equally"):
        load_checkpoint(build("arseg-psp18-cityscapes"), _write(tmp_path, "somewhere", state))
    model = load_checkpoint(build("arseg-psp18-cityscapes"), state, part="lr")
    assert torch.equal(model.lr.fuse_attention.hr_key_conv.bias, state["module.fuse_attention.hr_key_conv.bias"])
    with pytest.raises(CheckpointError, match="has no checkpoint part 'model'"):
        load_checkpoint(build("arseg-psp18-cityscapes"), state, part="model")


def test_wrong_keys_name_model_part_keys_and_layout(tmp_path):
    state = random_state_dict(_listing("camvid-psp18 LR/AR"))
    del state["module.fuse_attention.hr_key_conv.bias"]
    state["module.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build("arseg-psp18-camvid"), _write(tmp_path, "AR", state), part="lr")
    msg = str(info.value)
    assert "does not fit part 'lr' of model 'arseg-psp18-camvid'" in msg
    assert "layout tried: AR-Seg ('module.' stripped)" in msg
    assert "1 missing keys: fuse_attention.hr_key_conv.bias" in msg
    assert "1 unexpected keys: extra.weight" in msg
    assert "It fits no registered model" in msg


def test_wrong_shapes_list_mismatches_and_the_models_that_fit(tmp_path):
    state = random_state_dict(_listing("cityscapes-bise18 HR"))  # 19 classes into the 12-class CamVid net
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build("bise18-camvid"), _write(tmp_path, "HR", state))
    msg = str(info.value)
    assert "does not fit part 'model' of model 'bise18-camvid'" in msg
    assert "6 shape mismatches: conv_out.conv_out.weight: file [19, 256, 1, 1] vs model [12, 256, 1, 1]" in msg
    assert "(+1 more)" in msg
    assert "The file fits: arseg-bise18-cityscapes (part 'hr'), bise18-cityscapes." in msg
    assert matching_models(state) == ["arseg-bise18-cityscapes (part 'hr')", "bise18-cityscapes"]
    with pytest.raises(CheckpointError, match="shape mismatches"):  # strict=False never forgives shapes
        load_checkpoint(build("bise18-camvid"), state, strict=False)


def test_non_strict_tolerates_missing_and_unexpected_keys(caplog):
    state = random_state_dict(_listing("camvid-bise18 HR"))
    del state["module.sp.conv1.conv.weight"]
    state["module.extra"] = torch.zeros(1)
    with caplog.at_level(logging.WARNING, logger="vidseg.models.checkpoints"):
        load_checkpoint(build("bise18-camvid"), state, strict=False)
    assert "1 keys missing, 1 unexpected" in caplog.text


def test_aliases_must_hold_the_same_tensor():
    state = random_state_dict(_listing("camvid-bise18 HR"))
    state["module.final_conv.bias"] = state["module.final_conv.bias"] + 1
    with pytest.raises(CheckpointError, match="alias key 'final_conv.bias' and 'conv_out.conv_out.bias' must hold"):
        load_checkpoint(build("bise18-camvid"), state)


class _NotATensor:
    pass


def test_unsafe_and_unreadable_files(tmp_path):
    pickled = tmp_path / "objects.pth"
    torch.save({"w": torch.zeros(1), "obj": _NotATensor()}, pickled)
    objects = r"holds pickled Python objects, not only tensors \(first: \S*_NotATensor\)"
    with pytest.raises(CheckpointError, match=objects):
        load_checkpoint(build("bise18-camvid"), pickled)
    whole = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), whole)
    with pytest.raises(CheckpointError, match=r"pickled Python objects.*\(first: torch.nn.modules.linear.Linear\)"):
        read_state_dict(whole)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
        read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "missing.pth")
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_dict)
    with pytest.raises(CheckpointError, match="is not a state_dict: found a list"):
        read_state_dict(not_dict)
    with pytest.raises(CheckpointError, match=r"entries that are not tensors: 'epoch' \(int\)"):
        read_state_dict({"epoch": 3, "w": torch.zeros(1)})


def test_arseg_file_names(tmp_path):
    assert arseg_checkpoint_scale("ckpt/camvid-psp18/AR/PSPNet_resnet18_0.5_99_.pth") == 0.5
    assert arseg_checkpoint_scale("PSPNet_resnet18_0.3_120_.pth") == 0.3
    with pytest.raises(CheckpointError, match="not an AR-Seg checkpoint name"):
        arseg_checkpoint_scale("model_final.pth")
    cfg = tmp_path / "camvid-psp18"
    for rel in ("HR/PSPNet_resnet18_1.0_99_.pth", "AR/PSPNet_resnet18_0.5_80_.pth", "AR/PSPNet_resnet18_0.7_80_.pth"):
        (cfg / rel).parent.mkdir(parents=True, exist_ok=True)
        (cfg / rel).write_bytes(b"")
    hr, ar = find_arseg_checkpoints(cfg, 0.7)
    assert (hr.name, ar.name) == ("PSPNet_resnet18_1.0_99_.pth", "PSPNet_resnet18_0.7_80_.pth")
    with pytest.raises(CheckpointError, match=r"no AR-Seg AR checkpoints for scale 0.4 .*found: PSPNet_resnet18_0.5"):
        find_arseg_checkpoints(cfg, 0.4)
    # --weights may name the folder itself, as AR-Seg's evaluation takes it: the AR file of the scale
    assert [p.name for p in weight_files(str(cfg), 0.7)] == [hr.name, ar.name]
    assert lr_scale_in_names(cfg, 0.5) == 0.5
    with pytest.raises(CheckpointError, match=r"2 AR-Seg AR checkpoints .* pass --lr-scale"):
        weight_files(cfg)  # two AR files and no scale
    (cfg / "AR" / "PSPNet_resnet18_0.7_80_.pth").unlink()
    assert lr_scale_in_names(str(cfg)) == 0.5  # the only AR file
    with pytest.raises(CheckpointError, match="is a directory"):
        weight_files(tmp_path)


def test_gsvnet_tar_bundle_with_args_loads_each_part_from_its_entry(tmp_path):
    """GSVNet's gsvnet_*.tar bundles argparse args, the GSV refinement ("state_dict") and the flow net
    ("state_dict_of"); each part reads its own entry and the Namespace is allowed without unpickling code."""
    import argparse

    from vidseg.models import build

    source = build("gsvnet-swiftnet18")
    parts = source.checkpoint_parts()
    flow = {k: (v + 1.0 if v.is_floating_point() else v) for k, v in parts["flow"].state_dict().items()}
    gsv = {k: (v - 1.0 if v.is_floating_point() else v) for k, v in parts["gsv"].state_dict().items()}
    path = tmp_path / "gsvnet_swiftnet_r18.tar"
    torch.save({"args": argparse.Namespace(lr=1e-4), "epoch": 3, "state_dict": gsv, "state_dict_of": flow}, path)
    target = build("gsvnet-swiftnet18")
    load_checkpoint(target, path, part="flow")
    load_checkpoint(target, path, part="gsv")
    loaded = target.checkpoint_parts()
    for name, expected in (("flow", flow), ("gsv", gsv)):
        got = loaded[name].state_dict()
        assert all(torch.equal(got[k], v) for k, v in expected.items()), name


def test_load_weights_pairs_files_with_parts_and_reads_bundles(tmp_path):
    """--weights HR.pth,AR.pth goes to the hr and lr parts in order; a GSVNet .tar fills every part it bundles."""
    import argparse

    from vidseg.models import build
    from vidseg.models.checkpoints import load_weights, save_checkpoint

    source = build("arseg-bise18-camvid")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.5)
    save_checkpoint(source, tmp_path / "HR.pth", part="hr")
    save_checkpoint(source, tmp_path / "AR.pth", part="lr")
    target = load_weights(build("arseg-bise18-camvid"), f"{tmp_path / 'HR.pth'},{tmp_path / 'AR.pth'}")
    for a, b in zip(source.state_dict().values(), target.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    gsv = build("gsvnet-swiftnet18")
    parts = gsv.checkpoint_parts()
    flow = {k: (v + 2.0 if v.is_floating_point() else v) for k, v in parts["flow"].state_dict().items()}
    grm = {k: (v + 3.0 if v.is_floating_point() else v) for k, v in parts["gsv"].state_dict().items()}
    torch.save({"args": argparse.Namespace(), "state_dict": grm, "state_dict_of": flow}, tmp_path / "g.tar")
    loaded = load_weights(build("gsvnet-swiftnet18"), tmp_path / "g.tar").checkpoint_parts()
    assert all(torch.equal(loaded["flow"].state_dict()[k], v) for k, v in flow.items())
    assert all(torch.equal(loaded["gsv"].state_dict()[k], v) for k, v in grm.items())


def test_lr_scale_in_names():
    assert lr_scale_in_names("HR/PSPNet_resnet18_1.0_99_.pth, AR/PSPNet_resnet18_0.7_99_.pth") == 0.7
    assert lr_scale_in_names(["BiSeNet_resnet18_0.3_40_.pth"]) == 0.3
    assert lr_scale_in_names("model_best.pth") is None and lr_scale_in_names(None) is None
    assert lr_scale_in_names("a/PSPNet_r18_0.3_1_.pth,b/PSPNet_r18_0.5_1_.pth") is None  # they disagree


def test_an_arseg_checkpoint_folder_runs_through_the_engine_at_its_files_scale(tmp_path):
    """`--weights checkpoints/camvid-bise18` as AR-Seg's evaluation takes it: HR/ and AR/ files found, the LR
    branch at the scale the AR file is named for."""
    from vidseg.config import EngineConfig
    from vidseg.engine.engine import Engine

    cfg = tmp_path / "camvid-bise18"
    hr = random_state_dict(_listing("camvid-bise18 HR"))
    ar = random_state_dict(_listing("camvid-bise18 LR/AR"))
    _write(cfg, "HR", hr, "BiSeNet_resnet18_1.0_99_.pth")
    _write(cfg, "AR", ar, "BiSeNet_resnet18_0.3_99_.pth")
    engine = Engine(EngineConfig(model="arseg-bise18-camvid", weights=str(cfg), method="arseg", device="cpu"))
    assert engine.lr_scale == 0.3
    key = "cp.resnet.conv1.weight"
    assert torch.equal(engine.model.checkpoint_parts()["lr"].state_dict()[key], ar["module." + key])
    assert torch.equal(engine.model.checkpoint_parts()["hr"].state_dict()[key], hr["module." + key])
