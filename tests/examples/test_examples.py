"""The programs in examples/ run, and import nothing but vidseg's public API."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine_tiny import encode_clip, make_frames  # noqa: E402
from video.loopback import tcp_sender  # noqa: E402

import vidseg  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_examples_use_the_public_api_only(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vidseg"):
            assert node.module == "vidseg", f"{path.name} imports {node.module}"
            assert all(alias.name in vidseg.__all__ for alias in node.names)
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith("vidseg.") for alias in node.names)


def test_the_camera_loop_hands_labels_to_its_callback(tmp_path, capsys):
    clip = encode_clip(tmp_path / "cam.mp4", make_frames(50, height=128, width=192), gop=25)
    with tcp_sender(clip) as (url, _):
        assert load("camera_loop").main([url, "--frames", "12", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    frames = [line for line in lines if line.startswith("frame")]
    assert frames and "road" in frames[0] and "latency" in frames[0] and " key " in frames[0]
    assert "frames/s" in lines[-1] and "codec" in lines[-1]  # arseg ran on the stream's motion vectors


def message(image: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    h, w, c = image.shape
    rows = np.zeros((h, w * c + pad), np.uint8)
    rows[:, : w * c] = image.reshape(h, w * c)
    stamp = SimpleNamespace(sec=12, nanosec=500_000_000)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id="cam"), height=h, width=w,
                           encoding=encoding, is_bigendian=0, step=w * c + pad, data=rows.tobytes())


def test_ros_image_messages_convert_without_ros():
    ros = load("ros2_node")
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert np.array_equal(ros.image_msg_to_rgb(message(rgb, "rgb8", pad=3)), rgb)
    assert np.array_equal(ros.image_msg_to_rgb(message(rgb[..., ::-1], "bgr8")), rgb)
    rgba = np.concatenate([rgb[..., ::-1], np.full((6, 5, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(ros.image_msg_to_rgb(message(rgba, "bgra8")), rgb)
    grey = ros.image_msg_to_rgb(message(rgb[..., :1], "mono8"))
    assert np.array_equal(grey, np.repeat(rgb[..., :1], 3, axis=2))
    with pytest.raises(ValueError, match="yuv422"):
        ros.image_msg_to_rgb(message(rgb, "yuv422"))
    labels = np.arange(30, dtype=np.uint8).reshape(6, 5)
    out = ros.labels_to_image_msg(labels, header="h")
    assert (out.height, out.width, out.encoding, out.step, out.header) == (6, 5, "mono8", 5, "h")
    assert np.array_equal(np.frombuffer(bytes(out.data), np.uint8).reshape(6, 5), labels)
    assert ros.stamp_seconds(message(rgb, "rgb8").header) == 12.5


def test_the_ros_callback_segments_an_image_message():
    ros = load("ros2_node")
    engine = vidseg.Engine(vidseg.EngineConfig(method="arseg", device="cpu", backend="torch"))
    frames = make_frames(2, height=64, width=96)
    out = [ros.segment(engine, message(frame, "rgb8")) for frame in frames]
    assert all((o.height, o.width, o.encoding) == (64, 96, "mono8") for o in out)
    assert out[0].header.frame_id == "cam"


def test_the_ros_node_says_what_it_needs_without_ros(capsys):
    if importlib.util.find_spec("rclpy") is not None:
        pytest.skip("rclpy is installed: the node would start and spin")
    assert load("ros2_node").main([]) == 2
    assert "needs ROS 2" in capsys.readouterr().err
