import subprocess
import sys

import pytest

from refine_utils import cli, train


def run(*args):
    return subprocess.run([sys.executable, "-m", "refine_utils.cli", *args], capture_output=True, text=True)


def test_help_explains_every_flag():
    out = run("train", "--help").stdout
    for flag in ("--arch", "--dataset", "--epochs", "--width", "--batch-size", "--seed", "--device", "--data-dir",
                 "--download", "--out", "--weight-decay", "--compile"):
        assert flag in out


@pytest.mark.parametrize("args,expect", [
    (["--arch", "resnet111"], "resnet110"),
    (["--arch", "resnet32", "--epochs", "-2"], "positive"),
    (["--arch", "resnet32", "--dataset", "mnist"], "cifar10"),
    (["--arch", "resnet32", "--width", "0"], "positive"),
])
def test_bad_arguments_fail_fast_naming_choices(args, expect):
    r = run("train", *args)
    assert r.returncode == 2 and expect in r.stderr


def test_missing_cifar_is_a_clear_error(tmp_path):
    r = run("train", "--arch", "resnet32", "--dataset", "cifar100", "--data-dir", str(tmp_path), "--epochs", "1")
    assert r.returncode == 2 and "REFINE_DATA_DIR" in r.stderr and "Traceback" not in r.stderr


def test_results_refuses_an_unknown_profile_or_missing_data_before_training(tmp_path, monkeypatch, capsys):
    assert cli.main(["results", "--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err
    monkeypatch.setenv("REFINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["results", "--profile", "cifar10-cpu", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "train_10k.npz" in err and str(tmp_path) in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_train_writes_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "r.pt"
    assert cli.main(["train", "--arch", "resnet110", "--dataset", "digits", "--epochs", "1", "--width", "0.125",
                     "--out", str(out)]) == 0
    state = train.load_checkpoint(out)
    assert len(state["history"]["records"]) == 1 and state["meta"]["arch"] == "resnet110"
    assert "test acc" in capsys.readouterr().out
