"""The furniture of a book page: the verdict box a figure page opens with, figures with a number,
caption and alt text, and the scorecard's grid; and ``show``, the one call of a figure notebook.

Everything is built from library objects (``registry.Figure``, ``scorecard.Row``,
``figures.FigureData``, the profile), so no page types a number. Each function returns an IPython
display object that a notebook shows as its cell's value; the classes it uses (``rf-*``) are
styled by the book's ``book/_ext/page_style`` extension, which also opens a figure full-size on click.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
import re

import matplotlib.pyplot as plt
from IPython.display import HTML, Markdown

from . import benchmarks, data, plots, profiles, registry, scorecard, store, train
from .figures import FigureData, TableData

#: The largest scale of a figure on the page, CSS px per point: two panels then fill the text column.
SCALE = 1.5

#: The badge text of a verdict of ``scorecard.VERDICTS`` (any other verdict reads as itself).
BADGES = {"partly": "partly reproduced", "not": "not reproduced"}


def show(key: str, profile: str | None = None, device: str | None = None, seeds: int | None = None) -> Shown:
    """The one call of a figure notebook: page ``key`` of ``registry.PAGES`` (where each page's
    figures, the claims that judge them and the numbers its prose quotes are declared) computed
    with the notebook's parameters, judged, and its numbers glued for the prose."""
    from myst_nb import glue

    pg = registry.PAGES[key]
    setting = profiles.setting(profile, device, seeds, part=pg.part)
    data = {f.label: _compute(f, pg, setting) for f in pg.figures}
    rows = {f.claim: (scorecard.row(scorecard.claim(f.claim), profile, device, seeds)  # "not run", and why
                      if isinstance(data[f.label], Unstored) else scorecard.check(f.claim, data[f.label]))
            for f in pg.figures if f.claim}
    glued = {name: value for f in pg.figures if f.glue for name, value in f.glue(data[f.label]).items()}
    glued |= {name: registry.said(rows[f.claim], test) for f in pg.figures for name, test in f.says.items()}
    for name, value in glued.items():
        glue(name, value, display=False)
    return Shown(pg, setting, data, rows, glued)


@dataclasses.dataclass(frozen=True)
class Unstored:
    """A figure whose results its profile never stored and cannot recompute (``scorecard.UNSTORED``)."""

    reason: str


def _compute(entry: registry.Figure, pg: registry.Page, setting: profiles.Setting):
    """Figure ``entry``'s data, or ``Unstored`` where a result is missing that the profile is known
    never to have stored for one of the page's claims; any other missing result is an error."""
    try:
        return (entry.compute or scorecard.claim(entry.claim).compute)(setting)
    except store.MissingResult:
        reason = scorecard.unstored(pg.claims, setting.profile.name)
        if not reason:
            raise
        return Unstored(reason)


@dataclasses.dataclass
class Shown:
    """A page computed and judged (``show``): its figures' data by label, its verdicts by claim,
    its glued numbers by name; each method gives one cell's display."""

    page: registry.Page
    setting: profiles.Setting
    data: dict
    rows: dict[str, scorecard.Row]
    glued: dict

    def verdict(self, label: str | None = None) -> HTML:
        """The verdict box of the claim that judges figure ``label`` (default: the page's one
        claim), or, on a page that judges none, the sentence on the scale of its evidence."""
        if not self.rows:
            return note(self.setting)
        if label is None:
            key, = self.rows
        else:
            key = self._entry(label).claim
        return verdict(self.rows[key], self.setting)

    def figure(self, label: str | None = None) -> HTML | Markdown:
        """Figure (or table) ``label`` of the page (default: its one figure), as declared."""
        entry = self._entry(label)
        fig = self.data[entry.label]
        if isinstance(fig, Unstored):
            return HTML(f'<p class="rf-caption"><span class="rf-fignum">Figure {escape(entry.label)}.</span> '
                        f'{escape(entry.caption)} <em>Not drawn at profile <code>{self.setting.profile.name}</code>: '
                        f'{escape(fig.reason)}.</em></p>')
        if isinstance(fig, TableData):
            return table(fig.markdown(), fig.meta, entry.label, entry.caption)
        return figure(fig, entry)

    def answers(self, label: str | None = None) -> HTML:
        """The questions figure ``label`` answers (default: the page's one figure), each finding
        with its threshold, its value on the mean over seeds and on every seed, and the answer."""
        entry = self._entry(label)
        if entry.questions is None:
            raise ValueError(f"figure {entry.label} of page {self.page.notebook} answers no questions of its own")
        return answers(entry.questions(self.data[entry.label]))

    def text(self) -> str:
        """Every verdict's checks, every question's findings and every glued number (deterministic:
        what nbval checks)."""
        asked = [q.text() for f in self.page.figures if f.questions for q in f.questions(self.data[f.label])]
        return "\n".join([r.text() for r in self.rows.values()] + asked
                         + [f"{name}: {value}" for name, value in self.glued.items()])

    def _entry(self, label: str | None) -> registry.Figure:
        figs = self.page.figures
        if label is None and len(figs) == 1:
            return figs[0]
        found = [f for f in figs if f.label == label]
        if not found:
            raise ValueError(f"figure {label!r} is not on page {self.page.notebook}; "
                             f"choose one of: {', '.join(f.label for f in figs)}")
        return found[0]


def badge(verdict: str) -> str:
    """A coloured verdict badge (HTML)."""
    return f'<span class="rf-badge rf-{slug(verdict)}">{BADGES.get(verdict, verdict)}</span>'


def verdict(row, setting: profiles.Setting) -> HTML:
    """The box a figure page opens with: the verdict, what the paper says, the numbers that
    decide it (each test of the rule, what we measured, whether it holds) and the scale."""
    body = [f'<p class="rf-head">{badge(row.verdict)} <strong>{escape(row.item)}</strong></p>',
            f"<p><strong>The paper says:</strong> {escape(row.claim)}</p>"]
    if row.checks:
        body.append(_checks(row.checks))
    else:
        why = getattr(row, "reason", "") or "the results this claim needs are not in the results folder yet"
        body.append(f"<p>Not judged: {escape(why)}.</p>")
    body.append(f'<p class="rf-scale">{scale(setting)}</p>')
    return HTML(f'<div class="rf-verdict rf-{slug(row.verdict)}">{"".join(body)}</div>')


def scale(setting: profiles.Setting) -> str:
    """One sentence (HTML) on the scale the evidence comes from, to read every verdict by."""
    p = setting.profile
    epochs = sorted(s[0] for s in train.PAPER_SCHEDULES.values())
    text = (f"<strong>Scale.</strong> Evidence from profile <code>{p.name}</code>: {escape(p.description)}. "
            f"The paper trains full-width networks for {epochs[0]}–{epochs[-1]} epochs on all of CIFAR-10 "
            f"({profiles.PAPER.seeds} runs); here a “not” says the effect does not show at this scale, "
            "not that the paper is wrong.")
    if setting.standing_in is not None:
        asked, why = setting.standing_in
        text += f" <em>Standing in:</em> profile <code>{asked}</code> {escape(why)}."
    return text


def note(setting: profiles.Setting) -> HTML:
    """The scale sentence alone, for a page that shows evidence without judging a claim."""
    return HTML(f'<div class="rf-verdict rf-note"><p class="rf-scale">{scale(setting)}</p></div>')


def figure(fig: FigureData, entry: registry.Figure) -> HTML:
    """``fig`` drawn as ``entry`` declares it, twice (two panels per row for a desktop, one for a
    phone; the page shows the one that fits), numbered, with its caption, where it came from, and
    alt text."""
    alt = _alt(fig, entry.marks)
    hlines = entry.hlines(fig) if entry.hlines else None
    images = []
    for cls, ncols in (("rf-wide", None), ("rf-narrow", 1)):
        svg, width = _svg(plots.draw(fig, spectrum=entry.spectrum, ncols=ncols, hlines=hlines, marks=entry.marks,
                                     **entry.axes))
        cols = min(ncols or 2, len(fig.panels))
        # At most SCALE CSS px per point: a one-panel figure is not blown up to the column's width.
        images.append(f'<img class="{cls}" src="data:image/svg+xml;base64,{svg}" alt="{escape(alt)}" '
                      f'style="max-width: {SCALE * width:.0f}px" data-width-pt="{width:.1f}" data-ncols="{cols}" '
                      f'data-font-pt="{plots.SMALLEST:g}">')
    anchor = slug(entry.label)
    return HTML(f'<figure class="rf-figure" id="figure-{anchor}">{"".join(images)}'
                f'<figcaption><span class="rf-fignum">Figure {escape(entry.label)}.</span> {escape(entry.caption)} '
                f'<span class="rf-provenance">{provenance(fig.meta)}</span></figcaption></figure>')


def table(markdown: str, meta: dict, label: str, caption: str) -> Markdown:
    """A markdown table under its number, caption and provenance."""
    return Markdown(f'<p class="rf-caption"><span class="rf-fignum">Table {escape(label)}.</span> {escape(caption)} '
                    f'<span class="rf-provenance">{provenance(meta)}</span></p>\n\n{markdown}')


def provenance(meta: dict) -> str:
    """Where a figure's numbers come from (HTML): profile, data, networks, schedule, seeds, device, commits."""
    stand_in = f", standing in for {meta['role']}" if data.source(meta["dataset"]) != meta["role"] else ""
    epochs = {e for _, e in meta["archs"].values()}
    nets = ", ".join(f"{a} at width {w:g}" + ("" if len(epochs) == 1 else f" ({e} epochs)")
                     for a, (w, e) in meta["archs"].items())
    if len(epochs) == 1:
        nets += f", {epochs.pop()} epochs each"
    prof = profiles.PROFILES.get(meta["profile"])
    if prof is not None:
        nets += f"; schedule: {prof.schedules(meta['archs'])}"
    seeds = f"mean of {meta['seeds']} seeds (band: ±1 s.d.)" if meta["seeds"] > 1 else "1 seed"
    commits = meta["commits"]
    where = (f"commit{'s' if len(commits) > 1 else ''} " + ", ".join(f"<code>{c}</code>" for c in commits)
             if commits else "no stored results")
    note = f" {escape(meta['note'])}" if meta.get("note") else ""  # how a table measured its numbers
    return (f"Profile <code>{meta['profile']}</code>: {escape(data.LABELS[meta['dataset']])}{stand_in}; {escape(nets)}; "
            f"{seeds}; device {meta['device']}.{note} Results computed at {where}.")


def grid(rows, here: str = "book/scorecard") -> HTML:
    """The scorecard at a glance: one line per claim, its verdict badge, linked to its page."""
    lines = "".join(f'<tr><td><a href="{link(r.key, here)}">{escape(r.item)}</a> '
                    f'<span class="rf-topic">{escape(scorecard.claim(r.key).topic)}</span></td>'
                    f"<td>{badge(r.verdict)}</td></tr>" for r in rows)
    return HTML(f'<table class="rf-grid"><thead><tr><th>claim</th><th>verdict</th></tr></thead><tbody>{lines}</tbody>'
                "</table>")


def conditions(rows, here: str = "book/scorecard") -> HTML:
    """Every claim's tests, one collapsible section each."""
    parts = []
    for r in rows:
        checks = (_checks(r.checks) if r.checks else
                  f"<p>Not judged: {escape(r.reason or 'the results this claim needs are not in the results folder yet')}.</p>")
        parts.append(f'<details class="rf-details"><summary>{badge(r.verdict)} <strong>{escape(r.item)}</strong></summary>'
                     f'<p><strong>The paper says:</strong> {escape(r.claim)} '
                     f'(<a href="{link(r.key, here)}">its page</a>)</p>{checks}'
                     f'<p>Evidence: {escape(r.evidence or "none").replace("`", "")}.</p></details>')
    return HTML("".join(parts))


#: The mark before each outcome of a check.
OUTCOME_MARKS = {"holds": "✓", "fails": "✗", "within noise": "≈"}


def _checks(checks) -> str:
    """A table of a rule's checks: what is tested, the paper's number, ours, the outcome."""
    rows = []
    for c in checks:
        outcome = getattr(c, "outcome", "") or ("holds" if c.holds else "fails")
        group = getattr(c, "group", "")
        value = "—" if c.value != c.value else f"{c.value:.3g}"  # NaN: not measured
        spread = getattr(c, "spread", "")  # ± s.e. across seeds and each seed's value
        if spread:
            value += f'<br><span class="rf-spread">{escape(spread)}</span>'
        rows.append(f"<tr><td>{escape((group + ': ') if group else '')}{escape(c.label)}</td>"
                    f'<td class="rf-num" data-label="paper">{escape(getattr(c, "paper", "") or "—")}</td>'
                    f'<td class="rf-num" data-label="ours">{value}</td>'
                    f'<td class="rf-outcome rf-{slug(outcome)}">{OUTCOME_MARKS.get(outcome, "")} {escape(outcome)}</td></tr>')
    return ('<table class="rf-checks"><thead><tr><th>our test of the claim</th><th>paper</th><th>ours</th><th></th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


#: A finding's answer, drawn like the outcome of a claim's check.
_ANSWER_STYLE = {"yes": "holds", "no": "fails", "within noise": "within noise"}


def answers(questions) -> HTML:
    """Each question (``beyond.Question``), its findings in a table like a verdict's checks (what is
    measured, with its threshold; the mean over seeds and each seed; yes / no / within noise) and
    its answer."""
    parts = []
    for q in questions:
        rows = []
        for f in q.findings:
            style = _ANSWER_STYLE[f.verdict]
            value = f"{f.value:.3g}"
            if len(f.seeds) > 1:
                value += f'<br><span class="rf-spread">(seeds {", ".join(f"{v:.3g}" for v in f.seeds)})</span>'
            rows.append(f'<tr><td>{escape(f.text)}</td><td class="rf-num" data-label="ours">{value}</td>'
                        f'<td class="rf-outcome rf-{slug(style)}">{OUTCOME_MARKS[style]} {escape(f.verdict)}</td></tr>')
        parts.append(f"<p><strong>{escape(q.question)}</strong> Answer: <strong>{escape(q.verdict)}</strong>.<br>"
                     f'<span class="rf-topic">Measured: {escape(q.how)}.</span></p>'
                     '<table class="rf-checks"><thead><tr><th>finding (threshold)</th><th>ours</th><th></th></tr>'
                     f'</thead><tbody>{"".join(rows)}</tbody></table>')
    return HTML('<div class="rf-answers">' + "".join(parts) + "</div>")


def link(claim: str, here: str) -> str:
    """The page that judges ``claim``, relative to the document ``here``."""
    return os.path.relpath(registry.page_of(claim).notebook, os.path.dirname(here)) + ".html"


def _svg(fig) -> tuple[str, float]:
    """The figure as base64 SVG (deterministic: no date, fixed ids) and its width in points."""
    buf = io.StringIO()
    with plt.rc_context({"svg.hashsalt": "refine"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    width = float(re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', text).group(1))
    return base64.b64encode(text.encode()).decode(), width


def _alt(fig: FigureData, marks) -> str:
    """What the figure shows, in words, for readers who cannot see it."""
    panels = list(fig.panels)
    series = list(dict.fromkeys(label for curves in fig.panels.values() for label in curves))
    what = fig.ylabel or "the panel's quantity"
    text = (f"{fig.title}. {len(panels)} line plot{'s' if len(panels) > 1 else ''} ({', '.join(panels)}), "
            f"each showing {what} against {fig.xlabel}")
    text += f"; curves: {', '.join(series[:6])}{' and more' if len(series) > 6 else ''}"
    if marks:
        text += f"; the paper's values marked ({', '.join(dict.fromkeys(m.label for m in marks))})"
    return text + "."


def escape(text: str) -> str:
    """``text`` safe inside HTML, quotes included."""
    return html.escape(str(text), quote=True)


def slug(text: str) -> str:
    """``text`` as a CSS class or anchor: lower-case words joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def tally(rows) -> str:
    """How many claims read each verdict, in words ("3 reproduced, 5 partly reproduced and 2 not run")."""
    order = list(getattr(scorecard, "VERDICTS", ()))
    counts = {}
    for r in sorted(rows, key=lambda r: order.index(r.verdict) if r.verdict in order else len(order)):
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return registry.in_words([f"{n} {BADGES.get(v, v)}" for v, n in counts.items()])


#: What a reader calls each part of the book (``profiles.PARTS``).
PART_TITLES = {"main": "the main figures", "cifar100": "the CIFAR-100 appendix", "sharing": "the shared-block chapter",
               "beyond": "the vision-transformer chapter"}


def stand_ins(profile: str | None = None) -> str:
    """One sentence: which parts of the book read another profile than ``profile`` (omitted, or
    still training), which one, and why; each of their pages says so too."""
    shown = [(part, profiles.setting(profile, part=part)) for part in profiles.PARTS]
    lines = [f"{PART_TITLES[part]} reads profile {s.profile.name}, as {s.standing_in[0]} {s.standing_in[1]}"
             for part, s in shown if s.standing_in is not None]
    if not lines:
        return "Every part of the book reads this profile's own results."
    return "Some parts show another profile's results instead, and say so: " + "; ".join(lines) + "."


def gpu_costs() -> Markdown:
    """The GPU-hours per figure at the paper profile, as measured by the latest recorded GPU check."""
    run, costs = benchmarks.latest_gpu_run(), benchmarks.BENCH / "costs.json"
    if run is None or not costs.exists():
        return Markdown("*No GPU cost measured yet: the [developers' appendix](developers.ipynb) says how.*")
    c = json.loads(costs.read_text())
    return Markdown(_site(f"Measured on {run['device']} ({run['date']}), {c['path']} path; "
                          + "; ".join(c["assumptions"]) + f"; * = estimated:\n\n{benchmarks.costs_table(c)}"))


def gpu_check() -> Markdown:
    """The latest GPU check in full (card, CUDA tests, throughput, GPU-hours), for developers."""
    return Markdown(_site(benchmarks.report()))


def _site(text: str) -> str:
    """``bench/`` cites the paper's notes file, which the site does not carry: name the paper."""
    return text.replace(" of PAPER.md section 4", "").replace("PAPER.md", "the paper")
