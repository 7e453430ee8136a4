"""`write_clip`: render a street scene, encode it with an exact GOP structure and write its ground truth."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from vidseg.errors import ConfigError
from vidseg.synthetic.config import ClipInfo, SceneConfig
from vidseg.synthetic.scene import StreetScene
from vidseg.synthetic.truth import save_frame, save_meta
from vidseg.video.encode import VideoWriter, fixed_gop_options, has_encoder

__all__ = ["CODECS", "write_clip"]

CODECS = {"h264": "libx264", "hevc": "libx265", "mpeg4": "mpeg4"}  # write_clip codec -> PyAV encoder


def write_clip(path, config: SceneConfig, num_frames: int, *, codec: str = "h264", bitrate: int = 5_000_000,
               gop: int = 12, bframes: int = 0, ground_truth: bool = True, compress: bool = False) -> ClipInfo:
    """Render `num_frames` frames of StreetScene(config), encode them to `path` and write the ground truth.

    codec: "h264" (libx264), "hevc" (libx265) or "mpeg4" (MPEG-4 Part 2); the container follows the file
    extension (.mp4, .mkv, .avi ...). Every `gop` frames is an I-frame (closed GOPs, no scene-cut I-frames) and
    `bframes` is the most consecutive B-frames (0 = none). yuv420p needs an even width and height.

    Ground truth goes to the folder <stem>_gt/ beside the video, in the format of `vidseg.synthetic.truth`
    (labels, flow to the previous frame and to the keyframe, meta.json). compress: deflate the .npz files
    (about 3x slower to write, and float flow shrinks little; the default writes them uncompressed: 9 bytes
    per pixel and reference).
    """
    if not isinstance(config, SceneConfig):
        raise ConfigError(f"write_clip needs a SceneConfig, got {type(config).__name__}")
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; choose one of {sorted(CODECS)}")
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ConfigError(f"num_frames must be an int >= 1, got {num_frames!r}")
    if not isinstance(gop, int) or gop < 1:
        raise ConfigError(f"gop must be an int >= 1, got {gop!r}")
    if not isinstance(bframes, int) or bframes < 0 or bframes > 16:
        raise ConfigError(f"bframes must be an int in [0, 16], got {bframes!r}")
    if bitrate <= 0:
        raise ConfigError(f"bitrate must be > 0, got {bitrate!r}")
    if config.height % 2 or config.width % 2:
        raise ConfigError(f"yuv420p video needs an even size; got {config.height}x{config.width}")
    encoder = CODECS[codec]
    if not has_encoder(encoder):
        import av

        raise ConfigError(f"this FFmpeg build (PyAV {av.__version__}) has no {encoder} encoder for codec {codec!r}")
    path = Path(path)
    gt_dir = path.parent / f"{path.stem}_gt" if ground_truth else None
    scene = StreetScene(config)
    options = fixed_gop_options(encoder, gop, bframes, {"open-gop": 0})
    with VideoWriter(path, width=config.width, height=config.height, rate=Fraction(config.fps).limit_denominator(1001),
                     codec=encoder, bitrate=bitrate, gop=gop, bframes=bframes, options=options) as writer:
        for t in range(num_frames):
            key = t // gop * gop
            frame, extra = scene.render_with_flows(t, (key,) if ground_truth else ())
            # An I-frame forced at each GOP start (MPEG-4 Part 2 otherwise counts GOPs in coding order).
            writer.write(frame.image, pts=t, key=t == key)
            if gt_dir is not None:
                save_frame(gt_dir, frame, extra[0], key, compress=compress)
    info = ClipInfo(path=path, gt_dir=gt_dir, num_frames=num_frames, fps=float(config.fps),
                    size=(config.height, config.width), gop=gop, bframes=bframes, codec=codec, bitrate=int(bitrate))
    if gt_dir is not None:
        save_meta(info, config)
    return info
