# slamp — the commands of the README. `make demo` and `make test` set everything up on first use.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch first and pinned, so nothing later resolves an unpinned (CUDA, gigabytes) torch.
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: setup demo demo-figure test lint check-pairs check-export pytest pytest-fast nbval sync export notebooks lab assignments clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/slamp prepare mnist || echo "MNIST not prepared (offline?): run '$(BIN)/slamp prepare mnist' when online; until then what needs MNIST stops and says so"
	touch $(STAMP)

## The main job: end-to-end demo, writes figures and metrics to results/demo/.
demo: $(STAMP)
	$(BIN)/python -m slamp demo --out results/demo

## The README's figure, docs/demo_prediction.png: the demo's figure at its default settings.
demo-figure: demo
	cp results/demo/prediction.png docs/demo_prediction.png

## Everything CI checks: lint, pairs in sync, slamp/ equals a fresh export, unit tests (the slow
## ones included), notebooks (smoke). `make pytest-fast` leaves out the tests marked slow.
test: lint check-pairs check-export pytest nbval

lint: $(STAMP)
	$(BIN)/ruff check slamp tools tests benchmarks notebooks

check-pairs: $(STAMP)
	$(BIN)/python tools/literate.py sync --check

check-export: $(STAMP)
	$(BIN)/python tools/literate.py export --check

pytest: $(STAMP)
	$(BIN)/python -m pytest tests

pytest-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

nbval: $(STAMP)
	SLAMP_SMOKE=1 MPLBACKEND=Agg $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/

## Contributor commands: after editing a notebook, `make sync export`.
sync: $(STAMP)
	$(BIN)/python tools/literate.py sync

export: $(STAMP)
	$(BIN)/python tools/literate.py export

## Re-run every notebook at full settings and store its outputs in the .ipynb (for GitHub/Colab readers).
## Figures must be stored as PNG: the kernel runs without MPLBACKEND (Agg would display nothing),
## and slamp.notebook.setup() switches to the inline backend; tests/test_notebook_outputs.py checks.
notebooks: $(STAMP) sync
	for nb in notebooks/[0-9]*.ipynb; do \
		env -u MPLBACKEND $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=3600 "$$nb" || exit 1; \
	done

## Student notebooks and the student package (every exercise blank), in assignments/ (see the README's teachers' section).
assignments: $(STAMP)
	$(BIN)/python tools/assignments.py make --out assignments

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) results .pytest_cache
