"""Writes safetensors files with the Python `safetensors` library whose header lengths
cover all 32 possible low bytes (header lengths are multiples of 8, so 256 / 8 = 32 values),
low byte 0x80 included: the value that once made ckpt take a valid file for a pickle.

    python tools/safetensors_sweep.py OUT_DIR

Each file `sweep_XX.safetensors` (XX = the low byte in hex) holds an f32 tensor whose name
length was chosen to reach that header length, an i64 tensor, and `{"format": "pt"}`
metadata as transformers writes. The tests run this at test time (light packages only:
numpy and safetensors), so the files are the library's own bytes.
"""
import os
import sys

import numpy as np
from safetensors.numpy import save

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
found = {}
for k in range(1, 2048):
    tensors = {
        "w" * k: np.arange(6, dtype=np.float32).reshape(2, 3),
        "position_ids": np.arange(4, dtype=np.int64),
    }
    data = save(tensors, metadata={"format": "pt"})
    n = int.from_bytes(data[:8], "little")
    low = n & 0xFF
    if low not in found:
        found[low] = data
    if len(found) == 32:
        break
assert len(found) == 32, sorted(found)
for low, data in found.items():
    with open(os.path.join(out, "sweep_%02x.safetensors" % low), "wb") as f:
        f.write(data)
print(len(found))
