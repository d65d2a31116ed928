#!/usr/bin/env python3
"""PyTorch references for `ckpt prune`: each family fixture pruned here, independently of ckpt,
by explicit unit indices, then loaded back with transformers' from_pretrained and run.

    python tools/make_prune_fixtures.py      # needs torch + transformers

For every case, the weights of fixtures/models/<model> are sliced tensor by tensor (names and
layouts written out per family below, not taken from ckpt), the config gets the new sizes, both
are saved to a temporary directory and loaded with `from_pretrained` (no missing or unexpected
weights allowed), and its logits on fixed tokens are written to
fixtures/prune/<case>.expected.safetensors with the recipe in the metadata, in ckpt's terms:

    drop_layers    "1"                 layers removed (original indices), done first
    drop_heads     "0:2,3;1:0,1"       query heads removed per layer (indices after dropping layers)
    keep_neurons   {"0": [...], ...}   MLP neurons kept per layer (after dropping layers), JSON

Encoders record the last hidden state in `output`. The tests (Tests/PruneTests) run ckpt's pruning with the same indices and compare logits.
llama-gqa-heads keeps its original name (key/value group 1 removed from layer 0, group 0 from
layer 1).
"""
import json
import os
import tempfile

import torch
import transformers
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def lines(units, size):
    return [u * size + d for u in units for d in range(size)]


def take(sd, name, axis, idx):
    if name in sd:
        sd[name] = sd[name].index_select(axis, torch.tensor(idx, dtype=torch.long)).contiguous()


# ---- per-family slicing (names and layouts as transformers stores them) ----

def attn_split(sd, p, q, o, heads, groups, hs, q_norm=None, k_norm=None):
    """q/k/v as separate [out, in] Linears; output projection [C, NH·hs]."""
    take(sd, p + q + "q_proj.weight", 0, lines(heads, hs))
    take(sd, p + q + "q_proj.bias", 0, lines(heads, hs))
    for kv in ("k_proj", "v_proj"):
        take(sd, p + q + kv + ".weight", 0, lines(groups, hs))
        take(sd, p + q + kv + ".bias", 0, lines(groups, hs))
    take(sd, p + q + o + ".weight", 1, lines(heads, hs))
    if q_norm:  # full-width q/k norms (OLMo 2)
        take(sd, p + q + q_norm, 0, lines(heads, hs))
        take(sd, p + q + k_norm, 0, lines(groups, hs))


def attn_phi3(sd, p, heads, groups, hs, nh, nkv):
    """qkv_proj rows: q (NH·hs) | k (NKV·hs) | v (NKV·hs)."""
    rows = lines(heads, hs) + [nh * hs + r for r in lines(groups, hs)] + [(nh + nkv) * hs + r for r in lines(groups, hs)]
    take(sd, p + "self_attn.qkv_proj.weight", 0, rows)
    take(sd, p + "self_attn.o_proj.weight", 1, lines(heads, hs))


def mlp_gated(sd, p, keep, gate="mlp.gate_proj", up="mlp.up_proj", down="mlp.down_proj"):
    for n in (gate, up):
        take(sd, p + n + ".weight", 0, keep)
        take(sd, p + n + ".bias", 0, keep)
    take(sd, p + down + ".weight", 1, keep)


def mlp_fused_gate_up(sd, p, keep, width):
    take(sd, p + "mlp.gate_up_proj.weight", 0, keep + [width + k for k in keep])
    take(sd, p + "mlp.down_proj.weight", 1, keep)


def mlp_plain(sd, p, keep, up, down):
    take(sd, p + up + ".weight", 0, keep)
    take(sd, p + up + ".bias", 0, keep)
    take(sd, p + down + ".weight", 1, keep)


def drop_layers(sd, stem, n_layers, drop):
    keep = [i for i in range(n_layers) if i not in drop]
    out = {}
    for k, v in sd.items():
        if k.startswith(stem):
            i, rest = k[len(stem):].split(".", 1)
            if int(i) in drop:
                continue
            k = f"{stem}{keep.index(int(i))}.{rest}"
        out[k] = v
    return out, keep


# ---- cases: (name, model fixture, block stem, recipe, slicer) ----
# A recipe: drop (original layer indices), heads {layer after drop: removed query heads},
# neurons {layer after drop: kept neurons}. The slicer applies heads/neurons to one layer.

def llama_like(q_norm=None, k_norm=None, mlp="gated"):
    def heads(sd, p, cfg, removed):
        nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
        hs = cfg.get("head_dim") or cfg["hidden_size"] // nh
        g = nh // nkv
        groups = [u for u in range(nkv) if u * g not in removed]
        attn_split(sd, p, "self_attn.", "o_proj", lines(groups, g), groups, hs, q_norm, k_norm)

    def neurons(sd, p, cfg, keep):
        mlp_gated(sd, p, keep)
    return heads, neurons


def phi3():
    def heads(sd, p, cfg, removed):
        nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        hs = cfg.get("head_dim") or cfg["hidden_size"] // nh
        g = nh // nkv
        groups = [u for u in range(nkv) if u * g not in removed]
        attn_phi3(sd, p, lines(groups, g), groups, hs, nh, nkv)

    def neurons(sd, p, cfg, keep):
        mlp_fused_gate_up(sd, p, keep, cfg["intermediate_size"])
    return heads, neurons


def conv1d_mlp(sd, p, keep):
    """GPT-2's Conv1D stores [in, out]: c_fc's neurons are columns, c_proj's are rows."""
    take(sd, p + "mlp.c_fc.weight", 1, keep)
    take(sd, p + "mlp.c_fc.bias", 0, keep)
    take(sd, p + "mlp.c_proj.weight", 0, keep)


def fused_wi(sd, p, keep, width):
    """ModernBERT's Wi: input half then gate half."""
    take(sd, p + "mlp.Wi.weight", 0, keep + [width + k for k in keep])
    take(sd, p + "mlp.Wo.weight", 1, keep)


def plain_mlp(up, down):
    def neurons(sd, p, cfg, keep):
        mlp_plain(sd, p, keep, up, down)
    return None, neurons


CASES = [
    # name, model, stem, drop, heads, neurons, slicers, config changes
    ("llama-gqa-heads", "llama-gqa", "model.layers.", [], {0: [2, 3], 1: [0, 1]}, {}, llama_like(),
     {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 12}),
    ("qwen3-heads-neurons", "qwen3", "model.layers.", [], {0: [0, 1], 1: [2, 3]},
     {0: [1, 4, 5, 9, 10, 17, 20, 22, 30, 31, 40, 47], 1: list(range(0, 48, 4))}, llama_like(),
     {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 12}),
    ("gemma2-layers-neurons", "gemma2-softcap", "model.layers.", [1], {},
     {0: list(range(0, 48, 2)), 1: list(range(1, 48, 2))}, llama_like(),
     {"num_hidden_layers": 2, "layer_types": ["sliding_attention", "sliding_attention"], "intermediate_size": 24}),
    ("gemma3-layers-heads", "gemma3-text", "model.layers.", [0], {0: [2, 3], 1: [0, 1]}, {}, llama_like(),
     {"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 12,
      # gemma3 (pattern 3, no layer_types): layers 0, 1 local, 2 global; layer 0 dropped
      "layer_types": ["sliding_attention", "full_attention"]}),
    ("phi3-heads-neurons", "phi3", "model.layers.", [], {0: [2, 3], 1: [0, 1]},
     {0: [0, 3, 7, 8, 11, 19, 23, 24, 30, 33, 41, 46, 47], 1: list(range(13, 26))}, phi3(),
     {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "intermediate_size": 13}),
    ("olmo2-heads", "olmo2", "model.layers.", [], {0: [0, 1], 1: [0, 1]}, {},
     llama_like("q_norm.weight", "k_norm.weight"),
     {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}),
    ("mixtral-layers-heads", "mixtral-top2", "model.layers.", [1], {0: [2, 3]}, {}, llama_like(),
     {"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}),
    ("gpt-neox-layers-neurons", "gpt-neox", "gpt_neox.layers.", [0], {}, {0: list(range(5, 45))},
     plain_mlp("mlp.dense_h_to_4h", "mlp.dense_4h_to_h"), {"num_hidden_layers": 1, "intermediate_size": 40}),
    ("opt-layers-neurons", "opt-pre", "model.decoder.layers.", [1], {}, {0: list(range(0, 64, 3))},
     plain_mlp("fc1", "fc2"), {"num_hidden_layers": 1, "ffn_dim": 22}),
    ("qwen2-heads-neurons", "qwen2", "model.layers.", [], {0: [2, 3], 1: [0, 1]},
     {0: list(range(0, 64, 2)), 1: list(range(32, 64))}, llama_like(),
     {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "intermediate_size": 32}),
    ("mistral-heads", "mistral-window", "model.layers.", [], {0: [0, 1], 1: [2, 3]}, {}, llama_like(),
     {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}),
    # transformers' LlamaConfig wants hidden_size (64) to be a multiple of the head count: 8 -> 4
    ("llama-mha-heads", "llama-mha-tied", "model.layers.", [], {0: [1, 2, 5, 6], 1: [0, 3, 4, 7]}, {}, llama_like(),
     {"num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 8}),
    ("granite-layers-heads", "granite", "model.layers.", [1], {0: [0, 1]}, {0: list(range(3, 60, 3))}, llama_like(),
     {"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "intermediate_size": 19}),
    ("starcoder2-layers-neurons", "starcoder2", "model.layers.", [0], {}, {0: list(range(20))},
     plain_mlp("mlp.c_fc", "mlp.c_proj"), {"num_hidden_layers": 1, "intermediate_size": 20}),
    ("gpt2-layers-neurons", "gpt2-a", "transformer.h.", [1], {}, {0: list(range(0, 128, 2))},
     (None, lambda sd, p, cfg, keep: conv1d_mlp(sd, p, keep)), {"n_layer": 1, "n_inner": 64}),
    ("bert-layers-neurons", "bert-a", "encoder.layer.", [0], {}, {0: list(range(7, 47))},
     plain_mlp("intermediate.dense", "output.dense"), {"num_hidden_layers": 1, "intermediate_size": 40}),
    ("distilbert-layers-neurons", "distilbert", "transformer.layer.", [1], {}, {0: list(range(1, 64, 3)), 1: list(range(0, 63, 3))},
     plain_mlp("ffn.lin1", "ffn.lin2"), {"n_layers": 2, "hidden_dim": 21}),
    ("modernbert-layers-neurons", "modernbert", "layers.", [2], {}, {0: list(range(0, 48, 2)), 1: list(range(24))},
     (None, lambda sd, p, cfg, keep: fused_wi(sd, p, keep, cfg["intermediate_size"])),
     {"num_hidden_layers": 2, "layer_types": ["full_attention", "sliding_attention"], "intermediate_size": 24}),
    ("falcon-layers-neurons", "falcon-new", "transformer.h.", [0], {}, {0: [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61]},
     plain_mlp("mlp.dense_h_to_4h", "mlp.dense_4h_to_h"), {"num_hidden_layers": 1, "ffn_hidden_size": 18}),
]


def main():
    out_dir = os.path.join(ROOT, "prune")
    os.makedirs(out_dir, exist_ok=True)
    for name, model, stem, drop, heads, neurons, (head_slicer, neuron_slicer), changes in CASES:
        src = os.path.join(ROOT, "models", model)
        cfg = json.load(open(os.path.join(src, "config.json")))
        sd = load_file(os.path.join(src, "model.safetensors"))
        n_layers = cfg.get("num_hidden_layers") or cfg.get("n_layer") or cfg.get("n_layers")
        sd, _ = drop_layers(sd, stem, n_layers, set(drop))
        for layer, removed in heads.items():
            head_slicer(sd, f"{stem}{layer}.", cfg, removed)
        for layer, keep in neurons.items():
            neuron_slicer(sd, f"{stem}{layer}.", cfg, keep)
        new_cfg = {**cfg, **changes}
        arch = getattr(transformers, cfg["architectures"][0])
        with tempfile.TemporaryDirectory() as tmp:
            json.dump(new_cfg, open(os.path.join(tmp, "config.json"), "w"))
            save_file(sd, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
            extra = {"experts_implementation": "eager"} if "num_experts_per_tok" in cfg else {}
            pruned, info = arch.from_pretrained(tmp, attn_implementation="eager", output_loading_info=True, **extra)
            bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
            assert not bad, (name, bad)
        pruned.eval()
        vocab = cfg["vocab_size"]
        tokens = torch.tensor([[(7 * k + 3) % vocab for k in range(11)]])
        with torch.no_grad():
            out = pruned(input_ids=tokens)
            logits = (out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state)[0]
        meta = {"format": "pt", "model": model, "drop_layers": ",".join(map(str, drop)),
                "drop_heads": ";".join(f"{l}:{','.join(map(str, h))}" for l, h in heads.items()),
                "keep_neurons": json.dumps({str(l): k for l, k in neurons.items()}),
                "config": json.dumps(changes), "transformers": transformers.__version__, "torch": torch.__version__}
        save_file({"tokens": tokens[0].to(torch.int64).clone(), "output": logits.clone().contiguous()},
                  os.path.join(out_dir, f"{name}.expected.safetensors"), metadata=meta)
        print(f"{name}: logits {tuple(logits.shape)}")


if __name__ == "__main__":
    main()
