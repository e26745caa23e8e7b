"""Compute a profile's results from scratch (or resume): train every network the book needs,
spread over processes, then execute every notebook of the table of contents with papermill.

This is what ``make results PROFILE=...`` and the test suite's smoke run call, so the book CI
checks is the book a reader recomputes. Checkpoints, results and data go where ``store``
and ``data`` put them (``$REFINE_CACHE_DIR``, ``$REFINE_RESULTS_DIR``, ``$REFINE_DATA_DIR``).
"""
from __future__ import annotations

import os
from pathlib import Path

from . import data, experiments, profiles, store


def toc_files(root: Path = store.ROOT) -> list[str]:
    """Every document of ``_toc.yml`` in reading order (no suffix, relative to ``root``)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]


def notebooks(root: Path = store.ROOT) -> list[Path]:
    """The figure notebooks of ``_toc.yml``, in reading order."""
    return [root / f"{f}.ipynb" for f in toc_files(root) if f.startswith("notebooks/")]


def execute(profile: str, out: str | os.PathLike, workers: int | None = None, progress: bool = True,
            train_only: bool = False, executor: str = "processes", **executor_options) -> list[Path]:
    """Train ``profile``'s networks ``workers`` at a time (default: one per CPU core; or through
    submitit with ``executor`` "slurm"/"local" and its ``executor_options``), then (unless
    ``train_only``) run every notebook with ``profile=<profile>``, ``workers`` kernels at a time;
    returns the executed copies, written to ``out``, in reading order."""
    # Notebooks run in notebooks/: folders named relative to where this is called stay meant so.
    os.environ["REFINE_DATA_DIR"] = str(data.default_data_dir().resolve())
    for var in ("REFINE_CACHE_DIR", "REFINE_RESULTS_DIR"):
        if var in os.environ:
            os.environ[var] = str(Path(os.environ[var]).resolve())
    workers = workers or os.cpu_count() or 1
    with experiments.pinned_isa(profiles.get_profile(profile).cpu_isa):
        experiments.pretrain(profile, workers, progress, executor=executor, **executor_options)
        if train_only:
            return []
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        return run_notebooks(profile, out, workers, progress)


def _execute(profile: str, out: Path, nb: str) -> Path:
    """Notebook ``nb`` executed by papermill into ``out`` with ``profile=<profile>``."""
    import papermill

    nb = Path(nb)
    papermill.execute_notebook(str(nb), str(out / nb.name), parameters=dict(profile=profile), cwd=str(nb.parent),
                               kernel_name="python3", progress_bar=False)
    return out / nb.name


def run_notebooks(profile: str, out: Path, workers: int = 1, progress: bool = True) -> list[Path]:
    """Every figure notebook executed into ``out``, ``workers`` kernels at a time (``sweep``'s
    process pool); the executed copies in reading order. Each kernel computes its results
    single-threaded (``specs.CPU_THREADS``), so one per core is fastest; two notebooks that need
    one result may both compute it, each writing the same whole file (``store.write_result``)."""
    import functools

    from . import sweep

    job = functools.partial(_execute, profile, out)
    return sweep.run(job, [str(nb) for nb in notebooks()], executor="processes", workers=workers,
                     progress=progress, label="notebooks")


def compute(profile: str, workers: int | None = None, parts: tuple[str, ...] = profiles.PARTS,
            progress: bool = True) -> list[str]:
    """Train ``profile``'s networks of ``parts`` and compute every result the scorecard's claims
    read, without notebooks (a machine with PyTorch alone, e.g. a lent GPU: ``bench/gpu_profile.sh``);
    returns the claims computed. ``make results`` then draws the pages from the stored results."""
    from . import scorecard

    with experiments.pinned_isa(profiles.get_profile(profile).cpu_isa):
        experiments.pretrain(profile, workers or os.cpu_count() or 1, progress, parts)
        done = []
        for claim in scorecard.CLAIMS:
            setting = profiles.setting(profile, part=claim.part, pending=True)
            if claim.part in parts and setting.standing_in is None:
                try:
                    claim.compute(setting)
                except experiments.Diverged as e:  # the page and the scorecard say so; the rest still runs
                    print(f"{claim.key}: not computed, {e}")
                    continue
                done.append(claim.key)
    return done
