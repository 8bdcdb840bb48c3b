"""Where runs execute: in this process, in local worker processes, or on a Dask cluster.

All three offer the same small interface: `submit(fn, *args)` returns a
handle, `wait(handles)` blocks until at least one is done and returns the
done ones, `result(handle)` gives its value (or raises its exception), and
`cancel(handles)` drops work not started yet. Functions and arguments must
be picklable (module-level functions, plain data).

    >>> from armvisor.explore.executors import make
    >>> with make(jobs=1) as executor:
    ...     handle = executor.submit(pow, 2, 10)
    ...     [executor.result(h) for h in executor.wait([handle])]
    [1024]
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from typing import Callable, List, Optional

from armvisor.errors import ArmvisorError


class Executor:
    workers = 1

    def submit(self, fn: Callable, *args):
        raise NotImplementedError

    def wait(self, handles: List) -> List:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return [h for h in handles if h in done]

    def result(self, handle):
        return handle.result()

    def cancel(self, handles: List) -> None:
        for handle in handles:
            handle.cancel()

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcess(Executor):
    """Runs each job at once, in this process (--jobs 1; the simplest to debug)."""

    def submit(self, fn, *args):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:            # noqa: BLE001 - handed over like a pool's
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def describe(self) -> str:
        return "this process"


class Processes(Executor):
    """A pool of local worker processes."""

    def __init__(self, jobs: int):
        self.workers = jobs
        # forkserver: workers start from a clean interpreter, not a fork of
        # this one (its Unicorn instances and the progress display's thread).
        context = multiprocessing.get_context("forkserver")
        self.pool = cf.ProcessPoolExecutor(jobs, mp_context=context)

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> str:
        return f"{self.workers} local processes"


class Dask(Executor):
    """The workers of a Dask cluster (`dask.distributed`): give a scheduler address
    (tcp://host:8786) or a Client. The image must be readable on the workers
    under the same path (a shared file system)."""

    def __init__(self, address):
        try:
            from distributed import Client
        except ImportError:
            raise ArmvisorError("--dask needs dask.distributed (pip install 'dask[distributed]')") \
                from None
        if isinstance(address, Client):
            self.client, self.owned = address, False
        else:
            try:
                self.client, self.owned = Client(address, timeout=30), True
            except (OSError, TimeoutError, ValueError) as exc:
                raise ArmvisorError(f"cannot reach the Dask scheduler at {address}: {exc}") \
                    from None
        self.workers = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn, *args):
        # pure=False: two runs with equal arguments are still two runs.
        return self.client.submit(fn, *args, pure=False)

    def wait(self, handles):
        from distributed import wait
        done, _ = wait(handles, return_when="FIRST_COMPLETED")
        return [h for h in handles if h in done]

    def cancel(self, handles):
        if handles:
            self.client.cancel(handles)

    def close(self) -> None:
        if self.owned:
            self.client.close()

    def describe(self) -> str:
        return f"Dask at {self.client.scheduler.address} ({self.workers} workers)"


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make(jobs: Optional[int] = None, dask=None) -> Executor:
    """The executor for `--jobs` / `--dask` (a scheduler address or a Client)."""
    if dask is not None:
        return Dask(dask)
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ArmvisorError(f"--jobs must be 1 or more, not {jobs}")
    return InProcess() if jobs == 1 else Processes(jobs)
