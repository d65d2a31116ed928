#!/usr/bin/env python3
"""Generates the PyTorch fixtures (issue 10) with the real torch, transformers, safetensors and
huggingface_hub. Needs torch; CI never runs this (the outputs are committed).

    /path/to/python-with-torch tools/make_torch_fixtures.py

Outputs, under fixtures/torch/ (a few hundred kB in all):
  dtypes.pt                  torch.save of a state_dict with every dtype torch.save can write
                             that safetensors can name: f64 f32 f16 bf16 (NaN payloads, ±0,
                             ±inf, subnormals), i64 i32 i16 i8 u8 bool, and through
                             UntypedStorage + _rebuild_tensor_v3 u16 u32 u64 and float8
                             e4m3fn/e5m2; plus a 0-d scalar and a zero-size tensor
  dtypes_proto4.pt           the same dict saved with pickle_protocol=4 (FRAME, MEMOIZE,
                             SHORT_BINUNICODE, STACK_GLOBAL)
  dtypes.expected.safetensors
                             safetensors.torch.save_file of the same tensors
  views.pt                   views of shared storages: a transpose, row slices (storage
                             offset), column slices (offset + non-contiguous), stepped slices,
                             a stride-0 expand, a permuted 3-d bf16 tensor, a narrowed 1-d view
  views_legacy.pt            the same dict, _use_new_zipfile_serialization=False (legacy format)
  parameters.pt              nn.Parameters saved as such (torch._utils._rebuild_parameter),
                             with requires_grad on and off; parameters.expected.safetensors
  views.expected.safetensors save_file of every view made contiguous (.contiguous().clone():
                             save_file refuses non-contiguous and memory-sharing tensors)
  tiny-gpt2-bin/             torch.save(model.state_dict()) as pytorch_model.bin + config.json,
                             for the tiny GPT-2 of fixtures/tiny-gpt2 (lm_head.weight and
                             transformer.wte.weight are one storage)
  tiny-gpt2-bin-sharded/     the same state_dict saved by huggingface_hub.save_torch_state_dict
                             (safe_serialization=False, max_shard_size="40KB"):
                             pytorch_model-0000N-of-0000M.bin + pytorch_model.bin.index.json
                             (transformers 5 removed save_pretrained(safe_serialization=False);
                             it delegated to this function's file layout)
  tiny-gpt2.expected.safetensors
                             save_file of the state_dict without lm_head.weight: what
                             save_pretrained writes for a tied GPT-2 (the tie is implied by
                             config.json's tie_word_embeddings), minus its {"format": "pt"}
                             metadata, since torch files carry no metadata
  evil/*.pt                  malicious pickles that run `touch "$CKPT_PWNED"` when loaded with
                             Python's pickle (os.system via __reduce__, builtins.eval, the legacy
                             format), and a whole nn.Module (a GLOBAL to an arbitrary module)

Reruns rewrite the zip files byte for byte (seeded values, torch.save is deterministic); legacy
files name storages by memory address and module.pt holds an unseeded nn.Linear, so those
three differ between runs (any version reads the same).
"""

import os
import shutil
import struct

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "fixtures", "torch")


def f32_bits(words):
    return torch.tensor(struct.unpack("<%di" % len(words), struct.pack("<%dI" % len(words), *words)),
                        dtype=torch.int32).view(torch.float32)


def dtypes_dict():
    g = torch.Generator().manual_seed(10)
    sd = {}
    special = f32_bits([0x3F800000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00001, 0x7F800001,
                        0x00000001, 0x007FFFFF, 0x7F7FFFFF, 0x477FE000, 0x3F8CCCCD, 0xC0490FDB])
    sd["f32.special"] = special.reshape(3, 4)
    sd["f32.random"] = torch.randn(7, 5, generator=g)
    sd["f64"] = torch.randn(2, 3, generator=g, dtype=torch.float64)
    sd["f16"] = torch.tensor([0x3C00, 0x8000, 0x7C00, 0xFC00, 0x7E01, 0x0001, 0x03FF, 0x7BFF],
                             dtype=torch.uint16).view(torch.float16).reshape(2, 4)
    sd["bf16"] = torch.tensor([0x3F80, 0x8000, 0x7F80, 0xFF80, 0x7FC1, 0x0001, 0x007F, 0x7F7F, 0xC049],
                              dtype=torch.uint16).view(torch.bfloat16).reshape(3, 3)
    sd["i64"] = torch.tensor([0, 1, -1, 2**63 - 1, -2**63], dtype=torch.int64)
    sd["i32"] = torch.tensor([[0, -1], [2**31 - 1, -2**31]], dtype=torch.int32)
    sd["i16"] = torch.tensor([0, -1, 32767, -32768], dtype=torch.int16)
    sd["i8"] = torch.tensor([0, -1, 127, -128, 5], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 1, 255, 128], dtype=torch.uint8)
    sd["bool"] = torch.tensor([[True, False, True], [False, False, True]])
    sd["u16"] = torch.tensor([0, 1, 65535], dtype=torch.uint16)
    sd["u32"] = torch.tensor([0, 1, 2**32 - 1], dtype=torch.uint32)
    sd["u64"] = torch.tensor([0, 1, 2**64 - 1], dtype=torch.uint64)
    sd["f8_e4m3"] = torch.tensor([0x00, 0x38, 0x7E, 0x7F, 0x80, 0xFE], dtype=torch.uint8).view(torch.float8_e4m3fn)
    sd["f8_e5m2"] = torch.tensor([0x00, 0x3C, 0x7B, 0x7C, 0x7F, 0xFC], dtype=torch.uint8).view(torch.float8_e5m2)
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 4)
    sd["step"] = torch.tensor(7, dtype=torch.int64)  # 0-d int, like num_batches_tracked
    return sd


def views_dict():
    sd = {}
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    sd["base"] = base
    sd["transposed"] = base.t()  # stride (1, 10)
    sd["rows"] = base[2:4]  # storage offset 20, contiguous
    sd["cols"] = base[:, 3:7]  # offset 3, non-contiguous
    sd["stepped"] = base[1::2, ::3]  # offset 10, strides (20, 3)
    sd["expanded"] = torch.arange(4, dtype=torch.float32).expand(3, 4)  # stride (0, 1)
    cube = torch.arange(24, dtype=torch.float32).to(torch.bfloat16).reshape(2, 3, 4)
    sd["permuted.bf16"] = cube.permute(2, 0, 1)  # 3-d, strides (1, 12, 4)
    long = torch.arange(100, dtype=torch.int64)
    sd["narrow.i64"] = long.narrow(0, 90, 5)  # offset 90 of a 100-element storage
    sd["column.f16"] = torch.arange(12, dtype=torch.float16).reshape(4, 3)[:, 1]  # 1-d, stride 3
    return sd


def contiguous_copies(sd):
    return {k: v.contiguous().clone() for k, v in sd.items()}


class OsSystem:
    def __reduce__(self):
        return (os.system, ('touch "$CKPT_PWNED"',))


class Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch \"$CKPT_PWNED\"')",))


def write_evil():
    d = os.path.join(ROOT, "evil")
    os.makedirs(d, exist_ok=True)
    w = torch.ones(2)
    # The payload comes first, so Python's pickle runs it before anything else.
    torch.save({"payload": OsSystem(), "w": w}, os.path.join(d, "os_system.pt"))
    torch.save({"payload": Eval(), "w": w}, os.path.join(d, "eval.pt"))
    torch.save({"payload": OsSystem(), "w": w}, os.path.join(d, "legacy_os_system.pt"),
               _use_new_zipfile_serialization=False)
    torch.save(torch.nn.Linear(2, 2), os.path.join(d, "module.pt"))


def write_gpt2():
    from huggingface_hub import save_torch_state_dict
    from transformers import GPT2LMHeadModel

    src = os.path.join(ROOT, "..", "tiny-gpt2")
    model = GPT2LMHeadModel.from_pretrained(src)
    sd = model.state_dict()
    assert sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr()

    single = os.path.join(ROOT, "tiny-gpt2-bin")
    sharded = os.path.join(ROOT, "tiny-gpt2-bin-sharded")
    for d in (single, sharded):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        shutil.copy(os.path.join(src, "config.json"), d)
    torch.save(sd, os.path.join(single, "pytorch_model.bin"))
    save_torch_state_dict(sd, sharded, safe_serialization=False, max_shard_size="40KB")
    assert os.path.exists(os.path.join(sharded, "pytorch_model.bin.index.json"))

    untied = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    save_file(contiguous_copies(untied), os.path.join(ROOT, "tiny-gpt2.expected.safetensors"))


def main():
    os.makedirs(ROOT, exist_ok=True)
    sd = dtypes_dict()
    torch.save(sd, os.path.join(ROOT, "dtypes.pt"))
    torch.save(sd, os.path.join(ROOT, "dtypes_proto4.pt"), pickle_protocol=4)
    save_file(contiguous_copies(sd), os.path.join(ROOT, "dtypes.expected.safetensors"))

    views = views_dict()
    torch.save(views, os.path.join(ROOT, "views.pt"))
    torch.save(views, os.path.join(ROOT, "views_legacy.pt"), _use_new_zipfile_serialization=False)
    save_file(contiguous_copies(views), os.path.join(ROOT, "views.expected.safetensors"))

    g = torch.Generator().manual_seed(11)
    params = {"weight": torch.nn.Parameter(torch.randn(3, 4, generator=g)),
              "frozen": torch.nn.Parameter(torch.randn(4, generator=g), requires_grad=False)}
    torch.save(params, os.path.join(ROOT, "parameters.pt"))
    save_file({k: v.detach().clone() for k, v in params.items()}, os.path.join(ROOT, "parameters.expected.safetensors"))

    write_gpt2()
    write_evil()

    # Self-check: torch reads the benign files back with the same bytes.
    def raw(t):
        return t.contiguous().reshape(-1).view(torch.uint8)

    for name in ("dtypes.pt", "dtypes_proto4.pt", "views.pt", "views_legacy.pt"):
        # torch's own weights-only unpickler refuses protocol 4's FRAME opcode; that file is
        # ours and benign, so it is read with the full unpickler.
        back = torch.load(os.path.join(ROOT, name), weights_only=name != "dtypes_proto4.pt")
        ref = sd if name.startswith("dtypes") else views
        assert list(back) == list(ref), name
        for k in ref:
            assert back[k].dtype == ref[k].dtype and back[k].shape == ref[k].shape, (name, k)
            assert torch.equal(raw(back[k]), raw(ref[k])), (name, k)


if __name__ == "__main__":
    main()
