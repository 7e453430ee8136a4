"""Getting Ray: imported only here and only when a cluster run starts, so `import vidseg` never needs it.

    address None     use the Ray of this process if it is initialised, else start a local one
    "local"          start a Ray instance on this machine for this run (stopped at the end)
    "auto"           join the cluster that `ray start` started on this machine's network
    "ray://H:10001"  a remote cluster through the Ray client; "H:6379" a cluster's head (GCS) address
"""

from __future__ import annotations

import logging
import socket
from types import ModuleType

from vidseg.errors import BackendUnavailable, ConfigError

__all__ = ["import_ray", "connect", "INSTALL_HINT", "is_infrastructure_error", "death_cause"]

PROBE_TIMEOUT_S = 5.0  # a head that does not accept a TCP connection within this is not reachable
INSTALL_HINT = 'pip install -e ".[cluster]"  (or: pip install "ray[default]")'


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as err:
        raise BackendUnavailable(f"--cluster runs on Ray, which is not installed; install it with: {INSTALL_HINT}"
                                 ) from err
    return ray


def connect(address: str | None) -> bool:
    """Initialise Ray for a run; returns True when this call started it (so the run shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}  # workers' notices come back in outcomes
    if address in (None, "local"):
        ray.init(address="local", include_dashboard=False, **quiet)  # never an old cluster found on disk
        return True
    if not (address == "auto" or address.startswith("ray://") or _host_port(address)):
        raise ConfigError(f"--cluster {address!r}: give local, auto, ray://HOST:PORT (Ray client) or HOST:PORT "
                          "(the head's address)")
    if address != "auto":
        _probe(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, TimeoutError) as err:
        if isinstance(err.__cause__, ray.exceptions.AuthenticationError):
            raise BackendUnavailable(f"the Ray cluster at {address} refused this process's authentication: it uses "
                                     "token authentication; set RAY_AUTH_MODE=token here, with the cluster's token "
                                     "in RAY_AUTH_TOKEN or ~/.ray/auth_token") from err
        raise BackendUnavailable(f"cannot reach a Ray cluster at {address}: {' '.join(str(err).split())[:300]}; "
                                 "start one with `ray start --head` (README: Many videos and cameras)") from err
    return True


def _host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit()


def _probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail at once, in one line, when nothing accepts connections at the address: Ray itself retries an
    unreachable head for minutes before it gives up (measured: > 150 s for HOST:PORT with nothing there)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():  # ray://HOST: the Ray client's default port
        host, port = address.removeprefix("ray://"), "10001"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        why = "connection refused" if isinstance(err, ConnectionRefusedError) else (
            f"no answer within {timeout_s:g} s" if isinstance(err, TimeoutError) else err.strerror or str(err))
        raise BackendUnavailable(f"cannot reach a Ray cluster at {address}: {why}; check the address, or start one "
                                 "with `ray start --head` (README: Many videos and cameras)") from err


def is_infrastructure_error(err: BaseException) -> bool:
    """Whether a failed task failed because a worker process or node died (retried elsewhere), as opposed to
    an exception raised by the task's own code (the input's failure; not retried)."""
    ray = import_ray()
    ex = ray.exceptions
    return isinstance(err, ex.RayError) and not isinstance(err, (ex.RayTaskError, ex.TaskCancelledError))


def death_cause(err: BaseException) -> str:
    """What a Ray infrastructure error means for the worker, in a few words, and its type."""
    text, kind = str(err).lower(), type(err).__name__
    if "node" in text and ("died" in text or "dead" in text):
        what = "its node died"
    elif kind == "ActorUnavailableError":
        what = "the worker became unreachable (its process or node is gone)"
    elif kind == "OutOfMemoryError":
        what = "the worker was killed for memory"
    else:
        what = "the worker process died"
    return f"{what} ({kind})"
