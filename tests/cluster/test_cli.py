"""vidseg-run's cluster options without a cluster: what needs --cluster says so, a missing Ray says how to
install it, and one input keeps today's behaviour."""

from __future__ import annotations

import sys

from vidseg.cli.run import main


def test_several_inputs_resume_and_workers_need_cluster(make_clips, capsys):
    folder = make_clips(["a", "b"])
    for argv in ([str(folder / "a.mp4"), str(folder / "b.mp4")], [str(folder / "a.mp4"), "--resume"],
                 [str(folder / "a.mp4"), "--workers", "2"]):
        assert main(argv) == 2
        assert "need --cluster: add --cluster local" in capsys.readouterr().err
    assert main([str(folder)]) == 2
    assert "add --cluster local to process every video in it" in capsys.readouterr().err


def test_cluster_without_ray_says_how_to_install_it(make_clips, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    code = main([str(make_clips(["a"])), "--cluster", "local", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1
    assert 'pip install -e ".[cluster]"' in err


def test_one_input_without_cluster_runs_as_before(make_clips, tmp_path, capsys):
    clip = make_clips(["a"], frames=4) / "a.mp4"
    assert main([str(clip), "--device", "cpu", "--no-progress", "--save", "npz", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "a_labels.npz").exists()


def test_importing_vidseg_and_its_cli_never_imports_ray():
    import subprocess

    code = "import sys, vidseg, vidseg.cluster, vidseg.cli.run; print('ray' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_source_options_go_to_the_cluster_run(make_clips, monkeypatch, tmp_path):
    import pytest

    pytest.importorskip("ray")
    import vidseg.cluster.driver as driver

    seen = {}

    class Captured(Exception):
        pass

    def capture(*args, **kwargs):
        seen.update(kwargs)
        raise Captured

    monkeypatch.setattr(driver, "ClusterRun", capture)
    with pytest.raises(Captured):
        main(["tcp://127.0.0.1:9", "--cluster", "local", "--out", str(tmp_path / "o"), "--timeout", "2.5",
              "--reconnect", "0", "--rtsp-transport", "udp", "--input-option", "fflags=nobuffer"])
    options = seen["source_options"]
    assert (options.timeout, options.reconnect, options.rtsp_transport) == (2.5, 0, "udp")
    assert dict(options.ffmpeg_options) == {"fflags": "nobuffer"}


def test_a_stream_url_as_the_cluster_s_out_is_refused_before_anything_starts(make_clips, tmp_path, capsys,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = make_clips(["a"])
    assert main([str(folder), "--cluster", "local", "--out", "udp://127.0.0.1:5000?token=T0KEN99"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a stream URL: give a folder" in err and "T0KEN99" not in err
    assert not (tmp_path / "udp:").exists()


def test_an_address_where_no_cluster_answers_is_one_line_at_once(make_clips, tmp_path, capsys):
    """Ray retries an unreachable head for minutes; vidseg probes the address first (loopback, a free port)."""
    import socket

    import pytest

    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    clip = make_clips(["a"], frames=2) / "a.mp4"
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        assert main([str(clip), "--cluster", address, "--out", str(tmp_path / "o"), "--no-progress"]) == 3
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == (f"error: cannot reach a Ray cluster at {address}: connection refused; check the address, "
                           "or start one with `ray start --head` (README: Many videos and cameras)")
