"""GPU pilot of a CPU profile: its networks trained on a lent GPU, to learn in minutes whether the
profile's epochs and widths reach the accuracy target before its CPU runs spend core-hours on them.

    python bench/gpu_pilot.py --out OUT                      # cifar10-long, seed 0 of every network, on cuda
    python bench/gpu_pilot.py --profile smoke --device cpu --deadline 60 --out /tmp/p   # dry run

Each network is the profile's own spec with ``device`` replaced (CUDA trains in bf16 autocast, so
the numbers are the same recipe's, not the CPU runs' bit for bit), ``--workers`` training processes
sharing the device. Every 15 s, and at the end, ``OUT/gpu_pilot.json`` records per network its spec,
its per-epoch history (learning rate, running and un-augmented training accuracy and loss, test
accuracy and loss), whether it finished, and its wall time; plus the device, versions and commit. At
``--deadline`` seconds the unfinished runs are stopped and the record says how far each got, so a
device call that runs out of time still returns what it learnt.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refine_utils import experiments, specs, store, train  # noqa: E402

KEYS = ("epoch", "lr", "train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "test_loss", "test_acc")


def specs(profile: str, device: str, parts: tuple[str, ...], seeds: int, archs: tuple[str, ...] = (),
          epochs: int | None = None) -> list[specs.RunSpec]:
    """The profile's networks of ``parts`` (seeds below ``seeds``; only ``archs`` if given), in its
    training order, on ``device``, trained ``epochs`` epochs if given (the schedule fitted to them)."""
    return [dataclasses.replace(s, device=device, epochs=epochs or s.epochs) for s in experiments.book_specs(profile, parts)
            if s.seed < seeds and (not archs or s.arch in archs)]


def _train(spec: specs.RunSpec) -> None:
    experiments.run(spec)


def history(spec: specs.RunSpec) -> list[dict]:
    """The epochs ``spec``'s checkpoint holds so far (none before its first epoch ends)."""
    path = store.checkpoint_path(spec)
    if not path.exists():
        return []
    try:
        records = train.load_checkpoint(path)["history"]["records"]
    except Exception:  # a checkpoint being replaced this instant: read it next time
        return []
    return [{k: r.get(k) for k in KEYS} for r in records]


def device_name(device: str) -> str:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    from hostinfo import cpu_name

    return cpu_name()


def record(runs: list[dict], args, start: float) -> dict:
    import torch

    for run in runs:
        run["history"] = history(run["spec"])
    return dict(profile=args.profile, device=device_name(args.device), torch=torch.__version__,
                commit=os.environ.get("PILOT_COMMIT") or store.commit(),  # a snapshot without .git names it elapsed_s=round(time.time() - start, 1), deadline_s=args.deadline,
                workers=args.workers,
                runs=[dict(name=r["spec"].name, spec=dataclasses.asdict(r["spec"]), finished=r["finished"],
                           wall_s=r["wall_s"], epochs_done=len(r["history"]), history=r["history"]) for r in runs])


def write(out: Path, rec: dict) -> None:
    tmp = out / ".gpu_pilot.json.tmp"
    tmp.write_text(json.dumps(rec, indent=1) + "\n")
    os.replace(tmp, out / "gpu_pilot.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cifar10-long")
    p.add_argument("--device", default="cuda")
    p.add_argument("--parts", default="main,beyond,sharing", help="the book's parts, comma-separated")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 of every network")
    p.add_argument("--archs", default="", help="only these architectures, comma-separated")
    p.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of the profile's")
    p.add_argument("--workers", type=int, default=8, help="training processes sharing the device")
    p.add_argument("--deadline", type=float, default=480, help="seconds; then unfinished runs are stopped")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    ctx = multiprocessing.get_context("spawn")
    chosen = specs(args.profile, args.device, tuple(args.parts.split(",")), args.seeds,
                   tuple(a for a in args.archs.split(",") if a), args.epochs)
    runs = [dict(spec=s, finished=False, wall_s=None) for s in chosen]
    waiting, active, last_write = list(runs), {}, 0.0
    print(f"{len(runs)} networks of {args.profile} on {args.device}, {args.workers} at a time", flush=True)
    while waiting or active:
        while waiting and len(active) < args.workers:
            run = waiting.pop(0)
            proc = ctx.Process(target=_train, args=(run["spec"],))
            proc.start()
            active[proc] = (run, time.time())
        for proc in [q for q in active if not q.is_alive()]:
            run, began = active.pop(proc)
            run["finished"], run["wall_s"] = proc.exitcode == 0, round(time.time() - began, 1)
            print(f"{run['spec'].name}: exit {proc.exitcode} after {run['wall_s']} s", flush=True)
        if time.time() - start > args.deadline:
            for proc, (run, began) in active.items():
                proc.terminate()
                run["wall_s"] = round(time.time() - began, 1)
            for proc in active:
                proc.join()
            print(f"deadline: stopped {len(active)} runs, {len(waiting)} never started", flush=True)
            break
        if time.time() - last_write > 15:
            write(args.out, record(runs, args, start))
            last_write = time.time()
        time.sleep(2)
    rec = record(runs, args, start)
    write(args.out, rec)
    for r in rec["runs"]:
        last = r["history"][-1] if r["history"] else {}
        print(f"{r['name']}: {r['epochs_done']} epochs, train_eval {last.get('train_eval_acc')}, "
              f"test {last.get('test_acc')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
