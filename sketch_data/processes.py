"""Worker processes that end with the process that started them, whatever killed it.

A kill -9 of a run gives its children no chance to be told: datasets.map's pool workers and the Manager
process it starts beside them (both from the `multiprocess` package) then live on as orphans, each a copy of
the run's memory. On Linux the kernel can send a signal to a process when its parent dies (prctl
PR_SET_PDEATHSIG); each worker asks for SIGKILL as it starts: `multiprocess_children_die_with_parent` for
everything `multiprocess` forks, `DiesWithParent` for a DataLoader's `worker_init_fn`.
"""

import ctypes
import os
import signal
import sys
from collections.abc import Callable

import multiprocess
import multiprocess.util

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent (`parent_pid`) dies; exit now if it already has.

    Linux only (elsewhere a no-op). The signal comes when the parent *thread* that forked us exits, so workers
    must be started by a thread that lives as long as the run (the main thread, as datasets and DataLoader do).
    """
    if not sys.platform.startswith("linux") or os.getpid() == parent_pid:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # e.g. a seccomp sandbox refusing prctl: keep working, as before
    if os.getppid() != parent_pid:  # the parent died before prctl: the signal will never come
        os._exit(1)


class DiesWithParent:
    """Wrap a function that runs in worker processes (a datasets.map function, a worker_init_fn) so that each
    worker calls `die_with_parent` once, on its first call. A class, not a closure: it is pickled to the workers."""

    def __init__(self, function: Callable | None):
        self.function, self.parent_pid, self.armed_in = function, os.getpid(), None

    def __call__(self, *args, **kwargs):
        if self.armed_in != os.getpid():
            die_with_parent(self.parent_pid)
            self.armed_in = os.getpid()
        return self.function(*args, **kwargs) if self.function is not None else None


class _Registration:
    """What `multiprocess.util.register_after_fork` keys its callback on (it keeps only a weak reference)."""


_REGISTRATION = _Registration()


def multiprocess_children_die_with_parent() -> None:
    """From now on, every process that `multiprocess` starts by fork (datasets.map's Pool and its Manager)
    asks to die with its parent before it runs anything. Idempotent."""
    multiprocess.util.register_after_fork(_REGISTRATION, _arm_in_child)


def _arm_in_child(_registration) -> None:
    die_with_parent(multiprocess.parent_process().pid)
