"""The demo recipe end to end at toy size: data with codec motion, three training stages, held-out evaluation,
fp16 weights that load back into the registered architecture."""

import torch

from vidseg.models.demo import build_demo
from vidseg.train.demo import DemoRecipe, train_demo


def test_demo_recipe_runs_end_to_end_and_saves_loadable_weights(tmp_path):
    recipe = DemoRecipe(size=(64, 128), crop=(64, 128), train_scenes=1, eval_scenes=1, frames_per_scene=13,
                        batch=2, steps_hr=2, steps_lr=1, steps_arseg=1, eval_frames=13, city_scenes=1,
                        city_train_scenes=1)
    report = train_demo(tmp_path, recipe, progress=False)
    methods = report["methods"]
    assert set(methods) == {"HR per-frame", "LR-only 0.5x", "AR-Seg 0.5x"}
    for m in methods.values():
        assert set(m["miou_per_distance"]) == set(range(12))  # 13 frames: distances 0..11 and one more key
        assert 0.0 <= m["miou_mean"] <= 1.0 and 0.0 <= m["tc_bwd"] <= 1.0
    # d = 0 is the keyframe: AR-Seg runs the HR net there, so it equals HR per-frame exactly.
    assert methods["AR-Seg 0.5x"]["miou_per_distance"][0] == methods["HR per-frame"]["miou_per_distance"][0]
    assert set(report["eval"]) == {"realistic", "city"} and report["eval"]["realistic"]["methods"] == methods
    for result in report["eval"].values():
        agreement = result["agreement"]
        assert agreement["nonkey_frames"] == 11 and 0.0 <= agreement["agreement_min"] <= agreement["agreement_mean"]
    assert set(report["train_seconds_per_stage"]) == {"hr", "lr_only", "arseg"}
    state = torch.load(tmp_path / "demo.pt", weights_only=True)["model"]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    model = build_demo(pretrained=False)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    assert (tmp_path / "hr" / "log.jsonl").exists() and (tmp_path / "arseg" / "last.pt").exists()
