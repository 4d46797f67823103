# larq-irnet: `make demo` runs the main job, `make test` the test suite; both set up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
FASHION_MNIST := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install data lint test test-fast demo clean

install: $(VENV)/.installed data

$(VENV)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
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

test: install lint
	$(BIN)/pytest

# The edit-test loop: everything but the tests marked slow.
test-fast: install
	$(BIN)/pytest -m "not slow"

# The main job: train IR-Net ResNet-20 on Fashion-MNIST, convert with LCE, evaluate, report.
demo: install
	$(BIN)/larq-irnet demo --output-dir runs/demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
