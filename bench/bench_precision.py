"""The CPU training step in bf16 autocast, and the other speed-ups tried, against today's float32
path, side by side for every network of the CPU profiles.

    python bench/bench_precision.py                       # every (arch, width) of cifar10-cpu and cifar10-long
    python bench/bench_precision.py --archs resnet110=0.5 --variants bf16,compile,batch256

Each variant and the float32 reference take turns (``--rounds`` rounds of ``--steps`` training
steps on one synthetic CIFAR-sized batch, one thread, channels_last, SGD as ``train.sgd_step``);
the ratio is the reference's median step time per image over the variant's, so > 1 means the
variant trains faster. ``compile`` is ``torch.compile`` of the float32 model (its compilation
time is reported apart), ``batch256`` the float32 step at batch 256 (per image). The record also
says what ``train.cpu_bf16()`` decides on this machine. Raw rows are appended to
bench/precision_results.json with the date, machine and torch version.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout
from hostinfo import cpu_name  # noqa: E402
from refine_utils import experiments, models, train  # noqa: E402

PROFILES = ("cifar10-cpu", "cifar10-long")
VARIANTS = ("bf16", "compile", "batch256")


def profile_networks(profiles=PROFILES) -> list[tuple[str, float]]:
    """Every distinct (architecture, width) the CPU profiles train, costliest first."""
    nets = {(s.arch, s.width) for p in profiles for s in experiments.book_specs(p)}
    return sorted(nets, key=lambda n: -models.train_flops(*n))


class Step:
    """One training configuration: ``run()`` takes one SGD step and returns its seconds per image."""

    def __init__(self, arch: str, width: float, variant: str):
        torch.manual_seed(0)
        self.model = models.build(arch, width=width).to(memory_format=torch.channels_last)
        self.net = torch.compile(self.model) if variant == "compile" else self.model
        self.bf16 = variant == "bf16"
        batch = 256 if variant == "batch256" else 128
        self.x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, 10, (batch,))
        cfg = train.TrainConfig(schedule=train.Schedule(1, 0.05))
        self.opt = train.make_optimizer(self.model, cfg)

    def run(self) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = torch.nn.functional.cross_entropy(self.net(self.x).float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return (time.perf_counter() - start) / len(self.y)


def measure(arch: str, width: float, variants: list[str], rounds: int, steps: int) -> dict:
    """Median seconds per image of float32 and each variant, taken in turns, and their ratios."""
    configs = {"float32": Step(arch, width, "float32"), **{v: Step(arch, width, v) for v in variants}}
    warm = {}
    for name, step in configs.items():
        start = time.perf_counter()
        step.run(), step.run()
        warm[name] = time.perf_counter() - start
    times = {name: [] for name in configs}
    for _ in range(rounds):
        for name, step in configs.items():
            times[name] += [step.run() for _ in range(steps)]
    med = {name: statistics.median(t) for name, t in times.items()}
    row = dict(arch=arch, width=width, params=models.count_parameters(configs["float32"].model),
               ms_per_image={k: round(1000 * v, 3) for k, v in med.items()},
               ratio={v: round(med["float32"] / med[v], 3) for v in variants})
    if "compile" in variants:
        row["compile_warmup_s"] = round(warm["compile"], 1)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default=None, help="comma-separated arch=width (default: every network of the CPU profiles)")
    p.add_argument("--variants", default="bf16", help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--note", default="", help="kept with the record (e.g. what else ran on the machine)")
    p.add_argument("--json", default=str(Path(__file__).with_name("precision_results.json")))
    args = p.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(VARIANTS)}")
    nets = ([(a, float(w)) for a, w in (s.split("=") for s in args.archs.split(","))] if args.archs
            else profile_networks())
    torch.set_num_threads(1)
    run = dict(date=datetime.date.today().isoformat(), machine=cpu_name(), torch=torch.__version__, threads=1,
               cpu_bf16_decision=train.cpu_bf16(), rounds=args.rounds, steps=args.steps, note=args.note, rows=[])
    record_rows(run, nets, lambda arch, width: measure(arch, width, variants, args.rounds, args.steps), Path(args.json))
    return 0


def record_rows(run: dict, nets: list[tuple[str, float]], measure_one, path: Path) -> None:
    """``measure_one(arch, width)`` for each network into ``run["rows"]`` (each printed as it comes),
    then ``run`` appended to the JSON list in ``path``."""
    for arch, width in nets:
        row = measure_one(arch, width)
        run["rows"].append(row)
        print(json.dumps(row), flush=True)
    runs = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(runs + [run], indent=1) + "\n")
    print(f"appended to {path}")


if __name__ == "__main__":
    sys.exit(main())
