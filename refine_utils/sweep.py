"""Run one function over many run specifications, in-process or through submitit.

Table 1 alone is 7 models x 2 datasets x 4 seeds. ``run(fn, specs)`` is the one call that
fans such a set out. The executor is pluggable and never home-made process management:

- ``"sequential"`` (default): a plain loop in this process; what the CPU smoke profile uses.
- ``"local"``: submitit's ``LocalExecutor``, one subprocess per spec on this machine (several
  GPUs of one box: set ``gpus_per_node`` and submitit hands each job its device).
- ``"slurm"``: submitit's ``AutoExecutor`` on a Slurm cluster, one array task per spec.
- any ``submitit.Executor`` already configured by the caller.

``fn`` must be importable by the worker (a module-level function) and resumable (training is:
a re-submitted spec picks its checkpoint up), so a pre-empted job costs only its last epoch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("sequential", "local", "slurm")


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


def _executor(executor: Any, folder: Path):
    import submitit

    if isinstance(executor, submitit.Executor):
        return executor
    if executor == "local":
        return submitit.LocalExecutor(folder=folder)
    if executor == "slurm":
        return submitit.AutoExecutor(folder=folder, cluster="slurm")
    raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)} or pass a submitit.Executor")
