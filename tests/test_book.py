"""The site: ``jupyter-book build -W`` succeeds, and every page works offline in a real browser.

The build reads the committed results of the published profile (no training). The browser
check opens each page of the table of contents from disk in Debian's headless chromium (driven
by selenium, no network: no driver download, no CDN) and asserts that it logs no console
error, that every image decodes, and that MathJax typesets the math.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from refine_utils import experiments
from refine_utils.book import toc_files
from test_notebooks import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The built site (``<tmp>/_build/html``), built with the README's flags into a temporary folder."""
    out = tmp_path_factory.mktemp("book")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINE_")}  # the committed results
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    jb = Path(sys.executable).with_name("jupyter-book")
    run = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(out), "-W", "--keep-going"],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-4000:]
    return out / "_build" / "html"


def test_every_toc_page_is_built(site):
    for doc in toc_files():
        assert (site / f"{doc}.html").stat().st_size > 0, doc
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax is served from the site itself"
    html = "".join((site / f"{doc}.html").read_text() for doc in toc_files())
    assert "cdn.jsdelivr.net/npm/mathjax" not in html


def test_figures_state_their_provenance(site):
    page = (site / "notebooks" / "fig2_l2_ratio.html").read_text()
    assert "Profile <code" in page and experiments.PUBLISHED in page
    assert page.count("<img") >= 1


def test_tables_that_notebooks_print_render_as_tables(site):
    """Markdown a notebook displays (the scorecard, Table 1, the GPU costs) becomes HTML tables."""
    for doc in ("book/scorecard", "notebooks/table1", "book/reproducing"):
        page = (site / f"{doc}.html").read_text()
        assert "<table" in page and "| --- |" not in page and "| — |" not in page, doc


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed and could not be "
                    "(`make test` runs `apt-get install chromium chromium-driver` where it can)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--allow-file-access-from-files", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _mathjax_done(driver) -> int:
    """Wait for MathJax to finish typesetting; the number of typeset math elements."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const count = () => document.querySelectorAll('mjx-container').length;
        if (!window.MathJax || !MathJax.startup) { done(count()); return; }
        MathJax.startup.promise.then(() => done(count())).catch(() => done(-1));
    """)


def test_every_page_renders_offline_in_a_browser(site, browser):
    browser.set_script_timeout(60)
    typeset = {}
    for doc in toc_files():
        browser.get((site / f"{doc}.html").as_uri())
        typeset[doc] = _mathjax_done(browser)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, f"{doc}: console errors {errors}"
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth, i.naturalHeight]);")
        for src, complete, width, height in images:
            assert complete and width > 0 and height > 0, f"{doc}: image {src} did not decode"
    assert typeset["book/theory"] > 5, "MathJax typeset the theory chapter's equations"
    assert min(typeset[d] for d in toc_files() if d.startswith("notebooks/fig2")) > 0
