"""Scorecard rules on crafted results: each rule passes on data that shows the paper's claim,
fails on data that contradicts it, and reads "within noise" when the seeds disagree."""
import math

import numpy as np
import pytest

from refine_utils import experiments as E, profiles, store
from refine_utils import figures, paper, probes, scorecard
from refine_utils.figures import FigureData, Series
from refine_utils.scorecard import judge, verdict

GOOD, BAD = True, False
#: Two seeds that agree with the paper, two that contradict it, and one of each.
WORLDS = {"reproduced": (GOOD, GOOD), "not": (BAD, BAD), "within noise": (GOOD, BAD)}


def series(runs) -> Series:
    runs = [list(map(float, r)) for r in runs]
    return Series(list(range(len(runs[0]))), runs)


def jitter(values, seed: int, eps: float = 1e-3) -> np.ndarray:
    """A seed's copy of a curve, nudged so that two seeds are never identical."""
    return np.asarray(values, dtype=float) * (1 + eps * (seed + 1))


# ----------------------------------------------------------------------------- the noise rule


def test_noise_rule_holds_fails_or_reads_within_noise():
    assert judge("x", [0.2, 0.3, 0.25], above=0).outcome == "holds"  # mean and every seed
    assert judge("x", [0.2, 0.3, -0.01], above=0).outcome == "holds"  # mean and a majority
    assert judge("x", [-0.2, -0.3, 0.01], above=0).outcome == "fails"
    assert judge("x", [0.5, -0.1], above=0).outcome == "within noise"  # mean holds, one seed of two against
    assert judge("x", [1.0, 1.1, 0.9, -0.05], above=0).outcome == "holds"  # 3 of 4 seeds
    c = judge("x", [0.30, 0.32], above=0, sampling=0.2)  # within twice the examples' sampling error
    assert c.outcome == "within noise" and not c.holds
    c = judge("x", [0.1, 0.3], below=1, paper="~2")
    assert c.holds and c.value == pytest.approx(0.2) and c.se == pytest.approx(0.1) and c.seeds == [0.1, 0.3]
    assert "± 0.1 s.e. (seeds 0.1, 0.3)" in c.describe() and "paper: ~2" in c.describe()
    assert judge("x", [float("nan")], above=0).outcome == "not run"
    with pytest.raises(ValueError, match="exactly one"):
        judge("x", [1.0], above=0, below=2)


def test_verdicts_cap_one_seed_and_count_noise():
    two = judge("a", [1, 2], above=0)
    one = judge("b", [1], above=0)
    assert verdict([two, two]) == "reproduced"
    assert verdict([two, one]) == "partly"  # one seed cannot be told from seed-to-seed noise
    noise = judge("c", [1, -0.5], above=0)
    fail = judge("d", [-1, -2], above=0)
    assert verdict([two, noise, noise]) == "within noise"
    assert verdict([two, fail, noise]) == "not"
    assert verdict([two, two, fail]) == "partly"
    assert verdict([two, scorecard.not_run("e", "not stored")]) == "partly"
    assert verdict([scorecard.not_run("e", "not stored")]) == "not run"
    assert verdict([two, scorecard.reported("size", [0.3, 0.4])]) == "reproduced"  # reported: no verdict
    # alternatives (Fig. 7's scales): the best group decides, a group never run is skipped
    groups = [judge("x", [1, 2], above=0, group="scale 0.5"), judge("x", [-1, -2], above=0, group="scale 0.25"),
              scorecard.not_run("all", "not stored", group="scale 0.75")]
    assert verdict(groups) == "reproduced" and verdict(groups[1:]) == "not"


# ----------------------------------------------------------------------------- crafted figure data


def taylor_data(worlds) -> FigureData:
    panels = {}
    for arch in figures.models.FIGURE_ARCHS:
        measured, first = [], []
        for s, good in enumerate(worlds):
            m = -0.01 * np.ones(10)
            if good:  # right sign and size in the upper half, far off in the lower half
                f = np.concatenate([m[:5] * 3, m[5:] * 1.1])
            else:  # wrong sign in the upper half, exact in the lower half
                f = np.concatenate([m[:5], -m[5:]])
            measured.append(jitter(m, s))
            first.append(f)
        panels[arch] = {"measured": series(measured), "first-order": series(first)}
    return FigureData("t", "block", "", panels, {})


STEEP_GOOD = [2.0] + list(np.linspace(0.6, 0.1, 9))
FLAT_GOOD = [0.32, 0.3, 0.31, 0.3, 0.29, 0.3, 0.3, 0.29, 0.3, 0.3]
STEEP_BAD = [0.5] + list(np.linspace(0.1, 0.6, 9))
FLAT_BAD = [3.0] + [0.1] * 9


def fig2_data(worlds) -> FigureData:
    panels = {}
    for arch in figures.models.FIGURE_ARCHS:
        steep = arch in scorecard.STEEP
        val = [jitter((STEEP_GOOD if steep else FLAT_GOOD) if good else (STEEP_BAD if steep else FLAT_BAD), s, 0.05)
               for s, good in enumerate(worlds)]
        train = [v * (1.0001 if good else 1.5) for v, good in zip(val, worlds)]
        panels[arch] = {"validation": series(val), "train": series(train)}
    return FigureData("t", "block", "", panels, {})


def fig3_data(worlds) -> FigureData:
    panels, baseline = {}, {}
    for arch in figures.models.FIGURE_ARCHS:
        steep = arch in scorecard.STEEP
        runs, base = [], []
        for s, good in enumerate(worlds):
            b = 0.5 + 0.01 * s  # 52 %: "catastrophic" must be relative to chance (0.1)
            if steep:
                acc = [0.15] + [b - 0.01] * 9 if good else [b - 0.01] + [0.15] * 9
            else:
                acc = [None] + [b - 0.01] * 9 if good else [None, 0.12] + [b - 0.01] * 8
            runs.append(acc)
            base.append([b])
        panels[arch] = {"validation": Series(list(range(10)), runs)}
        baseline[arch] = series(base)
    return FigureData("t", "block", "", panels, {}, dict(baseline=baseline, chance=0.1))


def fig4_data(worlds, archs=figures.models.FIGURE_ARCHS) -> FigureData:
    panels, sampling = {}, {}
    deep = ("resnet110", "avg-pooling")
    for arch in archs:
        runs = []
        for s, good in enumerate(worlds):
            if good:  # negative everywhere, more so higher up, and deeper nets reach lower
                cos = np.linspace(-0.05, -0.2 if arch in deep else -0.1, 10)
            else:  # positive blocks, higher blocks less negative, deeper nets less negative
                cos = np.linspace(-0.2 if arch in deep else -0.3, 0.05, 10)
            runs.append(jitter(cos, s))
        panels[arch] = {"validation": series(runs)}
        sampling[arch] = {"validation": series([np.full(10, 0.001)] * len(worlds))}
    return FigureData("t", "block", "", panels, {}, dict(sampling=sampling))


def fig5_data(worlds) -> FigureData:
    panels = {}
    for arch in figures.models.FIGURE_ARCHS:
        blocks = {}
        final = {s: (np.linspace(0.3, 0.6, 5) if good else np.array([0.6, 0.3, 0.3, 0.3, 0.2]))
                 for s, good in enumerate(worlds)}
        for k in range(5):
            blocks[f"block {k + 1}"] = series([[0.1, jitter(final[s], s)[k]] for s in final])  # two epochs
        panels[arch] = blocks
    return FigureData("t", "epoch", "", panels, {})


def fig6_data(worlds) -> FigureData:
    groups = ("borderline", "correct", "all")
    panels = {f"{split} {m}": {g: [] for g in groups} for split in ("train", "validation")
              for m in ("loss", "acc", "entropy")}
    cos, sizes = [], []
    for s, good in enumerate(worlds):
        up = 1 if good else -1
        curves = {
            "validation acc": dict(borderline=[0.4, 0.42, 0.45, 0.47, 0.5, 0.5 + 0.02 * up],
                                   correct=[1.0] * 6, all=[0.6, 0.6, 0.6, 0.6, 0.6, 0.6 - 0.2 * (1 - up)]),
            "validation loss": dict(borderline=[1.0, 0.9, 0.8, 0.7, 0.6, 0.6 - 0.1 * up], correct=[0.1] * 6,
                                    all=[0.8, 0.8, 0.8, 0.8, 0.8, 0.8 + 0.01 * up]),
            "validation entropy": {g: list(np.linspace(1.0, 1.0 - 0.2 * up, 6)) for g in groups},
            "train loss": {g: list(np.linspace(0.5, 0.5 - 0.1 * up, 6)) for g in groups},
        }
        for panel in panels:
            for g in groups:
                panels[panel][g].append(jitter(curves.get(panel, {}).get(g, [0.5] * 6), s))
        cos.append([(paper.LAST_BLOCK_COSINE if good else 0.2) * (1 + 0.01 * s)])
        sizes.append(dict(all=1000, borderline=50, correct=600))
    panels = {p: {g: Series(list(range(-5, 1)), [list(r) for r in runs]) for g, runs in gs.items()}
              for p, gs in panels.items()}
    return FigureData("t", "hidden state", "", panels, {},
                      dict(last_cos=series(cos), sizes=dict(validation=sizes, train=sizes)))


def unroll(scale, good, s, split) -> probes.Unroll:
    sign = 1 if good else -1
    k = np.arange(21)
    loss = {"train": 0.5 - 0.01 * sign * k / 20, "validation": 0.8 + 0.05 * sign * k / 20}[split]
    groups = dict(borderline=dict(loss=list(loss), acc=list(0.4 + 0.1 * sign * k / 20 * (1 + 0.01 * s)),
                                  entropy=[1.0] * 21),
                  all=dict(loss=list(loss * (1 + 0.01 * s)), acc=list(0.6 + 0.01 * sign * k / 20), entropy=[1.0] * 21))
    cos = list(-0.05 * sign * (1 + 0.01 * s) * np.ones(21))
    return probes.Unroll(20, scale, 0.1, groups, dict(all=1000, borderline=50), cos, [0.1] * 21)


def fig7_data(worlds, missing=(0.25,)) -> FigureData:
    runs = {scale: {split: [unroll(scale, good, s, split) for s, good in enumerate(worlds)]
                    for split in ("train", "validation")} for scale in (1.0, 0.5)}
    return FigureData("t", "extra steps", "", {}, {}, dict(unroll=runs, missing=list(missing)))


def fig8_data(worlds) -> FigureData:
    archs = ("resnet32", "resnet110", "resnet110-shared")
    acc, act, r, init = {}, {}, {}, {}
    for a in archs:
        shared = a == "resnet110-shared"
        runs = {"acc": [], "act": [], "r": [], "init": []}
        for s, good in enumerate(worlds):
            blow = 10.0 if shared == good else 1.0  # the shared net explodes in the paper's world only
            runs["acc"].append(jitter([0.3, 0.5 if shared == (not good) else 0.4], s))
            runs["act"].append(jitter([1.0, 2.0 * blow], s))
            runs["r"].append(jitter([3.0 * blow] * 2, s))
            runs["init"].append([5.0 * blow])
        for k, store in (("acc", acc), ("act", act), ("r", r), ("init", init)):
            store[a] = series(runs[k])
    panels = {"accuracy": {f"validation, {a}": acc[a] for a in archs}, "activation norm at initialisation": act,
              "gradient-norm ratio r": r}
    return FigureData("t", "epoch", "", panels, dict(dataset="cifar10"), dict(init_ratio=init, shared="resnet110-shared",
                                                         reference="resnet32", unshared="resnet110"))


def fig9_data(worlds) -> FigureData:
    labels = list(figures.models.ABLATION.values())
    acc, same = {}, {}
    for k, label in enumerate(labels):
        good_acc = [0.3, 0.6, 0.65, 0.68][k]  # each helps, per-step statistics most
        bad_acc = [0.6, 0.5, 0.45, 0.4][k]
        acc[label] = series([[0.1, jitter([good_acc if g else bad_acc], s)[0]] for s, g in enumerate(worlds)])
        grow = [10.0, 10.0, 2.0, 2.0][k]
        same[label] = series([[1.0, (grow if g else 10.0) * (1 + 0.01 * s)] for s, g in enumerate(worlds)])
    return FigureData("t", "epoch", "", {"validation accuracy": acc}, dict(dataset="cifar10"),
                      dict(init_same_weights=same))


def table1_data(worlds, params=None, ubn=6.5) -> figures.TableData:
    good_err = dict(resnet32=8.0, resnet38=7.5, resnet56=7.0, resnet110=6.5, **{"resnet110-ubn": ubn,
                    "resnet146-ubn": 7.0, "resnet182-ubn": 7.0})
    bad_err = dict(good_err, resnet110=9.0, **{"resnet110-ubn": 8.0})
    params = params or dict(resnet38=1000, resnet56=2000, **{"resnet110-ubn": 1100})
    rows = []
    for arch in paper.TABLE1["cifar10"]:
        errs = [(good_err if g else bad_err)[arch] + 0.01 * s for s, g in enumerate(worlds)]
        n = params.get(arch, 500)
        rows.append(dict(arch=arch, params=dict(cifar10=n * 4), params_trained=dict(cifar10=n), params_match=True,
                         cifar10=dict(train_err=errs, test_err=errs, paper=paper.TABLE1["cifar10"][arch])))
    return figures.TableData(rows, dict(dataset="cifar10"), ("cifar10",))


RULES = {
    "taylor": (scorecard._taylor, taylor_data),
    "fig2": (scorecard._fig2, fig2_data),
    "fig3": (scorecard._fig3, fig3_data),
    "fig4": (scorecard._fig4, fig4_data),
    "appendix D": (scorecard._fig4, lambda w: fig4_data(w, archs=scorecard.APPENDIX_D)),
    "fig5": (scorecard._fig5, fig5_data),
    "fig6": (scorecard._fig6, fig6_data),
    "fig7": (scorecard._fig7, fig7_data),
    "fig8": (scorecard._fig8, fig8_data),
    "fig9": (scorecard._fig9, fig9_data),
    "table1": (scorecard._table1, table1_data),
}


@pytest.mark.parametrize("world", list(WORLDS))
@pytest.mark.parametrize("rule", list(RULES))
def test_every_rule_passes_fails_or_reads_within_noise(rule, world):
    """Two seeds with the paper: reproduced; two against it: not; one of each: within noise."""
    judge_, make = RULES[rule]
    checks = judge_(make(WORLDS[world]))
    judged = [c for c in checks if c.outcome in ("holds", "within noise", "fails")]
    assert judged and all(c.text for c in checks)
    assert verdict(checks) == world, "\n".join(f"{c.outcome}: {c.describe()}" for c in checks)
    for c in judged:
        if c.seeds:
            assert len(c.seeds) == 2 and math.isfinite(c.value)


def test_one_seed_is_at_most_partly():
    for rule, (judge_, make) in RULES.items():
        if rule == "fig2":  # its overlap check needs two seeds and reads "not run" with one
            checks = judge_(make((GOOD,)))
            assert [c.outcome for c in checks][-1] == "not run"
        assert verdict(judge_(make((GOOD,)))) == "partly", rule


def test_section3_uses_the_gradient_of_the_rest_of_the_network(monkeypatch, tmp_path):
    """The rule reads the first-order term with the gradient of the blocks above i at h_i
    (probes.FirstOrder.predicted_taylor), not the gradient through the block."""
    def fake(profile, name, spec, compute, params=None):
        return dict(commit="x", value=dict(actual=[-1.0, -1.0], predicted=[1.0, 1.0], predicted_output=[2.0, 2.0],
                                           predicted_taylor=[-0.9, -0.9], identity=[True, True], n=10))

    monkeypatch.setattr(store, "result", fake)
    data = figures.taylor(profiles.setting("smoke"), archs=("resnet32",))
    assert data.panels["resnet32"]["first-order"].runs == [[-0.9, -0.9]]
    assert data.extra["other_gradients"]["resnet32"]["through the block"].runs == [[1.0, 1.0]]


def test_fig3_judges_drops_relative_to_accuracy_above_chance():
    """A 0.35 drop is catastrophic at 52 % (of 0.42 above chance) though small at 93 %."""
    checks = scorecard._fig3(fig3_data((GOOD, GOOD)))
    assert checks[0].value == pytest.approx((0.505 - 0.15) / (0.505 - 0.1), rel=1e-3) and checks[0].holds


def test_fig4_reads_zero_within_noise_as_its_own_outcome():
    data = fig4_data((GOOD, GOOD))
    runs = data.panels["wide"]["validation"].runs
    for run in runs:
        run[3] = 0.0005  # indistinguishable from zero at a sampling error of 0.001
    check = scorecard._fig4(data)[3]
    assert check.outcome == "within noise" and check.counts == "1 zero within noise, 0 positive"
    assert check.label.endswith("(1 zero within noise, 0 positive; = 1)")


def test_fig7_judges_and_shows_every_scale():
    checks = scorecard._fig7(fig7_data((GOOD, GOOD), missing=(0.25, 0.75)))
    assert {c.group for c in checks} == {"", "scale 0.5", "scale 0.25", "scale 0.75"}
    assert [c.reason for c in checks if c.group == "scale 0.75"] == ["this scale's unrolling is not stored for this profile"]
    row = scorecard.Row("Fig. 7", "claim", checks, verdict(checks))
    assert "scale 0.25: all checks: not run" in row.text() and row.verdict == "reproduced"


def test_table1_counts_parameters_of_the_trained_networks():
    """Full-width counts may match the paper; the check reads the widths that were trained."""
    far = dict(resnet38=1000, resnet56=2000, **{"resnet110-ubn": 1800})
    check = scorecard._table1(table1_data((GOOD, GOOD), params=far))[0]
    assert check.value == pytest.approx(0.8) and check.outcome == "fails"


def test_accuracy_gaps_within_the_test_sets_sampling_error_read_within_noise():
    """Two networks' test errors 0.3 % apart on 10,000 images (binomial s.e. of the gap ~0.37 %
    per seed, ~0.26 % for a two-seed mean) cannot be told apart; 1 % apart they can."""
    close = scorecard._table1(table1_data((GOOD, GOOD), ubn=7.2))[1]
    assert close.value == pytest.approx(-0.3) and close.outcome == "within noise"
    assert close.sampling == pytest.approx(100 * math.sqrt((0.072 * 0.928 + 0.075 * 0.925) / 10_000 / 2), rel=1e-2)
    assert "(seeds -0.3, -0.3); test-set sampling ± 0.26 s.e.; paper" in close.describe()  # the verdict box too
    assert scorecard._table1(table1_data((GOOD, GOOD)))[1].outcome == "holds"
    shown = scorecard.reported("a share", [0.3, 0.4], paper="0.5")  # positional fields keep their meaning
    assert shown.sampling == 0 and shown.describe().endswith("; paper: 0.5")
    paper_gap = scorecard.accuracy_sampling([(1, [0.0662] * 4), (-1, [0.0699] * 4)], "cifar10")  # 4 runs
    assert 2 * paper_gap == pytest.approx(0.0036, abs=1e-4)  # the paper's 0.37 % gap sits just outside
    fig9 = scorecard._fig9(fig9_data((GOOD,)))[-2]  # 2·acc1 - acc0 - acc2 when the largest later gain is the 2nd
    p = [0.3, 0.6, 0.65]
    assert fig9.sampling == pytest.approx(math.sqrt((4 * p[1] * (1 - p[1]) + p[0] * (1 - p[0]) + p[2] * (1 - p[2]))
                                                    / 10_000), rel=1e-2)
    digits = scorecard.accuracy_sampling([(1, [0.9]), (-1, [0.8])], "digits")  # 500 test images: wider
    assert digits == pytest.approx(math.sqrt((0.09 + 0.16) / 500))


def test_fig9_reads_not_run_where_the_later_variants_have_no_accuracy():
    """Variants whose runs left no record (diverged at once) give no gain to judge: "not run",
    not an error while estimating the sampling error."""
    d = fig9_data((GOOD,))
    for label in list(d.panels["validation accuracy"])[2:]:
        d.panels["validation accuracy"][label] = series([[math.nan, math.nan]])
    outcomes = [c.outcome for c in scorecard._fig9(d)]
    assert outcomes[0] == "holds" and outcomes[1:4] == ["not run"] * 3


# ----------------------------------------------------------------------------- rows and rendering


def test_published_rows_never_read_another_profile(tmp_path, monkeypatch):
    """CIFAR-100 rows read "not run" with the reason; no row is filled from smoke."""
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(E, "trained", lambda spec: pytest.fail("the scorecard trained"))
    rows = scorecard.rows("cifar10-cpu")
    assert len(rows) == len(scorecard.CLAIMS)
    for claim, row in zip(scorecard.CLAIMS, rows):
        assert "smoke" not in row.evidence
        if claim.part in profiles.CIFAR10_CPU.omitted:
            assert row.verdict == "not run" and profiles.CIFAR10_CPU.omitted[claim.part] in row.reason
        elif (claim.key, "cifar10-cpu") in scorecard.UNSTORED:
            assert row.verdict == "not run" and row.reason
        else:
            assert row.verdict == "not yet run"
    text = scorecard.markdown(rows)
    assert "no CIFAR-100" in text and scorecard.counts(rows)["n_not_run"] == 5


def test_markdown_shows_outcome_spread_and_paper_beside_each_number():
    check = judge("first block's ratio", [1.5, 1.7], above=1, paper="~2")
    line = scorecard.markdown([scorecard.Row("Fig. 2", "claim", [check], verdict([check]))]).splitlines()[-1]
    assert "holds: first block's ratio: **1.6** ± 0.1 s.e. (seeds 1.5, 1.7); paper: ~2" in line
    assert "**reproduced**" in line
    counts = scorecard.counts([scorecard.Row("a", "b", [check], "reproduced")])
    assert counts["n_reproduced"] == 1 and counts["n_within_noise"] == 0 and counts["n_rows"] == 1


def test_a_diverged_network_reads_not_run_with_the_reason(tmp_path, monkeypatch):
    import dataclasses

    def diverges(setting):
        raise E.Diverged("resnet110-shared seed 0 diverged at epoch 3")

    claim = dataclasses.replace(next(c for c in scorecard.CLAIMS if c.key == "shared_cos"), compute=diverges)
    monkeypatch.setattr(scorecard, "CLAIMS", [claim])
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path))
    row, = scorecard.rows("smoke")
    assert row.verdict == "not run" and "diverged at epoch 3" in row.reason and "diverged" in row.text()


def test_block_figures_of_a_diverged_network_raise_diverged(tmp_path, monkeypatch):
    """Read from stored results alone: the run's history says it diverged, so the row can say why."""
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path))
    setting = profiles.setting("smoke", part="sharing")
    spec = setting.spec("resnet110-shared", 0)
    store.result("smoke", "history", spec, lambda: dict(records=[], diverged=2))
    with store.cached_only(), pytest.raises(E.Diverged, match="diverged at epoch 2"):
        figures.figure4(setting, archs=scorecard.APPENDIX_D)
    row = next(r for r in scorecard.rows("smoke") if r.item == "Appendix D")
    assert row.verdict == "not run" and "diverged at epoch 2" in row.reason
