"""The reproduction scorecard: one row per claim of PAPER.md section 5, verdicts computed from results.

Each ``Claim`` names the figure it checks, the paper's statement, the function that computes
the figure's data (``figures``), and a rule: a list of named conditions, each measured on our
data. The verdict is

- **reproduced** when every condition holds,
- **partly** when at least half hold,
- **not** when fewer than half hold,
- **not yet run** when the results are not in the results folder (the scorecard never trains).

Nothing here is typed by hand: the paper's numbers come from ``paper``, ours from ``results/``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import experiments, figures, paper
from .figures import FigureData

VERDICTS = ("reproduced", "partly", "not", "not yet run")


@dataclass
class Check:
    """One condition of a rule: its description, the number measured, and whether it holds."""

    text: str
    value: float
    holds: bool


@dataclass
class Row:
    item: str
    claim: str
    checks: list[Check]
    verdict: str
    caption: str = ""
    evidence: str = ""  # which profile's results (see ``evidence``)
    standing_in: bool = False  # read from the fallback profile: the profile asked for omits this part

    def text(self) -> str:
        """The quoted numbers, one per line, and the verdict (deterministic: what nbval checks)."""
        lines = [f"{'yes' if c.holds else 'no ':>3}  {c.text}: {c.value:.3g}" for c in self.checks]
        return "\n".join(lines + [f"verdict: {self.verdict}"])

    @property
    def numbers(self) -> dict[str, float]:
        return {f"c{k}": c.value for k, c in enumerate(self.checks)}


def verdict(checks: list[Check]) -> str:
    held = sum(c.holds for c in checks)
    return "reproduced" if held == len(checks) else "partly" if 2 * held >= len(checks) else "not"


# ----------------------------------------------------------------------------- rules


def _val(data: FigureData, arch: str, curve: str = "validation") -> np.ndarray:
    return data.panels[arch][curve].mean


def _fig2(d: FigureData) -> list[Check]:
    sharp = {a: _val(d, a)[0] / np.median(_val(d, a)[1:]) for a in d.panels}
    checks = [Check(f"{a}: first block's ratio / median of the others (> 2)", sharp[a], sharp[a] > 2)
              for a in ("single-representation", "avg-pooling")]
    flat = max(sharp["resnet110"], sharp["wide"])
    steep = min(sharp["single-representation"], sharp["avg-pooling"])
    checks.append(Check("flattest of resnet110 / wide, same measure (below both of the above)", flat, flat < steep))
    gap = max(float(np.mean(np.abs(_val(d, a, "train") - _val(d, a)) / np.abs(_val(d, a)))) for a in d.panels)
    checks.append(Check("largest mean |train - validation| / validation over architectures (< 0.2)", gap, gap < 0.2))
    return checks


def _fig3(d: FigureData) -> list[Check]:
    checks = []
    for a in d.panels:
        base = float(d.extra["baseline"][a].mean[0])
        drops = base - _val(d, a)  # NaN for projection blocks
        if a in ("single-representation", "avg-pooling"):
            checks.append(Check(f"{a}: accuracy lost dropping block 1 (> 0.3)", drops[0], drops[0] > 0.3))
            rest = float(np.nanmedian(drops[len(drops) // 2:]))
            checks.append(Check(f"{a}: median loss dropping an upper-half block (< 0.05)", rest, rest < 0.05))
        else:
            worst = float(np.nanmax(drops))
            checks.append(Check(f"{a}: largest accuracy lost dropping any block (< 0.1)", worst, worst < 0.1))
    return checks


def _fig4(d: FigureData) -> list[Check]:
    checks = []
    for a in d.panels:
        cos = _val(d, a)
        checks.append(Check(f"{a}: share of blocks with negative validation cosine (>= 0.9)",
                            float(np.mean(cos < 0)), float(np.mean(cos < 0)) >= 0.9))
    upper = {a: float(np.mean(_val(d, a)[len(_val(d, a)) // 2:]) - np.mean(_val(d, a)[: len(_val(d, a)) // 2]))
             for a in d.panels}
    worst = max(upper.values())
    checks.append(Check("largest (upper-half mean - lower-half mean) cosine over architectures (< 0)", worst, worst < 0))
    return checks


def _fig5(d: FigureData) -> list[Check]:
    checks = []
    for a, curves in d.panels.items():
        final = np.array([s.mean[-1] for s in curves.values()])  # per block of the last stage, last epoch
        rises = float(np.mean(np.diff(final) >= 0)) if len(final) > 1 else 1.0
        checks.append(Check(f"{a}: share of last-stage blocks that do not lower accuracy at the end (>= 0.7)",
                            rises, rises >= 0.7 and final[-1] > final[0]))
    return checks


def _fig6(d: FigureData) -> list[Check]:
    acc = d.panels["validation acc"]
    ent = d.panels["validation entropy"]
    gain = float(acc["borderline"].mean[-1] - acc["borderline"].mean[0])
    overall = float(abs(acc["all"].mean[-1] - acc["all"].mean[0]))
    falls = all(ent[g].mean[-1] < ent[g].mean[0] for g in ent)
    return [Check("validation accuracy gained on borderline examples over the last blocks (> 0)", gain, gain > 0),
            Check("entropy falls over the last blocks for all three groups (1 = yes)", float(falls), falls),
            Check("|change| of overall validation accuracy over the last blocks (< 0.05)", overall, overall < 0.05)]


def _fig7(d: FigureData) -> list[Check]:
    scaled = [k for k in d.panels["train loss"] if k.startswith("all") and not k.endswith("scale 1")][0]
    s = scaled.split("scale ")[1]
    train = d.panels["train loss"][scaled].mean
    border = d.panels["validation acc"][f"borderline, scale {s}"].mean
    cos = d.panels["validation cos"][f"scale {s}"].mean
    return [Check(f"train loss after all extra steps - before, scale {s} (<= 0)", float(train[-1] - train[0]),
                  train[-1] <= train[0]),
            Check(f"borderline validation accuracy after - before, scale {s} (>= 0)", float(border[-1] - border[0]),
                  border[-1] >= border[0]),
            Check(f"share of scaled steps with negative cosine (= 1)", float(np.mean(cos < 0)), bool(np.all(cos < 0)))]


def _taylor(d: FigureData) -> list[Check]:
    checks = []
    for a, curves in d.panels.items():
        actual, pred = curves["measured"].mean, curves["first-order"].mean
        top = slice(len(actual) // 2, None)
        agree = float(np.mean(np.sign(actual[top]) == np.sign(pred[top])))
        checks.append(Check(f"{a}: upper-half blocks where the first-order term has the measured sign (>= 0.8)",
                            agree, agree >= 0.8))
    return checks


def _final(series) -> float:
    """The last defined value of a curve's mean (a diverged run's curve stops early)."""
    m = series.mean
    defined = m[~np.isnan(m)]
    return float(defined[-1]) if len(defined) else float("nan")


def _growth(series) -> float:
    """How much the activation norm grows from the stem's output to the last hidden state."""
    return float(series.mean[-1] / series.mean[0])


def _fig8(d: FigureData) -> list[Check]:
    shared, ref = d.extra["shared"], d.extra["reference"]
    acc = d.panels["accuracy"]
    gap = _final(acc[f"{ref} validation"]) - _final(acc[f"{shared} validation"])
    act = d.panels["activation norm at initialisation"]
    blow = _growth(act[shared]) / _growth(act[ref])
    r = float(d.extra["init_ratio"][shared].mean[0] / d.extra["init_ratio"][ref].mean[0])
    return [Check(f"final validation accuracy, {ref} - naive {shared} (> 0)", gap, gap > 0),
            Check(f"activation-norm growth over depth at init, naive shared / {ref} (> 1.5)", blow, blow > 1.5),
            Check(f"gradient-norm ratio r at init, naive shared / {ref} (> 1)", r, r > 1)]


def _fig9(d: FigureData) -> list[Check]:
    labels = list(d.panels["validation accuracy"])
    acc = [_final(d.panels["validation accuracy"][k]) for k in labels]
    gains = np.diff(acc)
    better = float(np.mean(np.array(acc[1:]) > acc[0]))
    act = d.panels["activation norm at initialisation"]
    calm = min(_growth(act[k]) for k in labels[1:]) / _growth(act[labels[0]])
    return [Check("share of fixed variants with higher final validation accuracy than naive sharing (= 1)",
                  better, better == 1),
            Check("gain from per-step BN statistics minus the largest later gain (>= 0)",
                  float(gains[0] - gains[1:].max()), bool(gains[0] >= gains[1:].max())),
            Check("smallest activation-norm growth at init of a fixed variant / naive's (< 0.5)", calm, calm < 0.5)]


def _table1(t) -> list[Check]:
    test = {row["arch"]: figures.Series([0], [[e] for e in row["cifar10"]["test_err"]]).mean[0] for row in t.rows}
    matched = float(np.mean([row["params_match"] for row in t.rows]))
    ubn = test["resnet110-ubn"] - test["resnet38"]
    deep = test["resnet110"] - test["resnet32"]
    return [Check("share of models whose parameter count matches the paper's (= 1)", matched, matched == 1),
            Check("CIFAR-10 test error, ResNet-110-UBN - ResNet-38 (< 0: sharing beats the same budget)", ubn, ubn < 0),
            Check("CIFAR-10 test error, ResNet-110 - ResNet-32 (< 0)", deep, deep < 0)]


@dataclass
class Claim:
    key: str
    item: str
    statement: str
    compute: Callable[[experiments.Setting], FigureData]
    rule: Callable[[FigureData], list[Check]]
    part: str = "main"  # the book's part (experiments.PARTS) whose results it reads


#: The shared model of the appendix's per-block figures.
SHARED = ("resnet110-ubn",)


def _c100(fn):
    return lambda s: fn(s, role="cifar100")


CLAIMS = [
    Claim("taylor", "Section 3", "The loss change a block makes is close to its first-order term "
          "F(h)·∂L/∂h where F is small (the top blocks).", figures.taylor, _taylor),
    Claim("fig2", "Fig. 2", "ℓ2 ratio: single-repr. and avg-pool. change the representation strongly in the first "
          "block (ratio up to ~2), then drop; ResNet-110 and wide are flatter; train and validation overlap.",
          figures.figure2, _fig2),
    Claim("fig3", "Fig. 3", "Dropping the first block(s) of single-repr. / avg-pool. is catastrophic, higher "
          "blocks cost little; ResNet-110 and wide show no drastic drop anywhere.", figures.figure3, _fig3),
    Claim("fig4", "Fig. 4", "The cosine loss is negative for all blocks and most negative for the higher blocks.",
          figures.figure4, _fig4),
    Claim("fig5", "Fig. 5", "Accuracy rises gradually block by block within the last stage.", figures.figure5, _fig5),
    Claim("fig6", "Fig. 6", "Over the last 5 blocks of ResNet-110 many borderline examples are corrected, entropy "
          f"falls for all groups, overall accuracy changes little; the last block's cosine is about "
          f"{paper.LAST_BLOCK_COSINE}.", figures.figure6, _fig6),
    Claim("fig7", "Fig. 7", f"Unrolling the last block {paper.UNROLL_STEPS} extra steps with output scaling: train "
          f"loss {paper.UNROLL_TRAIN_LOSS[0]} → {paper.UNROLL_TRAIN_LOSS[1]}, borderline test accuracy "
          f"{paper.UNROLL_BORDERLINE_ACC[0]:.0%} → {paper.UNROLL_BORDERLINE_ACC[1]:.0%} "
          f"(~{paper.UNROLL_BORDERLINE_COUNT} examples); the cosine stays negative.", figures.figure7, _fig7),
    Claim("fig2-c100", "Fig. 2 (CIFAR-100)", "Same as Fig. 2 on CIFAR-100.", _c100(figures.figure2), _fig2, "cifar100"),
    Claim("fig3-c100", "Fig. 3 (CIFAR-100)", "Same as Fig. 3 on CIFAR-100.", _c100(figures.figure3), _fig3, "cifar100"),
    Claim("fig4-c100", "Fig. 4 (CIFAR-100)", "Same as Fig. 4 on CIFAR-100.", _c100(figures.figure4), _fig4, "cifar100"),
    Claim("fig5-c100", "Fig. 5 (CIFAR-100)", "Same as Fig. 5 on CIFAR-100.", _c100(figures.figure5), _fig5, "cifar100"),
    Claim("shared_cos", "Appendix D", "For the shared (UBN) ResNet too, the cosine loss is negative for all blocks "
          "and most negative for the higher blocks.", lambda s: figures.figure4(s, archs=SHARED), _fig4, "sharing"),
    Claim("fig8", "Fig. 8", "Naive sharing of the top 13 blocks of every stage gives lower validation accuracy than "
          "ResNet-32; activations and gradients explode at initialisation (r much larger).", figures.figure8, _fig8,
          "sharing"),
    Claim("fig9", "Fig. 9", "Unshared BN statistics, γ initialised to 0.1 and unshared γ/β each help; unsharing BN "
          "statistics matters most; the initial activation explosion drops sharply.", figures.figure9, _fig9,
          "sharing"),
    Claim("table1", "Table 1", "ResNet-110-UBN reaches {:.2f} % test error on CIFAR-10 against {:.2f} % for ResNet-38 "
          "at a similar parameter count; ResNet-110 {:.2f} % against ResNet-32 {:.2f} %.".format(
              paper.TABLE1["cifar10"]["resnet110-ubn"][1], paper.TABLE1["cifar10"]["resnet38"][1],
              paper.TABLE1["cifar10"]["resnet110"][1], paper.TABLE1["cifar10"]["resnet32"][1]),
          figures.table1, _table1, "sharing"),
]


def check(key: str, data: FigureData) -> Row:
    """The scorecard row of claim ``key`` measured on ``data``."""
    claim = next((c for c in CLAIMS if c.key == key), None)
    if claim is None:
        raise ValueError(f"unknown claim {key!r}; choose one of: {', '.join(c.key for c in CLAIMS)}")
    checks = claim.rule(data)
    return Row(claim.item, claim.statement, checks, verdict(checks), data.caption())


def rows(profile: str | None = None, device: str | None = None, seeds: int | None = None) -> list[Row]:
    """Every claim's row from the stored results of ``profile`` ("not yet run" where missing);
    a part the profile omits is read from its fallback profile, and the row says so."""
    out = []
    with experiments.cached_only():
        for claim in CLAIMS:
            setting = experiments.setting(profile, device, seeds, part=claim.part)
            try:
                row = check(claim.key, claim.compute(setting))
            except experiments.MissingResult:
                row = Row(claim.item, claim.statement, [], "not yet run")
            row.evidence, row.standing_in = evidence(setting), setting.standing_in is not None
            out.append(row)
    return out


def evidence(setting: experiments.Setting) -> str:
    """Which profile's results a row or notebook reads (and, for a stand-in, why)."""
    p = setting.profile
    text = f"`{p.name}` ({', '.join(sorted(set(p.datasets.values())))}, {len(setting.seeds)} seed(s))"
    if setting.standing_in is not None:
        asked, why = setting.standing_in
        text += f", standing in: `{asked}` omits this part ({why})"
    return text


def markdown(rows: list[Row]) -> str:
    """A markdown table: item, the paper's claim, what we measured, the verdict, the evidence."""
    lines = ["| item | the paper | ours | verdict | evidence |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        ours = "<br>".join(f"{c.text}: **{c.value:.3g}** ({'holds' if c.holds else 'fails'})" for c in r.checks) or "—"
        cells = [r.item, r.claim, ours, f"**{r.verdict}**", r.evidence]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")  # |x| is not a column
    return "\n".join(lines)


def describe(setting: experiments.Setting) -> str:
    """The top of a notebook: which profile, device and seeds produced its numbers."""
    p = setting.profile
    text = (f"**Profile `{p.name}`**: {p.description}. Device `{setting.device}`, "
            f"{len(setting.seeds)} seed(s), commit `{experiments.commit()}`.")
    if setting.standing_in is not None:
        asked, why = setting.standing_in
        text = (f"**Standing in.** Profile `{asked}` does not run this part of the book ({why}); "
                f"what follows is profile `{p.name}`'s evidence.\n\n" + text)
    return text
