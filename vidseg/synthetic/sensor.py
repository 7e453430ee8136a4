"""The camera's sensor: exposure and white balance, motion blur and noise.

They change pixels, never geometry: labels, surface ids, flow and occlusion are those of the sharp, noiseless
frame (a blurred edge is labelled where the surface is at the end of the exposure, as a real camera's frame is
annotated). Exposure and white balance are per-channel gains applied with the scene's lighting (bright skies
clip at 255); motion blur and noise are applied to the finished frame here.

Motion blur: the shutter is open for `motion_blur` of the frame interval before the frame's instant; a pixel p
moved from p + s * flow(p) to p during that time (flow: the exact backward flow to the previous frame, s the
shutter fraction), so the blurred pixel is the mean of the sharp frame sampled along that segment (bilinear,
border-clamped, as many samples as the longest segment has pixels, 2 to 8). Frame 0 has no previous frame and
stays sharp.

Noise: Gaussian, per pixel and channel, with a standard deviation of `noise` grey levels at mid-grey growing
as the square root of the signal (shot noise), from the frame's own random stream (seed, frame index): a frame
renders the same every time.
"""

from __future__ import annotations

import numpy as np

from vidseg.synthetic.config import SceneConfig

__all__ = ["Sensor"]

_MAX_BLUR_SAMPLES = 8


class Sensor:
    """The sensor effects of one scene's camera (see the module docstring)."""

    def __init__(self, config: SceneConfig) -> None:
        self._seed = config.seed
        self._blur = float(config.motion_blur)
        self._noise = float(config.noise)
        self.gain = (np.float32(config.exposure) * np.asarray(config.white_balance, np.float32)).astype(np.float32)

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

        length = float(np.abs(flow).max()) * self._blur
        samples = int(np.clip(np.ceil(length) + 1, 2, _MAX_BLUR_SAMPLES))
        if length < 0.25:
            return image
        h, w = image.shape[:2]
        src = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        grid_x = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
        grid_y = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
        step = torch.from_numpy(np.ascontiguousarray(flow)) * (self._blur / (samples - 1))
        total = src.clone()
        for k in range(1, samples):
            x = (grid_x + k * step[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
            y = (grid_y + k * step[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
            grid = torch.stack((x, y), dim=-1)[None]
            total += F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)
        total *= 1.0 / samples
        return total[0].permute(1, 2, 0).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()

    def _add_noise(self, image: np.ndarray, t: int) -> np.ndarray:
        rng = np.random.default_rng([self._seed, 41, t])
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        signal = image.astype(np.float32)
        std = np.sqrt(np.maximum(signal, np.float32(4.0)) * np.float32(1.0 / 128.0))
        std *= np.float32(self._noise)
        noise *= std
        noise += signal
        noise += np.float32(0.5)
        return np.clip(noise, 0, 255, out=noise).astype(np.uint8)
