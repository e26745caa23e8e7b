"""Emit each page script once.

sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL = ...``) once per
read of the environment; when jupyter-book reads it twice, every page declares the constant
twice and the browser logs "Identifier 'THEBE_JS_URL' has already been declared". The site's
browser check rejects any console error, so duplicates are dropped here, page by page.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in sorted(context.get("script_files", []), key=lambda js: getattr(js, "priority", 500)):
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", None) or "", str(attributes.get("body", "")))  # None and "" alike
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # in place: later handlers (MathJax) still add to it


def setup(app):
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", _dedupe, priority=100)
    return {"parallel_read_safe": True}
