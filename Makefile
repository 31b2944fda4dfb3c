# geothaw: two commands do all set-up on a fresh machine.
#   make run   – create .venv, install, run the default pipeline (embedded synthetic Alaska)
#   make test  – create .venv if needed, install, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is pinned to 2.13.0: where a CPU wheel of it is on the pip find-links path (as on the
# project's build machines) pip takes it instead of a multi-GB CUDA build. Elsewhere pass e.g.
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: run test install clean-venv

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_ARGS)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/geothaw run $(ARGS)
	@# the default run refreshes the README's picture (a run with ARGS leaves it alone)
	@if [ -z "$(ARGS)" ]; then cp runs/alaska/maps/overview.png maps/overview.png && echo "README picture refreshed: maps/overview.png"; fi

# two pytest workers, one test file each at a time (module fixtures are built once), in the order tests/conftest.py
# sets (slowest files first); PYTEST_WORKERS=0 runs serially
PYTEST_WORKERS ?= 2
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
