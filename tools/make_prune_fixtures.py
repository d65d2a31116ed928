#!/usr/bin/env python3
"""PyTorch references for `ckpt prune`, built by slicing the weights and config in torch.

    python tools/make_prune_fixtures.py      # needs torch + transformers

fixtures/prune/llama-gqa-heads.expected.safetensors: fixtures/models/llama-gqa with key/value
group 1 (query heads 2, 3) removed from layer 0 and group 0 (query heads 0, 1) from layer 1 —
sliced here from the PyTorch model, loaded into a LlamaForCausalLM with
num_attention_heads=2, num_key_value_heads=1, head_dim=12 — and its logits on fixed tokens.
"""
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def main():
    src = LlamaForCausalLM.from_pretrained(os.path.join(ROOT, "models", "llama-gqa"), attn_implementation="eager").eval()
    cfg = src.config
    hs = cfg.hidden_size // cfg.num_attention_heads          # 12
    group = cfg.num_attention_heads // cfg.num_key_value_heads  # 2
    keep_groups = {0: [0], 1: [1]}                            # per layer
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    for layer, groups in keep_groups.items():
        heads = [g * group + i for g in groups for i in range(group)]
        q_rows = torch.tensor([h * hs + d for h in heads for d in range(hs)])
        kv_rows = torch.tensor([g * hs + d for g in groups for d in range(hs)])
        p = f"model.layers.{layer}.self_attn."
        sd[p + "q_proj.weight"] = sd[p + "q_proj.weight"][q_rows]
        sd[p + "k_proj.weight"] = sd[p + "k_proj.weight"][kv_rows]
        sd[p + "v_proj.weight"] = sd[p + "v_proj.weight"][kv_rows]
        sd[p + "o_proj.weight"] = sd[p + "o_proj.weight"][:, q_rows]
    new_cfg = LlamaConfig.from_dict({**cfg.to_dict(), "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": hs})
    new_cfg._attn_implementation = "eager"
    pruned = LlamaForCausalLM(new_cfg).eval()
    pruned.load_state_dict(sd, strict=True)
    tokens = torch.tensor([[5, 17, 3, 99, 42, 0, 127, 64, 8, 1, 77]])
    with torch.no_grad():
        logits = pruned(input_ids=tokens).logits[0]
    os.makedirs(os.path.join(ROOT, "prune"), exist_ok=True)
    save_file({"tokens": tokens[0].to(torch.int64).clone(), "output": logits.clone()},
              os.path.join(ROOT, "prune", "llama-gqa-heads.expected.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
