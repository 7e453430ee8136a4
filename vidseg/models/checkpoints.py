"""Checkpoints: safe loading of the seeds' files (and vidseg's own), strict matching, seed-layout saving.

A model exposes one or more *parts* (`VideoSegModel.checkpoint_parts()`, e.g. AR-Seg's {"hr", "lr"}); each part
is a module whose state_dict mirrors one seed file once the file's wrappers are undone. `load_checkpoint`:

1. reads the file with `torch.load(weights_only=True, map_location="cpu")`: tensors only, nothing unpickled; a file
   holding Python objects, or one that is not a checkpoint at all, raises `CheckpointError`;
2. unwraps {"state_dict": ...}, {"model": ...}, {"net": ...} (also nested);
3. applies the part's seed layout (`checkpoint_layout` attribute, a pure remap per seed, see `LAYOUTS`): strips the
   `module.` prefix of nn.DataParallel files (and ETC's `student.` wrapper, dropping its training-only
   flow/teacher/criterion entries as the seed's transfer_ckpt does);
4. folds alias keys (`checkpoint_aliases = {alias_prefix: canonical_prefix}`): the seeds register some modules
   twice (`final_conv` = `cls.4`), so their files hold the same tensor under two names; both must be equal;
5. picks the part (`part=`, or the one the keys fit; ties broken by an `HR/`, `AR/` or `LR/` directory in the
   path, as AR-Seg stores them), tolerates missing keys under the part's `checkpoint_optional` prefixes
   (AR-Seg's Cityscapes HR file has no `fuse_attention.*`; logged), then loads strictly.

A mismatch raises `CheckpointError` naming the model and part, the layout tried, the first missing/unexpected
keys and shape mismatches with their counts, and the registered models/parts whose layout the file does fit.
`save_checkpoint(..., seed_layout=True)` writes a part in its seed's layout (`module.` prefix, aliases re-emitted),
so files round-trip and load in the seeds' own code.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from vidseg.errors import CheckpointError

__all__ = [
    "LAYOUTS",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "read_state_dict",
    "to_seed_layout",
    "matching_models",
    "arseg_checkpoint_scale",
    "find_arseg_checkpoints",
]

log = logging.getLogger(__name__)

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
_SHOW = 5  # keys named per category in an error message
WHOLE = "*"  # pseudo part: the whole model in vidseg's own layout (multi-part models)


# --- seed layouts: one pure remap per seed ------------------------------------------------------------------------


def _strip_prefixes(sd: Mapping[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    out = {}
    for key, value in sd.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        out[key] = value
    return out


def _remap_dataparallel(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """nn.DataParallel files (AR-Seg, and most others): strip `module.`."""
    return _strip_prefixes(sd, ("module.",))


def _remap_etc(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """ETC's transfer_ckpt (util/util.py): drop keys containing flow/teacher/criterion, strip `student.`."""
    kept = {k: v for k, v in sd.items() if not any(word in k for word in ("flow", "teacher", "criterion"))}
    return _strip_prefixes(kept, ("module.", "student."))


@dataclass(frozen=True)
class _Layout:
    description: str
    remap: Callable[[Mapping[str, Tensor]], dict[str, Tensor]]


LAYOUTS: dict[str, _Layout] = {
    "plain": _Layout("plain state_dict ('module.' stripped)", _remap_dataparallel),
    "arseg": _Layout("AR-Seg ('module.' stripped)", _remap_dataparallel),
    "etc": _Layout("ETC transfer_ckpt ('module.'/'student.' stripped; flow/teacher/criterion dropped)", _remap_etc),
    "vidseg": _Layout("vidseg's own model.state_dict() ('module.' stripped)", _remap_dataparallel),
    "flownet2": _Layout("NVIDIA flownet2-pytorch checkpoint (its 'state_dict' entry; 'module.' stripped)",
                        _remap_dataparallel),
    "gsvnet-flownets": _Layout("GSVNet FlowNetS (gsvnet_*.tar 'state_dict_of' or a bare state_dict; 'module.' "
                               "stripped)", _remap_dataparallel),
}


# --- reading --------------------------------------------------------------------------------------------------------


def _unwrap(obj: object, origin: str) -> dict[str, Tensor]:
    for _ in range(4):  # {"model": {"state_dict": {...}}} at most a few levels deep
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, Mapping):
        odd = [f"{k!r} ({type(v).__name__})" for k, v in obj.items() if not isinstance(v, Tensor)][:_SHOW]
        found = f"entries that are not tensors: {', '.join(odd)}" if odd else "no tensors"
    else:
        found = f"a {type(obj).__name__}"
    raise CheckpointError(
        f"{origin} is not a state_dict: found {found}. Expected a mapping of parameter names to tensors, "
        f"possibly wrapped as {{'state_dict'|'model'|'net': ...}}; save one with torch.save(model.state_dict(), path)"
    )


def read_state_dict(source: str | Path | Mapping[str, Tensor], *, entry: str | None = None
                    ) -> tuple[dict[str, Tensor], str]:
    """Read and unwrap a checkpoint without unpickling objects -> (flat state_dict, description of the source).

    entry: the top-level key holding the wanted state_dict when a file bundles several (GSVNet's .tar keeps the
    flow net under "state_dict_of"); a part module names it with its `checkpoint_entry` attribute.
    """
    if isinstance(source, Mapping):
        return _unwrap(_select(source, entry), "the given state_dict"), "the given state_dict"
    path = Path(source)
    origin = f"checkpoint {str(path)!r}"
    if not path.is_file():
        raise CheckpointError(f"{origin} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{origin} is empty (0 bytes); give the path of a saved checkpoint")
    try:
        # argparse.Namespace is a plain attribute bag (GSVNet stores its CLI args beside the weights); allowing it
        # keeps weights_only's guarantee that no callable is run.
        # A plain pickle (protocol > 2) makes torch warn before it fails: the CheckpointError says it all.
        with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # "Unsupported global: GLOBAL x.y" (a class or function) or "unsupported GLOBAL posix.system whose
        # module posix is blocked" (os, subprocess, builtins.eval ...).
        found = re.search(r"unsupported(?: global:)? GLOBAL (\S+)", str(err), re.IGNORECASE)
        if found is None:  # not a pickled object: a corrupt or foreign file that the unpickler stumbled on
            raise CheckpointError(
                f"{origin} is not a readable PyTorch checkpoint (unpickling failed): the file is corrupt or was not "
                "written by torch.save; save the weights with torch.save(model.state_dict(), path)"
            ) from err
        raise CheckpointError(
            f"{origin} holds pickled Python objects, not only tensors (first: {found.group(1)}), and vidseg never "
            f"unpickles objects (torch.load with weights_only=True). If you trust the file, re-save its weights "
            f"with torch.save(model.state_dict(), path)"
        ) from err
    except Exception as err:  # noqa: BLE001 - corrupt zip, truncated file, not a torch file at all
        raise CheckpointError(
            f"{origin} is not a readable PyTorch checkpoint ({type(err).__name__}: {str(err).strip()[:200]})"
        ) from err
    return _unwrap(_select(obj, entry), origin), origin


def _select(obj: object, entry: str | None) -> object:
    if entry is not None and isinstance(obj, Mapping) and isinstance(obj.get(entry), Mapping):
        return obj[entry]
    return obj


# --- matching -------------------------------------------------------------------------------------------------------


def _fold_aliases(
    sd: Mapping[str, Tensor], aliases: Mapping[str, str], origin: str, check_values: bool = True
) -> tuple[dict[str, Tensor], int]:
    """Fold alias keys onto their canonical names; returns (state_dict, number of alias keys folded)."""
    out = dict(sd)
    folded = 0
    for alias, canonical in aliases.items():
        for key in [k for k in out if k.startswith(alias)]:
            target = canonical + key[len(alias) :]
            value = out.pop(key)
            folded += 1
            if target not in out:
                out[target] = value
            elif check_values and not (out[target].shape == value.shape and torch.equal(out[target], value)):
                raise CheckpointError(
                    f"{origin}: alias key {key!r} and {target!r} must hold the same tensor (the seed registers "
                    f"one module under both names) but they differ; the file was edited or is not this layout"
                )
    return out, folded


@dataclass(frozen=True)
class _Signature:
    """What a part expects: canonical key -> shape, plus how its seed files differ from that."""

    shapes: dict[str, tuple[int, ...]]
    layout: str
    aliases: dict[str, str]
    optional: tuple[str, ...]

    @classmethod
    def of(cls, module: nn.Module, layout: str | None = None) -> _Signature:
        return cls(
            shapes={k: tuple(v.shape) for k, v in module.state_dict().items()},
            layout=layout or getattr(module, "checkpoint_layout", "plain"),
            aliases=dict(getattr(module, "checkpoint_aliases", {}) or {}),
            optional=tuple(getattr(module, "checkpoint_optional", ()) or ()),
        )


@dataclass
class _Fit:
    state_dict: dict[str, Tensor]
    missing: list[str]  # not optional
    optional_missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, file shape, model shape
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def score(self) -> tuple[int, int]:
        bad = len(self.missing) + len(self.unexpected) + len(self.mismatched)
        return (-bad, -len(self.optional_missing))


def _layout(name: str) -> _Layout:
    """A seed layout by name; a name without its own remap is a plain DataParallel file."""
    return LAYOUTS.get(name) or _Layout(f"{name} ('module.' stripped)", _remap_dataparallel)


def _fit(raw: Mapping[str, Tensor], sig: _Signature, origin: str, check_values: bool = True) -> _Fit:
    layout = _layout(sig.layout)
    sd = layout.remap(raw)
    notes = [layout.description]
    dropped = len(raw) - len(sd)
    if dropped:
        notes.append(f"{dropped} training-only keys dropped")
    sd, folded = _fold_aliases(sd, sig.aliases, origin, check_values)
    if folded:
        notes.append(f"{folded} alias keys folded ({', '.join(f'{a}* = {c}*' for a, c in sig.aliases.items())})")
    missing, optional_missing = [], []
    for key in sig.shapes:
        if key not in sd:
            (optional_missing if key.startswith(sig.optional) else missing).append(key)
    unexpected = [k for k in sd if k not in sig.shapes]
    mismatched = [
        (k, tuple(v.shape), sig.shapes[k]) for k, v in sd.items() if k in sig.shapes and tuple(v.shape) != sig.shapes[k]
    ]
    return _Fit(sd, missing, optional_missing, unexpected, mismatched, notes)


def weight_files(weights: str | Path | Sequence[str | Path], lr_scale: float | None = None) -> list[Path]:
    """The files a --weights value names: a path, a comma list, or AR-Seg's `checkpoints/<cfg>` folder (holding
    HR/ and AR/), which becomes its (HR file, AR file) pair as the seed's evaluation picks them: the AR file of
    `lr_scale`, or the only one when no scale is given."""
    if isinstance(weights, (str, Path)):
        paths = [Path(p.strip()) for p in str(weights).split(",") if p.strip()]
    else:
        paths = [Path(p) for p in weights]
    if not paths:
        raise CheckpointError("no checkpoint file given")
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        if not ((folder / "HR").is_dir() and (folder / "AR").is_dir()):
            raise CheckpointError(f"{str(folder)!r} is a directory; give checkpoint files ('HR.pth,AR.pth'), or "
                                  "an AR-Seg checkpoints/<dataset>-<backbone> folder holding HR/ and AR/")
        return list(find_arseg_checkpoints(folder, lr_scale))
    return paths


def load_weights(model: nn.Module, weights: str | Path | Sequence[str | Path],
                 lr_scale: float | None = None) -> nn.Module:
    """Load what a user passes as --weights: one file, several ("HR.pth,AR.pth") for a multi-part model, or an
    AR-Seg checkpoint folder (`weight_files`; lr_scale picks its AR file).

    With as many files as the model has parts, file i goes to part i (AR-Seg: hr then lr, the seed's own
    HR/ and AR/ files). A file that bundles several parts under their `checkpoint_entry` keys (GSVNet's .tar:
    the flow net and the refinement) loads every part it holds. Otherwise each file's part is recognised from its
    keys (`load_checkpoint` with part=None).
    """
    paths = weight_files(weights, lr_scale)
    parts = _parts(model)
    names = list(parts)
    if len(paths) > 1 and len(paths) == len(names):
        for path, part in zip(paths, names, strict=True):
            load_checkpoint(model, path, part=part)
        return model
    for path in paths:
        bundled = _bundled_parts(path, parts)
        if len(bundled) > 1:
            for part in bundled:
                load_checkpoint(model, path, part=part)
        else:
            load_checkpoint(model, path)
    return model


def _bundled_parts(path: Path, parts: Mapping[str, nn.Module]) -> list[str]:
    """Parts whose `checkpoint_entry` is a top-level key of the file (read once, tensors only)."""
    entries = {name: getattr(module, "checkpoint_entry", None) for name, module in parts.items()}
    if not any(entries.values()) or not path.is_file():
        return []
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - load_checkpoint reports unreadable files with the full explanation
        return []
    if not isinstance(obj, Mapping):
        return []
    return [name for name, entry in entries.items() if entry and isinstance(obj.get(entry), Mapping)]


def _parts(model: nn.Module) -> dict[str, nn.Module]:
    parts = model.checkpoint_parts() if hasattr(model, "checkpoint_parts") else {"model": model}
    return dict(parts)


def _model_name(model: nn.Module) -> str:
    spec = getattr(model, "spec", None)
    return getattr(spec, "name", None) or type(model).__name__


def _signatures(model: nn.Module) -> dict[str, _Signature]:
    parts = _parts(model)
    sigs = {name: _Signature.of(module) for name, module in parts.items()}
    if len(parts) > 1:
        sigs[WHOLE] = _Signature.of(model, layout="vidseg")
    return sigs


_REGISTERED: dict[str, dict[str, _Signature] | None] = {}


def _registered_signatures(name: str) -> dict[str, _Signature] | None:
    """Signatures of a registered model, built once on the meta device (no memory, no init cost)."""
    if name not in _REGISTERED:
        from vidseg.models.registry import build_architecture

        try:
            with torch.device("meta"):
                _REGISTERED[name] = _signatures(build_architecture(name))
        except Exception as err:  # noqa: BLE001 - a model that cannot be built here simply is not suggested
            log.debug("cannot build %s on the meta device to compare checkpoints: %s", name, err)
            _REGISTERED[name] = None
    return _REGISTERED[name]


def _part_label(model_name: str, part: str) -> str:
    if part == WHOLE:
        return f"{model_name} (whole model, vidseg layout)"
    return f"{model_name} (part {part!r})" if part != "model" else model_name


def matching_models(source: str | Path | Mapping[str, Tensor]) -> list[str]:
    """Registered models (and parts) whose layout a checkpoint fits exactly: keys and shapes."""
    from vidseg.models.registry import list_models

    raw, origin = read_state_dict(source)
    return _matching(raw, origin, list_models())


def _matching(raw: Mapping[str, Tensor], origin: str, names: list[str]) -> list[str]:
    fits = []
    for name in names:
        sigs = _registered_signatures(name)
        for part, sig in (sigs or {}).items():
            if _fit(raw, sig, origin, check_values=False).ok:
                fits.append(_part_label(name, part))
    return fits


def _path_hint(path: Path | None, candidates: list[str]) -> str | None:
    """AR-Seg keeps files in <cfg>/HR/ and <cfg>/AR/ (or LR/): use that to choose between equal fits."""
    if path is None:
        return None
    dirs = {p.lower() for p in path.parent.parts[-2:]}
    if "hr" in dirs and "hr" in candidates:
        return "hr"
    if dirs & {"ar", "lr"} and "lr" in candidates:
        return "lr"
    return None


def _choose_part(
    raw: Mapping[str, Tensor], sigs: dict[str, _Signature], origin: str, path: Path | None, model_name: str
) -> str:
    fits = {part: _fit(raw, sig, origin, check_values=False) for part, sig in sigs.items()}
    perfect = [p for p, f in fits.items() if f.ok]
    if len(perfect) > 1:  # prefer fits that need no optional key
        perfect = [p for p in perfect if not fits[p].optional_missing] or perfect
    if len(perfect) == 1:
        return perfect[0]
    if len(perfect) > 1:
        hint = _path_hint(path, perfect)
        if hint is not None:
            return hint
        raise CheckpointError(
            f"{origin} fits parts {', '.join(map(repr, perfect))} of model {model_name!r} equally (same keys and "
            f"shapes); say which with part=..."
        )
    return max(fits, key=lambda p: fits[p].score)


def _mismatch_message(origin: str, model_name: str, part: str, fit: _Fit, raw: Mapping[str, Tensor]) -> str:
    def few(keys: list[str]) -> str:
        shown = ", ".join(keys[:_SHOW])
        return shown + (f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")

    where = "the whole model" if part == WHOLE else f"part {part!r}"
    lines = [f"{origin} does not fit {where} of model {model_name!r} (layout tried: {'; '.join(fit.notes)})."]
    if fit.missing:
        lines.append(f"  {len(fit.missing)} missing keys: {few(fit.missing)}")
    if fit.unexpected:
        lines.append(f"  {len(fit.unexpected)} unexpected keys: {few(fit.unexpected)}")
    if fit.mismatched:
        shown = [f"{k}: file {list(a)} vs model {list(b)}" for k, a, b in fit.mismatched]
        lines.append(f"  {len(fit.mismatched)} shape mismatches: {few(shown)}")
    from vidseg.models.registry import list_models

    fits = _matching(raw, origin, list_models())
    if fits:
        lines.append(f"  The file fits: {', '.join(fits)}.")
    else:
        lines.append("  It fits no registered model; check the model name, number of classes and the file.")
    return "\n".join(lines)


# --- public API -----------------------------------------------------------------------------------------------------


def load_checkpoint(
    model: nn.Module,
    path_or_state_dict: str | Path | Mapping[str, Tensor],
    *,
    part: str | None = None,
    strict: bool = True,
) -> nn.Module:
    """Load a checkpoint (a seed's file, or vidseg's own) into `model` or one of its parts; returns `model`.

    part: which of `model.checkpoint_parts()` the file is for ("hr", "lr", ...); None picks the part whose layout
    the keys fit. strict=False tolerates missing and unexpected keys (logged) but never a shape mismatch.
    Raises CheckpointError for unreadable or unsafe files and for files that do not fit (see the module doc).
    """
    parts = _parts(model)
    entry = getattr(parts.get(part), "checkpoint_entry", None) if part is not None else None
    raw, origin = read_state_dict(path_or_state_dict, entry=entry)
    path = None if isinstance(path_or_state_dict, Mapping) else Path(path_or_state_dict)
    model_name = _model_name(model)
    sigs = _signatures(model)
    if part is None:
        part = _choose_part(raw, sigs, origin, path, model_name)
    elif part not in parts:
        raise CheckpointError(
            f"model {model_name!r} has no checkpoint part {part!r}; its parts are {', '.join(map(repr, parts))}"
        )
    module = model if part == WHOLE else parts[part]
    fit = _fit(raw, sigs[part], origin)
    if fit.mismatched or (strict and not fit.ok):
        raise CheckpointError(_mismatch_message(origin, model_name, part, fit, raw))
    if fit.missing or fit.unexpected:
        log.warning(
            "%s loaded into %s part %r non-strictly: %d keys missing, %d unexpected",
            origin,
            model_name,
            part,
            len(fit.missing),
            len(fit.unexpected),
        )
    if fit.optional_missing:
        prefixes = sorted({p for p in sigs[part].optional if any(k.startswith(p) for k in fit.optional_missing)})
        log.info(
            "%s has no %s keys (%d), as the seed's files for part %r of %s; those weights keep their initial "
            "values and no stage of this part uses them",
            origin,
            ", ".join(p + "*" for p in prefixes),
            len(fit.optional_missing),
            part,
            model_name,
        )
    module.load_state_dict({k: v for k, v in fit.state_dict.items() if k in sigs[part].shapes}, strict=False)
    return model


def to_seed_layout(state_dict: Mapping[str, Tensor], module: nn.Module, *, prefix: str = "module.") -> dict:
    """A part's state_dict in its seed's on-disk layout: aliases re-emitted next to their canonical keys, and
    the nn.DataParallel `module.` prefix."""
    aliases = dict(getattr(module, "checkpoint_aliases", {}) or {})
    out = {}
    for key, value in state_dict.items():
        out[prefix + key] = value
        for alias, canonical in aliases.items():
            if key.startswith(canonical):
                out[prefix + alias + key[len(canonical) :]] = value
    return out


def save_checkpoint(model: nn.Module, path: str | Path, part: str | None = None, seed_layout: bool = True) -> Path:
    """Write `model` (or one part) to `path`; seed_layout=True writes the seed's file layout for that part.

    Multi-part models (AR-Seg) keep one file per part in the seed's layout, so `part` is then required;
    seed_layout=False with part=None writes the whole model's vidseg state_dict (one file).
    """
    parts = _parts(model)
    if part is None and len(parts) == 1:
        part = next(iter(parts))
    if part is None and seed_layout:
        raise CheckpointError(
            f"model {_model_name(model)!r} has parts {', '.join(map(repr, parts))}, saved one file each in the "
            f"seed's layout: pass part=..., or seed_layout=False for one vidseg-layout file"
        )
    if part is not None and part not in parts:
        raise CheckpointError(f"model {_model_name(model)!r} has no checkpoint part {part!r}")
    module = model if part is None else parts[part]
    state = module.state_dict()
    if seed_layout:
        state = to_seed_layout(state, module)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


# --- AR-Seg's file naming -------------------------------------------------------------------------------------------

_ARSEG_NAME = re.compile(r"^[^_]+_[^_]+_([^_]+)_[^_]*_.*\.pth$")


def arseg_checkpoint_scale(path: str | Path) -> float:
    """The LR scale in an AR-Seg file name `PSPNet_<backend>_<scale>_<epoch>_.pth` (also used for BiSeNet)."""
    name = Path(path).name
    scale = _scale_or_none(name)
    if scale is None:
        raise CheckpointError(
            f"{name!r} is not an AR-Seg checkpoint name: expected <Model>_<backend>_<scale>_<epoch>_.pth, "
            f"e.g. PSPNet_resnet18_0.5_99_.pth"
        )
    return scale


def lr_scale_in_names(weights: str | Path | Sequence[str | Path] | None, lr_scale: float | None = None
                      ) -> float | None:
    """The LR scale that the AR-Seg AR/LR file among `weights` (as `weight_files` takes them) carries in its
    name, as the seed's evaluation matches files to `--test_scale`; None when no file names one below 1 (HR
    files) or files disagree."""
    if not weights:
        return None
    paths = weight_files(weights, lr_scale)
    scales = {s for s in (_scale_or_none(p.name) for p in paths) if s is not None and 0 < s < 1}
    return scales.pop() if len(scales) == 1 else None


def _scale_or_none(name: str) -> float | None:
    match = _ARSEG_NAME.match(name)
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def find_arseg_checkpoints(config_dir: str | Path, scale: float | None = 0.5) -> tuple[Path, Path]:
    """(HR file, AR file) in AR-Seg's `checkpoints/<cfg>/{HR,AR}/` for an LR scale, as evaluation.py picks them.

    The seed takes `os.listdir(HR)[0]` and the AR file whose name field 2 equals the scale (scale None: the AR
    folder's only file); an empty or ambiguous directory raises CheckpointError listing what is there instead of
    depending on listing order.
    """
    root = Path(config_dir)

    def pick(sub: str, want: float | None) -> Path:
        folder = root / sub
        files = sorted(p for p in folder.glob("*.pth")) if folder.is_dir() else []
        if want is not None:
            files = [p for p in files if _scale_or_none(p.name) == want]
        if len(files) != 1:
            have = sorted(p.name for p in folder.glob("*.pth")) if folder.is_dir() else []
            what = "no" if not files else f"{len(files)}"
            cond = "" if want is None else f" for scale {want}"
            remedy = "pass --lr-scale, or the files" if sub == "AR" and want is None and files else "pass the files"
            raise CheckpointError(
                f"{what} AR-Seg {sub} checkpoints{cond} in {str(folder)!r} (found: {', '.join(have) or 'none'}); "
                f"{remedy} explicitly"
            )
        return files[0]

    return pick("HR", None), pick("AR", None if scale is None else float(scale))
