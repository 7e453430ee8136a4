"""Domain randomisation for training: what a real camera and codec do to a frame, drawn at random per sample.

`degrade(image, rng, strength)` applies, each with a probability, a colour and exposure change (per-channel gain,
gamma, contrast), a blur (Gaussian, or a box along a random direction, like motion blur), sensor noise and JPEG
compression (8x8 block artefacts and ringing, as a stand-in for the H.264 artefacts of harsher bitrates than the
training clips'). strength scales the amounts (0: the image unchanged; 1: the demo recipe's ranges). Labels and
motion stay valid: nothing moves a pixel by more than the blur's radius.

The demo recipe degrades HR and LR training frames alike (so the per-frame network is robust too), and the
non-keyframe of AR-Seg's stage 3 more often than its keyframe: the LR branch then often sees a frame worse than
the key it can warp, so CReFF learns to lean on the warped key feature where the LR feature is unsure.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["degrade"]


def degrade(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A randomly degraded copy of a uint8 RGB [H, W, 3] image (see the module docstring)."""
    if strength <= 0:
        return image
    out = image.astype(np.float32)
    if rng.random() < 0.8:  # exposure, white balance, gamma, contrast
        gain = rng.uniform(max(0.3, 1 - 0.35 * strength), 1 + 0.45 * strength) * rng.uniform(
            max(0.5, 1 - 0.1 * strength), 1 + 0.1 * strength, 3)
        gamma = float(np.exp(rng.uniform(-0.35, 0.35) * strength))
        mean = out.mean()
        contrast = rng.uniform(max(0.3, 1 - 0.3 * strength), 1 + 0.2 * strength)
        out = np.clip((out - mean) * contrast + mean, 0, 255)
        out = 255.0 * (out / 255.0) ** gamma * gain.astype(np.float32)
    pil = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:  # blur: defocus, or motion along a random direction
        if rng.random() < 0.5:
            pil = pil.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 1.5) * strength))
        else:
            pil = _motion_blur(pil, int(round(rng.uniform(2, 7) * strength)), rng.uniform(0, np.pi))
    out = np.asarray(pil, np.float32)
    if rng.random() < 0.6:  # sensor noise (shot-noise-like: grows with the signal)
        sigma = rng.uniform(1.0, 9.0) * strength
        out = out + rng.standard_normal(out.shape).astype(np.float32) * sigma * np.sqrt(
            np.maximum(out, 4.0) / 128.0)
    out8 = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:  # compression
        buffer = io.BytesIO()
        Image.fromarray(out8).save(buffer, format="JPEG", quality=int(rng.uniform(max(8.0, 90 - 70 * strength), 90)))
        out8 = np.asarray(Image.open(buffer).convert("RGB"))
    return out8


def _motion_blur(pil: Image.Image, length: int, angle: float) -> Image.Image:
    """A box blur `length` pixels long along `angle` (a 5x5 kernel at most, so PIL's Kernel filter takes it;
    longer blurs are applied twice)."""
    if length < 2:
        return pil
    size = 5
    kernel = np.zeros((size, size), np.float32)
    steps = np.linspace(-(min(length, size) - 1) / 2, (min(length, size) - 1) / 2, min(length, size))
    for s in steps:
        x, y = int(round(2 + s * np.cos(angle))), int(round(2 + s * np.sin(angle)))
        kernel[y, x] += 1.0
    flt = ImageFilter.Kernel((size, size), kernel.ravel().tolist(), scale=float(kernel.sum()))
    for _ in range(max(1, length // size)):
        pil = pil.filter(flt)
    return pil
