"""Specs, profiles, parameter validation and the two caches (checkpoints, results)."""
import dataclasses
import json

import pytest
import torch

from refine_utils import experiments as E, profiles, scorecard, specs, store


@pytest.fixture
def tmp_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def tiny(**kw) -> specs.RunSpec:
    return specs.RunSpec(**dict(dict(arch="resnet32", dataset="digits", width=0.125, epochs=1, batch_size=256), **kw))


def test_key_is_stable_and_covers_every_field():
    assert tiny().key == tiny().key and len(tiny().key) == 12
    changed = [tiny(width=0.25), tiny(epochs=2), tiny(seed=1), tiny(batch_size=64), tiny(weight_decay=5e-4),
               tiny(device="cuda"), tiny(monitor=10), tiny(arch="resnet38")]
    keys = {s.key for s in changed} | {tiny().key}
    assert len(keys) == len(changed) + 1
    assert tiny().key in tiny().name


@pytest.mark.parametrize("kw, match", [(dict(arch="resnet7"), "unknown architecture"),
                                       (dict(dataset="mnist"), "unknown dataset"),
                                       (dict(width=0.0), "width"), (dict(epochs=0), "epochs"),
                                       (dict(seed=-1), "seed"), (dict(device="tpu"), "unknown device")])
def test_spec_rejects_bad_fields(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_spec_compresses_the_paper_schedule():
    s = tiny(arch="resnet110", epochs=6).schedule()
    assert s.epochs == 6 and s.lr == 0.1 and s.lr_at(5) < s.lr_at(0)
    assert tiny(arch="wide", epochs=100).schedule().milestones == ((60, 0.02),)  # the paper's own


def test_cuda_runs_train_compiled_cpu_runs_eagerly():
    spec = specs.RunSpec("resnet32", "digits", 0.25, 2)
    assert not spec.train_config().compile
    assert specs.RunSpec("resnet32", "digits", 0.25, 2, device="cuda").train_config().compile


def test_setting_defaults_to_the_published_profile():
    s = profiles.setting()
    assert s.profile.name == profiles.PUBLISHED and s.device == s.profile.device
    assert s.seeds == tuple(range(s.profile.seeds))
    assert profiles.setting(seeds=3).seeds == (0, 1, 2)
    assert s.spec("resnet110").dataset == s.profile.dataset("cifar10")


@pytest.mark.parametrize("kw, match", [(dict(profile="huge"), "unknown profile 'huge'"),
                                       (dict(device="gpu"), "unknown device 'gpu'"),
                                       (dict(seeds=0), "seeds must be a positive integer"),
                                       (dict(seeds=-2), "seeds must be a positive integer"),
                                       (dict(seeds="4"), "seeds must be a positive integer")])
def test_setting_rejects_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        profiles.setting(**kw)


def test_a_part_the_profile_omits_falls_back_to_another_profile_and_says_why(monkeypatch):
    main = profiles.setting("cifar10-cpu")
    assert main.profile.name == "cifar10-cpu" and main.standing_in is None and main.seeds == (0, 1)
    assert main.spec("resnet110").dataset == "cifar10-10k"
    parted = profiles.Profile(name="parted", description="", device="cpu", datasets={"cifar10": "digits"}, seeds=2,
                       widths={"resnet110": 0.5, "resnet32": 0.25}, part_seeds={"sharing": 1},
                       part_widths={"sharing": {"resnet110": 0.25}}, omitted={"cifar100": "no data"}, fallback="smoke")
    monkeypatch.setitem(profiles.PROFILES, "parted", parted)
    sharing = profiles.setting("parted", part="sharing")
    assert sharing.profile.name == "parted" and sharing.seeds == (0,)  # its own seed count
    assert sharing.spec("resnet110").width == 0.25 and sharing.spec("resnet32").width == 0.25  # its own widths
    assert profiles.setting("parted").spec("resnet110").width == 0.5
    assert {s.width for s in E.book_specs("parted") if s.arch == "resnet110"} == {0.5, 0.25}
    c100 = profiles.setting("parted", part="cifar100", seeds=3)
    assert c100.profile.name == "smoke" and c100.seeds == (0, 1, 2)
    assert c100.standing_in == ("parted", "does not run this part (no data)")
    with pytest.raises(ValueError, match="unknown part 'appendix'"):
        profiles.setting(part="appendix")
    alone = profiles.Profile(name="alone", description="", device="cpu", omitted={"sharing": "too slow"})
    monkeypatch.setitem(profiles.PROFILES, "alone", alone)
    with pytest.raises(ValueError, match=r"'alone' does not run this part \(too slow\), and has no fallback"):
        profiles.setting("alone", part="sharing")
    monkeypatch.setitem(profiles.PROFILES, "alone", dataclasses.replace(alone, fallback="parted", omitted={"cifar100": "none"}))
    monkeypatch.setitem(profiles.PROFILES, "parted", dataclasses.replace(parted, fallback="alone"))
    with pytest.raises(ValueError, match=r"profiles parted -> alone -> parted fall back in a circle for part 'cifar100'"):
        profiles.setting("parted", part="cifar100")


def test_a_part_still_training_is_shown_from_the_fallback_chain_and_computed_from_its_own(monkeypatch):
    """A profile published part by part: a pending part reads its fallback (cifar10-cpu), and a
    part that fallback omits reads the fallback's own fallback (smoke); the scorecard says "not
    yet run" for the pending part, and computing it reads the profile's own results."""
    staged = dataclasses.replace(profiles.CIFAR10_LONG, name="staged", pending={"sharing": "2 of 18 networks"},
                                 part_seeds={"sharing": 2}, fallback="cifar10-cpu")
    monkeypatch.setitem(profiles.PROFILES, "staged", staged)
    assert profiles.setting("staged").profile.name == "staged" and profiles.setting("staged").standing_in is None
    sharing = profiles.setting("staged", part="sharing")
    assert sharing.profile.name == "cifar10-cpu" and sharing.seeds == (0,)
    assert sharing.standing_in == ("staged", "is still training this part's networks (2 of 18 networks)")
    own = profiles.setting("staged", part="sharing", pending=True)
    assert own.profile.name == "staged" and own.standing_in is None and own.seeds == (0, 1)
    c100 = profiles.setting("staged", part="cifar100")  # staged omits it, and so does cifar10-cpu
    assert c100.profile.name == "smoke" and c100.standing_in[0] == "staged"
    assert any(s.arch == "resnet182-ubn" for s in E.book_specs("staged"))  # pending parts still train
    with store.cached_only():
        rows = {r.item: r for r in scorecard.rows("staged")}
    assert rows["Table 1"].verdict == "not yet run" and "2 of 18 networks" in rows["Table 1"].reason
    assert "page shows profile `cifar10-cpu` instead" in rows["Table 1"].reason and rows["Table 1"].evidence == "none"
    assert rows["Fig. 2 (CIFAR-100)"].verdict == "not run"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_setting_refuses_cuda_without_a_gpu():
    with pytest.raises(ValueError, match="no CUDA device"):
        profiles.setting("paper")


def test_paper_profile_follows_the_paper():
    p = profiles.get_profile("paper")
    spec = p.spec("resnet110", role="cifar100")
    assert (spec.width, spec.epochs, spec.dataset, spec.device, p.seeds) == (1.0, 300, "cifar100", "cuda", 4)
    assert p.spec("wide").epochs == 100 and p.spec("single-representation").epochs == 200


def test_result_is_computed_once_then_read(tmp_caches):
    calls = []

    def compute():
        calls.append(1)
        return {"x": 1 / 3, "xs": [2 / 3, None]}

    first = store.result("smoke", "thing", tiny(), compute, {"split": "test"})
    again = store.result("smoke", "thing", tiny(), compute, {"split": "test"})
    assert calls == [1] and first == again
    assert first["value"] == {"x": 0.333333, "xs": [0.666667, None]}  # stored to 6 significant digits
    assert first["spec"]["arch"] == "resnet32" and first["profile"] == "smoke" and first["torch"] == torch.__version__
    assert first["commit"] and first["device"] == "cpu"
    assert first["dataset"] == "digits" and first["arch"] == "resnet32"
    store.result("smoke", "thing", tiny(), compute, {"split": "train"})  # other params: recomputed
    store.result("smoke", "thing", tiny(seed=1), compute, {"split": "test"})  # other spec: recomputed
    assert len(calls) == 3
    files = sorted((tmp_caches / "results" / "smoke" / "thing").glob("*.json"))
    assert len(files) == 3 and json.loads(files[0].read_text())["name"] == "thing"


def test_cached_only_never_computes(tmp_caches):
    with store.cached_only(), pytest.raises(store.MissingResult):
        store.result("smoke", "thing", tiny(), lambda: pytest.fail("computed"))


def test_trained_checkpoints_and_reloads_bit_identically(tmp_caches, monkeypatch):
    spec = tiny()
    model, hist = E.trained(spec)
    assert store.checkpoint_path(spec).exists() and len(hist.records) == 1
    monkeypatch.setattr(E.train.Loader, "__iter__", lambda self: pytest.fail("retrained"), raising=True)
    again, hist2 = E.trained(spec)  # loaded from the checkpoint: no batch is drawn
    assert hist2.records == hist.records
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_training_is_deterministic_across_fresh_caches(tmp_path, monkeypatch):
    weights = []
    for run, draws in (("a", 1), ("b", 5)):
        monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / run))
        torch.rand(draws)  # whatever ran before in the process must not change the initial weights
        model, _ = E.trained(tiny())
        weights.append(model.head.fc.weight.detach().clone())
    assert torch.equal(*weights)


def test_smoke_pins_the_cpu_kernels_of_the_processes_it_starts(monkeypatch):
    import os
    import subprocess
    import sys

    assert profiles.SMOKE.cpu_isa == "avx2" and profiles.get_profile(profiles.PUBLISHED).cpu_isa is None  # the published runs go fastest
    monkeypatch.delenv("MKL_CBWR", raising=False)
    ask = "import torch; torch.ones(2).sum(); print(torch.backends.cpu.get_cpu_capability())"
    with E.pinned_isa("default"):  # the lowest level, below any machine's own: a child that ignored the pin says more
        assert os.environ["ONEDNN_MAX_CPU_ISA"] == "DEFAULT" and os.environ["MKL_CBWR"] == "DEFAULT"
        child = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "DEFAULT"
    assert "MKL_CBWR" not in os.environ  # restored as it was
    with E.pinned_isa(None):
        assert "ATEN_CPU_CAPABILITY" not in os.environ
