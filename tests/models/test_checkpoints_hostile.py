"""Checkpoint files that are not what they claim: one clear CheckpointError each, and nothing unpickled."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from vidseg.errors import CheckpointError
from vidseg.models.checkpoints import read_state_dict


class _RunsACommand:
    """Unpickling this would run a shell command (the classic malicious-pickle payload)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_by_name(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": _RunsACommand(str(marker))}, path)
    # torch reports blocked modules (os, subprocess) with another wording than other globals: both are named
    with pytest.raises(CheckpointError, match=r"holds pickled Python objects.*\(first: (posix|nt|os)\.system\)"):
        read_state_dict(path)
    assert not marker.exists()


def test_an_empty_file_is_called_empty(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        read_state_dict(path)


@pytest.mark.filterwarnings("error")  # torch's pickle-protocol warning is not printed before the error
@pytest.mark.parametrize("content", [b"not a checkpoint", pickle.dumps({"w": [1.0, 2.0]}, protocol=4)])
def test_unreadable_files_say_what_to_do(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"is not a readable PyTorch checkpoint.*torch\.save\(model"):
        read_state_dict(path)


def test_a_truncated_checkpoint_is_refused(tmp_path):
    full = tmp_path / "full.pth"
    torch.save({"w": torch.zeros(64, 64)}, full)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
        read_state_dict(cut)
