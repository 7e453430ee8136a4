"""arseg (AR-Seg): keyframes run the HR network and keep its feature; a non-keyframe runs the LR network on the
downscaled frame and fuses it (CReFF) with the key feature warped by the motion from the frame back to the key.

That motion comes from the codec: each frame's motion vectors are chained back to the keyframe
(`vidseg.video.motion.MotionChain`) and resized to the key feature grid. Without codec motion (HEVC, VP9, camera
frames) the model's flow stage estimates it between the frame and the keyframe, or, for models without one, the
motion is zero; either fallback is said once per run.

Motion conventions come from the model: AR-Seg's released checkpoints were evaluated with the seed's motion
resize (`ModelSpec.motion_convention == "arseg"`), other models use the exact per-axis resize. The chain mode
("exact" sub-pixel, or the seed's per-pixel integer "arseg") is the config's `motion_chain`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.engine.methods.base import Method, MethodState, Note
from vidseg.engine.plans import Plan, call
from vidseg.engine.schedule import KeyDecision
from vidseg.errors import ConfigError, VidsegWarning
from vidseg.kernels import ops
from vidseg.video.frame import Frame
from vidseg.video.motion import CHAIN_MODES, RESIZE_CONVENTIONS, MotionChain, dense_mode_for

__all__ = ["ARSeg", "ARSegState", "MOTION_SOURCES", "resolve_lr_scale"]

# How a non-keyframe gets its motion to the key.
MOTION_SOURCES = ("codec", "flow", "zero")


@dataclass
class ARSegState(MethodState):
    """A stream's key feature (in `tensors`), its codec motion chain back to the key, and whether the stream
    turned out to carry no codec motion (then every non-keyframe takes the fallback)."""

    chain: MotionChain | None = None
    no_codec_motion: bool = False


class ARSeg(Method):
    """HR key stage on keys (keep F_key); LR + CReFF non-key stage fed with motion back to the key.

    lr_scale: the LR branch's downscale. motion_convention: "exact" or "arseg" (see the module docstring).
    chain_mode: `MotionChain` mode. feature_stride: input pixels per key-feature pixel (the motion grid before the
    first keyframe's feature is known).
    """

    name = "arseg"
    required = ("key", "nonkey")
    optional = ("flow",)
    uses_motion = True
    has_lr_branch = True
    measures_drift = True
    default_interval = 12  # AR-Seg's L = 12

    def __init__(self, stages: Sequence[str], *, lr_scale: float = 0.5, motion_convention: str = "exact",
                 chain_mode: str = "exact", feature_stride: int = 8, note: Note | None = None) -> None:
        super().__init__(stages, note=note)
        if motion_convention not in RESIZE_CONVENTIONS:
            raise ConfigError(f"unknown motion convention {motion_convention!r}; choose one of "
                              f"{', '.join(RESIZE_CONVENTIONS)}")
        if chain_mode not in CHAIN_MODES:
            raise ConfigError(f"unknown motion chain mode {chain_mode!r}; choose one of {', '.join(CHAIN_MODES)}")
        self._lr_scale = float(lr_scale)
        self.motion_convention = motion_convention
        self.dense_mode = dense_mode_for(motion_convention)  # `MotionField.to_dense` mode
        self.chain_mode = chain_mode
        self.feature_stride = max(1, int(feature_stride))

    @classmethod
    def for_model(cls, model: Any, config: EngineConfig, *, note: Note | None = None) -> ARSeg:
        spec = model.spec
        return cls(model.stage_names, lr_scale=resolve_lr_scale(config, spec.lr_scale),
                   motion_convention=spec.motion_convention, chain_mode=config.motion_chain,
                   feature_stride=spec.feature_stride, note=note)

    @property
    def lr_scale(self) -> float:
        return self._lr_scale

    def stage_options(self) -> dict[str, Any]:
        return {"lr_scale": self._lr_scale}

    def new_state(self) -> ARSegState:
        return ARSegState()

    # plans -------------------------------------------------------------------------------------------------
    def key_plan(self) -> Plan:
        keep = [("key_features", "out.features"), ("key_logits", "out.logits")]
        if self.uses_flow:
            keep.append(("key_image", "frame.image"))
        return Plan((call("key", image="frame.image"),), keep=tuple(keep), is_key=True)

    def nonkey_plan(self, motion: str = "codec") -> Plan:
        """motion "codec" and "zero" read `frame.motion` (prepared by `prepare`); "flow" runs the model's flow
        stage between the frame and the keyframe and fits its output to the key feature grid."""
        if motion not in MOTION_SOURCES:
            raise ConfigError(f"unknown motion source {motion!r}; choose one of {MOTION_SOURCES}")
        if motion == "flow":
            if not self.uses_flow:
                raise ConfigError("the model has no flow stage to estimate motion without codec motion vectors")
            calls = (
                call("flow", image="frame.image", ref_image="state.key_image"),
                call("nonkey", image="frame.image", key_features="state.key_features",
                     motion=("out.flow", "state.key_features")),
            )
        else:
            calls = (call("nonkey", image="frame.image", key_features="state.key_features", motion="frame.motion"),)
        return Plan(calls, keep=(), motion=motion)

    def drift(self, state: ARSegState, inputs: dict[str, Tensor], logits: Tensor) -> Tensor | None:
        """The share of the motion grid where the non-key labels differ from the keyframe's labels warped by the
        same motion the non-key stage warped the key feature with (codec or zero motion; flow-stage motion is not
        measured). Where the two differ, the LR branch and CReFF overrode what the key saw: new content, or the
        cheap path going wrong; either way, a key is due. ~1 ms at 512x1024 on a CPU."""
        key_logits, motion = state.tensors.get("key_logits"), inputs.get("motion")
        if key_logits is None or motion is None:
            return None
        grid = tuple(motion.shape[-2:])  # the key feature grid
        key_logits, logits = (t if tuple(t.shape[-2:]) == grid else
                              F.interpolate(t.float(), size=grid, mode="bilinear", align_corners=False)
                              for t in (key_logits, logits))
        convention = "arseg" if self.motion_convention == "arseg" else "exact"  # as the stage warps the feature
        carried = ops.warp(key_logits.float(), motion.to(key_logits.device, torch.float32), convention)
        return (logits.argmax(1) != carried.argmax(1)).float().mean()

    # frames ------------------------------------------------------------------------------------------------
    def prepare(self, state: ARSegState, frame: Frame, hops: Sequence[Frame], decision: KeyDecision,
                image: Tensor) -> tuple[Plan, dict[str, Tensor]]:
        inputs = {"image": image}
        if decision.is_key:
            state.chain = None
            return self.key_plan(), inputs
        grid = self._motion_grid(state, frame.size)
        is_intra = [h.pict_type.upper() == "I" for h in hops]
        # A predicted frame without motion: the codec exports none (HEVC, VP9, ...; `vidseg.video.decode` gives
        # P/B-frames of exporting codecs a MotionField, all-invalid when intra-coded throughout).
        state.no_codec_motion = state.no_codec_motion or any(
            h.motion is None and not intra for h, intra in zip(hops, is_intra, strict=True)
        )
        if state.no_codec_motion:
            source = "flow" if self.uses_flow else "zero"
            # Frames of unknown picture type come from arrays, cameras or process_frame, not from a codec.
            why = ("no motion came with the frames (arrays, images, or process_frame without motion=)"
                   if all(h.pict_type == "?" for h in hops)
                   else "the video carries no codec motion vectors (e.g. HEVC or VP9)")
            self.note(f"arseg motion: {why}; non-keyframes use "
                      + ("the model's flow stage" if source == "flow" else "zero motion (the model has no flow stage)"))
            if source == "zero":
                inputs["motion"] = image.new_zeros((1, 2, *grid), dtype=torch.float32)
            return self.nonkey_plan(source), inputs
        if any(is_intra):
            self.note(
                "arseg motion: an I-frame between keyframes carries no motion; motion through it counts as zero "
                "(as AR-Seg does); the engine's keyframe policy (MotionRestarts) makes such frames keyframes"
            )
        inputs["motion"] = self._chained_motion(state, frame, hops, grid, decision).to(image.device,
                                                                                       non_blocking=True)
        return self.nonkey_plan("codec"), inputs

    def _chained_motion(self, state: ARSegState, frame: Frame, hops: Sequence[Frame], grid: tuple[int, int],
                        decision: KeyDecision) -> Tensor:
        """Push this frame's hops onto the stream's MotionChain; its map to the key, densified to the grid."""
        if state.chain is None:
            cell = next((h.motion.cell for h in hops if h.motion is not None), 4)
            state.chain = MotionChain(frame.size, mode=self.chain_mode, cell=cell)
            key = Frame(frame.index - decision.key_distance, frame.without_image().image, pict_type="I")
            state.chain.push(key, is_key=True)
        field = None
        for hop in hops:
            field = state.chain.push(hop, is_key=False)
        dense, _valid = field.to_dense(grid, mode=self.dense_mode)
        return torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32))[None]

    def _motion_grid(self, state: ARSegState, size: tuple[int, int]) -> tuple[int, int]:
        key_features = state.tensors.get("key_features")
        if key_features is not None:
            return tuple(key_features.shape[-2:])  # type: ignore[return-value]
        return (math.ceil(size[0] / self.feature_stride), math.ceil(size[1] / self.feature_stride))


def resolve_lr_scale(config: EngineConfig, model_scale: float) -> float:
    """The LR branch's scale: the config's; else the one the AR-Seg checkpoint's name carries (an LR net is
    trained for one scale: AR-Seg ships 0.3x-0.9x CamVid files); else the model's. A config scale that
    contradicts the file name is used, with a warning."""
    from vidseg.models.checkpoints import lr_scale_in_names

    named = lr_scale_in_names(config.weights, config.lr_scale)
    if config.lr_scale is None:
        return named if named is not None else model_scale
    if named is not None and not math.isclose(named, config.lr_scale):
        warnings.warn(f"lr_scale {config.lr_scale:g} differs from the {named:g} in the AR checkpoint's name "
                      f"({config.weights}); its LR network was trained at {named:g}", VidsegWarning, stacklevel=4)
    return config.lr_scale
