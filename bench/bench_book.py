"""Wall-clock time of the smoke book built end to end, as ``make book`` builds it.

    python bench/bench_book.py                          # print the time
    python bench/bench_book.py --json bench/results.json  # also store it in the latest CPU run

The book is built with jupyter-book (``-W --keep-going``, as the Makefile does) into a fresh
temporary folder, so no cached notebook execution is reused: every notebook runs at its
default (smoke) parameters. Until the project has a ``notebooks/`` folder there is nothing to
time and the result says ``pending``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def jupyter_book() -> str:
    """The jupyter-book next to this interpreter (the project's venv), else the one on PATH."""
    local = Path(sys.executable).with_name("jupyter-book")
    found = str(local) if local.exists() else shutil.which("jupyter-book")
    if found is None:
        raise SystemExit("bench_book: jupyter-book not found; install the project's 'book' extra (make env)")
    return found


def time_book(root: Path = ROOT, timeout_s: float = 3600) -> dict:
    """Build the book at ``root`` from scratch; ``{"status", "seconds", "notebooks"}``."""
    notebooks = sorted((root / "notebooks").glob("*.ipynb")) if (root / "notebooks").is_dir() else []
    if not notebooks:
        return dict(status="pending", seconds=None, notebooks=0,
                    note="no notebooks/ yet: the smoke book is being written on another branch")
    with tempfile.TemporaryDirectory() as out:
        cmd = [jupyter_book(), "build", str(root), "-W", "--keep-going", "--path-output", out]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout_s)
        seconds = time.perf_counter() - t
    status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
    return dict(status=status, seconds=round(seconds, 1), notebooks=len(notebooks))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=None, help="store the result as 'book' in the file's latest CPU run")
    args = p.parse_args(argv)
    result = time_book()
    print(f"smoke book: {result['status']}" + (f", {result['seconds']} s for {result['notebooks']} notebooks"
                                               if result["seconds"] is not None else f" ({result['note']})"))
    if args.json:
        doc = json.loads(args.json.read_text())
        cpu_runs = [r for r in doc["runs"] if r["device"] == "cpu"]
        if not cpu_runs:
            raise SystemExit(f"bench_book: no CPU run in {args.json} to attach the book's time to")
        cpu_runs[-1]["book"] = result | dict(date=time.strftime("%Y-%m-%d"))
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0 if result["status"] in ("ok", "pending") else 1


if __name__ == "__main__":
    sys.exit(main())
