"""The thread budget: how many threads torch, the decoder and the overlay encoder get for N cores, what the user
fixed stays fixed, and the pipeline threads' lower priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest
import torch

from vidseg import threads
from vidseg.engine.pipeline import Prefetcher, Writer
from vidseg.errors import ConfigError
from vidseg.threads import ThreadBudget, lower_thread_priority

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")


@pytest.fixture
def restore():
    """apply() changes process-wide state: torch's pool and the applied budget."""
    before, applied = torch.get_num_threads(), threads._APPLIED
    yield
    torch.set_num_threads(before)
    threads._APPLIED = applied


@pytest.mark.parametrize(("cores", "split"), [
    (1, (1, 1, 1, 5)),   # everything shares the one core; decode and encode niced
    (2, (2, 1, 1, 5)),   # the model gets both cores
    (3, (3, 1, 1, 5)),
    (4, (3, 1, 1, 5)),   # one core aside, shared by decoding and encoding
    (8, (6, 1, 1, 0)),   # two cores aside, one each: nobody waits for a core
    (16, (12, 2, 2, 0)),
])
def test_the_split_for_n_cores(cores, split):
    budget = ThreadBudget.for_cores(cores)
    assert (budget.torch, budget.decode, budget.encode, budget.side_nice) == split
    assert budget.cores == cores
    # the overlay's encoder takes half the CPU per frame while it shares the model's cores
    assert budget.encode_preset == ("superfast" if budget.side_nice else "veryfast")


def test_what_the_user_fixed_stays_fixed():
    assert ThreadBudget.for_cores(2, torch=1).torch == 1
    assert ThreadBudget.for_cores(2, torch=4).torch == 4  # more than the cores: the user's call
    fixed = ThreadBudget.for_cores(8, decode=0, encode=3)
    assert (fixed.torch, fixed.decode, fixed.encode) == (6, 0, 3)  # 0: the library's own choice
    assert ThreadBudget.for_cores(8, torch=8).side_nice == threads.SIDE_NICE  # now they outnumber the cores


def test_the_default_cores_are_the_physical_ones():
    from vidseg.device import physical_cores

    assert ThreadBudget.for_cores().cores == physical_cores()


@pytest.mark.parametrize("bad", [{"cores": 0}, {"torch": 0}, {"decode": -1}, {"encode": -2}])
def test_nonsense_numbers_are_refused(bad):
    with pytest.raises(ConfigError):
        ThreadBudget.for_cores(**{"cores": 2, **bad})


def test_apply_sizes_torch_and_makes_the_budget_the_processes(restore):
    budget = ThreadBudget.for_cores(2, torch=1).apply()
    assert torch.get_num_threads() == 1
    assert threads.applied() is budget and threads.side_nice() == threads.SIDE_NICE
    ThreadBudget.for_cores(16, torch=1).apply()
    assert threads.side_nice() == 0


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux
def test_lower_thread_priority_changes_the_calling_thread_only():
    main = _niceness()
    seen = []

    def work():
        seen.append((lower_thread_priority(3), _niceness()))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [(True, min(19, main + 3))]
    assert _niceness() == main
    assert lower_thread_priority(0) is False


@linux
def test_the_decode_and_writer_threads_run_niced_under_the_budget(restore):
    main = _niceness()
    ThreadBudget.for_cores(2).apply()

    class Sink:
        seen: list = []

        def write(self, index, image, labels):
            self.seen.append(_niceness())

        def close(self):
            pass

    def frames():
        for _ in range(3):
            yield _niceness()

    writer = Writer([Sink()])
    writer.put(0, None, None)
    writer.close()
    decoded = [arrival.frame for arrival in Prefetcher(frames())]
    expected = min(19, main + threads.SIDE_NICE)
    assert Sink.seen == [expected] and decoded == [expected] * 3
    assert _niceness() == main
    assert writer.blocked >= 0.0 and writer.busy > 0.0


@linux
def test_without_a_budget_the_pipeline_threads_keep_their_priority(restore):
    threads._APPLIED = None
    main = _niceness()
    decoded = [arrival.frame for arrival in Prefetcher(_niceness() for _ in range(2))]
    assert decoded == [main, main]


@linux
def test_a_live_sources_decode_thread_keeps_its_priority(restore):
    main = _niceness()
    ThreadBudget.for_cores(2).apply()
    seen = [arrival.prepared for arrival in Prefetcher([0], live=True, prepare=lambda _: _niceness())]
    assert seen == [main]
