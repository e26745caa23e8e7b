"""Wall-clock time of the smoke book computed from scratch, as ``make results PROFILE=smoke`` does.

    python bench/bench_book.py                            # print the time
    python bench/bench_book.py --json bench/results.json  # also store it in the latest CPU run

``refine results --profile smoke`` runs with empty checkpoint and results folders (temporary),
so every network is trained (one process per CPU core) and every notebook executed: the
"whole book from scratch" that the book issue's 15-minute target on 2 cores is about.
``make book`` itself only reads the committed results and is much faster.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_book(root: Path = ROOT, timeout_s: float = 3600, workers: int | None = None) -> dict:
    """Compute the smoke book at ``root`` from scratch; ``{"status", "seconds", "notebooks", "workers"}``."""
    from refine_utils import book

    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, REFINE_CACHE_DIR=f"{tmp}/cache", REFINE_RESULTS_DIR=f"{tmp}/results")
        cmd = [sys.executable, "-m", "refine_utils.cli", "results", "--profile", "smoke", "--workers", str(workers),
               "--out", f"{tmp}/executed"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s)
        seconds = time.perf_counter() - t
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
    return dict(status="ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})",
                seconds=round(seconds, 1), notebooks=len(book.notebooks(root)), workers=workers,
                cpus=os.cpu_count())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=None, help="store the result as 'book' in the file's latest CPU run")
    args = p.parse_args(argv)
    result = time_book()
    print(f"smoke book from scratch: {result['status']}, {result['seconds']} s for {result['notebooks']} notebooks "
          f"({result['workers']} training processes, {result['cpus']} CPUs)")
    if args.json:
        doc = json.loads(args.json.read_text())
        cpu_runs = [r for r in doc["runs"] if r["device"] == "cpu"]
        if not cpu_runs:
            raise SystemExit(f"bench_book: no CPU run in {args.json} to attach the book's time to")
        cpu_runs[-1]["book"] = result | dict(date=time.strftime("%Y-%m-%d"))
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
