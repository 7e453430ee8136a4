"""What a stage artifact takes and gives: names, shapes (symbolic where dynamic) and dtypes, as plain data.

A live `Stage` declares its inputs through `input_shapes`; an exported artifact carries the same declaration in
an export folder's manifest, so a runner checks an artifact against it without the PyTorch model. Shapes hold
ints for fixed dimensions and names for dynamic ones: "batch", "height" and "width" (the frame's), and
"<input>_height"/"<input>_width" or an expression of them for other spatial dimensions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from vidseg.errors import ShapeError

__all__ = ["DTYPES", "TensorDecl", "StageIO", "axis_name", "dtype_name"]

DTYPES = {
    "uint8": torch.uint8,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int32": torch.int32,
    "int64": torch.int64,
}
BATCH = "batch"
IMAGE_INPUTS = ("image", "ref_image")

Dim = int | str


def axis_name(input_name: str, axis: int) -> str:
    """The name of a dynamic axis of a 4-D input: "batch"; "height"/"width" of frames (every frame input of a
    stage has the frame's size); "<input>_height"/"<input>_width" of other maps (a feature or motion grid)."""
    if axis == 0:
        return BATCH
    prefix = "" if input_name in IMAGE_INPUTS else f"{input_name}_"
    return prefix + {2: "height", 3: "width"}[axis]


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float32 -> "float32" (the names the manifest and this module use)."""
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ShapeError(f"tensor type {dtype} is not one a stage artifact carries ({', '.join(DTYPES)})")
    return name


@dataclass(frozen=True)
class TensorDecl:
    """One named tensor. shape None: not known yet (a live stage's outputs before export)."""

    name: str
    dtype: str | None
    shape: tuple[Dim, ...] | None = None

    @property
    def torch_dtype(self) -> torch.dtype | None:
        return DTYPES[self.dtype] if self.dtype is not None else None

    def accepts(self, shape: Sequence[int]) -> bool:
        """Whether a tensor of `shape` fits: same rank, equal fixed dimensions (named ones take any size)."""
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            not isinstance(d, int) or d == n for d, n in zip(self.shape, shape, strict=True)
        )

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}

    @classmethod
    def from_json(cls, data: Mapping) -> TensorDecl:
        shape = data.get("shape")
        if shape is not None and not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in shape):
            raise ValueError(f"shape of {data.get('name')!r} must hold ints and names, got {shape!r}")
        dtype = data.get("dtype")
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype of {data.get('name')!r} must be one of {', '.join(DTYPES)}, got {dtype!r}")
        return cls(str(data["name"]), dtype, None if shape is None else tuple(shape))


@dataclass(frozen=True)
class StageIO:
    """A stage's named inputs and outputs, in binding order."""

    stage: str
    inputs: tuple[TensorDecl, ...]
    outputs: tuple[TensorDecl, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def input(self, name: str) -> TensorDecl:
        return next(t for t in self.inputs if t.name == name)

    def check_inputs(self, inputs: Mapping[str, torch.Tensor], built_for: str = "", *, any_float: bool = False
                     ) -> None:
        """Every declared input present, of its dtype (any float one for a float input with any_float), and of a
        shape it accepts; else ShapeError naming it."""
        for decl in self.inputs:
            if decl.name not in inputs:
                raise ShapeError(f"stage {self.stage!r} needs input {decl.name!r}; got {sorted(inputs)}")
            t = inputs[decl.name]
            want = decl.torch_dtype
            float_ok = any_float and want is not None and want.is_floating_point and t.is_floating_point()
            if want is not None and t.dtype != want and not float_ok:
                raise ShapeError(f"stage {self.stage!r} input {decl.name!r} must be {decl.dtype}, got {t.dtype}")
            if not decl.accepts(t.shape):
                raise ShapeError(
                    f"stage {self.stage!r} input {decl.name!r} has shape {tuple(t.shape)}; this runner was built "
                    f"for {decl.shape}{built_for}"
                )

    @classmethod
    def of_stage(cls, name: str, stage, height: int, width: int, batch: int = 1, *, dynamic_batch: bool = False,
                 dynamic_size: bool = False) -> StageIO:
        """The declaration of a live stage at one frame size (outputs: names only, known after export)."""
        inputs = []
        for input_name, (shape, dtype) in stage.input_shapes(height, width, batch).items():
            dims: list[Dim] = [int(d) for d in shape]
            if dynamic_batch:
                dims[0] = BATCH
            if dynamic_size and len(dims) == 4:
                dims[2:] = [axis_name(input_name, 2), axis_name(input_name, 3)]
            inputs.append(TensorDecl(input_name, dtype_name(dtype), tuple(dims)))
        outputs = tuple(TensorDecl(n, None) for n in stage.output_names)
        return cls(name, tuple(inputs), outputs)

    def with_shapes(self, inputs: Mapping[str, tuple[Sequence[Dim], str]],
                    outputs: Mapping[str, tuple[Sequence[Dim], str]]) -> StageIO:
        """The same names with the shapes and dtypes an export reported (name -> (shape, dtype))."""

        def decls(names: Sequence[str], found: Mapping[str, tuple[Sequence[Dim], str]]) -> tuple[TensorDecl, ...]:
            return tuple(TensorDecl(n, found[n][1], tuple(found[n][0])) for n in names)

        return StageIO(self.stage, decls(self.input_names, inputs), decls(self.output_names, outputs))

    def to_json(self) -> dict:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}

    @classmethod
    def from_json(cls, stage: str, data: Mapping) -> StageIO:
        return cls(
            stage,
            tuple(TensorDecl.from_json(t) for t in data["inputs"]),
            tuple(TensorDecl.from_json(t) for t in data["outputs"]),
        )
