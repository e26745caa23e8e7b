"""Draw a ``figures.FigureData`` in the paper's layout.

Panels side by side (the four architectures, or the metrics of one network), every curve its
mean over seeds with a band of one standard deviation. Curves over blocks compare train (solid)
and validation (dashed); curves *per block* (Fig. 5, the appendix) run from blue (first block)
to red (last), the paper's spectrum. A caption line under the figure states the profile,
dataset, widths, epochs, seeds, device and commit that produced it.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt

from .figures import FigureData

STYLE = {"train": dict(color="tab:blue", ls="-"), "validation": dict(color="tab:red", ls="--"),
         "borderline": dict(color="tab:orange"), "correct": dict(color="tab:green"), "all": dict(color="black")}


def draw(fig: FigureData, spectrum: bool = False, ncols: int | None = None, marker: str | None = "o",
         hlines: dict | None = None, panel_size=(3.6, 2.9)):
    """A matplotlib figure of ``fig``: one axis per panel.

    Args:
        spectrum: colour the curves of a panel blue -> red in order (one curve per block).
        ncols: panels per row (default: all in one row, up to 4).
        hlines: ``{panel: (y, label)}`` horizontal reference lines (e.g. the full network's accuracy).
    """
    names = list(fig.panels)
    ncols = ncols or min(len(names), 4)
    nrows = math.ceil(len(names) / ncols)
    out, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.5),
                             squeeze=False)
    cmap = plt.get_cmap("coolwarm")
    for ax, name in zip(axes.flat, names):
        curves = fig.panels[name]
        for k, (label, s) in enumerate(curves.items()):
            style = dict(color=cmap(k / max(1, len(curves) - 1))) if spectrum else _style(label)
            mean, std = s.mean, s.std
            line, = ax.plot(s.x, mean, marker=None if spectrum else marker, ms=3, lw=1.2, label=label, **style)
            if len(s.runs) > 1:
                ax.fill_between(s.x, mean - std, mean + std, alpha=0.2, color=line.get_color(), lw=0)
        if hlines and name in hlines:
            y, label = hlines[name]
            ax.axhline(y, color="gray", ls=":", lw=1, label=label)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(fig.extra.get("xlabels", {}).get(name, fig.xlabel), fontsize=9)
        ax.set_ylabel(fig.ylabel, fontsize=9)
        if name in fig.extra.get("logy", ()):
            ax.set_yscale("log")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if spectrum:
            if len(curves) > 1:
                sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, len(curves)))
                out.colorbar(sm, ax=ax, label="block (first → last)").ax.tick_params(labelsize=7)
        else:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    out.suptitle(fig.title, fontsize=11)
    out.text(0.5, 0.005, fig.caption(), ha="center", va="bottom", fontsize=7, wrap=True)
    out.tight_layout(rect=(0, 0.04, 1, 1))
    return out


def _style(label: str) -> dict:
    for key, style in STYLE.items():
        if label.startswith(key):
            return dict(style)
    return {}
