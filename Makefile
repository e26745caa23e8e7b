# The two set-up commands of the README: `make book` (the main job) and `make test`.
# Each creates the virtual environment in .venv if it is missing, with every version pinned
# by requirements.lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test results env browser clean

env: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"
	$(BIN)/pip install --quiet -c requirements.lock -e ".[book,test]"
	touch $(STAMP)

# jupyter-cache keys a notebook on its code alone, and Sphinx re-reads only changed sources:
# when the results, the library or bench/'s measurements change, both are stale, so both go.
RESULTS_STAMP := _build/.results-stamp
$(RESULTS_STAMP): $(shell find results refine_utils bench -type f -name '*.json' -o -type f -name '*.py' 2>/dev/null)
	rm -rf _build/.jupyter_cache _build/.doctrees
	mkdir -p _build && touch $@

# Sphinx does not notice a changed extension of the book's own (book/_ext): its pages are re-read,
# and the executed notebooks kept.
EXT_STAMP := _build/.ext-stamp
$(EXT_STAMP): $(wildcard book/_ext/*.py)
	rm -rf _build/.doctrees
	mkdir -p _build && touch $@

# Executes every notebook against the committed results/ of the published profile (no
# training: a missing result fails the build naming the command that computes it), with
# jupyter-cache, and fails on any notebook error (-W).
book: $(STAMP) $(RESULTS_STAMP) $(EXT_STAMP)
	REFINE_MISSING_RESULTS=error $(BIN)/jupyter-book build . -W --keep-going
	@echo ""
	@echo "The book is built. Open it (it works offline, from disk):"
	@echo "    file://$(CURDIR)/_build/html/index.html"

# Recompute (or resume) one profile's results: its networks trained one process per core, then
# every notebook executed by papermill with profile=$(PROFILE), one kernel per core. Checkpoints
# are cached in $$REFINE_CACHE_DIR (default cache/), results written to results/$(PROFILE)/, executed copies
# to _build/executed/$(PROFILE)/. Real CIFAR is read from $$REFINE_DATA_DIR (default ./data), e.g.
#     make results PROFILE=cifar10-cpu REFINE_DATA_DIR=/path/to/folder/with/cifar10
PROFILE ?= smoke
results: $(STAMP)
	$(BIN)/refine results --profile $(PROFILE)

# Unit tests, every notebook re-run from scratch at profile=smoke and checked by nbval, the
# book build, and the built site checked in headless chromium.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Debian's chromium and chromedriver for the site's browser test, installed when missing;
# where they cannot be installed the browser test is skipped and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "could not install chromium: the browser test will be skipped"; \
	else echo "chromium/chromedriver missing and not installable here (needs root and apt-get): the browser test will be skipped"; fi

clean:
	rm -rf _build
