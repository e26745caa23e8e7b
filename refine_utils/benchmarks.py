"""The measured speed and GPU costs, as the book's "reproducing" page shows them.

``bench/`` measures (``bench_train.py``, ``gpu_check.sh``) and writes ``bench/results.json``
(one run per device measured) and ``bench/costs.json`` (GPU-hours per figure at the paper
profile, from a GPU run); this module only reads them, so the page and ``bench/README.md``
quote the same numbers. Nothing here is typed: a missing file gives a line saying so.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import data

BENCH = Path(__file__).resolve().parents[1] / "bench"


def markdown_table(run: dict) -> str:
    """The run as the table of bench/README.md."""
    has_compiled = any("ratio_compiled" in r or r.get("compiled") for r in run["rows"])
    ours = "ours eager" if has_compiled else "ours"
    head = f"| architecture | width | {ours} (img/s) | reference (img/s) | ratio | ratio by round |"
    sep = "| --- | --- | --- | --- | --- | --- |"
    if has_compiled:
        head += " ours compiled (img/s) | ratio compiled |"
        sep += " --- | --- |"
    head += f" {ours} TFLOP/s |"
    sep += " --- |"
    has_peak = any("peak_frac" in r for r in run["rows"])
    if has_peak:
        head += " of bf16 peak (best path) |"
        sep += " --- |"
    lines = [head, sep]
    for r in run["rows"]:
        spread = r.get("ratio_rounds") or [r["ratio"]]
        line = (f"| {r['arch']} | {r['width']:g} | {r['ours_img_s']:,.1f} | {r['ref_img_s']:,.1f} | {r['ratio']:.2f}× "
                f"| {min(spread):.2f}–{max(spread):.2f} |")
        if has_compiled:
            c = r.get("ours_compiled_img_s")
            line += f" {c:,.1f} | {r['ratio_compiled']:.2f}× |" if c else " – | – |"
        line += f" {r['ours_tflops']:.3g} |"
        if has_peak:
            line += f" {100 * r['peak_frac']:.0f} % |" if "peak_frac" in r else " – |"
        lines.append(line)
    return "\n".join(lines)


def latest_gpu_run(results: Path = BENCH / "results.json") -> dict | None:
    """The last run of ``results`` on a CUDA card that carries a GPU check, or None."""
    if not results.exists():
        return None
    runs = [r for r in json.loads(results.read_text())["runs"] if r["device"] != "cpu" and "gpu_check" in r]
    return runs[-1] if runs else None


def gpu_check_summary(run: dict) -> str:
    """Card, versions, the CUDA tests and the short real-data run of one recorded GPU check."""
    check = run["gpu_check"]
    v = check.get("versions") or {}
    lines = [f"- **Card**: {run['device']} ({run['machine']}), driver {v.get('driver', '?')}, CUDA {v.get('cuda', '?')}, "
             f"cuDNN {v.get('cudnn', '?')}, torch {run['torch']}; measured {run['date']}."]
    tests = check.get("tests")
    if tests:
        failed = ", ".join(f"`{t}`" for t in tests.get("failed") or []) or "none"
        lines.append(f"- **CUDA tests** (`pytest -m cuda`): {tests['passed']} passed, "
                     f"{tests['failures'] + tests['errors']} failed ({failed}).")
    cifar = check.get("cifar")
    if cifar:
        verdict = "passed" if cifar["passed"] else "FAILED"
        how = "compiled" if cifar.get("compiled") else "eager"
        lines.append(f"- **Real CIFAR-10**: ResNet-110 at width {cifar['width']:g} on {data.LABELS[cifar['dataset']]}, "
                     f"{cifar['epochs']} epochs in {cifar['train_seconds']:.0f} s ({how}): test accuracy "
                     f"{cifar['test_acc']:.1%} (bar {cifar['min_acc']:.0%}: {verdict}).")
    lines += [f"- *Note*: {note}" for note in check.get("notes", [])]
    return "\n".join(lines)


def costs_table(costs: dict) -> str:
    """GPU-hours per figure at the paper profile, with the total that counts shared runs once."""
    lines = ["| figure or table | training runs | GPU-hours |", "| --- | --- | --- |"]
    for name, fig in costs["figures"].items():
        datasets = dict.fromkeys(r["dataset"] for r in fig["runs"])
        runs = "; ".join(f"{d}: " + ", ".join(f"{r['arch']}{'*' if r['estimated'] else ''} ×{r['runs']}"
                                             for r in fig["runs"] if r["dataset"] == d) for d in datasets)
        lines.append(f"| {name} | {runs} | {fig['gpu_hours']:.1f} |")
    lines.append(f"| **all of them** (shared runs once) | | **{costs['total_gpu_hours']:.0f}** |")
    return "\n".join(lines)


def report(results: Path = BENCH / "results.json", costs: Path = BENCH / "costs.json") -> str:
    """The page's section: the latest GPU check, its throughput table and the GPU-hours per figure."""
    run = latest_gpu_run(results)
    if run is None or not costs.exists():
        return ("*No measured GPU costs yet: run `bench/gpu_check.sh` on a GPU and record it "
                "(bench/README.md says how).*")
    c = json.loads(costs.read_text())
    return "\n\n".join([
        gpu_check_summary(run),
        f"Training throughput at batch {run['batch_size']}, images/s, the library's path against the reference "
        "pipeline (torchvision `DataLoader` with PIL augmentation, float32, NCHW), alternated in one run:",
        markdown_table(run),
        f"GPU-hours per figure at the paper profile on this card ({c['path']} path; " + "; ".join(c["assumptions"])
        + "; * = estimated):",
        costs_table(c),
    ])
