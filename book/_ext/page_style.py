"""The book's page furniture: styles for the verdict boxes, badges, figures and scorecard grid
that ``refine_utils.page`` emits, and a small script that opens a figure full-size on click
(Escape or a second click closes it). The files live in ``static/`` beside this module.

myst-nb sets every glued value in bold: right for a number or a test's outcome ("holds"), heavy
for a glued sentence (``training_fit``); ``MarkSentences`` marks glued text of more than
``SENTENCE`` characters ``rf-sentence``, which the style sets in the body's weight."""
from pathlib import Path

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

STATIC = Path(__file__).parent / "static"
SENTENCE = 80


class MarkSentences(SphinxPostTransform):
    default_priority = 10  # after myst-nb pastes the glue of other pages (priority 5)

    def run(self, **kwargs):
        for node in self.document.findall(nodes.inline):
            if "pasted-text" in node["classes"] and len(node.astext()) > SENTENCE:
                node["classes"].append("rf-sentence")


def _static_path(app, config):
    config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("config-inited", _static_path)
    app.add_css_file("refine.css")
    app.add_js_file("refine.js")
    app.add_post_transform(MarkSentences)
    return {"parallel_read_safe": True}
