"""How to spend a machine's cores on CPU training: one single-threaded process per core (what
``refine results`` runs) against one process using every core as intra-op threads, side by side.

    python bench/bench_layout.py                          # ResNet-110 at width 0.5, 2 cores
    python bench/bench_layout.py --archs resnet110=0.5,wide=0.1 --cores 2

Each layout holds its processes ready (models built, warmed up) and the two take turns: in a
round, the ``--cores`` one-thread processes each take ``--steps`` SGD steps at once, then the one
``--cores``-thread process takes ``--steps`` steps alone. Throughput is images per second of the
whole machine (all processes' images over the wall time of the round); the ratio is the threaded
layout's median throughput over the process-per-core layout's, so > 1 means one threaded
process trains more images per hour. The step is ``bench_precision.Step`` in float32 (batch 128,
channels_last, one synthetic CIFAR-sized batch). Raw rows are appended to bench/layout_results.json
with the date, machine and torch version. Run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout
from bench_precision import Step, record_rows  # noqa: E402
from hostinfo import cpu_name  # noqa: E402


def _worker(arch: str, width: float, threads: int, conn) -> None:
    """Build the step with ``threads`` intra-op threads, then run ``n`` steps per request."""
    torch.set_num_threads(threads)
    step = Step(arch, width, "float32")
    step.run(), step.run()
    conn.send("ready")
    while (n := conn.recv()) is not None:
        for _ in range(n):
            step.run()
        conn.send(n * len(step.y))


def _round(conns: list, steps: int) -> float:
    """Images per second while every process of ``conns`` takes ``steps`` steps at once."""
    start = time.perf_counter()
    for c in conns:
        c.send(steps)
    images = sum(c.recv() for c in conns)
    return images / (time.perf_counter() - start)


def measure(arch: str, width: float, cores: int, rounds: int, steps: int) -> dict:
    ctx = mp.get_context("spawn")
    layouts = {"process_per_core": [1] * cores, "threaded": [cores]}
    conns, procs = {}, []
    for name, threads in layouts.items():
        conns[name] = []
        for t in threads:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(arch, width, t, child), daemon=True)
            p.start()
            procs.append(p)
            conns[name].append(parent)
            parent.recv()  # built and warmed up before the next one starts
    rates = {name: [] for name in layouts}
    for _ in range(rounds):
        for name in layouts:
            rates[name].append(_round(conns[name], steps))
    for c in (c for cs in conns.values() for c in cs):
        c.send(None)
    for p in procs:
        p.join()
    med = {name: statistics.median(r) for name, r in rates.items()}
    return dict(arch=arch, width=width, images_per_s={k: round(v, 1) for k, v in med.items()},
                ratio_threaded=round(med["threaded"] / med["process_per_core"], 3))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="resnet110=0.5", help="comma-separated arch=width")
    p.add_argument("--cores", type=int, default=2, help="processes of one thread, or threads of one process")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--note", default="", help="kept with the record (e.g. what else ran on the machine)")
    p.add_argument("--json", default=str(Path(__file__).with_name("layout_results.json")))
    args = p.parse_args(argv)
    nets = [(a, float(w)) for a, w in (s.split("=") for s in args.archs.split(","))]
    run = dict(date=datetime.date.today().isoformat(), machine=cpu_name(), torch=torch.__version__,
               cores=args.cores, rounds=args.rounds, steps=args.steps, note=args.note, rows=[])
    record_rows(run, nets, lambda arch, width: measure(arch, width, args.cores, args.rounds, args.steps), Path(args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
