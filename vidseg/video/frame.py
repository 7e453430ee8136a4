"""`Frame`: the one frame type every source yields and everything downstream reads.

A frame is what a decoder, a camera, an image folder or a Python iterable hands the engine: its position in the
stream, its picture, when it was shown, and what the codec says about how it was predicted. Nothing downstream
asks what kind of source a frame came from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vidseg.errors import InputError

if TYPE_CHECKING:
    from vidseg.video.motion import MotionField

__all__ = ["Frame", "check_image"]

_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)
_NO_IMAGE.flags.writeable = False


@dataclass(frozen=True, eq=False, slots=True)
class Frame:
    """One frame of a stream.

    index: 0-based position in the stream (display order; decoded frames are counted, never derived from pts).
    image: uint8 RGB [H, W, 3] in display orientation.
    pts: presentation time in seconds, None when the source has no clock.
    pict_type: the codec's picture type 'I', 'P' or 'B'; '?' when unknown (cameras, image files, arrays).
    motion: codec motion as a `MotionField` (backward map to the reference frame), None when there is none. A
        decoder's field holds the codec's vector array (``motion.blocks``) and makes its cell grid when first read.
    reference: whether later frames may predict from this one (H.264 B-pyramids); None when unknown.
    arrived: `time.perf_counter()` when a live source received the frame (latency is measured from it); None
        for files, which have no arrival time.
    segment: how many times the source restarted before this frame (a live stream that reconnected, a new
        snippet of an image sequence); a change starts the stream's state anew, with a keyframe. Indices and pts
        keep increasing across segments.
    """

    index: int
    image: np.ndarray
    pts: float | None = None
    pict_type: str = "?"
    motion: MotionField | None = None
    reference: bool | None = None
    arrived: float | None = None
    segment: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def without_image(self) -> Frame:
        """The frame's metadata with an empty image: what a dropped live frame leaves behind, so motion chains and
        keyframe policies stay whole without holding its pixels."""
        return dataclasses.replace(self, image=_NO_IMAGE)

    def tensor(self, device=None):
        """The image as a uint8 torch tensor [3, H, W]. Without a device it shares memory with `image` and has
        channels-last strides (what `channels_last` models want); copying to a device keeps those strides."""
        import torch

        t = torch.from_numpy(self.image).permute(2, 0, 1)
        return t if device is None else t.to(device, non_blocking=True)


def check_image(image: object) -> np.ndarray:
    """The image if it is what frames hold (uint8 RGB HxWx3 with pixels); else an InputError saying how to convert
    the common wrong layouts."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InputError(f"frames must be RGB uint8 arrays of shape HxWx3, got {shape} {dtype}{_image_hint(image)}")
    if image.size == 0:
        raise InputError(f"frames must have pixels, got an empty {image.shape[0]}x{image.shape[1]} image")
    return image


def _image_hint(image: object) -> str:
    """How to turn a common wrong frame layout into an RGB uint8 HxWx3 array."""
    if type(image).__module__.startswith("torch"):
        return "; convert a tensor with image.cpu().numpy() (and CHW to HWC with .permute(1, 2, 0) first)"
    if not isinstance(image, np.ndarray):
        return "; pass a numpy array"
    if image.ndim == 4 and image.shape[0] == 1:
        return "; pass one frame, image[0], not a batch"
    if image.ndim == 2:
        return "; make a grey image RGB with np.repeat(image[..., None], 3, axis=2)"
    if image.ndim == 3 and image.shape[2] == 4:
        return "; drop the alpha channel with image[..., :3]"
    if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[2] not in (1, 3, 4):
        return "; a CHW array becomes HWC with image.transpose(1, 2, 0)"
    if image.dtype != np.uint8 and np.issubdtype(image.dtype, np.floating):
        return ("; convert floats with (image * 255).round().astype(np.uint8) when they are in [0, 1], "
                "image.astype(np.uint8) when in [0, 255]")
    if image.dtype != np.uint8:
        return "; convert values in [0, 255] with image.astype(np.uint8)"
    return ""
