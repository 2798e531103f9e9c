"""Where the jobs of an ablation grid run: in this process, in a local process pool, or on Ray.

Sits under `molmo_eval.grid.driver`, which turns a grid into a graph of jobs (train a stage, evaluate a
cell) and hands them to `run_graph` here. An executor only runs a picklable module-level function on
picklable arguments and returns a `concurrent.futures.Future`:

- ``local``: one job at a time, in this process (the reference for the other two);
- ``pool``: a `ProcessPoolExecutor` with one worker per core (``spawn`` start method, so no worker
  inherits torch's thread pools from the parent);
- ``ray``: one Ray task per job on a running cluster (``address``) or on a local one started here.
  Ray is imported when this executor is created; without it, the error names the ``ray`` extra.

Every job writes its results to files under the grid's folder and computes them with a fixed
number of torch threads, so the numbers never depend on the executor or on the number of workers.
On a multi-node Ray cluster that folder must be on a file system every node sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from molmo_eval.core.errors import ConfigError, MissingDependency, MolmoEvalError

EXECUTORS = ("local", "pool", "ray")


class Executor(Protocol):
    name: str
    workers: int  # jobs that may run at once

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs each job at once, in this process."""

    name = "local"
    workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(e, KeyboardInterrupt):
                raise
            fut.set_exception(e)
        return fut

    def close(self) -> None:
        pass


class PoolExecutor:
    """A local process pool, one worker per core by default."""

    name = "pool"

    def __init__(self, workers: int | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = max(1, workers or cpu_count())
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """One Ray task per job. ``address=None`` starts a local cluster (stopped again by `close`);
    ``cpus_per_job`` is what each task reserves (the torch threads of a job)."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_job: int = 1, num_cpus: int | None = None):
        try:
            import ray
        except ModuleNotFoundError:
            raise MissingDependency("ray", "ray", "the Ray executor (--executor ray)") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = num_cpus or cpu_count()
            try:
                ray.init(**kwargs)
            except ConnectionError as e:
                raise ConfigError(f"--ray-address {address}: cannot connect to a Ray cluster ({e})") from None
            self._started = True
        self.cpus_per_job = max(1, cpus_per_job)
        total = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, total // self.cpus_per_job)
        self._remote: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(num_cpus=self.cpus_per_job, max_retries=0)(fn)
        return remote.remote(*args).future()

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def make_executor(
    name: str, *, workers: int | None = None, ray_address: str | None = None, cpus_per_job: int = 1
) -> Executor:
    if name == "local":
        return LocalExecutor()
    if name == "pool":
        return PoolExecutor(workers or max(1, cpu_count() // max(1, cpus_per_job)))
    if name == "ray":
        return RayExecutor(ray_address, cpus_per_job)
    raise ConfigError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")


# --- a graph of jobs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args)`` once every job in ``deps`` has finished."""

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    deps: tuple[str, ...] = ()
    cost: float = 1.0  # rough relative duration, for ordering only
    label: str = ""


class JobFailed(MolmoEvalError):
    """A job of the graph raised; the message names it and the jobs that never ran."""

    exit_code = 1


@dataclass
class GraphResult:
    results: dict[str, Any] = field(default_factory=dict)  # job key -> what fn returned
    order: list[str] = field(default_factory=list)  # completion order


def critical_path(jobs: Sequence[Job]) -> dict[str, float]:
    """Each job's cost plus the longest chain of costs that waits on it (its priority)."""
    users: dict[str, list[str]] = {j.key: [] for j in jobs}
    for j in jobs:
        for d in j.deps:
            users[d].append(j.key)
    by_key = {j.key: j for j in jobs}
    out: dict[str, float] = {}

    def level(key: str) -> float:
        if key not in out:
            out[key] = by_key[key].cost + max((level(u) for u in users[key]), default=0.0)
        return out[key]

    for j in jobs:
        level(j.key)
    return out


def run_graph(
    jobs: Sequence[Job], executor: Executor, on_done: Callable[[Job, Any], None] | None = None
) -> GraphResult:
    """Run every job after its dependencies, at most ``executor.workers`` at a time, longest chain
    first. The first failure stops new submissions; running jobs finish, then `JobFailed` is raised."""
    by_key = {j.key: j for j in jobs}
    for j in jobs:
        missing = [d for d in j.deps if d not in by_key]
        assert not missing, f"job {j.key} depends on unknown jobs {missing}"
    priority = critical_path(jobs)
    pending = sorted(by_key, key=lambda k: -priority[k])  # stable: ties keep the given order
    running: dict[Future[Any], Job] = {}
    out = GraphResult()
    failure: tuple[Job, BaseException] | None = None
    try:
        while pending or running:
            if failure is None:
                for key in [k for k in pending if all(d in out.results for d in by_key[k].deps)]:
                    if len(running) >= executor.workers:
                        break
                    pending.remove(key)
                    running[executor.submit(by_key[key].fn, *by_key[key].args)] = by_key[key]
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: running[f].key):
                job = running.pop(fut)
                err = fut.exception()
                if err is not None:
                    failure = failure or (job, err)
                    continue
                out.results[job.key] = fut.result()
                out.order.append(job.key)
                if on_done is not None:
                    on_done(job, out.results[job.key])
    except BaseException:
        for fut in running:
            fut.cancel()
        raise
    if failure is not None:
        job, err = failure
        never = len(jobs) - len(out.results) - 1
        if isinstance(err, MolmoEvalError):
            raise err
        raise JobFailed(
            f"{job.label or job.key} failed ({type(err).__name__}: {err}); "
            f"{never} job(s) did not run; run the same command again to resume"
        ) from err
    return out
