import dataclasses
import subprocess
import sys

import pytest
import torch

from refine_utils import cli, experiments, profiles, specs, store, train


def run(*args):
    return subprocess.run([sys.executable, "-m", "refine_utils.cli", *args], capture_output=True, text=True)


def test_help_explains_every_flag():
    out = run("train", "--help").stdout
    for flag in ("--arch", "--dataset", "--epochs", "--width", "--batch-size", "--seed", "--device", "--data-dir",
                 "--download", "--out", "--weight-decay", "--precision", "--schedule-fit", "--monitor", "--train-eval"):
        assert flag in out


@pytest.mark.parametrize("args,expect", [
    (["--arch", "resnet111"], "resnet110"),
    (["--arch", "resnet32", "--epochs", "-2"], "positive"),
    (["--arch", "resnet32", "--dataset", "mnist"], "cifar10"),
    (["--arch", "resnet32", "--width", "0"], "--width: must be a finite number > 0"),
    (["--arch", "resnet32", "--width", "inf"], "--width: must be a finite number > 0"),
    (["--arch", "resnet32", "--seed", "-1"], "--seed: must be an integer >= 0"),
    (["--arch", "resnet32", "--weight-decay", "-5"], "--weight-decay: must be a finite number >= 0"),
    (["--arch", "resnet32", "--device", "tpu"], "choose from 'cpu', 'cuda'"),
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


def test_train_goes_through_the_books_spec_keyed_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "export" / "r.pt"
    argv = ["train", "--arch", "resnet110", "--dataset", "digits", "--epochs", "1", "--width", "0.125", "--seed", "2",
            "--batch-size", "256", "--device", "cpu", "--out", str(out)]
    assert cli.main(argv) == 0
    spec = specs.RunSpec("resnet110", "digits", 0.125, 1, seed=2, batch_size=256)
    state = train.load_checkpoint(store.checkpoint_path(spec))  # where the notebooks look for it
    assert len(state["history"]["records"]) == 1 and state["meta"] == dataclasses.asdict(spec)
    exported = train.load_checkpoint(out)
    assert all(torch.equal(exported["model"][k], v) for k, v in state["model"].items())
    first = capsys.readouterr().out
    assert "test acc" in first and str(store.checkpoint_path(spec)) in first
    _, history = experiments.run(spec)  # the library finds the network the command trained
    assert history.records == state["history"]["records"]


def test_out_must_not_replace_another_runs_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    precious = tmp_path / "mine.pt"
    precious.write_bytes(b"someone else's file")
    assert cli.main(["train", "--arch", "resnet32", "--device", "cpu", "--out", str(precious)]) == 2
    assert f"--out {precious} exists and is not a checkpoint of this run" in capsys.readouterr().err
    assert precious.read_bytes() == b"someone else's file" and not list((tmp_path / "cache").glob("*.pt"))


@pytest.mark.parametrize("where, message", [("folder", "is a folder; name a file"),
                                            ("under a file", "is a file, not a folder")])
def test_out_is_checked_before_training(tmp_path, monkeypatch, capsys, where, message):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "file").write_text("x")
    out = tmp_path if where == "folder" else tmp_path / "file" / "r.pt"
    assert cli.main(["train", "--arch", "resnet32", "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}" in err and message in err
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_results_hands_training_to_submitit(monkeypatch):
    """--executor slurm passes partition, time and GPUs to submitit through book.execute."""
    from refine_utils import book

    seen = {}
    monkeypatch.setattr(book, "execute", lambda profile, out, workers, **kw: seen.update(kw, profile=profile))
    assert cli.main(["results", "--profile", "paper", "--executor", "slurm", "--partition", "gpu", "--time", "600",
                     "--gpus", "1", "--train-only"]) == 0
    assert seen == dict(profile="paper", train_only=True, executor="slurm", slurm_partition="gpu", timeout_min=600,
                        gpus_per_node=1)
    assert cli.main(["results", "--profile", "paper", "--partition", "gpu"]) == 2  # slurm options need a submitit executor


@pytest.mark.parametrize("arch", ["vit", "resnet110"])
def test_train_defaults_are_the_recipes_as_in_the_paper_profile(arch):
    """Without --epochs and --weight-decay, the command names the spec the book's paper profile trains."""
    args = cli.parser().parse_args(["train", "--arch", arch, "--dataset", "cifar10", "--device", "cpu"])
    spec = cli.spec_of(args)
    assert spec == dataclasses.replace(profiles.PROFILES["paper"].spec(arch), device="cpu", monitor=0)
    recipe = train.recipe(arch)
    assert (spec.epochs, spec.weight_decay, spec.train_config().optimizer) == \
        ((200, 0.05, "adamw") if arch == "vit" else (300, 1e-4, "sgd"))
    assert spec.train_config().schedule == recipe.schedule


def test_train_vit_runs_adamw_on_its_warmup_cosine(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["train", "--arch", "vit", "--epochs", "1", "--width", "0.1", "--batch-size", "256", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert "1 epochs, adamw (weight decay 0.05)" in capsys.readouterr().out
    spec = specs.RunSpec("vit", "digits", 0.1, 1, batch_size=256, weight_decay=0.05)
    state = train.load_checkpoint(store.checkpoint_path(spec))
    assert state["history"]["records"][0]["lr"] == train.VIT_RECIPE.schedule.lr  # one warm-up epoch: the peak
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)  # AdamW's state, not SGD's


def _write_checkpoint(path, model, spec, meta):
    """A finished one-epoch checkpoint of ``model`` at ``path``, with ``meta`` (None: none, as old files)."""
    opt = train.make_optimizer(model, spec.train_config())
    record = dict(epoch=0, lr=0.1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5)
    state = dict(model=model.state_dict(), optimizer=opt.state_dict(), history=dict(records=[record], diverged=None))
    train.save_checkpoint(path, state if meta is None else dict(state, meta=meta))


@pytest.mark.parametrize("meta", [None, "spec"])
def test_a_checkpoint_of_another_network_is_a_one_line_error(tmp_path, monkeypatch, capsys, meta):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    spec = specs.RunSpec("resnet32", "digits", 0.125, 1, batch_size=256)
    ckpt = store.checkpoint_path(spec)
    other = dataclasses.replace(spec, arch="resnet38")
    _write_checkpoint(ckpt, experiments.initial(other), other, meta and dataclasses.asdict(spec))
    argv = ["train", "--arch", "resnet32", "--epochs", "1", "--width", "0.125", "--batch-size", "256", "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"refine: checkpoint {ckpt}") and "does not fit this network" in err
    assert "delete it" in err and len(err.strip().splitlines()) == 1
    assert ("records no spec" in err) == (meta is None)


def test_a_checkpoint_without_meta_that_fits_still_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    spec = specs.RunSpec("resnet32", "digits", 0.125, 1, batch_size=256)
    _write_checkpoint(store.checkpoint_path(spec), experiments.initial(spec), spec, None)
    argv = ["train", "--arch", "resnet32", "--epochs", "1", "--width", "0.125", "--batch-size", "256", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert "done: train acc 0.5000, test acc 0.5000" in capsys.readouterr().out  # its history, not a new run's
