"""The reproduction scorecard: one row per claim of PAPER.md section 5, verdicts computed from results.

Each ``Claim`` names the figure it checks, the paper's statement, the function that computes
the figure's data (``figures``), and a rule: a list of ``Check``s, each one sentence of the
paper made measurable on every seed. A check's outcome follows the **noise rule** (``judge``):

- **holds** when the condition holds for the seed mean and for a majority of seeds, or when the
  mean's margin exceeds twice its standard error across seeds;
- **fails** when the opposite holds in the same sense;
- **within noise** otherwise, or when the margin is within twice the sampling error of the
  measurement itself (finite examples per seed), where a rule supplies it (the cosines of Fig. 4;
  every comparison of two networks' test accuracies, ``accuracy_sampling``);
- **not run** when the data the check needs is not stored for this profile (with the reason);
- **reported** for a number shown beside the paper's without a verdict (e.g. a group's size).

The row's verdict (``verdict``):

- **reproduced** when every check holds, each on two seeds or more, and none was left unrun;
- **partly** when at least half hold (also: every check holds but one of them rests on one
  seed, so it cannot be told from seed-to-seed noise, or part of the claim was not run);
- **within noise** when fewer than half hold and none fails;
- **not** when fewer than half hold and at least one fails;
- **not run** when the profile does not run this part of the paper, or has not stored what the
  rule needs (the row says why: it is never filled with another profile's evidence);
- **not yet run** when results are simply missing (the scorecard never trains).

Rules whose checks come in alternatives (Fig. 7: one set per output scale, since the paper
does not give its scale) take the best alternative's verdict and show every one.

Nothing here is typed by hand: the paper's numbers come from ``paper``, ours from ``results/``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import data, experiments, figures, paper, profiles, store
from .figures import FigureData

VERDICTS = ("reproduced", "partly", "within noise", "not", "not yet run", "not run")
OUTCOMES = ("holds", "within noise", "fails", "not run", "reported")
_JUDGED = ("holds", "within noise", "fails")


@dataclass
class Check:
    """One condition of a rule: what it measures, the seed-mean value, and its outcome.

    ``text`` is the condition, ending with its bound in parentheses ("... (< 0)"): the same at
    every profile. ``seeds`` holds the value of every seed ([] for a number that is not per seed,
    e.g. a parameter count), ``se`` its standard error across seeds (NaN with one seed), ``paper``
    the paper's number where it gives one, ``group`` the alternative it belongs to (Fig. 7's
    scales), ``reason`` why it was not run, ``counts`` what the measurement counted, quoted beside
    the bound ("3 zero within noise, 1 positive"), ``sampling`` the standard error the finite test
    examples alone give the seed mean (0: not supplied). ``holds`` mirrors ``outcome == "holds"``."""

    text: str
    value: float
    holds: bool
    outcome: str = ""
    seeds: list[float] = field(default_factory=list)
    se: float = math.nan
    paper: str = ""
    group: str = ""
    reason: str = ""
    counts: str = ""
    sampling: float = 0.0

    def __post_init__(self):
        self.outcome = self.outcome or ("holds" if self.holds else "fails")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; choose one of: {', '.join(OUTCOMES)}")
        self.holds = self.outcome == "holds"

    @property
    def label(self) -> str:
        """The condition as a page shows it: its counts quoted inside the bound's parentheses."""
        if not self.counts:
            return self.text
        condition, bound = self.text.rsplit(" (", 1)
        return f"{condition} ({self.counts}; {bound}"

    @property
    def spread(self) -> str:
        """The noise beside the number: the seed spread, '± s.e. (seeds a, b, c)', '(1 seed)' or '',
        then the test examples' sampling error where the rule supplies it."""
        if len(self.seeds) > 1:
            out = f"± {self.se:.2g} s.e. (seeds {', '.join(f'{v:.3g}' for v in self.seeds)})"
        else:
            out = "(1 seed)" if self.seeds else ""
        return out + (f"; test-set sampling ± {self.sampling:.2g} s.e." if self.sampling else "")

    def describe(self, bold: bool = False) -> str:
        """'text: value ± spread; paper: x' (or the reason it was not run)."""
        if self.outcome == "not run":
            return f"{self.label}: not run ({self.reason})"
        number = f"**{self.value:.3g}**" if bold else f"{self.value:.3g}"
        out = " ".join(p for p in (f"{self.label}: {number}", self.spread) if p)
        return out + (f"; paper: {self.paper}" if self.paper else "")


@dataclass
class Row:
    item: str
    claim: str
    checks: list[Check]
    verdict: str
    caption: str = ""
    evidence: str = ""  # which profile's results (see ``evidence``)
    reason: str = ""  # why a row reads "not run" / "not yet run"
    key: str = ""  # the claim's key in ``CLAIMS``

    def text(self) -> str:
        """Each check's outcome, number and spread, one per line, and the verdict (deterministic:
        what nbval checks)."""
        lines = [f"{c.outcome:>12}  {(c.group + ': ') if c.group else ''}{c.describe()}" for c in self.checks]
        return "\n".join(lines + [f"verdict: {self.verdict}" + (f" ({self.reason})" if self.reason else "")])


# ----------------------------------------------------------------------------- the noise rule


def judge(text: str, per_seed, above: float | None = None, below: float | None = None, sampling: float = 0.0,
          paper: str = "", group: str = "") -> Check:
    """The check 'value > above' (or 'value < below') on every seed's value, by the noise rule
    (module docstring). ``sampling``: the standard error of the seed mean due to the finite
    examples each seed was measured on; a margin within twice it reads "within noise"."""
    if (above is None) == (below is None):
        raise ValueError("judge: give exactly one of above= or below=")
    v = np.asarray(per_seed, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Check(text, math.nan, False, "not run", paper=paper, group=group, reason="no defined value")
    sign, bound = (1.0, above) if above is not None else (-1.0, below)
    margins = sign * (v - bound)  # > 0 where the condition holds on that seed
    mean = float(v.mean())
    margin = sign * (mean - bound)
    n = v.size
    se = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else math.nan
    beyond = n > 1 and abs(margin) > 2 * se
    if abs(margin) <= 2 * sampling or margin == 0:
        outcome = "within noise"
    elif margin > 0 and (2 * np.sum(margins > 0) > n or beyond):
        outcome = "holds"
    elif margin < 0 and (2 * np.sum(margins < 0) > n or beyond):
        outcome = "fails"
    else:
        outcome = "within noise"
    return Check(text, mean, False, outcome, [float(x) for x in v], se, paper, group, sampling=sampling)


def accuracy_sampling(accuracies: list, dataset: str, scale: float = 1.0) -> float:
    """The sampling error, from the test examples alone, of the seed mean of Σ w·accuracy over
    several networks (``accuracies``: (w, per-seed accuracies) pairs, as fractions of ``scale``:
    100 for errors in %): each network's accuracy a binomial proportion p over the
    dataset's test examples n, the networks independent, the seeds too (as for the cosines):
    √(Σ w² p(1-p)/n / seeds), in the accuracies' own units."""
    n = data.TEST_EXAMPLES[dataset]
    var, seeds = 0.0, 1
    for w, per_seed in accuracies:
        v = np.asarray(per_seed, dtype=float) / scale
        v = v[~np.isnan(v)]
        if v.size:
            p = float(v.mean())
            var += w * w * p * (1 - p) / n
            seeds = max(seeds, v.size)
    return scale * math.sqrt(var / seeds)


def fixed(text: str, value: float, holds: bool, paper: str = "") -> Check:
    """A check on a number that does not vary with the seed (e.g. a parameter count)."""
    return Check(text, float(value), bool(holds), paper=paper)


def reported(text: str, per_seed, paper: str = "") -> Check:
    """A number shown beside the paper's, without a verdict (a scalar: not a per-seed number)."""
    if np.isscalar(per_seed):
        return Check(text, float(per_seed), False, "reported", paper=paper)
    v = np.asarray(per_seed, dtype=float).ravel()
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else math.nan
    return Check(text, float(np.nanmean(v)), False, "reported", [float(x) for x in v], se, paper)


def not_run(text: str, reason: str, group: str = "") -> Check:
    return Check(text, math.nan, False, "not run", group=group, reason=reason)


_RANK = ("reproduced", "partly", "within noise", "not")


def _verdict(checks: list[Check]) -> str:
    judged = [c for c in checks if c.outcome in _JUDGED]
    if not judged:
        return "not run"
    held = sum(c.outcome == "holds" for c in judged)
    failed = sum(c.outcome == "fails" for c in judged)
    capped = any(c.outcome == "not run" for c in checks) or any(len(c.seeds) == 1 for c in judged)
    if held == len(judged):
        return "partly" if capped else "reproduced"
    if 2 * held >= len(judged):
        return "partly"
    return "not" if failed else "within noise"


def verdict(checks: list[Check]) -> str:
    """The row's verdict (module docstring); with grouped checks, the best group's (common checks
    count in every group; a group none of whose checks was run is skipped)."""
    groups = list(dict.fromkeys(c.group for c in checks if c.group))
    if not groups:
        return _verdict(checks)
    common = [c for c in checks if not c.group]
    options = [_verdict(common + [c for c in checks if c.group == g]) for g in groups
               if any(c.group == g and c.outcome in _JUDGED for c in checks)]
    options = [v for v in options if v in _RANK]
    return min(options, key=_RANK.index) if options else _verdict(common)


# ----------------------------------------------------------------------------- helpers


def _seeds(series: figures.Series) -> np.ndarray:
    """(seeds, len(x)) per-seed values of a curve."""
    return series.values


def _last_defined(values: np.ndarray) -> np.ndarray:
    """Per seed (row), the last defined value (a diverged run's curve stops early)."""
    out = []
    for run in values:
        defined = run[~np.isnan(run)]
        out.append(defined[-1] if len(defined) else np.nan)
    return np.array(out)


def _trend(values: np.ndarray) -> np.ndarray:
    """Per seed, Spearman's rank correlation of the values with their position (-1: falls throughout)."""
    out = []
    for run in values:
        ranks = np.argsort(np.argsort(run))
        out.append(np.corrcoef(np.arange(len(run)), ranks)[0, 1] if len(run) > 1 else np.nan)
    return np.array(out)


STEEP = ("single-representation", "avg-pooling")  # the paper's representation-learning networks
FLAT = ("resnet110", "wide")


# ----------------------------------------------------------------------------- rules


def _taylor(d: FigureData) -> list[Check]:
    """Section 3: "L(h_i + F(h_i)) ≈ L(h_i) + F(h_i)·∂L/∂h_i, good where F is small: the top blocks".

    Measured per block and seed: the loss change the block makes (the rest of the network read
    with and without its branch) against eq. 3's first-order term, ``F_i(h_i)`` dotted with the
    gradient of the rest of the network (the blocks above ``i``) at ``h_i``. Per architecture:

    - sign: in the upper half of the blocks the first-order term has the measured sign in more
      than 90 % of them (the paper calls the expansion good there, i.e. in all of them; the tenth
      allows blocks whose change is near zero, where a sign is a coin flip);
    - size: in the upper half, the summed |measured - first-order| is below the summed |measured|:
      the remainder is smaller than the change it expands (what "first order is good" means);
    - upper vs lower: that relative error is smaller in the upper half than in the lower half
      (the paper's reason: F is small at the top);
    - reported: the median ratio first-order / measured over the upper half (2 is what a step to
      the minimum of a quadratic along ``F`` gives).
    """
    checks = []
    for a, curves in d.panels.items():
        actual, pred = _seeds(curves["measured"]), _seeds(curves["first-order"])
        half = actual.shape[1] // 2
        up, low = slice(half, None), slice(None, half)
        agree = np.mean(np.sign(actual[:, up]) == np.sign(pred[:, up]), axis=1)

        def rel(part):
            return np.sum(np.abs(actual[:, part] - pred[:, part]), 1) / np.sum(np.abs(actual[:, part]), 1)

        checks += [judge(f"{a}: upper-half blocks where the first-order term has the measured sign (> 0.9)",
                         agree, above=0.9),
                   judge(f"{a}: upper half, Σ|measured - first-order| / Σ|measured| (< 1)", rel(up), below=1),
                   judge(f"{a}: that relative error, lower half - upper half (> 0)", rel(low) - rel(up), above=0),
                   reported(f"{a}: median first-order / measured over the upper half (1: exact)",
                            np.median(pred[:, up] / actual[:, up], axis=1))]
    return checks


def _fig2(d: FigureData) -> list[Check]:
    """Fig. 2: "single-repr. and avg-pool. change the representation strongly in the first block
    (ratio up to ~2), then a monotonic drop; ResNet-110 and wide are much flatter; train and
    validation overlap". Validation curves, per seed:

    - first block's ratio > 1 (the block's change exceeds its input: "strongly"; the paper's ~2
      is shown beside);
    - then a drop: Spearman's correlation of the ratio with depth over blocks 2.. is negative;
    - flatter, measured without dividing by the other blocks' level (which small refinement
      blocks make tiny in deep networks): each curve's peak above its own median, max - median;
      the larger of ResNet-110's and wide's is below the smaller of the two others';
    - overlap: for every architecture the mean |train - validation| over blocks is below the
      seed-to-seed difference of the validation curve (twice its standard error, mean over
      blocks): the split makes no more difference than the seed. Needs two seeds.
    """
    val = {a: _seeds(d.panels[a]["validation"]) for a in d.panels}
    checks = []
    for a in STEEP:
        if a in val:
            checks += [judge(f"{a}: first block's l2 ratio (> 1)", val[a][:, 0], above=1,
                             paper=f"~{paper.FIRST_BLOCK_RATIO}"),
                       judge(f"{a}: rank correlation of the ratio with depth after block 1 (< 0)",
                             _trend(val[a][:, 1:]), below=0)]
    if all(a in val for a in STEEP + FLAT):
        rise = {a: np.max(val[a], 1) - np.median(val[a], 1) for a in val}
        checks.append(judge("peak above median ratio, larger of resnet110 / wide - smaller of the two others (< 0)",
                            np.maximum(rise["resnet110"], rise["wide"]) - np.minimum(*(rise[a] for a in STEEP)),
                            below=0))
    gaps, noise = [], []
    for a in val:
        train = _seeds(d.panels[a]["train"])
        gaps.append(np.mean(np.abs(np.nanmean(train, 0) - np.nanmean(val[a], 0))))
        n = val[a].shape[0]
        noise.append(np.mean(2 * np.std(val[a], 0, ddof=1) / np.sqrt(n)) if n > 1 else np.nan)
    worst = float(np.max(np.array(gaps) / np.array(noise)))
    text = "largest mean |train - validation| / seed-to-seed difference over architectures (< 1)"
    if np.isnan(worst):
        checks.append(not_run(text, "one seed: no seed-to-seed difference to compare with"))
    else:
        checks.append(fixed(text, worst, worst < 1))
    return checks


def _fig3(d: FigureData) -> list[Check]:
    """Fig. 3: "dropping the first block(s) of single-repr. / avg-pool. is catastrophic, higher
    blocks cost little; ResNet-110 and wide show no drastic drop anywhere".

    A drop is measured relative to what the network has learnt: (accuracy - accuracy without
    the block) / (accuracy - chance), per seed, so that it means the same at 52 % and at 93 %.
    "Catastrophic" / "drastic" = more than half of it lost; "little" = under a tenth, a fifth of
    that (the paper gives no number; these are the two readings, stated).
    """
    chance = d.extra.get("chance", 0.1)
    checks = []
    for a in d.panels:
        base = _seeds(d.extra["baseline"][a])[:, 0]
        rel = (base[:, None] - _seeds(d.panels[a]["validation"])) / (base[:, None] - chance)  # NaN: projection
        if a in STEEP:
            upper = rel[:, rel.shape[1] // 2:]
            checks += [judge(f"{a}: share of above-chance accuracy lost dropping block 1 (> 0.5)", rel[:, 0], above=0.5),
                       judge(f"{a}: median share lost dropping an upper-half block (< 0.1)",
                             np.nanmedian(upper, 1), below=0.1)]
        else:
            checks.append(judge(f"{a}: largest share of above-chance accuracy lost dropping any block (< 0.5)",
                                np.nanmax(rel, 1), below=0.5))
    return checks


def _block_signs(cos: np.ndarray, sampling: np.ndarray) -> list[str]:
    """Per block, the noise rule's outcome for 'cosine < 0' (holds / within noise / fails)."""
    n = cos.shape[0]
    se = np.sqrt(np.nanmean(sampling ** 2, 0) / n)  # sampling error of the seed mean, per block
    return [judge("", cos[:, b], below=0, sampling=float(se[b])).outcome for b in range(cos.shape[1])]


def _fig4(d: FigureData) -> list[Check]:
    """Fig. 4 (and Appendix D): "the cosine loss is negative for all blocks, most negative for
    the higher blocks; deeper nets (ResNet-110, avg-pool.) reach more negative values".

    Validation cosines, per seed. Each block is negative, zero within noise or positive by the
    noise rule, where a margin within twice the sampling error (per-example spread / √n) is zero:
    - all blocks negative: holds when every block is negative, fails when any is positive,
      within noise when the others are zero within noise;
    - higher blocks more negative: upper-half mean - lower-half mean < 0, per architecture;
    - deeper nets more negative: the most negative block of ResNet-110 and of avg-pool. lies
      below that of single-repr. and of wide (larger of the first two - smaller of the others < 0).
    """
    checks = []
    for a in d.panels:
        cos, sampling = _seeds(d.panels[a]["validation"]), _seeds(d.extra["sampling"][a]["validation"])
        signs = _block_signs(cos, sampling)
        share = signs.count("holds") / len(signs)
        outcome = "holds" if share == 1 else "fails" if "fails" in signs else "within noise"
        per_seed = np.mean(cos < -2 * sampling, 1)  # each seed alone: negative beyond its sampling error
        se = float(np.std(per_seed, ddof=1) / np.sqrt(len(cos))) if len(cos) > 1 else math.nan
        checks.append(Check(f"{a}: share of blocks with validation cosine negative beyond noise (= 1)",
                            share, False, outcome, [float(v) for v in per_seed], se,
                            counts=f"{signs.count('within noise')} zero within noise, {signs.count('fails')} positive"))
    for a in d.panels:
        cos = _seeds(d.panels[a]["validation"])
        half = cos.shape[1] // 2
        checks.append(judge(f"{a}: upper-half mean cosine - lower-half mean (< 0)",
                            cos[:, half:].mean(1) - cos[:, :half].mean(1), below=0))
    if all(a in d.panels for a in STEEP + FLAT):
        low = {a: np.min(_seeds(d.panels[a]["validation"]), 1) for a in d.panels}
        checks.append(judge("most negative cosine, larger of resnet110 / avg-pooling - smaller of "
                            "single-representation / wide (< 0)",
                            np.maximum(low["resnet110"], low["avg-pooling"])
                            - np.minimum(low["single-representation"], low["wide"]), below=0))
    return checks


def _fig5(d: FigureData) -> list[Check]:
    """Fig. 5: "accuracy rises gradually block by block within the last stage".

    At the last epoch, per seed, the head's accuracy on each hidden state of the last stage:
    - rises: last block's accuracy - the stage's first block's > 0;
    - gradually: the largest single block-to-block gain is under half of all the gains summed
      (no one block makes most of the climb; 1 where nothing rises).
    """
    checks = []
    for a, curves in d.panels.items():
        final = np.stack([_last_defined(_seeds(s)) for s in curves.values()], 1)  # (seeds, blocks)
        steps = np.diff(final, axis=1)
        gains = np.where(steps > 0, steps, 0).sum(1)
        largest = np.where(gains > 0, steps.max(1) / np.where(gains > 0, gains, 1), 1.0)  # no rise: 1
        checks += [judge(f"{a}: accuracy after the last block - after the stage's first (> 0)",
                         final[:, -1] - final[:, 0], above=0),
                   judge(f"{a}: largest block-to-block gain / all gains (< 0.5)", largest, below=0.5)]
    return checks


def _fig6(d: FigureData) -> list[Check]:
    """Fig. 6 (ResNet-110, the last 5 blocks, hidden states read by the final head): "a large share
    of borderline examples is corrected; entropy falls for all groups; overall accuracy and loss
    change little; train loss drops uniformly across the last blocks while test loss rises after
    the last block; the last block's cosine is about -0.1". Per seed:

    - borderline validation accuracy, output - first state > 0;
    - entropy, output - first state, largest over the three groups < 0;
    - "little": |change| of overall accuracy (and loss) below the borderline group's change (the
      contrast the paper draws);
    - train loss (all examples) falls at every block: largest block-to-block change < 0;
    - validation loss (all) rises over the last block: output - the state before > 0;
    - the last block's validation cosine within ±0.05 of -0.1 (the rounding interval of a value
      quoted to one digit);
    - the borderline group's share of the validation examples is reported beside the paper's
      (Fig. 7's 51 test examples of 10,000).
    """
    def change(panel, group):
        v = _seeds(d.panels[panel][group])
        return v[:, -1] - v[:, 0]

    ent = np.max(np.stack([change("validation entropy", g) for g in d.panels["validation entropy"]]), 0)
    border, overall = change("validation acc", "borderline"), change("validation acc", "all")
    train = _seeds(d.panels["train loss"]["all"])
    val = _seeds(d.panels["validation loss"]["all"])
    cos = _seeds(d.extra["last_cos"])[:, 0]
    sizes = d.extra["sizes"]["validation"]
    share = [s["borderline"] / s["all"] for s in sizes]
    return [judge("validation accuracy gained on borderline examples over the last blocks (> 0)", border, above=0),
            judge("largest change of validation entropy over the three groups (< 0)", ent, below=0),
            judge("borderline accuracy gain - |change of overall validation accuracy| (> 0)",
                  border - np.abs(overall), above=0),
            judge("|change of borderline validation loss| - |change of overall| (> 0)",
                  np.abs(change("validation loss", "borderline")) - np.abs(change("validation loss", "all")), above=0),
            judge("largest block-to-block change of the train loss (< 0: falls at every block)",
                  np.max(np.diff(train, axis=1), 1), below=0),
            judge("validation loss, output - before the last block (> 0)", val[:, -1] - val[:, -2], above=0),
            judge(f"|last block's validation cosine - ({paper.LAST_BLOCK_COSINE})| (< 0.05)",
                  np.abs(cos - paper.LAST_BLOCK_COSINE), below=0.05,
                  paper=f"{paper.LAST_BLOCK_COSINE}; ours {np.mean(cos):.3g}"),
            reported("borderline share of the validation examples", share,
                     paper=f"{paper.UNROLL_BORDERLINE_COUNT / paper.TEST_EXAMPLES:.2%} "
                           f"({paper.UNROLL_BORDERLINE_COUNT} of {paper.TEST_EXAMPLES:,}, Fig. 7)")]


def _fig7(d: FigureData) -> list[Check]:
    """Fig. 7: "unrolling the last block 20 extra steps with output scaling: train loss falls
    (0.0012 → 0.001), borderline test accuracy rises (43 % → 53 %), test accuracy rises slightly,
    test loss rises; the cosine stays negative for 2 steps without scaling, for all with it".

    The paper does not give its scale, so every scale of the sweep (``figures.UNROLL_SWEEP``) is a
    group of checks, judged and shown; the row takes the best scale. Per seed, after all extra
    steps - before: train loss < 0, borderline validation accuracy > 0, overall validation
    accuracy > 0, validation loss > 0, and the largest cosine of the scaled steps < 0. Without
    scaling (every group): the largest cosine of the first 2 extra steps < 0.
    """
    runs = d.extra["unroll"]

    def delta(scale, split, group, metric):
        v = np.array([r.groups[group][metric] for r in runs[scale][split]], dtype=float)
        return v[:, -1] - v[:, 0]

    plain = np.array([r.cos for r in runs[1.0]["validation"]], dtype=float)
    checks = [judge("no scaling: largest validation cosine of the first 2 extra steps (< 0)",
                    plain[:, 1:3].max(1), below=0)]
    for scale in sorted(set(runs) - {1.0}):
        g = f"scale {scale:g}"
        cos = np.array([r.cos for r in runs[scale]["validation"]], dtype=float)
        checks += [judge("train loss, after - before (< 0)", delta(scale, "train", "all", "loss"), below=0, group=g,
                         paper=f"{paper.UNROLL_TRAIN_LOSS[0]} → {paper.UNROLL_TRAIN_LOSS[1]}"),
                   judge("borderline validation accuracy, after - before (> 0)",
                         delta(scale, "validation", "borderline", "acc"), above=0, group=g,
                         paper=f"{paper.UNROLL_BORDERLINE_ACC[0]:.0%} → {paper.UNROLL_BORDERLINE_ACC[1]:.0%}"),
                   judge("validation accuracy, after - before (> 0)", delta(scale, "validation", "all", "acc"),
                         above=0, group=g),
                   judge("validation loss, after - before (> 0)", delta(scale, "validation", "all", "loss"),
                         above=0, group=g),
                   judge("largest validation cosine of the scaled steps (< 0)", cos[:, 1:].max(1), below=0, group=g)]
    for scale in d.extra.get("missing", []):
        checks.append(not_run("all checks", "this scale's unrolling is not stored for this profile",
                              group=f"scale {scale:g}"))
    return checks


def _growth(values: np.ndarray) -> np.ndarray:
    """Per seed, how much the activation norm grows from the stem's output to the last hidden state."""
    return values[:, -1] / values[:, 0]


def _fig8(d: FigureData) -> list[Check]:
    """Fig. 8: "naive sharing (top 13 blocks of every stage) gives lower validation accuracy than
    ResNet-32; activations and gradients explode at initialisation; r is much larger".

    Per seed: final validation accuracy, ResNet-32 - naive shared > 0 (the paper's comparison;
    within twice the test examples' sampling error it reads "within noise");
    the explosion against both ResNet-32 and the unshared ResNet-110 of the same depth: growth of
    the activation norm over depth at initialisation, and the gradient-norm ratio r at
    initialisation and averaged over training, shared / other > 1 ("much" is not quantified in
    the text: the factor is shown).
    """
    shared, ref = d.extra["shared"], d.extra["reference"]
    others = [ref] + ([d.extra["unshared"]] if d.extra.get("unshared") else [])
    acc = d.panels["accuracy"]
    act = d.panels["activation norm at initialisation"]
    r = d.panels["gradient-norm ratio r"]
    final = {a: _last_defined(_seeds(acc[f"validation, {a}"])) for a in (ref, shared)}
    checks = [judge(f"final validation accuracy, {ref} - naive {shared} (> 0)", final[ref] - final[shared], above=0,
                    sampling=accuracy_sampling([(1, final[ref]), (-1, final[shared])], d.meta["dataset"]))]
    for o in others:
        checks += [judge(f"activation-norm growth over depth at init, naive shared / {o} (> 1)",
                         _growth(_seeds(act[shared])) / _growth(_seeds(act[o])), above=1),
                   judge(f"gradient-norm ratio r at init, naive shared / {o} (> 1)",
                         _seeds(d.extra["init_ratio"][shared])[:, 0] / _seeds(d.extra["init_ratio"][o])[:, 0], above=1),
                   judge(f"r averaged over training, naive shared / {o} (> 1)",
                         np.nanmean(_seeds(r[shared]), 1) / np.nanmean(_seeds(r[o]), 1), above=1)]
    return checks


def _fig9(d: FigureData) -> list[Check]:
    """Fig. 9: "unshared BN statistics, γ initialised to 0.1 and unshared γ/β each help; unsharing
    BN statistics matters most; the initial activation explosion drops sharply".

    Per seed, final validation accuracy: each change's gain over the variant before it > 0;
    the gain of per-step statistics - the largest later gain > 0 (both against the test examples'
    sampling error, ``accuracy_sampling``). At initialisation, with every
    variant carrying the naive model's convolution weights (one draw, ``figures.figure9``), the
    smallest activation-norm growth of a fixed variant / the naive one's < 0.5 ("sharply": at
    least halved, our reading; the factor is shown).
    """
    labels = list(d.panels["validation accuracy"])
    acc = np.stack([_last_defined(_seeds(d.panels["validation accuracy"][k])) for k in labels], 1)  # (seeds, variants)
    gains = np.diff(acc, axis=1)

    def sampling(*terms):  # of Σ w · acc[:, k] over the (k, w) terms; a variant named twice adds up
        w = np.zeros(len(labels))
        np.add.at(w, [k for k, _ in terms], [x for _, x in terms])
        return accuracy_sampling([(x, acc[:, k]) for k, x in enumerate(w) if x], d.meta["dataset"])

    checks = [judge(f"final validation accuracy, '{labels[k + 1]}' - '{labels[k]}' (> 0)", gains[:, k], above=0,
                    sampling=sampling((k + 1, 1), (k, -1))) for k in range(gains.shape[1])]
    # the largest later gain on the seed mean (one undefined on any seed never: a run with no record)
    later = 1 + int(np.argmax(np.nan_to_num(gains[:, 1:].mean(0), nan=-np.inf)))
    checks.append(judge("gain from per-step BN statistics - the largest later gain (> 0)",
                        gains[:, 0] - gains[:, 1:].max(1), above=0,
                        sampling=sampling((1, 1), (0, -1), (later + 1, -1), (later, 1))))
    same = d.extra["init_same_weights"]
    naive = _growth(_seeds(same[labels[0]]))
    calm = np.min(np.stack([_growth(_seeds(same[k])) for k in labels[1:]]), 0) / naive
    checks.append(judge("smallest activation-norm growth at init of a fixed variant / naive's, same weights (< 0.5)",
                        calm, below=0.5))
    return checks


def _table1(t) -> list[Check]:
    """Table 1 (CIFAR-10): "ResNet-110-UBN beats ResNet-38 at a similar parameter count (6.62 vs
    6.99 %); ResNet-110 beats ResNet-32 (6.13 vs 7.14 %)".

    - similar count, on the networks actually trained (their width): ResNet-110-UBN's extra
      parameters over ResNet-38, as a share of the step from ResNet-38 to ResNet-56 (the table's
      next size), < 0.5: it sits with ResNet-38, not between it and a larger model;
    - per seed, test error ResNet-110-UBN - ResNet-38 < 0, and ResNet-110 - ResNet-32 < 0, each
      "within noise" inside twice the test examples' sampling error (``accuracy_sampling``; the
      paper's own 0.37 % gap, 4 runs on 10,000 images, sits just outside it: twice ~0.18 %);
    - reported: the share of architectures whose full-width count is the paper's to the unit.
    """
    rows = {row["arch"]: row for row in t.rows}

    def err(arch):
        return np.array([np.nan if e is None else e for e in rows[arch]["cifar10"]["test_err"]], dtype=float)

    def sampling(a, b):  # of the difference of the two networks' test errors (%)
        return accuracy_sampling([(1, err(a)), (-1, err(b))], t.meta["dataset"], scale=100)

    trained = {a: rows[a].get("params_trained", rows[a]["params"])["cifar10"] for a in rows}
    step = (trained["resnet110-ubn"] - trained["resnet38"]) / (trained["resnet56"] - trained["resnet38"])
    ubn, r38 = paper.TABLE1["cifar10"]["resnet110-ubn"][1], paper.TABLE1["cifar10"]["resnet38"][1]
    full = paper.TRAINABLE_PARAMS
    paper_step = (full["resnet110-ubn"] - full["resnet38"]) / (full["resnet56"] - full["resnet38"])
    return [fixed("trained widths: (ResNet-110-UBN - ResNet-38) / (ResNet-56 - ResNet-38) parameters (< 0.5)",
                  step, step < 0.5, paper=f"{paper_step:.3g}"),
            judge("CIFAR-10 test error %, ResNet-110-UBN - ResNet-38 (< 0)", err("resnet110-ubn") - err("resnet38"),
                  below=0, sampling=sampling("resnet110-ubn", "resnet38"), paper=f"{ubn - r38:.2f}"),
            judge("CIFAR-10 test error %, ResNet-110 - ResNet-32 (< 0)", err("resnet110") - err("resnet32"), below=0,
                  sampling=sampling("resnet110", "resnet32"),
                  paper=f"{paper.TABLE1['cifar10']['resnet110'][1] - paper.TABLE1['cifar10']['resnet32'][1]:.2f}"),
            reported("share of architectures whose full-width parameter count is the paper's",
                     float(np.mean([row["params_match"] for row in t.rows])))]


@dataclass
class Claim:
    """A claim of the paper: its figure (``item``), what it is about in a few words (``topic``),
    the paper's statement, the data its rule reads (``compute``) and the rule. The page that shows
    and judges it is declared in ``registry``."""

    key: str
    item: str
    topic: str
    statement: str
    compute: Callable[[profiles.Setting], FigureData]
    rule: Callable[[FigureData], list[Check]]
    part: str = "main"  # the book's part (profiles.PARTS) whose results it reads


#: The model Appendix D reports: Section 4.5's naively shared ResNet-110 of Fig. 8.
APPENDIX_D = ("resnet110-shared",)

#: Rules that need a probe result a profile never stored, keyed (claim, profile): why.
UNSTORED = {
    ("shared_cos", "cifar10-cpu"): "Appendix D reads the naively shared ResNet-110; its cosine probe was not "
                                   "stored with this profile's results and its trained network is not kept "
                                   "(profile cifar10-long computes it)",
}


def unstored(keys, profile: str) -> str:
    """Why ``profile`` never stored a result one of the claims ``keys`` needs ("" where it did)."""
    return next((UNSTORED[k, profile] for k in keys if (k, profile) in UNSTORED), "")


def _c100(fn):
    return lambda s: fn(s, role="cifar100")


def _fig7_sweep(setting: profiles.Setting) -> FigureData:
    return figures.figure7(setting, scales=figures.UNROLL_SWEEP, missing_ok=True)


CLAIMS = [
    Claim("taylor", "Section 3", "the first-order (Taylor) check",
          "The loss change a block makes is close to its first-order term F(h_i)·∂L/∂h_i "
          "(eq. 3: the gradient of the rest of the network at h_i) where F is small (the top blocks).",
          figures.taylor, _taylor),
    Claim("fig2", "Fig. 2", "the ℓ2 ratio per block",
          f"ℓ2 ratio: single-repr. and avg-pool. change the representation strongly in the first "
          f"block (ratio up to ~{paper.FIRST_BLOCK_RATIO}), then drop; ResNet-110 and wide are much flatter; train "
          "and validation overlap.", figures.figure2, _fig2),
    Claim("fig3", "Fig. 3", "dropping one block",
          "Dropping the first block(s) of single-repr. / avg-pool. is catastrophic, higher "
          "blocks cost little; ResNet-110 and wide show no drastic drop anywhere.", figures.figure3, _fig3),
    Claim("fig4", "Fig. 4", "the cosine loss per block",
          "The cosine loss is negative for all blocks and most negative for the higher blocks; "
          "deeper nets (ResNet-110, avg-pool.) reach more negative values.", figures.figure4, _fig4),
    Claim("fig5", "Fig. 5", "intermediate accuracy",
          "Accuracy rises gradually block by block within the last stage.", figures.figure5, _fig5),
    Claim("fig6", "Fig. 6", "borderline examples",
          "Over the last 5 blocks of ResNet-110 many borderline examples are corrected, entropy "
          "falls for all groups, overall accuracy and loss change little; train loss drops at every block while "
          f"test loss rises after the last block; the last block's cosine is about {paper.LAST_BLOCK_COSINE}.",
          figures.figure6, _fig6),
    Claim("fig7", "Fig. 7", "unrolling the last block",
          f"Unrolling the last block {paper.UNROLL_STEPS} extra steps with output scaling: train "
          f"loss {paper.UNROLL_TRAIN_LOSS[0]} → {paper.UNROLL_TRAIN_LOSS[1]}, borderline test accuracy "
          f"{paper.UNROLL_BORDERLINE_ACC[0]:.0%} → {paper.UNROLL_BORDERLINE_ACC[1]:.0%} "
          f"(~{paper.UNROLL_BORDERLINE_COUNT} examples), slight test-accuracy gain, test loss rises; the cosine "
          "stays negative (2 steps without scaling). The scale is not given.", _fig7_sweep, _fig7),
    Claim("fig2-c100", "Fig. 2 (CIFAR-100)", "the ℓ2 ratio on CIFAR-100",
          "Same as Fig. 2 on CIFAR-100.", _c100(figures.figure2), _fig2, "cifar100"),
    Claim("fig3-c100", "Fig. 3 (CIFAR-100)", "dropping one block on CIFAR-100",
          "Same as Fig. 3 on CIFAR-100.", _c100(figures.figure3), _fig3, "cifar100"),
    Claim("fig4-c100", "Fig. 4 (CIFAR-100)", "the cosine loss on CIFAR-100",
          "Same as Fig. 4 on CIFAR-100.", _c100(figures.figure4), _fig4, "cifar100"),
    Claim("fig5-c100", "Fig. 5 (CIFAR-100)", "intermediate accuracy on CIFAR-100",
          "Same as Fig. 5 on CIFAR-100.", _c100(figures.figure5), _fig5, "cifar100"),
    Claim("shared_cos", "Appendix D", "the shared model, block by block",
          "For the naively shared ResNet-110 of Fig. 8 too, the cosine loss is negative "
          "for all blocks and most negative for the higher blocks.",
          lambda s: figures.figure4(s, archs=APPENDIX_D), _fig4, "sharing"),
    Claim("fig8", "Fig. 8", "sharing blocks naively",
          "Naive sharing of the top 13 blocks of every stage gives lower validation accuracy than "
          "ResNet-32; activations and gradients explode at initialisation (r much larger).", figures.figure8, _fig8,
          "sharing"),
    Claim("fig9", "Fig. 9", "what makes sharing work",
          "Unshared BN statistics, γ initialised to 0.1 and unshared γ/β each help; unsharing BN "
          "statistics matters most; the initial activation explosion drops sharply.", figures.figure9, _fig9,
          "sharing"),
    Claim("table1", "Table 1", "shared against ordinary ResNets",
          "ResNet-110-UBN reaches {:.2f} % test error on CIFAR-10 against {:.2f} % for ResNet-38 "
          "at a similar parameter count; ResNet-110 {:.2f} % against ResNet-32 {:.2f} %.".format(
              paper.TABLE1["cifar10"]["resnet110-ubn"][1], paper.TABLE1["cifar10"]["resnet38"][1],
              paper.TABLE1["cifar10"]["resnet110"][1], paper.TABLE1["cifar10"]["resnet32"][1]),
          figures.table1, _table1, "sharing"),
]


def claim(key: str) -> Claim:
    """The claim ``key`` of ``CLAIMS``."""
    found = next((c for c in CLAIMS if c.key == key), None)
    if found is None:
        raise ValueError(f"unknown claim {key!r}; choose one of: {', '.join(c.key for c in CLAIMS)}")
    return found


def check(key: str, data: FigureData) -> Row:
    """The scorecard row of claim ``key`` measured on ``data``."""
    return _judged(claim(key), data)


def _judged(c: Claim, data: FigureData) -> Row:
    checks = c.rule(data)
    return Row(c.item, c.statement, checks, verdict(checks), data.caption(), key=c.key)


def row(c: Claim, profile: str | None = None, device: str | None = None, seeds: int | None = None) -> Row:
    """Claim ``c``'s row from the stored results of ``profile``: "not run" (with the reason) where
    the profile omits the part, never stored what the rule needs or the network diverged, "not yet
    run" where results are missing or the part is still training. No row is read from another
    profile."""
    setting = profiles.setting(profile, device, seeds, part=c.part)
    if setting.standing_in is not None:
        asked, why = setting.standing_in
        reason = f"profile `{asked}` {why}; its page shows profile `{setting.profile.name}` instead"
        verdict = "not yet run" if c.part in profiles.get_profile(asked).pending else "not run"
        return Row(c.item, c.statement, [], verdict, evidence="none", reason=reason, key=c.key)
    with store.cached_only():
        try:
            out = _judged(c, c.compute(setting))
        except store.MissingResult:
            reason = unstored([c.key], setting.profile.name)
            out = Row(c.item, c.statement, [], "not run" if reason else "not yet run", reason=reason, key=c.key)
        except experiments.Diverged as e:  # a probe of a network that diverged has nothing to say
            out = Row(c.item, c.statement, [], "not run", reason=str(e), key=c.key)
    out.evidence = evidence(setting)
    return out


def rows(profile: str | None = None, device: str | None = None, seeds: int | None = None) -> list[Row]:
    """Every claim's row from the stored results of ``profile`` (``row``)."""
    return [row(c, profile, device, seeds) for c in CLAIMS]


def counts(rows: list[Row]) -> dict[str, int]:
    """How many rows read each verdict, keyed by a name safe for glue (``n_reproduced``,
    ``n_partly``, ``n_within_noise``, ``n_not``, ``n_not_yet_run``, ``n_not_run``), and ``n_rows``."""
    out = {f"n_{v.replace(' ', '_')}": sum(r.verdict == v for r in rows) for v in VERDICTS}
    return out | {"n_rows": len(rows)}


def evidence(setting: profiles.Setting) -> str:
    """Which profile's results a row or notebook reads (and, for a stand-in, why)."""
    p = setting.profile
    text = f"`{p.name}` ({', '.join(sorted(set(p.datasets.values())))}, {len(setting.seeds)} seed(s))"
    if setting.standing_in is not None:
        asked, why = setting.standing_in
        text += f", standing in: `{asked}` {why}"
    return text


def markdown(rows: list[Row]) -> str:
    """A markdown table: item, the paper's claim, what we measured (each check's outcome, number,
    seed spread and the paper's number), the verdict, the evidence."""
    lines = ["| item | the paper | ours | verdict | evidence |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        ours = "<br>".join(f"{c.outcome}: {(c.group + ', ') if c.group else ''}{c.describe(bold=True)}"
                           for c in r.checks) or (r.reason or "—")
        cells = [r.item, r.claim, ours, f"**{r.verdict}**", r.evidence]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")  # |x| is not a column
    return "\n".join(lines)
