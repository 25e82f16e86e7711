# sandbox-kernel: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else (venv, Docker engine, image, kernelspec) is set up on the way.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help venv engine image lock bench-image kernelspec browser hello demo test test-fast \
        test-engines screenshot lint bench bench-engines clean-containers

help:
	@echo "make demo   - set everything up, run notebooks/demo.ipynb in the sandbox kernel"
	@echo "make test   - set everything up and run the test suite against the real engine,"
	@echo "              then the engine matrix (make test-engines)"
	@echo "make test-fast - the fast tier only: no Docker engine needed (under a minute)"
	@echo "make test-engines - a second dockerd (runc, runsc, TLS) and rootful Podman beside"
	@echo "              the main engine, a subset of the suites on each (docs/engines.md)"
	@echo "make hello  - run one command in a fresh sandbox"
	@echo "make bench  - run the benchmarks (ratios against references, in one run)"
	@echo "make lint   - ruff and mypy"
	@echo "make lock   - regenerate docker/sandbox/requirements.lock from requirements.in"

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

engine:
	@bash docker/ensure-engine.sh

image: venv engine
	@PYTHON=$(PY) bash docker/build-sandbox.sh

lock: venv
	@PYTHON=$(PY) bash docker/lock-wheels.sh

kernelspec: venv
	@$(BIN)/sandbox-kernel install --sys-prefix >/dev/null

hello: image
	$(BIN)/sandbox-kernel exec -- python3 -c "print('hello from the sandbox')"

demo: image kernelspec
	@$(PY) -m sandbox_kernel.kernel.demo

browser:
	@bash tests/e2e/ensure-browser.sh

test: image kernelspec browser
	$(BIN)/pytest $(PYTEST_ARGS)
	@bash docker/engines/matrix.sh

test-engines: image kernelspec
	@bash docker/engines/matrix.sh

test-fast: venv
	$(BIN)/pytest -q tests/unit tests/fast $(PYTEST_ARGS)

screenshot: image kernelspec browser
	SANDBOX_UPDATE_SCREENSHOT=1 $(BIN)/pytest -q tests/e2e/test_jupyterlab.py

lint: venv
	$(BIN)/ruff check sandbox_kernel tests benchmarks
	$(BIN)/mypy

bench: image kernelspec
	$(PY) benchmarks/session.py
	$(PY) benchmarks/kernel.py
	$(PY) benchmarks/install.py
	$(PY) benchmarks/transfers.py
	$(PY) benchmarks/density.py

bench-image: venv engine
	$(PY) benchmarks/image.py

bench-engines: image kernelspec
	$(PY) benchmarks/engines.py

clean-containers: venv
	$(BIN)/sandbox-kernel cleanup
