"""Every notebook executed from scratch at ``profile=smoke``, then checked with nbval.

The session fixture runs ``book.execute("smoke", ...)``, what ``make results PROFILE=smoke`` runs:
every network the book needs trained one process per core, then each notebook of the book (the
ones of ``_toc.yml``) executed by papermill, one kernel per core, into a temporary folder, with
empty checkpoint and results caches, so every trained network and every result is recomputed.
Then:

- nbval (``--nbval-lax``) re-executes the executed notebooks and compares the cells tagged
  ``nbval-check-output`` (the printed numbers) with papermill's outputs, sanitised by
  ``tests/nbval_sanitize.cfg``;
- the freshly computed results must equal the committed ``results/smoke/`` file for file:
  the smoke profile is deterministic, and the committed results are what the code computes.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refine_utils import book, experiments, page, registry

ROOT = Path(__file__).resolve().parents[1]


NOTEBOOKS = book.notebooks()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """(executed notebooks folder, fresh results folder, environment) after running the book at smoke."""
    tmp = tmp_path_factory.mktemp("smoke")
    env = {"REFINE_RESULTS_DIR": str(tmp / "results"), "REFINE_CACHE_DIR": str(tmp / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t = time.perf_counter()
        book.execute("smoke", tmp, progress=False)  # what `make results PROFILE=smoke` runs
        print(f"\nthe smoke book from scratch: {time.perf_counter() - t:.0f} s")
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return tmp, tmp / "results", env


def test_every_figure_notebook_is_in_the_toc():
    assert sorted(NOTEBOOKS) == sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_every_figure_notebook_is_one_page_of_the_registry():
    assert sorted(ROOT / f"{p.notebook}.ipynb" for p in registry.PAGES.values()) == sorted(NOTEBOOKS)


def _code(nb: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("key", registry.PAGES)
def test_a_notebook_makes_its_pages_one_call_and_shows_every_figure_once(key):
    pg = registry.PAGES[key]
    code = _code(ROOT / f"{pg.notebook}.ipynb")
    assert [c for c in code if "refine_utils" in c] == \
        [f'from refine_utils import page\n\nfig = page.show("{key}", profile, device, seeds)']
    one = len(pg.figures) == 1
    shown = [c for c in code if c.startswith("fig.figure(")]
    assert shown == (["fig.figure()"] if one else [f'fig.figure("{f.label}")' for f in pg.figures])
    assert code.count("print(fig.text())") == 1


#: A glued number in the prose: {glue:text}`[other.ipynb::]name[:format]`.
GLUE = re.compile(r"\{glue(?::\w+)?\}`(?:([^`:]+)::)?([^`:]+)")


@pytest.mark.parametrize("key", registry.PAGES)
def test_every_number_the_prose_quotes_is_glued_by_its_page(key, monkeypatch):
    """The prose of every notebook (its own, or another's through ``page.ipynb::name``) quotes only
    names the page's registry entry glues, computed here from the committed results."""
    monkeypatch.setenv("REFINE_MISSING_RESULTS", "error")
    name = Path(registry.PAGES[key].notebook).name + ".ipynb"
    quoted = set()
    for nb in NOTEBOOKS:
        prose = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "markdown")
        quoted |= {glued for other, glued in GLUE.findall(prose) if (other or nb.name) == name}
    assert quoted <= set(page.show(key).glued)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.ipynb")),
                         ids=lambda p: p.name)
def test_notebooks_are_committed_thin_and_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "strip outputs (nbstripout)"
    if path.parent.name != "notebooks":
        return  # a prose page that happens to run code (the scorecard, the costs table)
    params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for name in ("profile", "device", "seeds"):
        assert f"{name} = " in "".join(params[0]["source"])
    source = "\n".join("".join(c["source"]) for c in code)
    for definition in ("def ", "class ", "for x, y in", "nn.Module", ".backward("):
        assert definition not in source, f"no model, loop or metric is defined inside a notebook ({definition!r})"


def test_pretraining_trains_exactly_the_networks_the_notebooks_read(smoke_run):
    folder, _, env = smoke_run
    trained = {p.stem for p in (Path(env["REFINE_CACHE_DIR"])).glob("*.pt")}
    assert trained == {spec.name for spec in experiments.book_specs("smoke")}


def test_nbval_on_the_executed_notebooks(smoke_run):
    """nbval over the executed notebooks, one pytest per core, each taking every n-th notebook
    (108 s in one, 60 s in two on 2 cores, measured)."""
    folder, _, env = smoke_run
    workers = min(os.cpu_count() or 1, 2)
    runs = [subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                              "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
                              "--nbval-cell-timeout=900", *[str(folder / nb.name) for nb in NOTEBOOKS[i::workers]]],
                             cwd=ROOT / "notebooks", env=dict(os.environ, **env), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(workers)]
    for run in runs:
        out, err = run.communicate()
        assert run.returncode == 0, out[-6000:] + err[-3000:]


def test_smoke_results_match_the_committed_ones(smoke_run):
    _, fresh, _ = smoke_run
    fresh_files = {p.relative_to(fresh) for p in (fresh / "smoke").rglob("*.json")}
    committed_root = ROOT / "results"
    committed = {p.relative_to(committed_root) for p in (committed_root / "smoke").rglob("*.json")}
    assert fresh_files, "the notebooks computed no results"
    assert fresh_files == committed, (f"missing from results/smoke: {sorted(map(str, fresh_files - committed))[:5]}; "
                                      f"stale in results/smoke: {sorted(map(str, committed - fresh_files))[:5]}")
    for rel in sorted(fresh_files):
        new, old = (json.loads((root / rel).read_text()) for root in (fresh, committed_root))
        assert new["value"] == old["value"], f"{rel}: recomputed numbers differ from the committed ones"
        assert new["spec"] == old["spec"] and new["params"] == old["params"]


@pytest.mark.parametrize("params, message", [(dict(profile="huge"), "unknown profile 'huge'"),
                                             (dict(device="tpu"), "unknown device 'tpu'"),
                                             (dict(seeds=0), "seeds must be a positive integer")])
def test_bad_parameters_fail_in_the_first_cells(tmp_path, params, message):
    import papermill

    nb = NOTEBOOKS[0]
    with pytest.raises(papermill.PapermillExecutionError, match=message) as err:
        papermill.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters=params, cwd=str(nb.parent),
                                   kernel_name="python3", progress_bar=False)
    assert err.value.exec_count <= 3  # the parameters, injected parameters and set-up cells


def _tiny_notebook(path: Path, source: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                            "display_name": "Python 3"}})
    params = nbformat.v4.new_code_cell('profile = "none"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def test_notebooks_run_side_by_side_return_in_reading_order_and_a_failure_is_named(tmp_path, monkeypatch):
    from refine_utils import sweep

    src = tmp_path / "src"
    src.mkdir()
    books = [_tiny_notebook(src / f"{name}.ipynb", f'open("{tmp_path}/{name}-" + profile, "w").write("ran")')
             for name in ("first", "second", "third")]
    monkeypatch.setattr(book, "notebooks", lambda: books)
    out = tmp_path / "out"
    out.mkdir()
    assert book.run_notebooks("p1", out, workers=2) == [out / nb.name for nb in books]
    assert sorted(f.name for f in tmp_path.glob("*-p1")) == ["first-p1", "second-p1", "third-p1"]

    books[1] = _tiny_notebook(src / "second.ipynb", 'raise ValueError("no such result")')
    with pytest.raises(sweep.SweepError, match=r"1 of 3 notebooks failed:\n'.*second\.ipynb': "
                                               r"PapermillExecutionError: (.|\n)*no such result"):
        book.run_notebooks("p2", out, workers=2)
    assert sorted(f.name for f in tmp_path.glob("*-p2")) == ["first-p2", "third-p2"]  # the others still ran
    assert "no such result" in (out / "second.ipynb").read_text()  # the executed copy shows the error
