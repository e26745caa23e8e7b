"""The book's page furniture: styles for the verdict boxes, badges, figures and scorecard grid
that ``refine_utils.page`` emits, and a small script that opens a figure full-size on click
(Escape or a second click closes it). The files live in ``static/`` beside this module."""
from pathlib import Path

STATIC = Path(__file__).parent / "static"


def _static_path(app, config):
    config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("config-inited", _static_path)
    app.add_css_file("refine.css")
    app.add_js_file("refine.js")
    return {"parallel_read_safe": True}
