"""The two caches: checkpoints under ``cache_dir()`` and JSON results under
``results_dir()/<profile>/<name>/``, keyed by the spec's hash. ``result(...)`` reads a result or
computes and stores it, recording the spec, profile, device, torch version and git commit that
produced it, sealed with a checksum that every read verifies. ``$REFINE_CACHE_DIR`` and
``$REFINE_RESULTS_DIR`` move the two caches (tests run from scratch in a temporary folder).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import math
import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from . import data
from .specs import RunSpec, cpu_threads, digest

#: The repository: where the caches live unless the environment moves them.
ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Checkpoints: ``$REFINE_CACHE_DIR``, else ``cache/`` in the repository (git-ignored)."""
    return Path(os.environ.get("REFINE_CACHE_DIR", ROOT / "cache"))


def results_dir() -> Path:
    """Results root: ``$REFINE_RESULTS_DIR``, else ``results/`` in the repository (committed)."""
    return Path(os.environ.get("REFINE_RESULTS_DIR", ROOT / "results"))


@functools.lru_cache(maxsize=None)
def commit() -> str:
    """The repository's commit (``+dirty`` when tracked files differ from it), or "unknown"."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "refine_utils"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def checkpoint_path(spec: RunSpec) -> Path:
    return cache_dir() / f"{spec.name}.pt"


def _rounded(value, digits: int = 6):
    """Floats to ``digits`` significant digits (short, text-diffable JSON); the rest unchanged."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    return value


class MissingResult(LookupError):
    """A result is not in the results folder and computing it is switched off (``cached_only``, or
    ``$REFINE_MISSING_RESULTS=error``, which ``make book`` sets)."""


class ResultError(RuntimeError):
    """A stored result that cannot be trusted: unreadable, or changed after it was written."""


_CACHED_ONLY = False
#: What ``result`` does when a result is missing: "compute" it (the default; ``refine results``,
#: papermill, the library) or raise ``MissingResult`` ("error": the book build reads committed results).
MISSING_RESULTS = ("compute", "error")


@contextlib.contextmanager
def cached_only():
    """Within this block ``result`` only reads: a missing result raises ``MissingResult``."""
    global _CACHED_ONLY
    before, _CACHED_ONLY = _CACHED_ONLY, True
    try:
        yield
    finally:
        _CACHED_ONLY = before


def _missing_results() -> str:
    mode = os.environ.get("REFINE_MISSING_RESULTS", "compute")
    if mode not in MISSING_RESULTS:
        raise ValueError(f"$REFINE_MISSING_RESULTS must be one of {', '.join(MISSING_RESULTS)}, got {mode!r}")
    return mode


def result_path(profile: str, name: str, spec: RunSpec, params: dict | None = None) -> Path:
    tag = spec.name if not params else f"{spec.name}-{digest(dict(spec=spec.key, params=params))}"
    return results_dir() / profile / name / f"{tag}.json"


def result(profile: str, name: str, spec: RunSpec, compute: Callable[[], object], params: dict | None = None):
    """The record of ``compute()``'s JSON-able value for ``spec``: read from the results folder, or
    computed and stored. ``record["value"]`` is the value; the record also holds the spec, profile,
    params, device, torch version, commit and a checksum of all that (``record_checksum``).

    ``params`` are the probe's own settings (part of the cache key). The record comes back as
    stored (floats to 6 significant digits), so a fresh and a cached run print the same. A stored
    record that fails to parse or to match its checksum raises ``ResultError``; a missing one under
    ``cached_only`` or ``$REFINE_MISSING_RESULTS=error`` raises ``MissingResult``, naming the command
    that computes it."""
    path = result_path(profile, name, spec, params)
    if path.exists():
        return read_result(path)
    if _CACHED_ONLY or _missing_results() == "error":
        raise MissingResult(f"no result {path} ({name} of {spec.name}): `make results PROFILE={profile}` computes "
                            f"it (or unset REFINE_MISSING_RESULTS to compute it here)")
    with cpu_threads(spec.device):
        value = _rounded(compute())
    record = dict(name=name, profile=profile, dataset=data.source(spec.dataset), arch=spec.arch, spec=asdict(spec),
                  params=params or {}, device=spec.device,
                  torch=torch.__version__, commit=commit(), value=value)
    write_result(path, record)
    return read_result(path)


def record_checksum(record: dict) -> str:
    """SHA-256 of a result record's canonical JSON, its ``checksum`` entry left out."""
    payload = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _sealed_text(record: dict) -> str:
    """The stored form: indented, sorted JSON with the record's checksum (of the JSON as read back)."""
    record = json.loads(json.dumps({k: v for k, v in record.items() if k != "checksum"}))
    return json.dumps(dict(record, checksum=record_checksum(record)), indent=1, sort_keys=True) + "\n"


def write_result(path: Path, record: dict) -> None:
    """Store ``record`` with its checksum at ``path`` atomically: a unique temporary file in the same
    folder, then ``os.replace`` (two writers of one result each write whole files; the last stays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_sealed_text(record))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise OSError(e.errno, f"disk full: cannot write result {path}") from None
        raise


def read_result(path: Path) -> dict:
    """A stored record, verified: one that cannot be parsed, or whose checksum does not match, raises
    ``ResultError`` naming the file. Records written before checksums existed have none and are read
    as they are (every committed one is sealed: ``seal_results``)."""
    fix = (f"delete it and re-run `make results PROFILE={path.parent.parent.name}` to recompute it, or restore the "
           f"committed copy with `git checkout -- {path}`")
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ResultError(f"result {path} is corrupt or empty ({type(e).__name__}: {e}); {fix}") from None
    if not isinstance(record, dict) or "value" not in record:
        raise ResultError(f"result {path} is not a refine_utils result (no 'value' entry); {fix}")
    if "checksum" in record:
        if record["checksum"] != record_checksum(record):
            raise ResultError(f"result {path} fails its checksum (its contents changed after it was written); {fix}")
    elif set(record) != _UNSEALED_KEYS:
        raise ResultError(f"result {path} has no checksum and is not a record written before checksums existed; {fix}")
    return record


#: The entries of a record written before checksums existed (the only records read without one).
_UNSEALED_KEYS = {"name", "profile", "dataset", "arch", "spec", "params", "device", "torch", "commit", "value"}


def seal_results(folder: Path) -> list[Path]:
    """Add a checksum to every record under ``folder`` that has none (written before checksums
    existed); returns the files sealed. A record that already has one is verified, not rewritten."""
    sealed = []
    for path in sorted(Path(folder).rglob("*.json")):
        record = read_result(path)
        if "checksum" not in record:
            write_result(path, record)
            sealed.append(path)
    return sealed
