"""Small test clips made with PyAV: a smooth random texture translated by a known motion (exact ground truth).

Content moving by v pixels per frame means frame_t(p) = texture(p - t*v), so the backward map of every pixel to
the previous frame is -v and to frame k is -(t - k) * v.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

ENCODER_OPTIONS = {
    # Single reference, no B-frames unless asked: FFmpeg's exported vectors do not say which reference they use.
    "libx264": {"refs": "1", "preset": "fast", "x264-params": "log-level=error:b-pyramid=none"},
    "libx265": {"x265-params": "log-level=error:ref=1"},
    "mpeg4": {"qmin": "2", "qmax": "4"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def need_encoder(name: str) -> None:
    if not has_encoder(name):
        pytest.skip(f"this FFmpeg build has no {name} encoder")


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour texture with some fine detail (motion search locks on it), uint8 [H, W, 3]."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, height // 8 + 2, width // 8 + 2), dtype=np.float32))
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    img = smooth.permute(1, 2, 0).numpy() + 0.3 * rng.random((height, width, 1), dtype=np.float32)  # luma detail
    return (np.clip(img / 1.3, 0, 1) * 255).astype(np.uint8)


def shifted(tex: np.ndarray, top: float, left: float, height: int, width: int) -> np.ndarray:
    """The (height, width) window of tex at a sub-pixel offset (bilinear)."""
    t = torch.from_numpy(tex).permute(2, 0, 1)[None].float()
    ys = torch.arange(height, dtype=torch.float32) + top
    xs = torch.arange(width, dtype=torch.float32) + left
    gy = (2 * ys + 1) / tex.shape[0] - 1
    gx = (2 * xs + 1) / tex.shape[1] - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None]
    out = F.grid_sample(t, grid, mode="bilinear", align_corners=False)[0]
    return out.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def translation_frames(size=(64, 96), frames=8, velocity=(2.0, 1.0), seed=0) -> list[np.ndarray]:
    """frames of a texture moving by velocity = (vx, vy) pixels per frame."""
    height, width = size
    vx, vy = velocity
    margin = int(np.ceil(max(abs(vx), abs(vy)) * frames)) + 8
    tex = texture(height + 2 * margin, width + 2 * margin, seed)
    if float(vx).is_integer() and float(vy).is_integer():
        return [tex[margin - int(t * vy): margin - int(t * vy) + height,
                    margin - int(t * vx): margin - int(t * vx) + width].copy() for t in range(frames)]
    return [shifted(tex, margin - t * vy, margin - t * vx, height, width) for t in range(frames)]


def encode(path: Path, images: list[np.ndarray], *, codec: str = "libx264", fps: int = 25, gop: int = 12,
           bframes: int = 0, options: dict | None = None, rotation: int | None = None, hflip: bool = False,
           pix_fmt: str = "yuv420p", container_options: dict | None = None) -> Path:
    need_encoder(codec)
    opts = {**ENCODER_OPTIONS.get(codec, {}), **(options or {})}
    if codec == "libx264":
        opts.setdefault("bf", str(bframes))
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps, options=opts)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.gop_size = gop
        if codec != "libx264":
            stream.codec_context.max_b_frames = bframes
        if rotation is not None or hflip:
            stream.set_display_rotation(rotation or 0, hflip=hflip)
        for img in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def h264_clip(clip_dir) -> tuple[Path, list[np.ndarray]]:
    """12 frames of 64x96 H.264 (one GOP, I then P), content moving (+2, +1) px per frame."""
    images = translation_frames((64, 96), 12, (2, 1))
    return encode(clip_dir / "translate.mp4", images, gop=12), images
