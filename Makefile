# Two commands on a fresh machine (README): `make demo` and `make test`.
# Both create .venv with python3 -m venv and install the project when needed; the install
# is redone only when pyproject.toml changes (the stamp file below).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.afx-installed
BENCH_STAMP := $(VENV)/.afx-bench-installed

.PHONY: fuzz setup demo test bench clean schemas

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

# The demo runs every example (fetch, upload, compose, generate) to the end: packaged and
# published to specs/outbox/ (or staged / scheduled / held, as each spec says), and writes
# specs/out/report.html. DEMO_RUN adds `afx run` arguments (e.g. DEMO_RUN="-j 2").
DEMO_RUN ?=

demo: $(STAMP)
	$(BIN)/python -m afx.testing.demo specs -- $(DEMO_RUN)

# lint-imports: the layers and dependency rules; mypy: types (strict on the engine and the
# spec loader). Both read pyproject.toml and keep a cache: a second run takes a second.
test: $(STAMP)
	$(BIN)/ruff check afx tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy afx
	$(BIN)/python -m pytest -q

# The schemas' enums of publishers, layouts, caption styles and platforms are made from afx's
# registries (afx/extensions.py): run after adding one; tests/test_registries.py checks it.
schemas: $(STAMP)
	$(BIN)/python -m afx.extensions

bench: $(BENCH_STAMP)
	cd bench && ../$(BIN)/python validate.py
	cd bench && ../$(BIN)/python noop.py
	cd bench && ../$(BIN)/python analyze.py
	cd bench && ../$(BIN)/python render.py
	cd bench && ../$(BIN)/python compose.py
	cd bench && ../$(BIN)/python api.py
	cd bench && ../$(BIN)/python scale.py
	cd bench && ../$(BIN)/python ingest.py
	cd bench && ../$(BIN)/python speech.py
	cd bench && ../$(BIN)/python vod.py

# schemathesis against afx serve's /openapi.json with a real budget (make test runs 8 examples).
FUZZ_EXAMPLES ?= 100
fuzz: $(STAMP)
	AFX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/server/test_fuzz.py

clean:
	rm -rf $(VENV) out specs/out .afx specs/.afx .pytest_cache .mypy_cache .import_linter_cache
