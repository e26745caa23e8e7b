"""Fig. 8, Fig. 9 and Table 1 on runs that diverge: a diverged run is drawn and tabulated, never raised."""
import pytest

from refine_utils import experiments as E, profiles
from refine_utils import figures, models, page, plots, scorecard, train

# One epoch at tiny widths: training itself is replaced below, so only the structure matters.
TINY = profiles.Profile(name="tiny-shared", description="test", device="cpu", datasets={"cifar10": "digits", "cifar100": "digits"},
                 widths={a: 0.125 for a in models.ARCHS}, epochs={a: 2 for a in models.ARCHS}, seeds=1,
                 batch_size=256, monitor=40, probe_examples=40)
DIVERGES = "resnet110-shared"


def fake_run(spec, progress=False, wait=True):
    """An untrained network and a made-up history; the naive shared model 'diverges' at epoch 1."""
    diverged = 1 if spec.arch == DIVERGES else None
    n = 1 if diverged else 2
    records = [dict(epoch=e, train_acc=0.1 * (e + 1), test_acc=0.1 * (e + 1), grad_ratio=3.0 + e) for e in range(n)]
    return E.initial(spec), train.History(records, diverged)


@pytest.fixture
def setting(tmp_path, monkeypatch):
    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setitem(profiles.PROFILES, TINY.name, TINY)
    monkeypatch.setattr(E, "run", fake_run)
    return profiles.setting(TINY.name)


def test_diverged_runs_are_drawn_not_raised(setting):
    fig8 = figures.figure8(setting)
    assert fig8.extra["diverged"] == {"resnet32": [None], "resnet110": [None], DIVERGES: [1]}
    curve = fig8.panels["accuracy"][f"validation, {DIVERGES}"]
    assert curve.runs == [[0.1]] and fig8.panels["accuracy"]["validation, resnet32"].runs == [[0.1, 0.2]]
    assert len(fig8.panels["activation norm at initialisation"][DIVERGES].x) == 55  # h_0..h_54
    plots.draw(fig8, ncols=3)
    assert len(scorecard.check("fig8", fig8).checks) == 7
    fig9 = figures.figure9(setting)
    assert fig9.extra["diverged"][DIVERGES] == [1] and len(fig9.panels["validation accuracy"]) == 4


def test_fig9_compares_the_fixes_on_one_draw_of_convolution_weights(setting):
    """Per-step BatchNorm draws extra random numbers, so the variants' own initial weights differ;
    on the naive model's weights, per-step statistics alone change nothing at initialisation
    (batch statistics, gamma 1) and gamma 0.1 calms the explosion."""
    fig9 = figures.figure9(setting)
    own = fig9.panels["activation norm at initialisation"]
    same = fig9.extra["init_same_weights"]
    naive, stats, gamma = list(models.ABLATION.values())[:3]
    assert own[naive].runs != own[stats].runs
    assert same[naive].runs == own[naive].runs and same[stats].runs == same[naive].runs
    assert same[gamma].runs[0][-1] < same[naive].runs[0][-1]


def test_table1_marks_diverged_rows_and_counts_parameters(setting, monkeypatch):
    monkeypatch.setattr(figures, "_errors", lambda model, ds: dict(train_err=1.0, test_err=2.0))
    monkeypatch.setattr(E, "run", lambda spec, progress=False, wait=True: fake_run(spec) if spec.arch != "resnet38"
                        else (E.initial(spec), train.History([], 0)))
    table = figures.table1(setting)
    assert [r["arch"] for r in table.rows][0] == "resnet32" and all(r["params_match"] for r in table.rows)
    text = table.markdown()
    assert "| resnet38 | diverged | diverged |" in text and "| resnet32 | 1.00 | 2.00 |" in text
    checks = scorecard.check("table1", table).checks
    assert checks[-1].outcome == "reported" and checks[-1].value == 1.0  # full-width counts: not in the verdict
    ubn = next(r for r in table.rows if r["arch"] == "resnet110-ubn")
    assert ubn["params_trained"]["cifar10"] < ubn["params"]["cifar10"]  # the trained (reduced) width


def test_table1_has_a_column_group_per_dataset_the_profile_has(setting, monkeypatch):
    monkeypatch.setattr(figures, "_errors", lambda model, ds: dict(train_err=1.0, test_err=2.0))
    assert figures.table1(setting).roles == ("cifar10", "cifar100")
    only10 = profiles.Profile(name="tiny-c10", description="test", device="cpu", datasets={"cifar10": "digits"},
                       widths=TINY.widths, epochs=TINY.epochs, batch_size=256, monitor=40)
    monkeypatch.setitem(profiles.PROFILES, only10.name, only10)
    table = figures.table1(profiles.setting(only10.name))
    assert table.roles == ("cifar10",) and "cifar100" not in table.markdown()
    assert scorecard.check("table1", table).verdict in scorecard.VERDICTS


def test_table1_reads_the_last_epoch_where_the_profile_records_training_accuracy(setting, monkeypatch):
    """With ``train_eval`` the errors come from the history (no trained weights needed: the
    probe is never called) and the caption says what they measure."""
    recorded = profiles.Profile(name="tiny-recorded", description="test", device="cpu", datasets={"cifar10": "digits"},
                                widths=TINY.widths, epochs=TINY.epochs, batch_size=256, monitor=40, train_eval=50)
    monkeypatch.setitem(profiles.PROFILES, recorded.name, recorded)
    monkeypatch.setattr(figures, "_errors", lambda model, ds: pytest.fail("evaluated the trained weights"))
    monkeypatch.setattr(E, "run", lambda spec, progress=False, wait=True: (E.initial(spec), train.History(
        [dict(epoch=0, test_acc=0.5, train_eval_acc=0.6), dict(epoch=1, test_acc=0.75, train_eval_acc=0.9)], None)))
    table = figures.table1(profiles.setting(recorded.name))
    assert "| resnet32 | 10.00 | 25.00 |" in table.markdown()
    assert "train on the first 50 training images (un-augmented)" in table.caption()
    assert "train on the first 50 training images (un-augmented)" in page.provenance(table.meta)  # the page's caption
    monkeypatch.setattr(figures, "_errors", lambda model, ds: dict(train_err=1.0, test_err=2.0))
    assert "note" not in figures.table1(setting).meta  # evaluated on the whole sets: nothing to add
