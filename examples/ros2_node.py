"""A ROS 2 node skeleton: subscribe to camera images, publish per-pixel class ids (mono8) with the same header.

    ros2 run ... / python examples/ros2_node.py --ros-args -r image_raw:=/camera/image_raw -r labels:=/seg/labels

The message conversions (`image_msg_to_rgb`, `labels_to_image_msg`) are plain functions on the fields of
sensor_msgs/Image, so they run and are tested without ROS; the node itself needs rclpy and sensor_msgs. The
subscription keeps the newest image only (QoS depth 1, best effort): when the engine is slower than the camera,
older images are dropped, as in vidseg's live mode. Images carry no codec motion, so arseg's non-keyframes use
the model's flow stage (or zero motion), said once. Uses vidseg's public API only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidseg import Engine, EngineConfig

# sensor_msgs/Image encodings this node reads -> (channels, order of R, G, B in them)
_ENCODINGS = {"rgb8": (3, (0, 1, 2)), "bgr8": (3, (2, 1, 0)), "rgba8": (4, (0, 1, 2)), "bgra8": (4, (2, 1, 0)),
              "mono8": (1, (0, 0, 0))}


@dataclass
class ImageMessage:
    """The fields of sensor_msgs/Image, for use without ROS (tests, recordings read by other tools)."""

    header: Any = None
    height: int = 0
    width: int = 0
    encoding: str = ""
    is_bigendian: int = 0
    step: int = 0
    data: bytes = field(default=b"", repr=False)


def image_msg_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8 or mono8; rows may be padded: `step`) -> uint8 RGB HxWx3."""
    if msg.encoding not in _ENCODINGS:
        raise ValueError(f"image encoding {msg.encoding!r} is not supported; publish one of {', '.join(_ENCODINGS)}")
    channels, order = _ENCODINGS[msg.encoding]
    row = msg.width * channels
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ValueError(f"image of {msg.width}x{msg.height} {msg.encoding} has step {msg.step} and {len(msg.data)} "
                         "bytes: too few")
    rows = np.frombuffer(bytes(msg.data), np.uint8)[: msg.step * msg.height].reshape(msg.height, msg.step)
    pixels = rows[:, :row].reshape(msg.height, msg.width, channels)
    return np.ascontiguousarray(pixels[..., list(order)])


def labels_to_image_msg(labels: np.ndarray, header: Any = None) -> Any:
    """Class ids uint8 [H, W] -> a mono8 sensor_msgs/Image (an `ImageMessage` where ROS is absent)."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    fields = {"height": labels.shape[0], "width": labels.shape[1], "encoding": "mono8", "is_bigendian": 0,
              "step": labels.shape[1], "data": labels.tobytes()}
    try:
        from sensor_msgs.msg import Image
    except ImportError:
        return ImageMessage(header=header, **fields)
    msg = Image(**fields)
    if header is not None:
        msg.header = header
    return msg


def stamp_seconds(header: Any) -> float | None:
    """A header's stamp in seconds (None without one)."""
    stamp = getattr(header, "stamp", None)
    return None if stamp is None else stamp.sec + stamp.nanosec * 1e-9


def segment(engine: Engine, msg: Any, *, stream: str = "image_raw") -> Any:
    """One image message in, its labels message out (what the node's callback does)."""
    result = engine.process_frame(image_msg_to_rgb(msg), pts=stamp_seconds(msg.header), stream=stream)
    return labels_to_image_msg(result.labels, msg.header)


def make_node(engine: Engine, *, input_topic: str = "image_raw", output_topic: str = "labels") -> Any:
    """The rclpy node (needs ROS 2)."""
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    class SegmentationNode(Node):
        def __init__(self) -> None:
            super().__init__("vidseg_segmentation")
            newest = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
            self.publisher = self.create_publisher(Image, output_topic, 10)
            self.create_subscription(Image, input_topic, self.on_image, newest)

        def on_image(self, msg: Image) -> None:
            self.publisher.publish(segment(engine, msg, stream=input_topic))

    return SegmentationNode()


def main(argv: list[str] | None = None) -> int:
    try:
        import rclpy
    except ImportError:
        print("error: this node needs ROS 2 (rclpy, sensor_msgs); source your ROS 2 setup first", file=sys.stderr)
        return 2
    rclpy.init(args=argv)
    node = make_node(Engine(EngineConfig(method="arseg")))
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
