"""Draw a ``figures.FigureData`` for the page: at most two panels per row, text a reader can read.

Every curve is its mean over seeds with a band of one standard deviation. Each series has its own
colour *and* line style (and marker) across the figure, so no two read alike in grey or to a
colour-blind reader and one legend above the panels serves them all; curves *per block* (Fig. 5, the appendix) run from blue (first block) to red
(last), the paper's spectrum. The paper's own values (``paper_refs.Mark``) are drawn on the same
axes in black, labelled "paper". Panels that pair a train and a validation view ("train loss",
"validation loss") sit side by side, train on the left. The caption is not drawn here: the page
puts it under the image (``page.figure``).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
import numpy as np

from .figures import FigureData
from .paper_refs import Mark

#: Inches per panel; two panels make a figure about as wide as the book's text column.
PANEL = (3.5, 2.7)
#: Font sizes in points; ``SMALLEST`` is the least of them (what the book's browser test bounds).
FONTS = dict(title=10.5, label=10, ticks=9, legend=8.5)
SMALLEST = min(FONTS.values())
#: Okabe-Ito colours (distinct to colour-blind readers), then line styles and markers, per series.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v")
SPLITS = ("train ", "validation ")


def _pair(label: str) -> tuple[str, str]:
    """A series label "group, variant" split in two ("", label where it has no group)."""
    group, _, variant = label.rpartition(", ")
    return group, variant


def draw(fig: FigureData, spectrum: bool = False, ncols: int | None = None, markers: bool = True,
         hlines: dict | None = None, marks: list[Mark] = (), logy: tuple[str, ...] = (),
         xlabels: dict[str, str] | None = None, paired: bool = False):
    """A matplotlib figure of ``fig``: one axis per panel.

    Args:
        spectrum: colour the curves of a panel blue -> red in order (one curve per block).
        ncols: panels per row (default 2, or 1 for a single panel).
        markers: mark each point of a series (its own marker shape); False: lines only.
        hlines: ``{panel: (y, label)}`` horizontal lines of ours (e.g. the full network's accuracy).
        marks: the paper's values to draw (a registry figure's ``marks``).
        logy: panels drawn on a log scale.
        xlabels: ``{panel: label}``, a panel's own x label (default ``fig.xlabel``).
        paired: series labelled "group, variant" (Fig. 7: "borderline, scale 0.5"): colour and
            marker follow the variant in every panel, the line style the group, and the legend has
            one entry per variant and one per group instead of one per combination.
    """
    names = order(list(fig.panels))
    ncols = min(ncols or 2, len(names))
    nrows = math.ceil(len(names) / ncols)
    out, axes = plt.subplots(nrows, ncols, figsize=(PANEL[0] * ncols, PANEL[1] * nrows), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("coolwarm")
    # One style per series label over the whole figure, so one legend serves every panel.
    labels = list(dict.fromkeys(label for name in names for label in fig.panels[name]))
    variants = list(dict.fromkeys(_pair(label)[1] for label in labels))  # paired: colours and markers
    groups = list(dict.fromkeys(g for g, _ in map(_pair, labels) if g))  # paired: line styles
    legend = {}
    for ax, name in zip(axes.flat, names):
        curves = fig.panels[name]
        for k, (label, s) in enumerate(curves.items()):
            if spectrum:
                style = dict(color=cmap(k / max(1, len(curves) - 1)), ls=LINESTYLES[k % len(LINESTYLES)])
            else:
                if paired:
                    group, variant = _pair(label)
                    i, j = variants.index(variant), groups.index(group) if group else 0
                else:
                    i = j = labels.index(label)
                style = dict(color=COLORS[i % len(COLORS)], ls=LINESTYLES[j % len(LINESTYLES)],
                             marker=MARKERS[i % len(MARKERS)] if markers else None, ms=3.5)
            mean, std = s.mean, s.std
            line, = ax.plot(s.x, mean, lw=1.5, label=label, **style)
            if len(s.runs) > 1:
                ax.fill_between(s.x, mean - std, mean + std, alpha=0.2, color=line.get_color(), lw=0)
        if name in logy:
            ax.set_yscale("log")
        if hlines and name in hlines:
            y, label = hlines[name]
            ax.axhline(y, color="#555555", ls=(0, (1, 1.5)), lw=1.2, label=label)
        _marks(ax, [m for m in marks if m.panel == name], curves)
        ax.set_title(name, fontsize=FONTS["title"])
        ax.set_xlabel((xlabels or {}).get(name, fig.xlabel), fontsize=FONTS["label"])
        ax.set_ylabel(fig.ylabel, fontsize=FONTS["label"])
        ax.tick_params(labelsize=FONTS["ticks"])
        ax.grid(alpha=0.3)
        if spectrum and len(curves) > 1:
            sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, len(curves)))
            bar = out.colorbar(sm, ax=ax)
            bar.set_label("block (first → last)", fontsize=FONTS["label"])
            bar.ax.tick_params(labelsize=FONTS["ticks"])
        for h, label in zip(*ax.get_legend_handles_labels()):
            # a spectrum's blocks are read off its colour bar; paired series off the keys below
            if not ((spectrum or paired) and label in curves):
                legend.setdefault(label, h)
    if paired:
        keys = {v: Line2D([], [], color=COLORS[i % len(COLORS)], marker=MARKERS[i % len(MARKERS)] if markers else None,
                          ms=3.5, lw=1.5) for i, v in enumerate(variants)}
        keys |= {g: Line2D([], [], color="#555555", ls=LINESTYLES[j % len(LINESTYLES)], lw=1.5)
                 for j, g in enumerate(groups)}
        legend = keys | legend
    if legend:  # above the panels, so no curve hides behind it
        out.legend(legend.values(), legend.keys(), loc="outside upper center", fontsize=FONTS["legend"],
                   ncols=min(len(legend), 2 if ncols > 1 else 1), frameon=False, handlelength=2.5)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    return out


def order(names: list[str]) -> list[str]:
    """Panels in reading order: a "train X" panel followed by its "validation X" (side by side
    in two columns); any other order is kept."""
    if not all(n.startswith(SPLITS) for n in names):
        return names
    metrics = list(dict.fromkeys(n.split(" ", 1)[1] for n in names))
    return [f"{s}{m}" for m in metrics for s in SPLITS if f"{s}{m}" in names]


def _marks(ax, marks: list[Mark], curves: dict) -> None:
    """Draw the paper's values on ``ax`` in black: lines, points or a band."""
    xs = next(iter(curves.values())).x if curves else [0]
    for m in sorted(marks, key=lambda m: m.x is None and isinstance(m.y, tuple)):  # bands last: they fix the limits
        if m.x is None and isinstance(m.y, tuple):
            lo, hi = ax.get_ylim()
            band = (lo if m.y[0] is None else m.y[0], hi if m.y[1] is None else m.y[1])
            ax.axhspan(*band, color="#888888", alpha=0.12, lw=0, label=m.label)
            ax.set_ylim(lo, hi)
        elif m.x is None:
            ax.axhline(m.y, color="black", ls="--", lw=1.2, label=m.label)
        else:
            x = [xs[0] if v == "first" else xs[-1] if v == "last" else v for v in m.x]
            y = list(m.y) if isinstance(m.y, tuple) else [m.y] * len(x)
            ax.plot(x, y, color="black", ls=(0, (4, 2)) if len(x) > 1 else "none", lw=1, marker="*", ms=10,
                    label=m.label, zorder=5)
            ours = np.concatenate([np.asarray(s.mean, dtype=float) for s in curves.values()])
            ours = ours[np.isfinite(ours)]
            if len(ours) and min(ours.min(), min(y)) > 0 and max(ours.max() / min(y), max(y) / ours.min()) > 20:
                ax.set_yscale("log")  # the paper's value lies decades from ours: show both
