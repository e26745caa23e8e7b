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

from . import page, scorecard, store

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
        committed = (store.results_dir() / name).is_dir()
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


def grid(ladder: list[Rung], here: str = "book/ladder") -> str:
    """HTML: one row per claim (linked to its page), one column per rung, each cell coloured by
    the verdict, which it names above the checks that hold ("partly reproduced", "6/12"). Text,
    not an image, so that it reads at a phone's width."""
    lines = []
    for r in next((g.rows for g in ladder if g.rows), []):
        cells = []
        for g in ladder:
            row = g.row(r.item)
            v, (k, n) = verdict(row), held(row)
            count = f"<small>{k}/{n}</small>" if n else ""
            cells.append(f'<td class="rf-cell rf-{page.slug(v)}">{page.BADGES.get(v, v)}{count}</td>')
        lines.append(f'<tr><td><a href="{page.link(r.key, here)}">{page.escape(r.item)}</a></td>{"".join(cells)}</tr>')
    return (f'<table class="rf-ladder"><thead><tr><th>claim</th>{_heads(ladder)}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table>')


def _condition(check: scorecard.Check) -> tuple[str, str]:
    """What a check measures, the same at every rung: its group and text (the counts a rule
    quotes beside it, which vary with the rung, are the check's ``counts``)."""
    return check.group, check.text


def numbers(item: str, ladder: list[Rung]) -> str:
    """HTML: the claim's deciding numbers at every rung, one row per condition, each cell the
    check's seed-mean value and its outcome. Styled like a verdict's checks (``page``): on a
    phone a condition reads as a block, its text and then one "rung: value" per rung."""
    rows = [g.row(item) for g in ladder]
    checks = [{} for _ in ladder]  # per rung: condition -> its check (the first, where two share one)
    for found, row in zip(checks, rows):
        for c in (row.checks if row else []):
            found.setdefault(_condition(c), c)
    lines = []
    for group, text in dict.fromkeys(k for found in checks for k in found):
        cells = []
        for g, row, found in zip(ladder, rows, checks):
            c = found.get((group, text))
            if c is None:  # the rung has not judged the claim (its verdict says why) or not this condition
                shown = "—" if found else verdict(row)
            elif c.outcome == "not run":
                shown = '<span class="rf-outcome rf-not-run">not run</span>'
            else:
                mark = page.OUTCOME_MARKS.get(c.outcome, "")
                shown = f'{c.value:.3g} <span class="rf-outcome rf-{page.slug(c.outcome)}">{mark} {page.escape(c.outcome)}</span>'
            cells.append(f'<td class="rf-num" data-label="{page.escape(g.profile)}">{shown}</td>')
        label = (f"{group}: " if group else "") + text
        lines.append(f"<tr><td>{page.escape(label)}</td>{''.join(cells)}</tr>")
    return (f'<table class="rf-checks"><thead><tr><th>condition</th>{_heads(ladder)}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table>')


def _heads(ladder: list[Rung]) -> str:
    """The rungs' column heads of a ladder table."""
    return "".join(f"<th><code>{page.escape(g.profile)}</code></th>" for g in ladder)
