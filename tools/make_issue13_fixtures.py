"""Fixtures for issue 13's correctness sweep, written by the real libraries (torch, Keras 3,
safetensors). Run with a Python that has torch and keras (Keras on the torch backend):

    KERAS_BACKEND=torch python tools/make_issue13_fixtures.py

fixtures/torch/wrapped_model.pt          torch.save({"model": sd})
fixtures/torch/wrapped_state_dict.pt     torch.save({"state_dict": sd, "epoch": 3})
fixtures/torch/wrapped_nested.pt         torch.save({"ckpt": {"ema": sd, "step": 10}, "note": "x"})
fixtures/torch/wrapped.expected.safetensors   save_file(sd): what --key must yield
fixtures/torch/scripted.pt               torch.jit.save of a scripted module (not a state_dict)
fixtures/keras/tiny.keras                Keras 3 `model.save` of a small Dense model
fixtures/safetensors/castable.safetensors        every f8 code (e4m3fn, e5m2), bool, u64 and i32
fixtures/safetensors/castable.expected_f32.safetensors   torch's `.float()` of each tensor
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

torch.manual_seed(13)
sd = {
    "encoder.weight": torch.randn(4, 3),
    "encoder.bias": torch.randn(4),
    "head.weight": torch.randn(2, 4),
}
t = os.path.join(ROOT, "torch")
torch.save({"model": sd}, os.path.join(t, "wrapped_model.pt"))
torch.save({"state_dict": sd, "epoch": 3}, os.path.join(t, "wrapped_state_dict.pt"))
torch.save({"ckpt": {"ema": sd, "step": 10}, "note": "x"}, os.path.join(t, "wrapped_nested.pt"))
save_file(sd, os.path.join(t, "wrapped.expected.safetensors"))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x)


torch.jit.save(torch.jit.script(Tiny()), os.path.join(t, "scripted.pt"))

# Every 8-bit float code, a bool, a u64 and an i32 tensor, and torch's f32 view of each.
codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
castable = {
    "f8_e4m3": codes.view(torch.float8_e4m3fn).clone(),
    "f8_e5m2": codes.view(torch.float8_e5m2).clone(),
    "mask": torch.tensor([True, False, True, True]),
    "ids_u64": torch.tensor([0, 1, 2**20, 12345], dtype=torch.uint64),
    "ids_i32": torch.tensor([-3, 0, 7, 1 << 20], dtype=torch.int32),
}
s = os.path.join(ROOT, "safetensors")
save_file(castable, os.path.join(s, "castable.safetensors"))
save_file({k: v.float() for k, v in castable.items()}, os.path.join(s, "castable.expected_f32.safetensors"))

import keras  # noqa: E402

keras.utils.set_random_seed(13)
model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
model.save(os.path.join(ROOT, "keras", "tiny.keras"))
print("ok")
