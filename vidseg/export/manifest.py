"""An export folder's `manifest.json`: everything needed to run its artifacts without the PyTorch model.

    {
      "vidseg_export": 1,                       # schema version (MANIFEST_VERSION)
      "model": "demo", "weights": null, "method": "arseg", "methods": ["per-frame", "arseg"],
      "format": "onnx", "precision": "fp32", "frame_size": [64, 128], "batch": 1, "dynamic_size": true,
      "spec": {"name": "demo", "num_classes": 19, "palette": "cityscapes19", "class_names": [...],
               "mean": [...], "std": [...], "input_size": [512, 1024], "feature_stride": 8, "logits_stride": 8,
               "logits_align_corners": true, "logits_upsample": 8, "lr_scale": 0.5, "flow_reference": "previous", ...},
      "motion": {"warp_convention": "exact"},   # how codec motion is resized and chained for this model
      "stages": {"key": {"file": "demo-key-64x128-dynhw-b1-fp32.onnx", "sha256": "...", "size": 123,
                         "inputs": [{"name": "image", "dtype": "uint8", "shape": [1, 3, "height", "width"]}],
                         "outputs": [...], "build": {"exporter": "dynamo", "validation": {...}, ...}}, ...},
      "versions": {"vidseg": "...", "torch": "...", "onnx": "...", "onnxruntime": "...", "python": "..."},
      "created": "2025-01-01T12:00:00+0000"
    }

File paths are relative to the folder. `read_manifest` checks the schema and every artifact's size and sha256,
and says in one line what is wrong (missing file, other schema version, a field of the wrong type, an artifact
changed since export) and what to do.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vidseg.errors import InputError
from vidseg.export.cache import file_sha256
from vidseg.export.files import atomic_write
from vidseg.export.formats import FORMATS
from vidseg.export.stageio import StageIO

__all__ = ["MANIFEST_NAME", "MANIFEST_VERSION", "build_manifest", "read_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
# ModelSpec fields the engine needs, recorded as they are (mean/std also act inside stage 0)
SPEC_FIELDS = ("name", "num_classes", "mean", "std", "scale", "channel_order", "palette", "input_size",
               "feature_channels", "feature_stride", "logits_stride", "logits_align_corners", "logits_upsample",
               "lr_scale", "flow_reference", "motion_convention")
_REEXPORT = "re-export it with vidseg-export"


def build_manifest(folder: str | Path, model, *, model_name: str, weights: str | None, method: str,
                   methods: Sequence[str], request, artifacts: Mapping[str, Any], lr_scale: float) -> dict:
    """The manifest of an export into `folder`: `model` (a VideoSegModel) gives its spec and motion conventions,
    `request` (a BuildRequest) the format and shapes, `artifacts` (stage -> StageArtifact, built into the folder)
    the files, declarations and build figures. methods: the methods the exported stages can run."""
    spec = model.spec
    spec_json = {name: _plain(getattr(spec, name)) for name in SPEC_FIELDS}
    spec_json["lr_scale"] = lr_scale
    names = _class_names(spec)
    if names is not None:
        spec_json["class_names"] = list(names)
    root = Path(folder)
    stages = {}
    for name, artifact in artifacts.items():
        entry = {**_file_entry(artifact.path, root), **artifact.io.to_json(), "build": dict(artifact.details or {})}
        if artifact.onnx is not None:
            entry["onnx"] = _file_entry(artifact.onnx, root)
        stages[name] = entry
    return {
        "vidseg_export": MANIFEST_VERSION,
        "model": model_name,
        "weights": weights,
        "method": method,
        "methods": list(methods),
        "format": request.format,
        "precision": request.precision,
        "frame_size": list(request.frame_size),
        "batch": request.batch,
        "dynamic_size": request.dynamic_size,
        "device": request.device,
        # AOTInductor CPU packages call vidseg's kernels unless built --portable (`vidseg.export.aoti`)
        "needs_vidseg": request.format == "aoti" and request.torch_device.type == "cpu" and not request.portable,
        "spec": spec_json,
        "motion": {"warp_convention": getattr(model, "warp_convention", "exact")},
        "stages": stages,
        "versions": _versions(artifacts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_manifest(folder: str | Path, manifest: Mapping) -> Path:
    """Write `manifest` to folder/manifest.json whole (a temporary name renamed when complete)."""
    path = Path(folder) / MANIFEST_NAME
    atomic_write(path, json.dumps(manifest, indent=1) + "\n")
    return path


def read_manifest(folder: str | Path, *, verify: bool = True) -> dict:
    """The checked manifest of an export folder; InputError (one line) for anything that is not right.

    verify: also check each artifact's size and sha256 against the manifest.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise InputError(f"export folder {folder} does not exist; export one with vidseg-export --model NAME --out DIR")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(
            f"{folder} has no {MANIFEST_NAME}: it is not a vidseg export folder (or its export did not finish); "
            f"export one with vidseg-export --model NAME --out {folder}"
        ) from None
    except OSError as err:
        raise InputError(f"{path} cannot be read ({err.strerror})") from err
    try:
        data = json.loads(text)
    except ValueError as err:
        raise InputError(f"{path} is not valid JSON ({err}); {_REEXPORT}") from err
    if not isinstance(data, dict):
        raise InputError(f"{path} holds {type(data).__name__}, not an object; {_REEXPORT}")
    version = data.get("vidseg_export")
    if version != MANIFEST_VERSION:
        raise InputError(
            f"{path} has manifest version {version!r}; this vidseg reads version {MANIFEST_VERSION}: {_REEXPORT}"
        )
    _check_schema(data, path)
    if verify:
        for name, stage in data["stages"].items():
            for entry in (stage, stage.get("onnx")):
                if entry is not None:
                    _check_file(folder, entry, name)
    return data


# -- checks ----------------------------------------------------------------------------------------------------


def _check_schema(data: dict, path: Path) -> None:
    def need(where: Mapping, key: str, kind, label: str = "") -> Any:
        value = where.get(key)
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, (int, float)))
        if not ok:
            raise InputError(
                f"{path}: {label or key} is {value!r}, expected {_kind_name(kind)} (edited by hand?); {_REEXPORT}"
            )
        return value

    for key in ("model", "method", "format", "precision"):
        need(data, key, str)
    if data["format"] not in FORMATS:
        raise InputError(f"{path}: unknown format {data['format']!r} (formats: {', '.join(FORMATS)}); {_REEXPORT}")
    if data["precision"] not in FORMATS[data["format"]].precisions:
        raise InputError(f"{path}: precision {data['precision']!r} is not one of {data['format']}'s; {_REEXPORT}")
    size = need(data, "frame_size", list)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise InputError(f"{path}: frame_size is {size!r}, expected [height, width]; {_REEXPORT}")
    need(data, "batch", int)
    need(data, "dynamic_size", bool)
    need(data, "methods", list)
    spec = need(data, "spec", dict)
    for key in ("name", "palette", "flow_reference", "channel_order"):
        need(spec, key, str, f"spec.{key}")
    for key in ("num_classes", "feature_stride", "logits_stride", "feature_channels"):
        need(spec, key, int, f"spec.{key}")
    for key in ("lr_scale", "scale"):
        need(spec, key, (int, float), f"spec.{key}")
    for key in ("mean", "std", "input_size"):
        need(spec, key, list, f"spec.{key}")
    need(spec, "logits_align_corners", bool, "spec.logits_align_corners")
    if "logits_upsample" in spec:  # absent from older exports, whose stages upsample inside (the default, 1)
        need(spec, "logits_upsample", int, "spec.logits_upsample")
    need(need(data, "motion", dict), "warp_convention", str, "motion.warp_convention")
    stages = need(data, "stages", dict)
    if not stages:
        raise InputError(f"{path}: lists no stages; {_REEXPORT}")
    for name, stage in stages.items():
        need(stage, "file", str, f"stages.{name}.file")
        try:
            StageIO.from_json(name, stage)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{path}: stages.{name} inputs/outputs are not valid ({err}); {_REEXPORT}") from err


def _check_file(folder: Path, entry: Mapping, stage: str) -> None:
    path = folder / entry["file"]
    if Path(entry["file"]).is_absolute() or ".." in Path(entry["file"]).parts:
        raise InputError(f"stage {stage!r}: the manifest names {entry['file']!r}, outside {folder}; {_REEXPORT}")
    if not path.is_file():
        raise InputError(f"stage {stage!r}: {path} named by the manifest is missing; copy the whole folder or "
                         f"{_REEXPORT}")
    if path.stat().st_size != entry.get("size") or file_sha256(path) != entry.get("sha256"):
        raise InputError(f"stage {stage!r}: {path} differs from the one the manifest records (changed or truncated "
                         f"since export); {_REEXPORT}")


def _kind_name(kind) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "an object",
             (int, float): "a number"}
    return names.get(kind, str(kind))


def _file_entry(path: Path, root: Path) -> dict:
    path = Path(path)
    return {"file": path.relative_to(root).as_posix(), "sha256": file_sha256(path), "size": path.stat().st_size}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _class_names(spec) -> Sequence[str] | None:
    """Class names when the spec carries them (extra["class_names"]) or its palette names a known label set."""
    names = spec.extra.get("class_names") if spec.extra else None
    if names is None:
        try:
            names = spec.label_set().classes
        except Exception:  # noqa: BLE001 - a palette vidseg does not know: no names
            return None
    return names if len(names) == spec.num_classes else None


def _versions(artifacts: Mapping[str, Any]) -> dict:
    import onnx
    import onnxruntime
    import torch

    from vidseg import __version__

    versions = {
        "vidseg": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
    built_with = {a.details.get("tensorrt") for a in artifacts.values() if a.details and a.details.get("tensorrt")}
    if built_with:
        versions["tensorrt"] = built_with.pop()
    return versions
