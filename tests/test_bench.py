"""The benchmark's own arithmetic: FLOP counts, peaks, tables, targets, GPU-hour costs, one toy run."""
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_train as bt  # noqa: E402
import costs  # noqa: E402

from refine_utils import models  # noqa: E402


def analytic_forward_flops(arch, width=1.0):
    """2 x multiply-adds of every convolution and linear layer for one 32x32 image."""
    with torch.device("meta"):
        model = models.build(arch, width=width)
    total = []

    def conv_hook(m, inputs, out):
        total.append(2 * out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups)

    def linear_hook(m, inputs, out):
        total.append(2 * m.in_features * m.out_features)

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32, device="meta"))
    return sum(total), model


@pytest.mark.parametrize("arch", ["resnet32", "wide"])
def test_train_flops_is_forward_plus_two_backward_passes(arch):
    fwd, model = analytic_forward_flops(arch, 0.25)
    stem_input_grad = 2 * 32 * 32 * model.stem.out_channels * 3 * 9  # the image needs no gradient
    assert models.train_flops(arch, 0.25) == pytest.approx(3 * fwd - stem_input_grad, rel=1e-6)


def test_resnet110_counts_the_known_half_gigaflop_forward():
    fwd, _ = analytic_forward_flops("resnet110")
    assert 0.50e9 < fwd < 0.52e9  # He et al.: ~253M multiply-adds


def test_peak_table_matches_card_names():
    assert bt.peak_bf16("NVIDIA H100 80GB HBM3") == 989e12
    assert bt.peak_bf16("NVIDIA H100 PCIe") == 756e12
    assert bt.peak_bf16("NVIDIA H200") == 989e12
    assert bt.peak_bf16("NVIDIA A100-SXM4-80GB") == 312e12
    assert bt.peak_bf16("cpu") is None


def test_width_flags():
    assert bt.parse_widths([]) == (1.0, {})
    assert bt.parse_widths(["0.5", "wide=0.125"]) == (0.5, {"wide": 0.125})
    with pytest.raises(SystemExit):
        bt.parse_widths(["wide=0"])


def fake_run(device="NVIDIA H100 80GB HBM3", rates=None):
    rates = rates or {"resnet110": (30000.0, 9000.0), "single-representation": (6000.0, 3000.0),
                      "avg-pooling": (2000.0, 800.0), "wide": (1800.0, 700.0), "resnet32": (90000.0, 25000.0),
                      "resnet56": (55000.0, 16000.0)}
    rows = []
    for arch, (ours, ref) in rates.items():
        flops = models.train_flops(arch, 1.0)
        row = dict(arch=arch, width=1.0, ours_img_s=ours, ref_img_s=ref, ratio=ours / ref,
                   ours_tflops=flops * ours / 1e12)
        if device != "cpu":
            row["peak_frac"] = flops * ours / 989e12
        rows.append(row)
    return dict(date="2026-01-01", device=device, torch="2.x", batch_size=128, rows=rows)


def test_targets_are_reported_met_or_missed():
    lines = bt.target_report(fake_run())
    assert any(line.startswith("resnet110: ratio 3.33") and line.endswith("met") for line in lines)
    wide = models.train_flops("wide", 1.0) * 1800 / 989e12  # ~0.068 of peak
    assert any(line.startswith("wide: peak_frac") and "MISSED" in line for line in lines) and wide < 0.35
    cpu = bt.target_report(fake_run("cpu", {"resnet110": (50.0, 40.0)}))
    assert cpu == ["resnet110: ratio 1.25 vs target 1.2: met"]


def test_markdown_table_has_a_row_per_architecture():
    table = bt.markdown_table(fake_run())
    assert table.count("\n") == 1 + 6 and "| resnet110 | 1 | 30,000.0 | 9,000.0 | 3.33× | 3.33–3.33 |" in table
    wide = models.train_flops("wide", 1.0) * 1800 / 989e12
    assert f"| {100 * wide:.0f} % |" in table.splitlines()[5]  # a GPU run shows the fraction of bf16 peak
    assert "peak" not in bt.markdown_table(fake_run("cpu", {"resnet110": (50.0, 40.0)}))


def test_gpu_check_merges_a_second_compiled_run():
    import gpu_check

    run, other = fake_run(), fake_run(rates={"wide": (1900.0, 650.0), "resnet110": (1.0, 1.0)})
    run["rows"][0].update(ours_compiled_img_s=40000.0, ratio_compiled=4.4, ours_compiled_tflops=1.0)
    for row in other["rows"]:
        row.update(ours_compiled_img_s=3 * row["ours_img_s"], ratio_compiled=3.0, ours_compiled_tflops=2.0,
                   peak_frac=0.4)
    assert gpu_check.merge_compiled(run, other) == ["wide"]  # resnet110 was compiled in the check itself
    rows = {r["arch"]: r for r in run["rows"]}
    assert rows["wide"]["ours_compiled_img_s"] == 5700.0 and rows["wide"]["compiled_ref_img_s"] == 650.0
    assert rows["wide"]["peak_frac"] == 0.4 and rows["resnet110"]["ours_compiled_img_s"] == 40000.0
    assert "ours_compiled_img_s" not in rows["avg-pooling"]
    with pytest.raises(SystemExit, match="compiled run is on cpu"):
        gpu_check.merge_compiled(run, fake_run("cpu"))


def test_costs_follow_from_throughput():
    run = fake_run()
    c = costs.costs(run)
    fig6 = c["figures"]["fig6"]["runs"][0]
    expected = 300 * (50_000 + 10_000 / 3) / 30000 / 3600  # ResNet-110, 300 epochs at 30k img/s
    assert fig6["gpu_hours"] == pytest.approx(expected, abs=1e-3) and not fig6["estimated"]
    table1 = {(r["arch"], r["dataset"]): r for r in c["figures"]["table1"]["runs"]}
    assert table1[("resnet146-ubn", "cifar100")]["estimated"]
    assert table1[("resnet146-ubn", "cifar100")]["img_s"] < 30000  # deeper than ResNet-110: slower
    # Figures share runs: the total is less than the sum of the figures, more than the largest.
    per_figure = [f["gpu_hours"] for f in c["figures"].values()]
    assert max(per_figure) < c["total_gpu_hours"] < sum(per_figure)
    doubled = costs.costs(fake_run(rates={a: (2 * o, r) for a, (o, r) in
                                          {"resnet110": (30000.0, 1), "single-representation": (6000.0, 1),
                                           "avg-pooling": (2000.0, 1), "wide": (1800.0, 1), "resnet32": (90000.0, 1),
                                           "resnet56": (55000.0, 1)}.items()}))
    assert doubled["total_gpu_hours"] == pytest.approx(c["total_gpu_hours"] / 2, rel=1e-2)


def test_costs_need_a_gpu_run(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"runs": [fake_run("cpu", {"resnet110": (50.0, 40.0)})]}))
    with pytest.raises(SystemExit, match="no run on a GPU"):
        costs.main(["--results", str(path)])


def test_toy_benchmark_runs_both_pipelines(tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = bt.BenchConfig(device="cpu", archs=("resnet32",), width=0.125, steps=1, warmup=1, rounds=2,
                             batch_size=8, workers=0)
        run = bt.run_bench(cfg, log=lambda *a: None)
    finally:
        torch.set_num_threads(n)
    (row,) = run["rows"]
    assert row["arch"] == "resnet32" and row["width"] == 0.125
    assert row["ours_img_s"] > 0 and row["ref_img_s"] > 0
    assert row["ratio"] == pytest.approx(row["ours_img_s"] / row["ref_img_s"], rel=1e-2)
    assert len(row["rounds"]["ours"]) == len(row["rounds"]["ref"]) == 2
    bt.append_run(tmp_path / "r.json", run)
    bt.append_run(tmp_path / "r.json", run)
    assert len(json.loads((tmp_path / "r.json").read_text())["runs"]) == 2


def test_gpu_check_record_adds_the_run_and_costs(tmp_path):
    import gpu_check

    check = dict(dry=False, elapsed_s=400.0, bench=fake_run(),
                 parts=dict(tests=dict(status="ok", passed=9, failures=0, errors=0, skipped=0, failed=[]),
                            cifar=dict(status="ok", dataset="cifar10-10k", epochs=30, test_acc=0.74, min_acc=0.6,
                                       passed=True, train_seconds=41.0)))
    src, results, cost_file = tmp_path / "gpu_check.json", tmp_path / "results.json", tmp_path / "costs.json"
    src.write_text(json.dumps(check))
    results.write_text(json.dumps({"runs": [fake_run("cpu", {"resnet110": (50.0, 40.0)})]}))
    gpu_check.record_results(src, results, cost_file)
    runs = json.loads(results.read_text())["runs"]
    assert [r["device"] for r in runs] == ["cpu", "NVIDIA H100 80GB HBM3"]
    assert runs[1]["gpu_check"]["cifar"]["test_acc"] == 0.74 and runs[1]["gpu_check"]["tests"]["passed"] == 9
    assert json.loads(cost_file.read_text())["device"] == "NVIDIA H100 80GB HBM3"
    src.write_text(json.dumps(check | dict(dry=True)))
    with pytest.raises(SystemExit, match="dry run"):
        gpu_check.record_results(src, results, cost_file)


@pytest.mark.slow
def test_gpu_check_script_runs_end_to_end_dry(tmp_path):
    """bench/gpu_check.sh on the CPU at toy sizes: every part runs and lands in the JSON."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, GPU_CHECK_DRY="1", OUT=str(tmp_path), PYTHON=sys.executable, REFINE_DATA_DIR=str(tmp_path))
    proc = subprocess.run(["bash", str(root / "bench" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rec = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rec["dry"] and set(rec["parts"]) == {"tests", "throughput", "cifar", "compiled", "costs"}
    assert all(p["status"] == "ok" for p in rec["parts"].values()), rec["parts"]
    assert [r["arch"] for r in rec["bench"]["rows"]] == list(bt.PAPER_ARCHS)
    assert rec["parts"]["cifar"]["dataset"] == "digits"  # no CIFAR in an empty data folder: the offline set
    assert (tmp_path / "gpu_check.log").read_text().count("===") >= 6


def test_layout_benchmark_times_both_layouts(tmp_path):
    import bench_layout

    out = tmp_path / "layout.json"
    assert bench_layout.main(["--archs", "resnet32=0.05", "--cores", "2", "--rounds", "1", "--steps", "1",
                              "--json", str(out)]) == 0
    (run,) = json.loads(out.read_text())
    (row,) = run["rows"]
    rates = row["images_per_s"]
    assert run["cores"] == 2 and row["arch"] == "resnet32" and rates["process_per_core"] > 0 and rates["threaded"] > 0
    assert row["ratio_threaded"] == pytest.approx(rates["threaded"] / rates["process_per_core"], rel=1e-2)
