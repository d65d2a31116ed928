#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, built from the repository's fixtures.

usage: seeds.py CKPT_BINARY OUT_DIR

Python's standard library only (CI has no numpy here), plus the ckpt binary for the formats
only ckpt writes (.ckz) or that have few fixtures (GGUF). Seeds are small (a fuzzer mutates
small inputs much faster): files over MAX_BYTES are left out.
"""
import base64, glob, json, os, shutil, struct, subprocess, sys, tempfile, zipfile, zlib

MAX_BYTES = 256 * 1024
ckpt, out = sys.argv[1], sys.argv[2]
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
fx = os.path.join(root, "fixtures")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if len(data) <= MAX_BYTES:
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def copy(target, pattern):
    for p in sorted(glob.glob(os.path.join(fx, pattern), recursive=True)):
        with open(p, "rb") as f:
            put(target, os.path.relpath(p, fx).replace("/", "_"), f.read())


def run(*args):
    subprocess.run([ckpt, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def gguf_without(data, drop):
    """A GGUF file (v2/v3) with the key/value `drop` left out; tensors and data unchanged."""
    fixed = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type -> bytes

    def string(o):
        n = struct.unpack_from("<Q", data, o)[0]
        return data[o + 8:o + 8 + n], o + 8 + n

    def skip(t, o):
        if t == 8:
            return string(o)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, o)
            o += 12
            if et in fixed:
                return o + n * fixed[et]
            for _ in range(n):
                o = skip(et, o)
            return o
        return o + fixed[t]

    tensors, kvs = struct.unpack_from("<QQ", data, 8)
    o, kept, align = 24, [], 32
    for _ in range(kvs):
        start = o
        key, o = string(o)
        t = struct.unpack_from("<I", data, o)[0]
        o = skip(t, o + 4)
        if key == b"general.alignment":
            align = struct.unpack_from("<I", data, o - 4)[0]
        if key != drop:
            kept.append(data[start:o])
    infos = o
    for _ in range(tensors):
        o = string(o)[1]
        dims = struct.unpack_from("<I", data, o)[0]
        o += 4 + 8 * dims + 4 + 8
    head = data[:8] + struct.pack("<QQ", tensors, len(kept)) + b"".join(kept) + data[infos:o]
    return head + bytes(-len(head) % align) + data[(o + align - 1) // align * align:]


tmp = tempfile.mkdtemp(prefix="ckpt-seeds-")
try:
    # safetensors and sharded indexes
    copy("safetensors", "safetensors/*.safetensors")
    # a few models (one per header shape: BERT, GPT-2 Conv1D, LLaMA GQA, MoE); more of the same
    # only slow the fuzzer down, the header parser does not care for tensor names
    for model in ["bert-a", "gpt2-a", "llama-gqa", "qwen2-moe"]:
        copy("safetensors", f"models/{model}/model.safetensors")
    copy("safetensors", "tiny-gpt2-sharded/*.safetensors")
    put("sharded-index", "matching.json", json.dumps({
        "metadata": {"total_size": 11},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}).encode())
    copy("sharded-index", "**/*.index.json")

    # GGUF: gguf-py's file, and ckpt's LLaMA/GPT-2 renamings in f32 and block types
    copy("gguf", "gguf/*.gguf")
    for model in ["llama-gqa", "gpt2-a"]:
        src = os.path.join(fx, "models", model)
        run("convert", src, os.path.join(tmp, model + ".gguf"))
        run("quantize", src, os.path.join(tmp, model + "-q8_0.gguf"), "--scheme", "q8_0", "--quiet")
        run("quantize", src, os.path.join(tmp, model + "-q4_k.gguf"), "--scheme", "q4_k", "--fallback", "q4_0", "--quiet")
    # tokenizer.ggml.* keys of each vocabulary kind (gpt2, llama, bert, t5), which a conversion
    # to a model directory rebuilds tokenizer.json from: a GPT-2 skeleton (final norm only)
    # carrying each fixture tokenizer; and the llama one without its merges, as llama.cpp's
    # converter writes it (merges then rebuilt from the scores)
    for tok in ["gpt2", "llama2", "wordpiece", "xlmr"]:
        d = os.path.join(tmp, "tok-" + tok)
        os.makedirs(d)
        for f in ["config.json", "model.safetensors"]:
            shutil.copy(os.path.join(fx, "tokenizers", "gpt2-model", f), d)
        shutil.copy(os.path.join(fx, "tokenizers", tok, "tokenizer.json"), d)
        run("convert", d, os.path.join(tmp, f"tok-{tok}.gguf"), "--exclude", r"transformer\.(h\.|wte|wpe)", "--quiet")
    with open(os.path.join(tmp, "tok-llama2.gguf"), "rb") as f:
        put("gguf", "tok-llama2-scores-only.gguf", gguf_without(f.read(), b"tokenizer.ggml.merges"))
    copy_tmp = lambda target, ext: [put(target, os.path.basename(p), open(p, "rb").read())
                                    for p in sorted(glob.glob(os.path.join(tmp, "*" + ext)))]
    copy_tmp("gguf", ".gguf")

    # .ckz: every dtype, stored and compressed levels, a quantized model
    every = os.path.join(fx, "safetensors", "every_dtype.safetensors")
    for level in ["0", "2", "5"]:
        run("convert", every, os.path.join(tmp, f"every-l{level}.ckz"), "--level", level, "--quiet")
    run("convert", os.path.join(fx, "models", "gpt2-a"), os.path.join(tmp, "gpt2-a.ckz"), "--quiet")
    run("quantize", os.path.join(fx, "models", "llama-gqa"), os.path.join(tmp, "llama-int4.ckz"), "--scheme", "int4", "--quiet")
    copy_tmp("ckz", ".ckz")
    for p in sorted(glob.glob(os.path.join(tmp, "*.ckz"))):
        b = open(p, "rb").read()
        off, length = struct.unpack_from("<QQ", b, len(b) - 32)
        put("ckz-index", os.path.basename(p) + ".index", b[off:off + length])

    # raw DEFLATE for the chunk decoders: Huffman-only streams of exponent-like bytes (the
    # shape ckpt writes), ordinary streams with matches, stored and fixed blocks
    import random
    rng = random.Random(0)
    planes = [bytes(min(255, max(0, int(rng.gauss(120, 3)))) for _ in range(n)) for n in (1, 64, 4096, 65536)]
    for i, raw in enumerate(planes + [b"abcabcabcabc" * 50, bytes(300), bytes(range(256))]):
        for name, strategy, level in [("huff", zlib.Z_HUFFMAN_ONLY, 9), ("lz", zlib.Z_DEFAULT_STRATEGY, 6),
                                      ("fixed", zlib.Z_FIXED, 6), ("stored", zlib.Z_DEFAULT_STRATEGY, 0)]:
            c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
            put("ckz-chunk", f"{i}-{name}", struct.pack("<I", len(raw)) + c.compress(raw) + c.flush())
    # found by the target (2026-11-30): a literal-only stream whose unused distance code is
    # incomplete ([3, 1]); libdeflate refuses it, the fast decoder used to accept it
    put("ckz-chunk", "found-distance-code", base64.b64decode(
        "AAIQAAXBCYLENo4EwB+vWwLyAkiVPS/fDIKg06D9XOYAAAAAAAAAdrOU0OD72VEyzzrxYbTf9eiN6Dj6AAB0dgIQAAAAAAAAV1dXV1dX"
        "09PT09ME09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PThmEYhmEYhmEYhmEYhmEYhmEYhoZhGIZh"
        "GIZhGIZhGIZhGIZhGIZhGIZhGIZhGAAAEACGYRjT09PT09PT08/T09PT0wAAAAAAQAAAAADC2D+mLlroAAAAAAAAAD32A7/ZKf+T+E+P"
        "IqXjLv7OkeqTluxXnf8H"))

    # NumPy: .npy arrays (hand-built headers), .npz fixtures
    def npy(descr, shape, data, version=1):
        h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
        pad = 64 - (10 + len(h) + 1) % 64
        h = (h + " " * pad + "\n").encode()
        return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<H", len(h)) + h + data
    put("npy", "f32", npy("<f4", [2, 3], struct.pack("<6f", *range(6))))
    put("npy", "f16-scalar", npy("<f2", [], b"\x00\x3c"))
    put("npy", "u8-empty", npy("|u1", [0, 5], b""))
    put("npy", "bool", npy("|b1", [3], b"\x00\x01\x00"))
    put("npy", "i64", npy("<i8", [2], struct.pack("<2q", -1, 7)))
    copy("npz", "npz/*.npz")
    for p in sorted(glob.glob(os.path.join(fx, "npz", "*.npz"))):
        with zipfile.ZipFile(p) as z:
            for n in z.namelist():
                put("npy", os.path.basename(p) + "_" + n, z.read(n))

    # PyTorch: zip and legacy files; their pickles on their own for the unpickler
    copy("torch", "torch/*.pt")
    copy("torch", "torch/evil/*.pt")
    copy("torch", "torch/tiny-gpt2-bin/*.bin")
    for p in sorted(glob.glob(os.path.join(fx, "torch", "**", "*.pt"), recursive=True)
                    + glob.glob(os.path.join(fx, "torch", "**", "*.bin"), recursive=True)):
        b = open(p, "rb").read()
        name = os.path.relpath(p, fx).replace("/", "_")
        if b[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(p) as z:
                for n in z.namelist():
                    if n.endswith(".pkl"):
                        put("pickle", name + ".pkl", z.read(n))
        else:
            put("pickle", name, b)

    # JSON, model configs, pipelines
    copy("json", "**/*.json")
    copy("model-config", "**/config.json")
    # Configs that once crashed or exhausted `ckpt forward` (issue 19), on a real LLaMA config.
    with open(os.path.join(fx, "models", "llama-gqa", "config.json")) as f:
        llama = json.load(f)
    for name, change in [("head-dim-2e40", {"head_dim": 1 << 40}), ("head-dim-2e9", {"head_dim": 2 * 10**9}),
                         ("layers-1e9", {"num_hidden_layers": 10**9}), ("layers-max", {"num_hidden_layers": 2**63 - 1}),
                         ("hidden-2e62", {"hidden_size": 1 << 62}), ("window-negative", {"sliding_window": -1}),
                         ("rope-theta-negative", {"rope_parameters": {"rope_theta": -1.0, "rope_type": "default"}}), ("eps-negative", {"rms_norm_eps": -1e-5})]:
        put("model-config", "hostile-" + name + ".json", json.dumps({**llama, **change}).encode())
    # tokenizer.json of every model family the tokenizers fixtures cover
    copy("tokenizer", "tokenizers/*/tokenizer.json")
    with open(os.path.join(root, "pipeline.yaml"), "rb") as f:
        put("pipeline-yaml", "pipeline.yaml", f.read())
    put("pipeline-yaml", "all-steps.yaml", b"""version: 1
steps:
  - convert:  {input: m, output: a.safetensors, dtype: f16}
  - quantize: {input: a.safetensors, output: b.gguf, scheme: q4_k}
  - prune:    {input: m, output: p/, nm: "2:4", importance: magnitude}
  - distill:  {input: m, output: d/, layers: 1, steps: 3, lr: 0.001, batch: 2}
  - verify:   {reference: m, candidate: b.gguf, preset: q4_k}
""")
    put("pipeline-yaml", "anchors.yaml", b"base: &b {input: m, output: o.ckz}\nsteps:\n  - convert: *b\n")
    put("pipeline-yaml", "json.json", b'{"steps": [{"convert": {"input": "m", "output": "o.npz"}}]}')

    # importance matrices as llama-imatrix writes them (GGUF and legacy .dat)
    copy("imatrix", "imatrix/llamacpp.imatrix.*")
    # found by the imatrix target (2026-11-30): a GGUF of one empty tensor that ends before
    # its data section (the reader trapped on a view past the end); a seed of both targets
    empty = base64.b64decode("R0dVRgMAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADAAAAAAAAAAAAAAAAAAAAAAAAADAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAg=")
    put("imatrix", "found-empty-tensor-no-padding.gguf", empty)
    put("gguf", "found-empty-tensor-no-padding.gguf", empty)

    # detect: the first byte picks the file's name (0 = no extension, others one of the
    # registry's extensions or one that lies), the rest is a file: the two smallest seeds
    # of every file format, an HDF5 file and a .keras archive, each under a few names
    files = []
    for target in ["safetensors", "gguf", "ckz", "npy", "npz", "torch", "pickle"]:
        d = os.path.join(out, target)
        for name in sorted(os.listdir(d), key=lambda n: os.path.getsize(os.path.join(d, n)))[:2]:
            files.append((target + "-" + name, open(os.path.join(d, name), "rb").read()))
    for pattern in ["hdf5/*.h5", "keras/*.keras"]:
        for p in sorted(glob.glob(os.path.join(fx, pattern)), key=os.path.getsize)[:1]:
            files.append((os.path.basename(p), open(p, "rb").read()))
    for name, data in files:
        for selector in (0, 1, 7):
            put("detect", f"{selector}-{name}", bytes([selector]) + data)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
