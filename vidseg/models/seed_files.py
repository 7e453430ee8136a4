"""The seeds' checkpoint files: reading them safely (tensors only, nothing unpickled), their on-disk layouts (one
pure remap per seed), and which files a --weights value names (AR-Seg's checkpoints/<cfg> folders and file names).

`vidseg.models.checkpoints` matches what is read here against a model and loads it.
"""

from __future__ import annotations

import argparse
import pickle
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from vidseg.errors import CheckpointError

__all__ = ["LAYOUTS", "layout", "read_state_dict", "weight_files", "arseg_checkpoint_scale", "lr_scale_in_names",
           "find_arseg_checkpoints"]

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
_SHOW = 5  # entries named in an error message


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


def layout(name: str) -> _Layout:
    """A seed layout by name; a name without its own remap is a plain DataParallel file."""
    return LAYOUTS.get(name) or _Layout(f"{name} ('module.' stripped)", _remap_dataparallel)


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


# --- which files --weights names ---------------------------------------------------------------------------------


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
