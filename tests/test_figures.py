"""Figure data, plots and scorecard rules on a tiny profile (one small network, one epoch)."""
import json

import numpy as np
import pytest

from refine_utils import experiments as E, profiles, store
from refine_utils import data, figures, plots, scorecard
from refine_utils.figures import Series

TINY = profiles.Profile(name="tiny", description="test", device="cpu", datasets={"cifar10": "digits", "cifar100": "digits"},
                 widths={"resnet32": 0.125}, epochs={"resnet32": 2}, seeds=2, batch_size=256, monitor=40,
                 probe_examples=40)
ARCHS = ("resnet32",)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    mp = pytest.MonkeyPatch()
    mp.setenv("REFINE_CACHE_DIR", str(tmp / "cache"))
    mp.setenv("REFINE_RESULTS_DIR", str(tmp / "results"))
    mp.setitem(profiles.PROFILES, "tiny", TINY)
    yield profiles.setting("tiny")
    mp.undo()


def test_series_mean_and_spread_over_seeds():
    s = Series([1, 2], [[1.0, None], [3.0, 4.0]])
    assert np.allclose(s.mean, [2.0, 4.0]) and np.allclose(s.std, [1.0, 0.0])


def test_block_figures_cover_every_block_and_both_splits(tiny):
    fig2 = figures.figure2(tiny, archs=ARCHS)
    curves = fig2.panels["resnet32"]
    assert set(curves) == {"train", "validation"}
    assert len(curves["train"].x) == 15 and len(curves["train"].runs) == 2  # 15 blocks, 2 seeds
    assert np.all(curves["validation"].mean > 0)
    assert fig2.extra["identity"]["resnet32"].count(False) == 2  # the two downsampling blocks
    cos = figures.figure4(tiny, archs=ARCHS).panels["resnet32"]["validation"].mean
    assert np.all(np.abs(cos) <= 1)
    caption = fig2.caption()
    assert "profile tiny" in caption and "resnet32 (width 0.125, 2 epochs)" in caption and "seeds 2" in caption
    assert "device cpu" in caption and "digits (scikit-learn) standing in for cifar10" in caption


def test_drop_one_skips_projection_blocks(tiny):
    fig3 = figures.figure3(tiny, archs=ARCHS)
    acc = fig3.panels["resnet32"]["validation"].mean
    assert np.isnan(acc[5]) and np.isnan(acc[10]) and np.all((acc[~np.isnan(acc)] >= 0) & (acc[~np.isnan(acc)] <= 1))
    assert 0 <= fig3.extra["baseline"]["resnet32"].mean[0] <= 1


def test_training_monitors_give_the_per_epoch_figures(tiny):
    fig5 = figures.figure5(tiny, archs=ARCHS)
    assert list(fig5.panels["resnet32"]) == [f"block {i}" for i in range(11, 16)]
    assert fig5.panels["resnet32"]["block 15"].x == [1, 2]
    curves = figures.training_curves(tiny, archs=ARCHS).panels["resnet32"]
    # the last block's intermediate accuracy is the network's own (on the monitored examples)
    assert len(curves["validation"].x) == 2
    cos = figures.per_epoch(tiny, "cos", archs=ARCHS)
    assert len(cos.panels["resnet32"]) == 15


def test_last_blocks_figures(tiny):
    fig6 = figures.figure6(tiny, arch="resnet32", last=4)
    assert set(fig6.panels) == {f"{s} {m}" for s in ("train", "validation") for m in ("loss", "acc", "entropy")}
    assert fig6.panels["validation acc"]["all"].x == [-4, -3, -2, -1, 0]
    fig7 = figures.figure7(tiny, arch="resnet32", steps=2)
    assert fig7.panels["validation cos"]["scale 1"].x == [0, 1, 2]
    taylor = figures.taylor(tiny, archs=ARCHS)
    assert set(taylor.panels["resnet32"]) == {"measured", "first-order"}
    assert set(taylor.extra["other_gradients"]["resnet32"]) == {"through the block", "at the block's output"}
    assert fig6.extra["last_cos"].values.shape == (2, 1)  # one per seed
    assert set(fig7.extra["unroll"]) == {1.0, 0.5} and len(fig7.extra["unroll"][0.5]["validation"]) == 2


def test_results_are_cached_and_reused(tiny, monkeypatch):
    figures.figure2(tiny, archs=ARCHS)
    monkeypatch.setattr(E, "trained", lambda spec: pytest.fail("recomputed a cached figure"))
    with store.cached_only():
        figures.figure2(tiny, archs=ARCHS)


def test_draw_lays_out_one_axis_per_panel(tiny):
    fig = plots.draw(figures.figure2(tiny, archs=ARCHS))
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in visible] == ["resnet32"]
    assert not fig.texts  # the caption sits under the image on the page (page.figure), not in it
    fig = plots.draw(figures.figure5(tiny, archs=ARCHS), spectrum=True)
    lines = fig.axes[0].get_lines()
    assert lines[0].get_color() != lines[-1].get_color()  # blue to red over blocks


def test_scorecard_says_not_yet_run_without_results(tmp_path, monkeypatch):
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(E, "trained", lambda spec: pytest.fail("the scorecard trained"))
    rows = scorecard.rows("smoke")
    assert len(rows) == len(scorecard.CLAIMS)
    assert {r.verdict for r in rows} == {"not yet run"}
    assert "not yet run" in scorecard.markdown(rows)


def test_the_published_profile_is_committed_whole(monkeypatch):
    """``make book`` never trains: every claim of the published profile reads committed results
    (a part it is still training: those of the profile standing in), and every committed record
    names its profile, dataset proper and architecture."""
    monkeypatch.delenv("REFINE_RESULTS_DIR", raising=False)
    monkeypatch.setattr(E, "trained", lambda spec: pytest.fail("the scorecard trained"))
    rows = scorecard.rows()
    pending = profiles.get_profile(profiles.PUBLISHED).pending
    assert [r.item for c, r in zip(scorecard.CLAIMS, rows) if r.verdict == "not yet run" and c.part not in pending] == []
    for c in scorecard.CLAIMS:
        if c.part in pending:
            assert scorecard.row(c, profiles.setting(part=c.part).profile.name).verdict != "not yet run", c.item
    assert all(r.reason for r in rows if r.verdict == "not run")  # each says why
    records = [json.loads(p.read_text()) for p in (store.ROOT / "results" / profiles.PUBLISHED).rglob("*.json")]
    assert records
    for r in records:
        assert r["profile"] == profiles.PUBLISHED and r["arch"] == r["spec"]["arch"]
        assert r["dataset"] == data.source(r["spec"]["dataset"])
    if profiles.PUBLISHED == "cifar10-cpu":
        assert {r["dataset"] for r in records} == {"cifar10"}


def test_scorecard_table_keeps_absolute_value_bars_inside_their_cell():
    import re

    row = scorecard.Row("Fig. 2", "a claim", [scorecard.Check("largest mean |train - validation|", 0.01, True)],
                        "partly", evidence="`x`")
    line = scorecard.markdown([row]).splitlines()[-1]
    assert len(re.findall(r"(?<!\\)\|", line)) == 6  # five cells
    assert r"\|train - validation\|" in line and "**partly**" in line
