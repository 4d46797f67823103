# larq-irnet: `make demo` runs the main job, `make test` the test suite; both set up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
FASHION_MNIST := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install data lint test test-fast demo clean

install: $(VENV)/.installed data

# The tested stack with TensorFlow's CPU build (tensorflow-cpu: the same TensorFlow without
# CUDA, so no CUDA start-up lines on machines without a GPU). tf-keras and setup.py require
# `tensorflow`, the GPU-capable build that pip users keep; tensorflow-cpu provides the same
# module under another name, so those two install without dependencies and the rest of
# setup.py's requirements are installed from its metadata (`pip check` names the missing
# `tensorflow`: expected here). docs/install.md.
OTHER_REQUIREMENTS := import re; from importlib.metadata import requires; \
	print("\n".join(r.split(";")[0] for r in requires("larq-irnet") \
	if re.split("[^A-Za-z0-9_.-]", r)[0] not in ("tensorflow", "tf-keras")))

$(VENV)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip uninstall --quiet --yes tensorflow 2>/dev/null || true
	$(BIN)/pip install --quiet -c constraints.txt tensorflow-cpu
	$(BIN)/pip install --quiet -c constraints.txt --no-deps tf-keras -e ".[test]"
	$(BIN)/python -c '$(OTHER_REQUIREMENTS)' > $(VENV)/requirements.txt
	$(BIN)/pip install --quiet --no-warn-conflicts -c constraints.txt -r $(VENV)/requirements.txt
	touch $@

# Fashion-MNIST's IDX files from Debian, for the offline demo and the real-data tests.
data:
	@if [ ! -f $(FASHION_MNIST)/t10k-labels-idx1-ubyte.gz ] && command -v apt-get >/dev/null; then \
		echo "Installing the Debian package dataset-fashion-mnist"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist \
			|| echo "warning: could not install dataset-fashion-mnist; pass --data-dir"; \
	fi

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two worker processes (pytest-xdist): the suite is CPU-bound and most tests use one core.
PYTEST_WORKERS ?= 2

test: install lint
	$(BIN)/pytest -n $(PYTEST_WORKERS)

# The edit-test loop: everything but the tests marked slow, on the same workers.
test-fast: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not slow"

# The main job: train IR-Net ResNet-20 on Fashion-MNIST, convert with LCE, evaluate, report.
demo: install
	$(BIN)/larq-irnet demo --output-dir runs/demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
