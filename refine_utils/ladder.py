"""How each verdict moves with scale: the scorecard of every profile on the ladder, side by side.

The published profiles differ from the paper mostly in scale (width, epochs, data). Reading one
claim's verdict and deciding numbers at every rung — ``smoke`` (digits, minutes), ``cifar10-cpu``
(real CIFAR-10, 10 epochs), ``cifar10-long`` (40-50 epochs, 3 seeds) and ``cifar10-gpu`` (the
same at the paper's widths, when a GPU has run it) — tells which disagreements are scale and
which are not. Every number comes from ``scorecard.rows(profile)`` over the committed results;
a rung without results reads "not yet run".
"""
from __future__ import annotations

from dataclasses import dataclass

from . import experiments, scorecard

#: The rungs, smallest scale first.
LADDER = ("smoke", "cifar10-cpu", "cifar10-long", "cifar10-gpu")
#: The rungs on real CIFAR-10: across them only the scale changes (smoke's digits are another dataset).
SAME_DATA = ("cifar10-cpu", "cifar10-long", "cifar10-gpu")
#: Verdicts ordered from farthest to nearest the paper (the two "not run" kinds have no rank).
RANK = {"not": 0, "within noise": 1, "partly": 2, "reproduced": 3}


@dataclass
class Rung:
    """One profile's scorecard (``rows`` is None where nothing of it is committed)."""

    profile: str
    rows: list[scorecard.Row] | None

    def row(self, item: str) -> scorecard.Row | None:
        return next((r for r in self.rows or [] if r.item == item), None)


def rungs(ladder: tuple[str, ...] = LADDER) -> list[Rung]:
    """Every rung's scorecard from its committed results (nothing is trained or computed)."""
    out = []
    for name in ladder:
        committed = (experiments.results_dir() / name).is_dir()
        out.append(Rung(name, scorecard.rows(name) if committed else None))
    return out


def held(row: scorecard.Row | None) -> tuple[int, int]:
    """(checks that hold, checks judged) of one row; (0, 0) for a row with none judged."""
    judged = [c for c in (row.checks if row else []) if c.outcome in scorecard._JUDGED]
    return sum(c.holds for c in judged), len(judged)


def verdict(row: scorecard.Row | None) -> str:
    return row.verdict if row is not None else "not yet run"


def trend(item: str, ladder: list[Rung]) -> str:
    """One sentence: how the claim's verdict moves from the smallest to the largest rung judged,
    read across the real-CIFAR-10 rungs alone where two or more are judged (so that the data stay
    the same and only the scale changes)."""
    seen = [(r.profile, verdict(r.row(item)), held(r.row(item))) for r in ladder if verdict(r.row(item)) in RANK]
    if not seen:
        return f"{item}: not judged at any rung yet."
    steps = " → ".join(f"{v} at `{p}` ({k}/{n})" for p, v, (k, n) in seen)
    if len(seen) == 1:
        return f"{item}: {steps}; one rung only, so no trend yet."
    same = [s for s in seen if s[0] in SAME_DATA]
    ends = same if len(same) >= 2 else seen
    (_, v0, (k0, n0)), (_, v1, (k1, n1)) = ends[0], ends[-1]
    share0, share1 = (k0 / n0 if n0 else 0.0), (k1 / n1 if n1 else 0.0)
    if RANK[v1] > RANK[v0] or (RANK[v1] == RANK[v0] and share1 > share0):
        move = "moves toward the paper with scale"
    elif RANK[v1] < RANK[v0] or share1 < share0:
        move = "moves away from the paper with scale: not a matter of scale alone"
    else:
        move = "does not move with scale"
    where = f" (on the same data, from `{ends[0][0]}` to `{ends[-1][0]}`)" if ends is same and len(same) < len(seen) else ""
    return f"{item}: {steps}; {move}{where}."


def table(ladder: list[Rung]) -> str:
    """Markdown: one row per claim, one column per rung, each cell 'verdict (k/n)'."""
    items = [r.item for r in next((g.rows for g in ladder if g.rows), [])]
    head = "| claim | " + " | ".join(f"`{g.profile}`" for g in ladder) + " |"
    lines = [head, "|" + " --- |" * (len(ladder) + 1)]
    for item in items:
        cells = []
        for g in ladder:
            row, (k, n) = g.row(item), held(g.row(item))
            cells.append(verdict(row) + (f" ({k}/{n})" if n else ""))
        lines.append(f"| {item} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _condition(check: scorecard.Check) -> tuple[str, str]:
    """What a check measures, the same at every rung: its group and text (the counts a rule
    quotes beside it, which vary with the rung, are the check's ``counts``)."""
    return check.group, check.text


def numbers(item: str, ladder: list[Rung]) -> str:
    """Markdown: the claim's deciding numbers (each check's seed-mean value) at every rung."""
    keys: dict[tuple[str, str], None] = {}
    for g in ladder:
        for c in (g.row(item).checks if g.row(item) else []):
            keys.setdefault(_condition(c), None)
    lines = ["| condition | " + " | ".join(f"`{g.profile}`" for g in ladder) + " |", "|" + " --- |" * (len(ladder) + 1)]
    for group, text in keys:
        cells = []
        for g in ladder:
            c = next((c for c in (g.row(item).checks if g.row(item) else []) if _condition(c) == (group, text)), None)
            cells.append("" if c is None else "not run" if c.outcome == "not run" else f"{c.value:.3g} ({c.outcome})")
        label = (f"{group}: " if group else "") + text.replace("|", "\\|")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(ladder: list[Rung]):
    """Claims x rungs, each cell coloured by its verdict and labelled with the checks that hold."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    items = [r.item for r in next((g.rows for g in ladder if g.rows), [])]
    colours = {"reproduced": "#2e7d32", "partly": "#f9a825", "within noise": "#90a4ae", "not": "#c62828",
               "not run": "#eeeeee", "not yet run": "#ffffff"}
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(items) + 1.6), layout="constrained")
    for i, item in enumerate(items):
        for j, g in enumerate(ladder):
            v, (k, n) = verdict(g.row(item)), held(g.row(item))
            ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=colours.get(v, "#ffffff"), edgecolor="#9e9e9e"))
            ax.text(j + 0.5, i + 0.5, f"{k}/{n}" if n else ("—" if v == "not yet run" else "n/r"), ha="center",
                    va="center", fontsize=11, color="white" if v in ("reproduced", "not") else "black")
    ax.set_xlim(0, len(ladder)), ax.set_ylim(len(items), 0)
    ax.set_xticks([j + 0.5 for j in range(len(ladder))], [g.profile for g in ladder], fontsize=11)
    ax.set_yticks([i + 0.5 for i in range(len(items))], items, fontsize=11)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#9e9e9e", label=v) for v, c in colours.items()],
              loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3, fontsize=10, frameon=False)
    return fig
