# Two entry points: `make run` (set up, then open the studio) and `make test` (set up, then run every test).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test setup browser train-samples bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
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

# A short CPU training on the sample images that ship with scikit-image.
train-samples: setup
	$(PY) -m denoise_core train --data samples --out runs/samples --epochs 3 --steps-per-epoch 20

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
