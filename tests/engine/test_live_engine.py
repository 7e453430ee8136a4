"""The engine on live sources: live by default for streams, codec motion driving arseg, latency from arrival,
drops counted, a keyframe after a reconnect, image sequences (fallback said once, a key per snippet), and memory
that stays bounded (dropped-frame history, latency statistics)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from engine_tiny import TinyModel, encode_clip, make_frames
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from video.loopback import Sender, tcp_sender  # noqa: E402

from vidseg.config import EngineConfig  # noqa: E402
from vidseg.engine.engine import Engine  # noqa: E402
from vidseg.engine.pipeline import MAX_SKIPPED, Prefetcher  # noqa: E402
from vidseg.engine.results import LatencyHistogram, LatencyStats  # noqa: E402
from vidseg.video.frame import Frame  # noqa: E402
from vidseg.video.motion import MotionField  # noqa: E402
from vidseg.video.source import SourceOptions  # noqa: E402

FAST = SourceOptions(timeout=5.0, reconnect=4, reconnect_delay=0.2, reconnect_max_delay=1.0)


@pytest.fixture(scope="module")
def cam_clip(tmp_path_factory) -> Path:
    """3 s of 64x96 H.264 at 25 fps, an I-frame every 25 frames."""
    return encode_clip(tmp_path_factory.mktemp("live") / "cam.mp4", make_frames(75), gop=25)


def engine(**config) -> Engine:
    return Engine(EngineConfig(method="arseg", device="cpu", **config), model=TinyModel())


def test_a_stream_runs_live_by_default_with_codec_motion_and_latency_from_arrival(cam_clip):
    eng = engine(keyframes="gop")
    results = []
    with tcp_sender(cam_clip) as (url, _):
        for result in eng.run(url, source_options=FAST, max_frames=60):
            results.append(result)
            time.sleep(0.06)  # a consumer slower than the camera's 40 ms: frames are dropped, newest first
    summary = eng.summary
    assert summary.dropped > 0 and len(results) + summary.dropped >= 55  # live: on by default for a stream
    indices = [r.index for r in results]
    assert indices == sorted(indices) and max(np.diff(indices)) > 1
    nonkeys = [r for r in results if not r.is_key]
    assert nonkeys and all(r.motion == "codec" for r in nonkeys)  # chained through the dropped frames
    assert summary.motion == {"codec": len(nonkeys)}
    assert not any("motion" in note for note in summary.fallbacks)
    # From arrival: a frame waits for the busy consumer before its processing starts.
    processing = [sum(r.timings.values()) for r in results]
    assert all(r.latency >= p for r, p in zip(results, processing, strict=True))
    assert np.median([r.latency for r in results]) > np.median(processing)
    latency = summary.latency["all"]
    assert latency.count == len(results) and latency.p50_ms <= latency.p99_ms


def test_offline_mode_on_a_stream_takes_every_frame(cam_clip):
    eng = engine()
    with tcp_sender(cam_clip) as (url, _):
        results = list(eng.run(url, source_options=FAST, max_frames=20, live=False))
    assert [r.index for r in results] == list(range(20)) and eng.summary.dropped == 0


def test_after_a_reconnect_a_new_keyframe_starts_and_earlier_results_are_kept(cam_clip):
    # no interval or drift keys: past frame 0, keys come from I-frames or the restart
    eng = engine(keyframe_interval=1000, drift_limit=None)
    restarted, results = [], []

    def restart_key():
        return next((r for r in results if r.is_key and r.index > 0 and r.reason == "first frame"), None)

    # Reconnect attempts for ~10 s: the new sender is a fresh Python process, slow to listen on a loaded machine.
    patient = SourceOptions(timeout=5.0, reconnect=12, reconnect_delay=0.2, reconnect_max_delay=1.0)
    with tcp_sender(cam_clip) as (url, first):
        run = eng.run(url, source_options=patient, max_frames=300, live=False)
        try:
            for result in run:
                results.append(result)
                if result.index == 3:  # the sender has sent more by now (the reader buffers): it dies mid-stream
                    first.kill()
                    restarted.append(Sender(cam_clip, f"{url}?listen=1", "mpegts"))
                key = restart_key()
                if key is not None and result.index >= key.index + 10:
                    break
        finally:
            run.close()
            for sender in restarted:
                sender.kill()
    assert eng.summary.reconnects == 1
    assert [r.index for r in results] == list(range(len(results)))  # every frame before the loss was kept
    key = restart_key()
    assert key is not None and key.index > 3
    # Before it, a loaded machine may have buffered past the clip's I-frame at 25 (a motion restart key).
    assert all(r.reason == "I-frame (motion restarts)" for r in results if r.is_key and 0 < r.index < key.index)
    assert any("source restarted" in note for note in eng.notes)
    after = [r for r in results if r.index > key.index]  # their motion chains back to the new key
    assert len(after) == 10 and all(r.key_distance == r.index - key.index and r.motion == "codec" for r in after)


def test_cityscapes_snippets_each_start_with_a_key_and_the_motion_fallback_is_said_once(tmp_path):
    city = tmp_path / "leftImg8bit_sequence" / "val" / "frankfurt"
    city.mkdir(parents=True)
    images = make_frames(8)
    for i, image in enumerate(images):
        sequence, frame = (1, 10 + i) if i < 4 else (7, 50 + i)  # two snippets, written out of order
        Image.fromarray(image).save(city / f"frankfurt_{sequence:06d}_{frame:06d}_leftImg8bit.png")
    eng = engine(keyframe_interval=100)
    results = list(eng.run(str(city)))
    assert [r.index for r in results] == list(range(8))
    assert [r.index for r in results if r.is_key] == [0, 4]
    assert eng.summary.motion == {"flow": 6}  # no codec motion in images: the tiny model's flow stage
    assert sum(note.startswith("arseg motion: no motion came with the frames") for note in eng.notes) == 1
    assert float(results[1].pts) == pytest.approx(1 / 17)  # Cityscapes' frame rate


def test_the_dropped_frame_history_stays_bounded_however_long_the_consumer_stalls():
    def frames():
        field = MotionField.invalid((8, 8), cell=4)
        for i in range(MAX_SKIPPED * 3):
            yield Frame(i, np.zeros((8, 8, 3), np.uint8), pict_type="I" if i == 0 else "P",
                        motion=None if i == 0 else field)

    prefetcher = Prefetcher(frames(), live=True)
    try:
        deadline = time.monotonic() + 10
        while prefetcher.dropped < MAX_SKIPPED * 3 - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        arrival = next(iter(prefetcher))
    finally:
        prefetcher.close()
    assert arrival.frame.index == MAX_SKIPPED * 3 - 1
    assert len(arrival.skipped) <= MAX_SKIPPED
    assert arrival.skipped[0].pict_type == "I" and arrival.skipped[0].motion is None  # the chain is said broken
    assert all(s.image.size == 0 for s in arrival.skipped)


def test_latency_statistics_keep_constant_memory_and_match_exact_percentiles():
    seconds = np.random.default_rng(0).lognormal(-3.0, 0.8, 20000)
    histogram = LatencyHistogram()
    size = histogram.counts.nbytes
    for s in seconds:
        histogram.add(s)
    assert histogram.counts.nbytes == size
    approx, exact = histogram.stats(), LatencyStats.of(list(seconds))
    assert approx.count == exact.count and approx.mean_ms == pytest.approx(exact.mean_ms, rel=1e-9)
    assert approx.p50_ms == pytest.approx(exact.p50_ms, rel=0.01)
    assert approx.p99_ms == pytest.approx(exact.p99_ms, rel=0.01)
