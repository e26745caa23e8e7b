"""The site: ``jupyter-book build -W`` succeeds, and every page works offline in a real browser.

The build reads the committed results of the published profile (no training; a missing result
fails it). The browser
check opens each page of the table of contents from disk in Debian's headless chromium (driven
by selenium, no network: no driver download, no CDN) and asserts that it logs no console
error, that every image decodes, and that MathJax typesets the math. Then, as a reader sees
it at a 1400 px desktop window and a 400 px phone: every figure's panels are wide enough and
its smallest text large enough, every page that judges a claim opens with a verdict badge,
nothing scrolls sideways on the phone outside code cells and wide tables, every local link resolves, and the
site never cites a file the reader cannot open. Screenshots of the scorecard and two figure
pages at both widths are written to ``_build/screenshots/`` for review.
"""
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from refine_utils import profiles, registry
from refine_utils.book import toc_files
from test_notebooks import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The built site (``<tmp>/_build/html``), built with the README's flags into a temporary folder."""
    out = tmp_path_factory.mktemp("book")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINE_")}  # the committed results
    env["REFINE_MISSING_RESULTS"] = "error"  # a result missing from results/ fails the build, never recomputed
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
    html = (site / "notebooks" / "fig2_l2_ratio.html").read_text()
    assert f"Profile <code>{profiles.PUBLISHED}</code>" in html and "Results computed at commit" in html
    assert html.count('<figure class="rf-figure"') >= 1 and "Figure 2.</span>" in html


def test_glued_sentences_read_as_prose_and_glued_numbers_stand_out(site):
    """The sentence on how far the networks got is pasted on every page that quotes it, in the body's
    weight; a glued number or outcome stays bold (myst-nb's pasted-text)."""
    for doc in ("book/intro", "notebooks/training", "notebooks/fig2_l2_ratio", "notebooks/fig7_unroll"):
        html = (site / f"{doc}.html").read_text()
        assert re.search(r'<span class="pasted-text rf-sentence">the networks of profile', html), doc
    fig2 = (site / "notebooks" / "fig2_l2_ratio.html").read_text()
    assert re.search(r'<span class="pasted-text">(holds|fails|is within noise)', fig2)  # an outcome, bold


def test_the_bibliography_labels_read_as_author_initials(site):
    html = (site / "book" / "references.html").read_text()
    assert ">JAB+18<" in html and "Jastrzk" not in html  # not the LaTeX accent spelled out


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


#: The reader's windows (CSS px), and what a figure must give at each: the width of one panel
#: and the smallest text, both after the theme has scaled the image to its column.
WINDOWS = {"desktop": (1400, 900), "phone": (400, 800)}
MIN_PANEL_PX = {"desktop": 300, "phone": 300}
MIN_TEXT_PX = 10
SCREENSHOTS = ROOT / "_build" / "screenshots"
SHOTS = ("book/scorecard", "notebooks/fig2_l2_ratio", "notebooks/fig7_unroll")


def _visible_figures(driver) -> list[dict]:
    """Each figure image the reader sees: its rendered width and the layout it was drawn with."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('figure.rf-figure img'))
          .filter(i => i.offsetWidth > 0)
          .map(i => ({id: i.closest('figure').id, width: i.getBoundingClientRect().width,
                      ncols: +i.dataset.ncols, widthPt: +i.dataset.widthPt, fontPt: +i.dataset.fontPt}));
    """)


def _sideways(driver) -> list[str]:
    """Elements that scroll (or push the page) sideways, outside code cells, their printed outputs,
    display equations and data tables too wide for the phone."""
    return driver.execute_script("""
        const out = [];
        if (document.scrollingElement.scrollWidth > window.innerWidth + 1) out.push('the page itself');
        for (const el of document.querySelectorAll('article *')) {
          // Code cells, printed outputs, display equations and a wide table (its numbers kept whole)
          // scroll within themselves, as in any book.
          if (el.closest('pre, div.highlight, div.cell_input, .output.text_plain, .output.stream, mjx-container, '
                         + 'div.pst-scrollable-table-container'))
            continue;
          const style = getComputedStyle(el);
          if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
            out.push(el.tagName + '.' + el.className + ': ' + (el.textContent || '').slice(0, 60));
        }
        return out;
    """)


@pytest.mark.parametrize("window", WINDOWS)
def test_pages_read_well_at_desktop_and_phone_width(site, browser, window):
    browser.set_window_size(*WINDOWS[window])
    width = browser.execute_script("return window.innerWidth")
    assert abs(width - WINDOWS[window][0]) < 40, f"the window is {width} px wide"
    judged = {p.notebook for p in registry.PAGES.values() if p.claims}
    problems, figures = [], 0
    for doc in toc_files():
        browser.get((site / f"{doc}.html").as_uri())
        for fig in _visible_figures(browser):
            figures += 1
            panel = fig["width"] / fig["ncols"]
            text = fig["fontPt"] * fig["width"] / fig["widthPt"]
            if panel < MIN_PANEL_PX[window] or text < MIN_TEXT_PX:
                problems.append(f"{doc} {fig['id']}: panels {panel:.0f} px wide, smallest text {text:.1f} px")
        if doc in judged and not browser.execute_script(
                "return !!document.querySelector('.rf-verdict .rf-badge') && "
                "document.querySelector('.rf-verdict').getBoundingClientRect().width > 0"):
            problems.append(f"{doc}: judges a claim but shows no verdict badge")
        if window == "phone":
            problems += [f"{doc}: scrolls sideways: {w}" for w in _sideways(browser)]
        if doc in SHOTS:  # the whole page (up to a limit), as a reviewer scrolls it
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(WINDOWS[window][0], min(height, 8000) + 150)
            browser.save_screenshot(str(SCREENSHOTS / f"{doc.replace('/', '_')}-{window}.png"))
            browser.set_window_size(*WINDOWS[window])
    assert figures >= len(judged), "every figure page shows its figures"
    assert not problems, "\n".join(problems)


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def test_every_local_link_resolves(site):
    broken = []
    for doc in toc_files():
        path = site / f"{doc}.html"
        parser = _Links()
        parser.feed(path.read_text())
        for href in parser.hrefs:
            if re.match(r"^[a-z]+:", href):
                continue  # http(s), mailto, data: not local
            target, _, anchor = href.partition("#")
            dest = (path.parent / target).resolve() if target else path
            if not dest.exists():
                broken.append(f"{doc}: {href}")
            elif anchor and dest == path and anchor not in parser.ids:
                broken.append(f"{doc}: {href} (no such anchor)")
    assert not broken, broken


def test_the_site_cites_only_what_a_reader_can_open(site):
    """No page names the repository's private notes on the paper (the paper-in-brief page says
    it all), and no figure was computed from uncommitted code."""
    pages = {p.relative_to(site): p.read_text() for p in site.rglob("*.html")}
    assert not [str(p) for p, text in pages.items() if "PAPER.md" in text]
    assert not [str(p) for p, text in pages.items() if "+dirty" in text], "recompute results of uncommitted code"


def test_a_figure_opens_full_size_on_click(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(*WINDOWS["desktop"])
    browser.get((site / "notebooks" / "fig7_unroll.html").as_uri())
    img = browser.find_element(By.CSS_SELECTOR, "figure.rf-figure img.rf-wide")
    before = img.size["width"]
    browser.execute_script("arguments[0].scrollIntoView()", img)
    img.click()
    figure = browser.find_element(By.CSS_SELECTOR, "figure.rf-figure")
    assert "rf-zoomed" in figure.get_attribute("class") and img.size["width"] > before
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert "rf-zoomed" not in figure.get_attribute("class")
