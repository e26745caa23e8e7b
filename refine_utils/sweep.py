"""Run one function over many run specifications, in-process or through submitit.

Table 1 alone is 7 models x 2 datasets x 4 seeds. ``run(fn, specs)`` is the one call that
fans such a set out. The executor is pluggable and never home-made process management:

- ``"sequential"`` (default): a plain loop in this process.
- ``"processes"``: the standard library's process pool on this machine, ``workers`` at a time
  (default: one per CPU core); what filling a CPU's cores with single-threaded runs needs.
- ``"local"``: submitit's ``LocalExecutor``, one subprocess per spec on this machine (several
  GPUs of one box: set ``gpus_per_node`` and submitit hands each job its device).
- ``"slurm"``: submitit's ``AutoExecutor`` on a Slurm cluster, one array task per spec.
- any ``submitit.Executor`` already configured by the caller.

``fn`` must be importable by the worker (a module-level function) and resumable (training is:
a re-submitted spec picks its checkpoint up), so a pre-empted job costs only its last epoch.
"""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("sequential", "processes", "local", "slurm")


class SweepError(RuntimeError):
    """One or more runs of a sweep failed; the message names each with its log."""


def run(fn: Callable[[T], R], specs: Sequence[T], executor: Any = "sequential", folder: str | Path = "cache/sweeps",
        **parameters: Any) -> list[R]:
    """``[fn(spec) for spec in specs]``, computed by ``executor``, results in the order of ``specs``.

    Args:
        executor: one of ``EXECUTORS`` or a configured ``submitit.Executor``.
        folder: where submitit keeps job pickles and logs.
        parameters: passed to ``executor.update_parameters`` (e.g. ``timeout_min=600``,
            ``gpus_per_node=1``, ``slurm_partition="gpu"``).
    """
    specs = list(specs)
    if executor == "sequential":
        if parameters:
            raise ValueError(f"the sequential executor takes no parameters, got {sorted(parameters)}")
        return [fn(spec) for spec in specs]
    if executor == "processes":
        return _pool(fn, specs, **parameters)
    ex = _executor(executor, Path(folder))
    if parameters:
        ex.update_parameters(**parameters)
    jobs = ex.map_array(fn, specs)
    results, failures = [], []
    for spec, job in zip(specs, jobs):
        try:
            results.append(job.result())
        except Exception as e:  # submitit re-raises the worker's failure with its traceback
            failures.append(f"{spec!r}: job {job.job_id} failed ({type(e).__name__}); log: {job.paths.stderr}")
    if failures:
        raise SweepError(f"{len(failures)} of {len(specs)} runs failed:\n" + "\n".join(failures))
    return results


def _pool(fn: Callable[[T], R], specs: list[T], workers: int | None = None, progress: bool = True,
          label: str = "runs") -> list[R]:
    """``fn`` over ``specs`` in ``workers`` fresh ("spawn") processes, results in submission order
    (a progress bar counts finished ``label``).

    Ctrl-C (or SIGTERM, which ``cli`` turns into it) starts nothing more: every running spec is
    interrupted once (a training worker saves its last epoch), none not yet begun starts, and the
    interrupt is raised when the workers have stopped."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_interrupt_once) as pool:
        futures = [pool.submit(_unless_interrupted, fn, spec) for spec in specs]
        try:
            for _ in tqdm(as_completed(futures), total=len(futures), desc=f"{label} ({workers} processes)",
                          unit=label.rstrip("s"), disable=not progress):
                pass
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            for worker in multiprocessing.active_children():  # a terminal's Ctrl-C may have reached them already
                with contextlib.suppress(ProcessLookupError):  # one that has just exited
                    os.kill(worker.pid, signal.SIGINT)
            raise
        results, failures = [], []
        for spec, future in zip(specs, futures):
            try:
                results.append(future.result())
            except Exception as e:
                failures.append(f"{spec!r}: {type(e).__name__}: {e}")
    if failures:
        raise SweepError(f"{len(failures)} of {len(specs)} {label} failed:\n" + "\n".join(failures))
    return results


_interrupted = False  # in a pool worker: a SIGINT came


def _interrupt_once() -> None:
    """A pool worker's first SIGINT raises KeyboardInterrupt, later ones are ignored: a terminal's
    Ctrl-C and the one ``_pool`` forwards stop a run once, never interrupt its clean stop."""
    def handler(signum, frame):
        global _interrupted
        if not _interrupted:
            _interrupted = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def _unless_interrupted(fn: Callable[[T], R], spec: T) -> R:
    """``fn(spec)``, unless this worker was interrupted (a spec queued before the Ctrl-C)."""
    if _interrupted:
        raise KeyboardInterrupt(f"{spec!r} not started: interrupted")
    return fn(spec)


def _executor(executor: Any, folder: Path):
    import submitit

    if isinstance(executor, submitit.Executor):
        return executor
    if executor == "local":
        return submitit.LocalExecutor(folder=folder)
    if executor == "slurm":
        return submitit.AutoExecutor(folder=folder, cluster="slurm")
    raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)} or pass a submitit.Executor")
