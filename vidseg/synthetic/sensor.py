"""The camera's sensor: exposure and white balance, motion blur and noise.

They change pixels, never geometry: labels, surface ids, flow and occlusion are those of the sharp, noiseless
frame (a blurred edge is labelled where the surface is at the end of the exposure, as a real camera's frame is
annotated). Exposure and white balance are per-channel gains applied with the scene's lighting (bright skies
clip at 255); motion blur and noise are applied to the finished frame here.

Motion blur: the shutter is open for `motion_blur` of the frame interval before the frame's instant; a pixel p
moved from p + s * flow(p) to p during that time (flow: the exact backward flow to the previous frame, s the
shutter fraction), so the blurred pixel is the mean of the sharp frame sampled along that segment. The mean of
2^k evenly spaced samples is built in k passes, each averaging the previous pass with itself shifted by half the
remaining step (bilinear, border-clamped; k = 1..4, about one sample per 4 pixels of the longest segment):
k resamplings of the frame instead of 2^k. Frame 0 has no previous frame and stays sharp.

Noise: Gaussian, per pixel and channel, with a standard deviation of `noise` grey levels at mid-grey growing
as the square root of the signal (shot noise), from the frame's own random stream (seed, frame index): a frame
renders the same every time.
"""

from __future__ import annotations

import numpy as np

from vidseg.synthetic.config import SceneConfig

__all__ = ["Sensor"]

_MAX_BLUR_PASSES = 4  # 16 samples along the longest segments


class Sensor:
    """The sensor effects of one scene's camera (see the module docstring)."""

    def __init__(self, config: SceneConfig) -> None:
        self._seed = config.seed
        self._blur = float(config.motion_blur)
        self._noise = float(config.noise)
        self.gain = (np.float32(config.exposure) * np.asarray(config.white_balance, np.float32)).astype(np.float32)
        # Noise standard deviation per grey level: `noise` at mid-grey, growing as the square root of the signal.
        self._std = (np.sqrt(np.maximum(np.arange(256), 4.0) / 128.0) * self._noise).astype(np.float32)

    def expose(self, image: np.ndarray, t: int, flow_prev: np.ndarray | None) -> np.ndarray:
        """The frame as the camera records it: uint8 [H, W, 3] in and out; flow_prev float32 [H, W, 2] (x, y)
        backward flow to frame t-1 (None for frame 0, or when it was not computed: no blur then)."""
        if self._blur > 0 and flow_prev is not None:
            image = self._motion_blur(image, flow_prev)
        if self._noise > 0:
            image = self._add_noise(image, t)
        return image

    def _motion_blur(self, image: np.ndarray, flow: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        length = float(np.percentile(np.abs(flow), 99)) * self._blur
        if length < 0.5:
            return image
        passes = int(np.clip(np.ceil(np.log2(max(length / 4.0, 1.0))) + 1, 1, _MAX_BLUR_PASSES))
        h, w = image.shape[:2]
        out = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        base_x = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
        base_y = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
        motion = torch.from_numpy(np.ascontiguousarray(flow))
        step = self._blur
        for _ in range(passes):
            step /= 2.0
            x = (base_x + step * motion[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
            y = (base_y + step * motion[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
            shifted = F.grid_sample(out, torch.stack((x, y), dim=-1)[None], mode="bilinear",
                                    padding_mode="border", align_corners=True)
            out = (out + shifted) * 0.5
        return out[0].permute(1, 2, 0).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()

    def _add_noise(self, image: np.ndarray, t: int) -> np.ndarray:
        rng = np.random.default_rng([self._seed, 41, t])
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        noise *= self._std.take(image)
        noise += image
        noise += np.float32(0.5)
        return np.clip(noise, 0, 255, out=noise).astype(np.uint8)
