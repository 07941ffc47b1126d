"""The process side of `toffeepay serve`: one server per port, and no worker outliving it.

Granian runs the app in worker processes that share the listening socket of its main
process. It replaces a worker that dies (`respawn_failed_workers`), but nothing stops a
worker whose main process was killed (SIGKILL leaves no chance to clean up): such an
orphan would keep the port and answer with whatever code it was started with. Each worker
therefore watches its parent and stops when it is gone. Granian also binds with
SO_REUSEPORT, so a second server on a port in use would silently share it; `serve`
checks the port first.
"""

from __future__ import annotations

import fcntl
import gc
import os
import signal
import socket
import tempfile
import threading
import time

import structlog

log = structlog.get_logger("toffeepay")

PARENT_CHECK_INTERVAL = 0.5
# After SIGTERM a worker finishes its requests; past this it is ended at once.
ORPHAN_GRACE = 10.0


# Collect the youngest generation after this many new container objects (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Once a process has started: keep what startup built out of every later collection, and
    collect young objects less often.

    At CPython's defaults, a server under load spent about a tenth of its CPU collecting: the
    full collections walked every module, table and protobuf descriptor loaded at startup
    (pauses of up to 200 ms), and a request's short-lived objects tripped the youngest
    generation's threshold of 700 several times per request batch. Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def port_in_use(host: str, port: int) -> OSError | None:
    """The error binding `host:port` gives without SO_REUSEPORT (None when the port is free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR only lets a port in TIME_WAIT be reused; a listener still refuses it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def stop_with_parent(interval: float = PARENT_CHECK_INTERVAL) -> None:
    """In a worker process: stop this process when the process that started it is gone."""
    parent = os.getppid()
    if parent == 1:  # started by init itself: nothing to watch
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.error("the server's main process is gone, this worker stops", worker_pid=os.getpid(), parent_pid=parent)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="toffeepay-parent-watch", daemon=True).start()


class BackgroundLease:
    """Among the workers of one `toffeepay serve`, the one that runs the background loops.

    Every worker of a server would otherwise run its own webhook dispatcher and sweeper,
    each woken by every commit, competing for the same rows. The workers share an exclusive
    file lock named after their main process: whoever holds it runs the loops, and the lock
    is released when that worker ends, however it ends, so another takes over.
    """

    def __init__(self, server_pid: int) -> None:
        self.path = os.path.join(tempfile.gettempdir(), f"toffeepay-serve-{server_pid}.background.lock")
        self._fd: int | None = None

    def try_take(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock
