"""Serve MathJax from the built site instead of a CDN, so the book renders with no network.

The MathJax files ship in the PyPI package ``sphinx-mathjax-offline``, whose folder name has
hyphens and cannot be imported as an extension; this extension copies its files instead.
"""
import sysconfig
from pathlib import Path

from sphinx.util.fileutil import copy_asset

MATHJAX = Path(sysconfig.get_paths()["purelib"]) / "sphinx-mathjax-offline" / "static" / "mathjax"


def _copy(app, exc):
    if exc is None:
        copy_asset(str(MATHJAX), str(Path(app.outdir) / "_static" / "mathjax"))


def setup(app):
    if not (MATHJAX / "tex-chtml.js").exists():
        raise RuntimeError(f"MathJax not found at {MATHJAX}: install the book extra (pip install -e '.[book]')")
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True}
