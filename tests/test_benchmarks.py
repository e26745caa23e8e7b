"""The book's GPU-cost section is read from bench/'s files, never typed."""
import json

from refine_utils import benchmarks
from test_bench import costs, fake_run  # noqa: F401  (bench/ on the path)


def recorded(tmp_path, cifar_passed=True):
    run = fake_run()
    run["machine"] = "test host"
    run["gpu_check"] = dict(versions=dict(driver="580.1", cuda="13.0", cudnn=91900),
                            tests=dict(passed=6, failures=1, errors=0, skipped=0, failed=["test_x"]),
                            cifar=dict(dataset="cifar10-10k", width=1.0, epochs=30, test_acc=0.748, min_acc=0.6,
                                       passed=cifar_passed, train_seconds=161.4),
                            notes=["a finding"])
    results, cost_file = tmp_path / "results.json", tmp_path / "costs.json"
    results.write_text(json.dumps({"runs": [fake_run("cpu", {"resnet110": (50.0, 40.0)}), run]}))
    cost_file.write_text(json.dumps(costs.costs(run, compiled=True)))
    return results, cost_file


def test_report_says_when_nothing_is_measured(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"runs": [fake_run("cpu", {"resnet110": (50.0, 40.0)})]}))
    text = benchmarks.report(tmp_path / "results.json", tmp_path / "costs.json")
    assert text.startswith("*No measured GPU costs yet")
    assert benchmarks.report(tmp_path / "absent.json", tmp_path / "costs.json").startswith("*No measured")


def test_report_reads_the_check_the_table_and_the_costs(tmp_path):
    results, cost_file = recorded(tmp_path)
    text = benchmarks.report(results, cost_file)
    assert "driver 580.1" in text and "6 passed, 1 failed (`test_x`)" in text and "*Note*: a finding" in text
    assert "ResNet-110 at width 1 on CIFAR-10 (10k" in text and "test accuracy 74.8% (bar 60%: passed)" in text
    assert "| resnet110 | 1 | 30,000.0 | 9,000.0 | 3.33×" in text  # the throughput row
    total = json.loads(cost_file.read_text())["total_gpu_hours"]
    assert f"| **all of them** (shared runs once) | | **{total:.0f}** |" in text
    assert "cifar100: resnet32 ×4" in text and "resnet38* ×4" in text  # Table 1 by dataset, estimates marked
    (tmp_path / "failed").mkdir()
    results2, _ = recorded(tmp_path / "failed", cifar_passed=False)
    assert "bar 60%: FAILED" in benchmarks.report(results2, cost_file)
