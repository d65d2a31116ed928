#!/usr/bin/env python3
"""Generates ckpt's committed test fixtures with the real reference libraries.

    python tools/make_fixtures.py            # everything (needs torch + transformers)
    python tools/make_fixtures.py --no-torch # only the parts that need numpy + safetensors

Outputs (all under fixtures/, a few hundred kB in all):
  safetensors/every_dtype.safetensors   written by the `safetensors` library's own writer
                                        (serialize_file), every dtype it can name, with NaN
                                        payloads, ±inf, -0, subnormals, 0-d and zero-size tensors
  safetensors/every_dtype.expected.json name -> dtype, shape, sha256 and hex of the raw bytes,
                                        computed here from the bytes we handed the writer
  tiny-gpt2/                            GPT2LMHeadModel(config).save_pretrained(): config.json +
                                        model.safetensors (lm_head tied to wte, so left out)
  tiny-gpt2-sharded/                    the same model saved with max_shard_size="40KB":
                                        model-0000N-of-0000M.safetensors + index, by transformers
  tiny-gpt2.expected.json               per-tensor sha256 of the tiny model's bytes
  safetensors/casts_{f32,f16,bf16}.safetensors
                                        f32 values and torch's f16/bf16 casts of them

CI never runs this: the outputs are committed. Rerun it when adding fixtures; the random
seeds make the tensor values repeatable, but safetensors writes `__metadata__` in hash order,
so the files' bytes may differ between runs.
"""

import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np
import safetensors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def le(fmt, values):
    return struct.pack("<" + fmt * len(values), *values)


def every_dtype_tensors():
    """name -> (safetensors python dtype name, header dtype, shape, raw little-endian bytes)."""
    t = {}

    def add(name, pyname, code, shape, raw):
        t[name] = (pyname, code, list(shape), raw)

    f64 = [0x3FF0000000000000, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
           0x7FF8000000000001, 0x7FF0000000000001, 0x0000000000000001, 0x7FEFFFFFFFFFFFFF]
    add("f64.special", "float64", "F64", [2, 4], le("Q", f64))
    f32 = [0x3F800000, 0x80000000, 0x7F800000, 0xFF800000,
           0x7FC00001,  # quiet NaN with a payload
           0x7F800001,  # signalling NaN
           0xFFC00000,  # negative NaN
           0x00000001,  # smallest subnormal
           0x007FFFFF,  # largest subnormal
           0x7F7FFFFF,  # largest finite
           0x477FE000,  # 65504, f16's largest
           0x00000000]
    add("f32.special", "float32", "F32", [3, 4], le("I", f32))
    f16 = [0x3C00, 0x8000, 0x7C00, 0xFC00, 0x7E01, 0x7C01, 0xFE00, 0x0001, 0x03FF, 0x7BFF]
    add("f16.special", "float16", "F16", [10], le("H", f16))
    bf16 = [0x3F80, 0x8000, 0x7F80, 0xFF80, 0x7FC1, 0x7F81, 0xFFC0, 0x0001, 0x007F, 0x7F7F]
    add("bf16.special", "bfloat16", "BF16", [2, 5], le("H", bf16))
    all_bytes = bytes(range(256))
    add("f8_e4m3.all", "float8_e4m3fn", "F8_E4M3", [16, 16], all_bytes)
    add("f8_e5m2.all", "float8_e5m2", "F8_E5M2", [16, 16], all_bytes)
    add("f8_e4m3fnuz.all", "float8_e4m3fnuz", "F8_E4M3FNUZ", [256], all_bytes)
    add("f8_e5m2fnuz.all", "float8_e5m2fnuz", "F8_E5M2FNUZ", [256], all_bytes)
    add("f8_e8m0.all", "float8_e8m0fnu", "F8_E8M0", [4, 64], all_bytes)
    # F4 (two e2m1 values per byte): the library takes the packed shape [2, 4] and records
    # the element shape [2, 8]; handled below.
    add("f4.packed", "float4_e2m1fn_x2", "F4", [2, 8], bytes([0x00, 0x12, 0x7F, 0x80, 0xFF, 0x3C, 0xA5, 0x5A]))
    add("c64.values", "complex64", "C64", [2], le("f", [1.5, -2.0, 0.0, 3.25]))
    add("i64.range", "int64", "I64", [3], le("q", [-(2**63), 0, 2**63 - 1]))
    add("u64.range", "uint64", "U64", [2], le("Q", [0, 2**64 - 1]))
    add("i32.range", "int32", "I32", [3], le("i", [-(2**31), -1, 2**31 - 1]))
    add("u32.range", "uint32", "U32", [2], le("I", [0, 2**32 - 1]))
    add("i16.range", "int16", "I16", [3], le("h", [-(2**15), 7, 2**15 - 1]))
    add("u16.range", "uint16", "U16", [2], le("H", [0, 2**16 - 1]))
    add("i8.range", "int8", "I8", [4], le("b", [-128, -1, 0, 127]))
    add("u8.range", "uint8", "U8", [3], bytes([0, 128, 255]))
    add("bool.mask", "bool", "BOOL", [2, 2], bytes([1, 0, 0, 1]))
    add("scalar.f32", "float32", "F32", [], le("f", [42.5]))
    add("empty.f32", "float32", "F32", [0], b"")
    add("empty.i64", "int64", "I64", [3, 0], b"")
    rng = np.random.default_rng(7)
    add("model.layers.0.weight", "float32", "F32", [16, 8], rng.standard_normal((16, 8), dtype=np.float32).tobytes())
    add("model.layers.0.bias", "float16", "F16", [16], rng.standard_normal(16).astype(np.float16).tobytes())
    add('odd "name" \\ with/ünïcode', "float32", "F32", [2], le("f", [1.0, 2.0]))
    return t


def write_every_dtype():
    out = os.path.join(ROOT, "safetensors")
    os.makedirs(out, exist_ok=True)
    tensors = every_dtype_tensors()
    # Keep every buffer alive while the library reads it through its pointer.
    buffers = {k: np.frombuffer(raw, dtype=np.uint8).copy() if raw else np.zeros(0, np.uint8)
               for k, (_, _, _, raw) in tensors.items()}
    specs = {}
    for k, (pyname, code, shape, raw) in tensors.items():
        if code == "F4":
            shape = shape[:-1] + [shape[-1] // 2]
        specs[k] = safetensors.TensorSpec(dtype=pyname, shape=shape,
                                          data_ptr=buffers[k].ctypes.data, data_len=len(raw))
    path = os.path.join(out, "every_dtype.safetensors")
    safetensors.serialize_file(specs, path, metadata={"format": "pt", "producer": "ckpt tools/make_fixtures.py"})
    expected = {
        k: {"dtype": code, "shape": shape, "sha256": hashlib.sha256(raw).hexdigest(),
            "hex": raw.hex() if len(raw) <= 64 else None}
        for k, (_, code, shape, raw) in tensors.items()
    }
    with open(os.path.join(out, "every_dtype.expected.json"), "w") as f:
        json.dump({"metadata": {"format": "pt", "producer": "ckpt tools/make_fixtures.py"},
                   "tensors": expected}, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    # Independent check: the library reads back what we gave it.
    with safetensors.safe_open(path, framework="numpy") as f:
        assert set(f.keys()) == set(k for k, v in tensors.items())


def sha_of_safetensors_dir(d):
    """tensor name -> sha256 of its bytes, read with the reference library."""
    from safetensors import safe_open
    out = {}
    for name in sorted(os.listdir(d)):
        if not name.endswith(".safetensors"):
            continue
        with safe_open(os.path.join(d, name), framework="pt") as f:
            for k in f.keys():
                t = f.get_tensor(k).contiguous()
                out[k] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                          "sha256": hashlib.sha256(t.view(-1).view(__import__("torch").uint8).numpy().tobytes()).hexdigest()}
    return out


def write_tiny_gpt2():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=96, bos_token_id=95, eos_token_id=95,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config).eval()
    single = os.path.join(ROOT, "tiny-gpt2")
    sharded = os.path.join(ROOT, "tiny-gpt2-sharded")
    model.save_pretrained(single)
    model.save_pretrained(sharded, max_shard_size="40KB")
    for d in (single, sharded):
        gen = os.path.join(d, "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
    with open(os.path.join(ROOT, "tiny-gpt2.expected.json"), "w") as f:
        json.dump({"tensors": sha_of_safetensors_dir(single),
                   "sharded_files": sorted(n for n in os.listdir(sharded) if n.endswith(".safetensors"))},
                  f, indent=1, sort_keys=True)
        f.write("\n")


def write_casts():
    """f32 values and torch's own f16/bf16 conversions of them (round to nearest even),
    the reference for `ckpt convert --dtype`."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(3)
    x = torch.cat([
        torch.randn(4096, generator=g) * 10.0 ** torch.randint(-9, 6, (4096,), generator=g).float(),
        torch.tensor([0.0, -0.0, 1.0, 65504.0, 65519.0, 65520.0, 1e-8, 6e-8, 3.0e38, float("inf"), float("-inf"),
                      1.00390625, 1.01171875]),  # bf16 ties: 1 + 2^-8 (to even, down), 1 + 3·2^-8 (up)
    ])
    out = os.path.join(ROOT, "safetensors")
    save_file({"w": x}, os.path.join(out, "casts_f32.safetensors"), metadata={"format": "pt"})
    save_file({"w": x.to(torch.float16)}, os.path.join(out, "casts_f16.safetensors"), metadata={"format": "pt"})
    save_file({"w": x.to(torch.bfloat16)}, os.path.join(out, "casts_bf16.safetensors"), metadata={"format": "pt"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    write_every_dtype()
    if not args.no_torch:
        write_tiny_gpt2()
        write_casts()
    print("fixtures written under", os.path.normpath(ROOT), file=sys.stderr)


if __name__ == "__main__":
    main()
