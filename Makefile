# Two entry points: `make run` (set up, then open the studio) and `make test` (set up, then run every test).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test test-fast setup browser train-samples clean gpu-bundle

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-bench.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

run: setup
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

test: setup browser
	$(PY) -m pytest -q

# The library's unit tests only (no subprocess trainings, servers or browser): about a minute.
test-fast: setup
	$(PY) -m pytest -q -m unit

# A short CPU training on the sample images that ship with scikit-image.
train-samples: setup
	$(PY) -m denoise_core train --data samples --out runs/samples --epochs 3 --steps-per-epoch 20

# What training/gpu.sh needs on a GPU machine without network: the wheels its python3 (3.12, torch 2.11) lacks, and
# a copy of the training images (it cannot see ../shared). Ignored by git; the device tool carries it.
GPU_WHEELS := kornia==0.9.0 kornia_rs==0.2.0 pytorch-msssim==1.0.0 openpyxl==3.1.5 et_xmlfile==2.0.0
gpu-bundle: setup
	rm -rf training/gpu-bundle && mkdir -p training/gpu-bundle/wheels
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d training/gpu-bundle/wheels $(GPU_WHEELS)
	cp -r ../shared/data/train/CBSD432 training/gpu-bundle/CBSD432

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
