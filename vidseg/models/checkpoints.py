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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from vidseg.errors import CheckpointError
from vidseg.models.seed_files import (
    LAYOUTS,
    arseg_checkpoint_scale,
    find_arseg_checkpoints,
    lr_scale_in_names,
    read_state_dict,
    weight_files,
)
from vidseg.models.seed_files import (
    layout as find_layout,
)

__all__ = [
    "LAYOUTS",
    "load_checkpoint",
    "load_weights",
    "load_weight_parts",
    "save_checkpoint",
    "read_state_dict",
    "to_seed_layout",
    "matching_models",
    "arseg_checkpoint_scale",
    "find_arseg_checkpoints",
    "lr_scale_in_names",
    "weight_files",
]

log = logging.getLogger(__name__)

_SHOW = 5  # keys named per category in an error message (all of them with --verbose)
WHOLE = "*"  # pseudo part: the whole model in vidseg's own layout (multi-part models)


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


def _fit(raw: Mapping[str, Tensor], sig: _Signature, origin: str, check_values: bool = True) -> _Fit:
    layout = find_layout(sig.layout)
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


def load_weights(model: nn.Module, weights: str | Path | Sequence[str | Path],
                 lr_scale: float | None = None) -> nn.Module:
    """Load what a user passes as --weights: one file, several ("HR.pth,AR.pth") for a multi-part model, or an
    AR-Seg checkpoint folder (`weight_files`; lr_scale picks its AR file).

    With as many files as the model has parts, file i goes to part i (AR-Seg: hr then lr, the seed's own
    HR/ and AR/ files); files that do not fit in that order go to the parts their keys fit. A file that bundles
    several parts under their `checkpoint_entry` keys (GSVNet's .tar: the flow net and the refinement) loads every
    part it holds. Otherwise each file's part is recognised from its keys (`load_checkpoint` with part=None).
    """
    load_weight_parts(model, weights, lr_scale)
    return model


def load_weight_parts(model: nn.Module, weights: str | Path | Sequence[str | Path],
                      lr_scale: float | None = None) -> set[str]:
    """`load_weights`, returning the names of the parts (`checkpoint_parts`) that the files loaded, so that a
    caller can tell which parts keep their initial (random) values."""
    paths = weight_files(weights, lr_scale)
    parts = _parts(model)
    names = list(parts)
    loaded: set[str] = set()
    if len(paths) > 1 and len(paths) == len(names):
        try:
            for path, part in zip(paths, names, strict=True):
                loaded.add(_load_part(model, path, part=part))
        except CheckpointError as positional:  # the files in another order? each one's part from its keys
            try:
                loaded = {_load_part(model, path, part=None) for path in paths}
            except CheckpointError:
                raise positional from None
            if len(loaded) != len(paths):
                raise positional from None
    else:
        for path in paths:
            bundled = _bundled_parts(path, parts)
            for part in bundled if len(bundled) > 1 else [None]:
                loaded.add(_load_part(model, path, part=part))
    return set(names) if WHOLE in loaded else loaded


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


def _mismatch_error(origin: str, model_name: str, part: str, fit: _Fit, raw: Mapping[str, Tensor]) -> CheckpointError:
    """Three lines (what does not fit, the first keys of each kind, which models the file does fit); every key
    in `details` (shown with --verbose)."""

    def few(keys: list[str]) -> str:
        shown = ", ".join(keys[:_SHOW])
        return shown + (f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")

    where = "the whole model" if part == WHOLE else f"part {part!r}"
    mismatched = [f"{k}: file {list(a)} vs model {list(b)}" for k, a, b in fit.mismatched]
    kinds = [(fit.missing, "missing keys"), (fit.unexpected, "unexpected keys"), (mismatched, "shape mismatches")]
    from vidseg.models.registry import list_models

    fits = _matching(raw, origin, list_models())
    lines = [
        f"{origin} does not fit {where} of model {model_name!r} (layout tried: {'; '.join(fit.notes)}).",
        "  " + "; ".join(f"{len(keys)} {what}: {few(keys)}" for keys, what in kinds if keys),
        f"  The file fits: {', '.join(fits)}." if fits
        else "  It fits no registered model; check the model name, number of classes and the file.",
    ]
    details = "\n".join(f"{what} ({len(keys)}):\n" + "\n".join(f"  {k}" for k in keys) for keys, what in kinds if keys)
    return CheckpointError("\n".join(lines), details=details)


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
    _load_part(model, path_or_state_dict, part=part, strict=strict)
    return model


def _load_part(model: nn.Module, path_or_state_dict: str | Path | Mapping[str, Tensor], *, part: str | None,
               strict: bool = True) -> str:
    """`load_checkpoint`'s work; returns the part loaded (WHOLE: every part)."""
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
        raise _mismatch_error(origin, model_name, part, fit, raw)
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
    return part


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
