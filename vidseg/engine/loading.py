"""The model a config names: a registered model with its weights, the built-in demo, or an export folder."""

from __future__ import annotations

from pathlib import Path

from vidseg.config import EngineConfig
from vidseg.errors import CheckpointError, ConfigError
from vidseg.models.base import VideoSegModel

__all__ = ["load_model"]


def load_model(config: EngineConfig) -> VideoSegModel:
    """The model the config names (the built-in demo model when none), with its weights loaded; a folder written
    by vidseg-export (its manifest.json) loads as its artifacts, with no PyTorch model built."""
    from vidseg.models import registry

    if config.model is not None and _export_folder(config.model, registry.list_models()):
        from vidseg.export.loader import load_export

        exported = load_export(config.model)
        if config.weights:  # the folder's weights are inside its artifacts: another file cannot apply
            raise ConfigError(f"--weights {config.weights} cannot apply to the export folder {config.model}: its "
                              "weights are built into its artifacts; leave --weights out, or export again with "
                              "vidseg-export --weights")
        return exported
    name = config.model or "demo"
    if config.model is None and name not in registry.list_models():
        raise ConfigError(
            "no model was given and the built-in demo model is not installed in this version of vidseg; "
            "pass --model NAME --weights PATH (vidseg-run --list-models lists the models)"
        )
    model = registry.build(name)
    if config.weights:
        from vidseg.models.checkpoints import load_weight_parts

        loaded = load_weight_parts(model, config.weights, config.lr_scale)
        if not config.random_weights:
            _check_parts(model, config, loaded)
    elif not model.spec.builtin_weights and not config.random_weights:
        hint = model.spec.weights_hint or "its trained checkpoint"
        raise CheckpointError(
            f"model {name!r} has no built-in weights and would label every pixel at random: pass --weights "
            f"(it takes {hint}), or --random-weights to run it untrained (for timing only)"
        )
    return model.eval()


def _export_folder(model: str, names: list[str]) -> bool:
    """--model names an export folder: one with a manifest, or a folder that is no registered name (so that a wrong
    folder says what it lacks, not "unknown model")."""
    path = Path(model)
    return (path / "manifest.json").is_file() or (path.is_dir() and model not in names)


def _check_parts(model: VideoSegModel, config: EngineConfig, loaded: set[str]) -> None:
    """Refuse weights that leave a part the method runs untrained (swnet-seq given only the SwiftNet file: the
    flow net would be random and every non-keyframe noise). Parts no stage of the method uses may stay out
    (AR-Seg's LR branch under per-frame)."""
    from vidseg.engine.methods import method_for

    parts = model.checkpoint_parts() if hasattr(model, "checkpoint_parts") else {}
    method = method_for(model, config)
    stages = model.stages(**method.stage_options())
    used = {id(p) for name in method.stages if name in stages for p in stages[name].parameters()}
    missing = [name for name, module in parts.items()
               if name not in loaded and any(id(p) in used for p in module.parameters())]
    if missing:
        hint = model.spec.weights_hint or "every checkpoint it takes"
        raise CheckpointError(
            f"--weights {config.weights} leaves part(s) {', '.join(missing)} of model {model.spec.name!r} untrained, "
            f"and {method.name} runs them: pass every file it takes ({hint}), or --random-weights to run the rest "
            "untrained (for timing only)"
        )
