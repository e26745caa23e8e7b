"""Cost of the probes, measured side by side in one run on one batch.

Two comparisons, each against the reference a reader would otherwise write:

- ``block_stats`` (cosine and l2 ratio of every block, all examples: one forward, one backward
  to the hidden states) against one plain forward + backward of the same model (loss.backward()
  into the parameters, as a training step does), both in eval mode. Target: <= 1.5x.
- the drop-one sweep with prefix reuse (``probes._drop_one_batch``: each ``h_i`` computed once,
  only the blocks above a dropped block re-run) against a naive sweep that runs a network
  rebuilt without the block (``probes.without_block``) from the input, once per droppable
  block. Target: >= 1.8x faster.

The variants are alternated within every repeat so drift of a shared machine hits all of them;
medians are reported. Results are appended to ``bench/probes_results.json``.

    python bench/bench_probes.py [--device cpu] [--width 1.0] [--batch 64] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.functional import cross_entropy

from hostinfo import cpu_name
from refine_utils import models, probes

TARGETS = {"block_stats / plain_fwd_bwd": ("<=", 1.5), "drop_naive / drop_prefix": (">=", 1.8)}


def calibrate(model: nn.Module, x: torch.Tensor) -> None:
    """Running BatchNorm statistics of this batch, so eval-mode activations are realistically scaled."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = None  # cumulative average: one pass sets the statistics
    model.train()
    with torch.no_grad():
        model(x)
    for m in bns:
        m.momentum = 0.1
    model.eval()


def variants(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    droppable = [i for i, b in enumerate(model.blocks) if b.identity]

    def plain_fwd_bwd():
        model.zero_grad(set_to_none=True)
        cross_entropy(model(x), y, reduction="sum").backward()

    def block_stats():
        probes.block_stats(model, x, y)

    @torch.no_grad()
    def drop_prefix():
        probes._drop_one_batch(model, x)

    @torch.no_grad()
    def drop_naive():
        model(x)  # the baseline, which the prefix sweep also returns
        for i in droppable:
            probes.without_block(model, i)(x)

    return dict(plain_fwd_bwd=plain_fwd_bwd, block_stats=block_stats, drop_prefix=drop_prefix, drop_naive=drop_naive)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} thread(s)"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet110", choices=list(models.ARCHS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).with_name("probes_results.json")))
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = models.build(args.arch, width=args.width).to(dev)
    x = torch.randn(args.batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)
    calibrate(model, x)

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    fns = variants(model, x, y)
    for fn in fns.values():  # warm-up
        fn()
    times = {name: [] for name in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    pairs = {"block_stats / plain_fwd_bwd": ("block_stats", "plain_fwd_bwd"), "drop_naive / drop_prefix": ("drop_naive", "drop_prefix")}
    ratios = {k: median[a] / median[b] for k, (a, b) in pairs.items()}
    # Within one repeat the variants ran back to back: the median of per-repeat ratios is robust to drift.
    paired = {k: statistics.median(ta / tb for ta, tb in zip(times[a], times[b])) for k, (a, b) in pairs.items()}
    met = {k: (v <= TARGETS[k][1]) if TARGETS[k][0] == "<=" else (v >= TARGETS[k][1]) for k, v in ratios.items()}

    run = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               device=str(dev), machine=machine(dev), torch=torch.__version__, arch=args.arch, width=args.width,
               batch=args.batch, repeats=args.repeats, n_blocks=len(model.blocks),
               n_droppable=sum(b.identity for b in model.blocks),
               rows=[dict(name=n, median_s=median[n], times_s=times[n]) for n in fns],
               ratios=ratios, paired_ratios=paired, targets={k: f"{op} {v}" for k, (op, v) in TARGETS.items()}, met=met)
    print(f"{args.arch} width {args.width}, batch {args.batch}, {run['machine']}, torch {torch.__version__}")
    for n in fns:
        print(f"  {n:16s} median {median[n]:8.3f} s   ({', '.join(f'{t:.3f}' for t in times[n])})")
    for k, v in ratios.items():
        print(f"  {k:28s} {v:5.2f} (paired {paired[k]:5.2f})   target {TARGETS[k][0]} {TARGETS[k][1]}: {'met' if met[k] else 'MISSED'}")

    out = Path(args.out)
    history = json.loads(out.read_text()) if out.exists() else {"runs": []}
    history["runs"].append(run)
    out.write_text(json.dumps(history, indent=1) + "\n")
    return run


if __name__ == "__main__":
    main()
