"""Training throughput of the library's pipeline against a standard one, measured side by side.

    python bench/bench_train.py --device cpu --threads 1 --width 1 --width wide=0.125 --steps 2
    python bench/bench_train.py --device cuda --compile both --json bench/results.json

*Ours* is exactly what ``refine_utils.train.train`` runs: ``train.prepare`` (channels_last;
on CUDA cuDNN autotuning and, with ``--compile``, ``torch.compile``), ``data.Loader`` (uint8
images resident on the device, shuffled by a device permutation, flipped and translated by
batched tensor ops) and ``train.sgd_step`` (bf16 autocast on CUDA, loss kept on the device),
read back once at the end of a timed stretch as ``train`` does once per epoch.

*Reference* is the pipeline of the PyTorch tutorials: a ``torch.utils.data.Dataset`` of uint8
HWC images converted to PIL and transformed by torchvision's ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip``, ``ToTensor`` and ``Normalize``, a ``DataLoader`` (shuffle, worker
processes, pinned memory on CUDA), a float32 contiguous NCHW model and a per-step
``loss.item()`` for the running loss. It gets cuDNN's autotuner too, so the ratio measures the
pipeline and not a flag.

Both train the same architecture from the same initialisation with the same SGD settings on
the same (synthetic, CIFAR-sized) images; data content does not change the speed. Each
measurement alternates the two pipelines ``--rounds`` times and reports the median images/s;
FLOPs are counted once per architecture with ``torch.utils.flop_counter`` (convolutions and the
linear layer, forward and backward) and turned into achieved TFLOP/s and, on a known card, a
fraction of its dense bf16 peak.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout
from hostinfo import cpu_name  # noqa: E402  (bench/ is on the path: scripts run from here)
from refine_utils import data, models, train  # noqa: E402
from refine_utils.benchmarks import markdown_table  # noqa: E402,F401  (the scripts print it)

#: Every paper architecture, in the order the table prints them (Figures 2-4, then Table 1's).
PAPER_ARCHS = ("resnet110", "single-representation", "avg-pooling", "wide", "resnet32", "resnet56")

#: Dense (no sparsity) bf16 tensor-core peak in FLOP/s, by a substring of the CUDA device name.
#: Datasheet figures; the first match wins, so the more specific names come first.
PEAK_BF16_DENSE = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
)

#: Targets of issue 6 (reported, never asserted): (device kind, arch, quantity, threshold).
TARGETS = (
    ("cuda", "resnet110", "ratio", 3.0),
    ("cuda", "wide", "peak_frac", 0.35),
    ("cuda", "avg-pooling", "peak_frac", 0.35),
    ("cpu", "resnet110", "ratio", 1.2),
)

MEAN, STD = data.STATS["cifar10"]
N_IMAGES = 49_920  # CIFAR-10's training-set size rounded down to whole batches of 128


@dataclass
class BenchConfig:
    device: str = "cpu"
    archs: tuple[str, ...] = PAPER_ARCHS
    width: float = 1.0
    widths: dict[str, float] = field(default_factory=dict)  # per-architecture overrides of ``width``
    steps: int = 20  # timed steps per pipeline per round
    warmup: int = 3  # untimed steps before the first round (compilation, autotuning, workers)
    rounds: int = 3
    batch_size: int = 128
    workers: int = min(8, os.cpu_count() or 1)  # the reference DataLoader's processes
    compile: str = "off"  # "off", "on" or "both" (CUDA only: ours eager and compiled)
    compile_archs: tuple[str, ...] | None = None  # with "on"/"both": only these (None: all)
    seed: int = 0

    def width_of(self, arch: str) -> float:
        return self.widths.get(arch, self.width)


def synthetic_cifar(n: int = N_IMAGES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images (n, 32, 32, 3) and labels (n,): CIFAR's shapes, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def peak_bf16(device_name: str) -> float | None:
    for key, peak in PEAK_BF16_DENSE:
        if key in device_name:
            return peak
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Ours:
    """The library's pipeline, step for step what ``train.train`` runs."""

    def __init__(self, arch: str, width: float, images: np.ndarray, labels: np.ndarray, cfg: BenchConfig,
                 compile: bool):
        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = models.build(arch, width=width)
        tcfg = train.TrainConfig(schedule=train.Schedule(1, 0.05), batch_size=cfg.batch_size, compile=compile)
        self.net = train.prepare(self.model, self.device, compile)
        self.compiled = self.net is not self.model
        self.opt = train.make_optimizer(self.model, tcfg)
        split = data.Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels))
        self.loader = data.Loader(split, MEAN, STD, cfg.batch_size, True, self.device, cfg.seed, channels_last=True)
        self.batches = self._endless()

    def _endless(self):
        for epoch in itertools.count():
            self.loader.set_epoch(epoch)
            yield from self.loader

    def run(self, steps: int) -> float:
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        for _ in range(steps):
            x, y = next(self.batches)
            if self.compiled:
                torch.compiler.cudagraph_mark_step_begin()
            loss, _ = train.sgd_step(self.net, self.opt, x, y)
            loss_sum += loss
        return loss_sum.item() / steps  # the one read-back, as train() makes once per epoch


class ArrayDataset(torch.utils.data.Dataset):
    """uint8 HWC images served as PIL images through a torchvision transform, as torchvision's CIFAR10 does."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


class Reference:
    """The standard pipeline: DataLoader + PIL transforms, float32, contiguous NCHW, loss.item() per step."""

    def __init__(self, arch: str, width: float, images: np.ndarray, labels: np.ndarray, cfg: BenchConfig):
        import torchvision.transforms as T

        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = models.build(arch, width=width).to(self.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
        cuda = self.device.type == "cuda"
        self.loader = torch.utils.data.DataLoader(
            ArrayDataset(images, labels, transform), batch_size=cfg.batch_size, shuffle=True,
            num_workers=cfg.workers, pin_memory=cuda, persistent_workers=cfg.workers > 0,
            generator=torch.Generator().manual_seed(cfg.seed))
        self.batches = self._endless()

    def _endless(self):
        while True:
            yield from self.loader

    def run(self, steps: int) -> float:
        self.model.train()
        running = 0.0
        for _ in range(steps):
            x, y = next(self.batches)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss = nn.functional.cross_entropy(self.model(x), y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            running += loss.item()
        return running / steps

    def close(self) -> None:
        self.batches.close()
        del self.loader  # stops the persistent workers


def _rate(pipeline, steps: int, batch_size: int, device: torch.device) -> float:
    """Images per second of ``steps`` steps, the device drained before and after."""
    _sync(device)
    t = time.perf_counter()
    pipeline.run(steps)
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t)


def measure_arch(arch: str, cfg: BenchConfig, images: np.ndarray, labels: np.ndarray, device_name: str,
                 log=print) -> dict:
    """One row: the median images/s of each pipeline over alternating rounds, and what follows from them."""
    width = cfg.width_of(arch)
    dev = torch.device(cfg.device)
    compile_this = cfg.compile != "off" and (cfg.compile_archs is None or arch in cfg.compile_archs)
    variants = {"ref": lambda: Reference(arch, width, images, labels, cfg)}
    if cfg.compile != "on" or not compile_this:
        variants["ours"] = lambda: Ours(arch, width, images, labels, cfg, compile=False)
    if compile_this:
        variants["ours_compiled"] = lambda: Ours(arch, width, images, labels, cfg, compile=True)
    pipes, warm_s = {}, {}
    for name, make in variants.items():
        t = time.perf_counter()
        pipes[name] = make()
        pipes[name].run(cfg.warmup)
        _sync(dev)
        warm_s[name] = time.perf_counter() - t
    rates = {name: [] for name in pipes}
    order = list(pipes)
    for r in range(cfg.rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            rates[name].append(_rate(pipes[name], cfg.steps, cfg.batch_size, dev))
    pipes["ref"].close()
    del pipes
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    flops = models.train_flops(arch, width)
    peak = peak_bf16(device_name) if dev.type == "cuda" else None
    med = {name: statistics.median(v) for name, v in rates.items()}
    ours_key = "ours" if "ours" in med else "ours_compiled"
    row = dict(arch=arch, width=width, ours_img_s=round(med[ours_key], 1), ref_img_s=round(med["ref"], 1),
               ratio=round(med[ours_key] / med["ref"], 3), compiled=ours_key == "ours_compiled",
               flops_per_img=flops, ours_tflops=round(flops * med[ours_key] / 1e12, 3),
               ref_tflops=round(flops * med["ref"] / 1e12, 3),
               ratio_rounds=[round(o / r, 3) for o, r in zip(rates[ours_key], rates["ref"])],  # paired by round
               rounds={name: [round(v, 1) for v in vs] for name, vs in rates.items()},
               warmup_s={name: round(v, 1) for name, v in warm_s.items()})
    if "ours_compiled" in med and ours_key == "ours":
        row.update(ours_compiled_img_s=round(med["ours_compiled"], 1),
                   ratio_compiled=round(med["ours_compiled"] / med["ref"], 3),
                   ours_compiled_tflops=round(flops * med["ours_compiled"] / 1e12, 3))
    if peak:
        best = max(med[k] for k in med if k != "ref")
        row["peak_frac"] = round(flops * best / peak, 4)
    spread = row["ratio_rounds"]
    log(f"{arch:>22} w={width:<6g} " + "  ".join(f"{k} {v:9.1f} img/s" for k, v in med.items())
        + f"  ratio {row['ratio']:.2f} (rounds {min(spread):.2f}-{max(spread):.2f})"
        + (f" (compiled {row['ratio_compiled']:.2f})" if "ratio_compiled" in row else "")
        + f"  {row['ours_tflops']:.2f} TFLOP/s")
    return row


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def machine() -> str:
    """A one-line description of the host: processor, cores, and the GPU if any."""
    text = f"{cpu_name()}, {os.cpu_count()} cores visible"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def run_bench(cfg: BenchConfig, log=print) -> dict:
    """Measure every architecture of ``cfg``; returns one run in ``bench/results.json``'s format."""
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_train: --device cuda asked for, but torch sees no CUDA device")
    if cfg.compile != "off" and not cfg.device.startswith("cuda"):
        raise SystemExit("bench_train: --compile is CUDA-only (the library ignores it on the CPU)")
    unknown = [a for a in cfg.archs if a not in models.ARCHS]
    if unknown:
        raise SystemExit(f"bench_train: unknown architecture(s) {unknown}; choose from {', '.join(models.ARCHS)}")
    torch.backends.cudnn.benchmark = True  # for both pipelines (train.prepare sets it for ours anyway)
    images, labels = synthetic_cifar(seed=cfg.seed)
    name = device_name(cfg.device)
    log(f"device {name}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {cfg.batch_size}, {cfg.steps} steps x {cfg.rounds} rounds, reference workers {cfg.workers}")
    rows = [measure_arch(arch, cfg, images, labels, name, log) for arch in cfg.archs]
    return dict(date=time.strftime("%Y-%m-%d"), device=name, torch=torch.__version__, machine=machine(),
                threads=torch.get_num_threads(), batch_size=cfg.batch_size, steps=cfg.steps, rounds=cfg.rounds,
                warmup=cfg.warmup, workers=cfg.workers, compile=cfg.compile, rows=rows)


def target_report(run: dict) -> list[str]:
    """One line per target of issue 6 that this run can speak to: met or missed, with the figure."""
    kind = "cpu" if run["device"] == "cpu" else "cuda"
    lines = []
    for dev, arch, key, threshold in TARGETS:
        if dev != kind:
            continue
        row = next((r for r in run["rows"] if r["arch"] == arch), None)
        if row is None:
            continue
        if key == "ratio":
            value = max(row["ratio"], row.get("ratio_compiled", 0.0))
        else:
            value = row.get(key)
        if value is None:
            lines.append(f"{arch}: {key} not measured (unknown card peak)")
            continue
        note = "" if (dev != "cpu" or row["width"] == 1.0) else f" (at width {row['width']:g}, the target is for width 1)"
        lines.append(f"{arch}: {key} {value:.3g} vs target {threshold:g}: {'met' if value >= threshold else 'MISSED'}{note}")
    return lines


def append_run(path: Path, run: dict) -> None:
    """Append ``run`` to the results file (``{"runs": [...]}``), creating it if absent."""
    doc = json.loads(path.read_text()) if path.exists() else {"runs": []}
    doc["runs"].append(run)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def parse_widths(values: list[str]) -> tuple[float, dict[str, float]]:
    """``--width 0.5 --width wide=0.125``: a bare number sets the default, ``arch=w`` one architecture."""
    default, per_arch = 1.0, {}
    for v in values:
        if "=" in v:
            arch, w = v.split("=", 1)
            per_arch[arch] = float(w)
        else:
            default = float(v)
    for w in [default, *per_arch.values()]:
        if not w > 0:
            raise SystemExit(f"bench_train: widths must be positive, got {w}")
    return default, per_arch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--archs", default=",".join(PAPER_ARCHS), help="comma-separated architectures")
    p.add_argument("--width", action="append", default=[], metavar="W|ARCH=W",
                   help="channel multiplier: a number for all architectures, ARCH=W for one (repeatable; default 1)")
    p.add_argument("--steps", type=int, default=BenchConfig.steps, help="timed steps per pipeline per round")
    p.add_argument("--warmup", type=int, default=BenchConfig.warmup)
    p.add_argument("--rounds", type=int, default=BenchConfig.rounds)
    p.add_argument("--batch-size", type=int, default=BenchConfig.batch_size)
    p.add_argument("--workers", type=int, default=BenchConfig.workers, help="reference DataLoader worker processes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for both pipelines (default: torch's)")
    p.add_argument("--compile", choices=("off", "on", "both"), default="off", help="torch.compile ours (CUDA only)")
    p.add_argument("--compile-archs", default=None, help="with --compile: only these architectures (comma-separated)")
    p.add_argument("--json", type=Path, default=None, help="append the run to this results file")
    args = p.parse_args(argv)
    if min(args.steps, args.rounds, args.batch_size) < 1 or args.warmup < 0:
        raise SystemExit("bench_train: --steps, --rounds and --batch-size must be positive, --warmup not negative")
    if args.threads:
        torch.set_num_threads(args.threads)
    width, widths = parse_widths(args.width)
    cfg = BenchConfig(device=args.device, archs=tuple(a for a in args.archs.split(",") if a), width=width,
                      widths=widths, steps=args.steps, warmup=args.warmup, rounds=args.rounds,
                      batch_size=args.batch_size, workers=args.workers, compile=args.compile,
                      compile_archs=tuple(args.compile_archs.split(",")) if args.compile_archs else None)
    run = run_bench(cfg)
    print()
    print(markdown_table(run))
    for line in target_report(run):
        print("target:", line)
    if args.json:
        append_run(args.json, run)
        print(f"appended to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
