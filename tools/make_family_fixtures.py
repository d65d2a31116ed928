#!/usr/bin/env python3
"""Tiny random models of every architecture family ckpt runs, and their PyTorch outputs.

    python tools/make_family_fixtures.py            # needs torch + transformers (CI never runs this)
    python tools/make_family_fixtures.py qwen3 gemma2-softcap   # only these fixtures (names or prefixes)

Every model is built by `transformers` itself (`XxxConfig` + `XxxForCausalLM` / `XxxModel`) and written
with `save_pretrained` under fixtures/models/<name>/, so parameter names, config spelling and tying are
exactly what Hugging Face produces. A sibling <name>.expected.safetensors holds, with the same keys as
tools/make_transformer_fixtures.py:
  tokens      i64 [T]       the input token ids
  output      f32 [T, N]    logits for LMs, last hidden state for encoders and head-less `XxxModel`s
  hidden.<i>  f32 [T, C]    the input of block i (`output_hidden_states`), i = 0 ..< layers
and, for the sentence-transformers directory only:
  pooled      f32 [C]       mean of the token embeddings (its 1_Pooling module)
  embedding   f32 [C]       `pooled` divided by its L2 norm (its 2_Normalize module)
All models run in eval mode with eager attention (and eager mixture-of-experts loops), batch 1,
no padding, fp32; except falcon-alibi, made with sdpa attention because transformers' eager Falcon path
adds the ALiBi bias twice (the generator measures and records the gap: eager_differs_by).

fixtures/models/families.json lists every fixture: model_type, the class used, the output kind, the
features it exercises and the config fields whose effect on the computation is easy to miss.

Weights: 1-D parameters are redrawn around their initial value (norm weights 1 ± 0.1, Gemma-style
zero-centred norms 0 ± 0.1, biases 0 ± 0.1), matrices with std 1/sqrt(fan_in) and embeddings with
std 1, so activations are of order one and a missed term shows in the output. Each fixture has its
own seed; the script is deterministic. For every fixture it checks that
  - the hidden states returned by transformers are the inputs of the blocks (forward pre-hooks),
  - reloading the saved directory with from_pretrained reproduces the output exactly,
  - the fp32 output is within 1e-5 (relative) of the same model run in float64 (recorded in the
    manifest as fp32_vs_fp64), so a correct implementation that rounds differently stays well
    inside the 1e-4 tolerance,
  - mixture-of-experts routing has a clear margin between the k-th and (k+1)-th expert, so a
    correct reimplementation cannot pick a different expert through rounding.
"""

import copy
import json
import math
import os
import shutil
import sys

import torch
import torch.nn as nn
import transformers
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
MODELS = os.path.join(ROOT, "models")
MANIFEST = os.path.join(MODELS, "families.json")

# Smallest acceptable gap between the k-th and (k+1)-th router logit (see router_margin).
ROUTER_MARGIN = 1e-3


class Case:
    def __init__(self, name, config, model, kw, features, notes=(), seed=0, tokens=16, avoid=(), tweak=None,
                 hub=None, attn="eager"):
        self.name, self.config, self.model, self.kw = name, config, model, kw
        self.features, self.notes = list(features), list(notes)
        self.seed, self.tokens, self.avoid = seed, tokens, set(avoid)
        self.tweak = tweak  # model -> None: weights beyond `randomise`, drawn after it
        self.hub = hub  # config dict -> None: rewrites config.json in the Hub (transformers 4) spelling
        self.attn = attn  # attn_implementation; "eager" except where transformers' eager path is wrong


# transformers 5 writes rope settings as `rope_parameters` (per layer type for Gemma 3 / ModernBERT) and
# per-layer attention kinds as `layer_types`. Checkpoints on the Hub mostly carry the older spelling:
# `rope_theta` + `rope_scaling` ({"type"|"rope_type": ...}), NeoX's `rotary_pct` / `rotary_emb_base`,
# a top-level `partial_rotary_factor`, Gemma 3's `rope_local_base_freq` + `sliding_window_pattern`, and
# no `layer_types` (derived from use_sliding_window / max_window_layers or the pattern). Some fixtures are
# rewritten that way (families.json: "config_spelling": "hub"); `make` checks that transformers reads the
# rewritten file to the same rope parameters, layer types and output.

def hub_rope(theta="rope_theta", partial=None, type_key="rope_type", drop=()):
    def rewrite(d):
        rp = dict(d.pop("rope_parameters"))
        d[theta] = rp.pop("rope_theta")
        factor = rp.pop("partial_rotary_factor", None)
        if partial and factor is not None:
            d[partial] = factor
        for k in drop:
            rp.pop(k, None)
        kind = rp.pop("rope_type")
        d["rope_scaling"] = None if kind == "default" else {type_key: kind, **rp}
        d.pop("layer_types", None)
        if partial != "partial_rotary_factor":
            d.pop("partial_rotary_factor", None)
    return rewrite


def same_setting(value):
    """A config value as compared after the Hub rewrite: transformers keeps a legacy rope "type" key
    beside the "rope_type" it derives from it."""
    if isinstance(value, dict):
        return {k: same_setting(v) for k, v in value.items()
                if not (k == "type" and value.get("rope_type") == v)}
    return value


def hub_gemma3(pattern):
    def rewrite(d):
        rp = d.pop("rope_parameters")
        full, local = dict(rp["full_attention"]), dict(rp["sliding_attention"])
        d["rope_theta"] = full.pop("rope_theta")
        d["rope_local_base_freq"] = local.pop("rope_theta")
        assert local == {"rope_type": "default"}, local
        kind = full.pop("rope_type")
        d["rope_scaling"] = None if kind == "default" else {"rope_type": kind, **full}
        d["sliding_window_pattern"] = pattern
        d.pop("_sliding_window_pattern", None)
        d.pop("layer_types")
    return rewrite


def gelu_tail(up, down, centre):
    """A tweak for a GELU MLP with a biased input projection (modules named ...<up> and ...<down>): its
    inputs are pushed to about `centre` (-3.2 for tanh GELU, -2.4 for erf GELU), where the tanh and erf
    GELUs differ by 2-20 % of their value, and the small outputs amplified back to order one. With the
    usual order-one inputs the two GELUs give outputs only ~1e-4 apart (relative), too close to the
    1e-4 tolerance to prove the choice. The erf fixtures stay nearer zero because 1 + erf(x/sqrt 2)
    cancels in fp32 further out (fp64 check in `make`)."""
    gain = 0.66 / abs(centre * 0.5 * math.erfc(-centre / math.sqrt(2)))
    def tweak(model):
        mods = dict(model.named_modules())
        ups = [n for n in mods if n.endswith("." + up)]
        if not ups:
            raise RuntimeError(f"no module named *.{up}")
        with torch.no_grad():
            for n in ups:
                a, b = mods[n], mods[n[:-len(up)] + down]
                a.bias.normal_(centre, 0.2)
                a.weight.normal_(0.0, 0.5 / math.sqrt(a.weight.shape[1]))
                b.weight.normal_(0.0, gain / math.sqrt(b.weight.shape[1]))
    return tweak


GELU_NOTE = ("MLP inputs pushed to about -2.4 (erf GELU) or -3.2 (tanh GELU), where the two GELUs differ by "
             "2-20 %: the wrong GELU variant fails this fixture by 7e-3 relative or more")


def decoder_cases():
    return [
        # ---- llama: rope scaling variants, biases, head-less ----
        Case("llama-yarn", "LlamaConfig", "LlamaForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, vocab_size=61, max_position_embeddings=64,
                  rope_theta=10000.0,
                  rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
                                "beta_fast": 32.0, "beta_slow": 1.0},
                  tie_word_embeddings=False),
             ["gqa", "head_dim!=hidden/heads", "rope:yarn", "odd_vocab"],
             ["rope yarn: inv_freq blends interpolated/extrapolated per dimension (beta_fast/beta_slow ramp "
              "over original_max_position_embeddings) and cos/sin are multiplied by attention_factor "
              "(default 0.1*ln(factor)+1); the correction range is floored/ceiled (truncate, default true)",
              "head_dim 16 given explicitly (hidden/heads = 8)"],
             seed=101, tokens=24, hub=hub_rope()),
        Case("llama-dynamic", "LlamaConfig", "LlamaForCausalLM",
             dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, vocab_size=101, max_position_embeddings=16, rope_theta=10000.0,
                  rope_scaling={"rope_type": "dynamic", "factor": 2.0}, tie_word_embeddings=True),
             ["mha", "rope:dynamic", "tied_embeddings", "odd_vocab", "T>max_position_embeddings"],
             ["rope dynamic: T=30 > max_position_embeddings=16, so base becomes "
              "theta*((factor*T/max_pos)-(factor-1))^(d/(d-2)) with T = the sequence length (max position+1)"],
             seed=102, tokens=30, hub=hub_rope(type_key="type")),
        Case("llama-linear-bias", "LlamaConfig", "LlamaForCausalLM",
             dict(hidden_size=40, intermediate_size=32, num_hidden_layers=3, num_attention_heads=5,
                  num_key_value_heads=1, vocab_size=53, max_position_embeddings=64, rope_theta=1000.0,
                  rope_scaling={"rope_type": "linear", "factor": 4.0}, attention_bias=True, mlp_bias=True,
                  tie_word_embeddings=False),
             ["mqa", "rope:linear", "attention_bias", "mlp_bias", "odd_vocab"],
             ["rope linear: positions divided by factor (inv_freq / factor)",
              "attention_bias adds biases to q, k, v and o; mlp_bias to gate, up and down"],
             seed=103, tokens=17),
        Case("llama-base", "LlamaConfig", "LlamaModel",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=64, max_position_embeddings=64, rope_theta=500000.0,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
             ["headless", "gqa", "rope:llama3"],
             ["head-less LlamaModel: tensor names have no 'model.' prefix and there is no lm_head; output is "
              "the final-norm hidden state"],
             seed=104, tokens=20),
        # ---- mistral ----
        Case("mistral-swa", "MistralConfig", "MistralForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=12, vocab_size=83, max_position_embeddings=64,
                  sliding_window=7, rope_theta=10000.0, tie_word_embeddings=False),
             ["gqa", "head_dim!=hidden/heads", "sliding_window"],
             ["sliding_window 7 < T=22: query i sees keys j with i-7 < j <= i (7 keys including itself)",
              "head_dim 12 given explicitly (hidden/heads = 8)"],
             seed=105, tokens=22),
        # ---- mixtral ----
        Case("mixtral-top2", "MixtralConfig", "MixtralForCausalLM",
             dict(hidden_size=32, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=71, max_position_embeddings=64, num_local_experts=4,
                  num_experts_per_tok=2, rope_theta=1000000.0, sliding_window=None, tie_word_embeddings=False),
             ["gqa", "moe:top2", "moe:renormalised_topk"],
             ["router: softmax over all experts, top-2, weights renormalised to sum 1",
              "saved in the Hub layout: block_sparse_moe.gate.weight [E, H] (router) and "
              "block_sparse_moe.experts.<e>.w1 (gate) / w3 (up) [I, H], w2 (down) [H, I]; w2(silu(w1 x) * w3 x)"],
             seed=106, tokens=18),
        # ---- qwen2 ----
        Case("qwen2-swa", "Qwen2Config", "Qwen2ForCausalLM",
             dict(hidden_size=32, intermediate_size=56, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=1, vocab_size=97, max_position_embeddings=64, rope_theta=10000.0,
                  use_sliding_window=True, sliding_window=6, max_window_layers=1, tie_word_embeddings=True),
             ["mqa", "qkv_bias", "sliding_window", "per_layer_window", "tied_embeddings", "odd_vocab"],
             ["use_sliding_window with max_window_layers=1: layer 0 full attention, layers >= 1 sliding "
              "(window 6); see config.layer_types",
              "q/k/v projections have biases, o_proj has none"],
             seed=107, tokens=20, hub=hub_rope()),
        # ---- qwen2_moe ----
        Case("qwen2-moe", "Qwen2MoeConfig", "Qwen2MoeForCausalLM",
             dict(hidden_size=32, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=79, max_position_embeddings=64, rope_theta=10000.0,
                  num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                  shared_expert_intermediate_size=32, norm_topk_prob=False, mlp_only_layers=[1],
                  decoder_sparse_step=1, tie_word_embeddings=False),
             ["gqa", "qkv_bias", "moe:top2", "moe:shared_expert", "moe:dense_layer"],
             ["norm_topk_prob false: top-2 softmax weights are NOT renormalised",
              "shared expert output scaled by sigmoid(shared_expert_gate(x)) and added",
              "mlp_only_layers=[1]: layer 1 is a dense MLP of intermediate_size, not MoE"],
             seed=108, tokens=19),
        # ---- qwen3 ----
        Case("qwen3", "Qwen3Config", "Qwen3ForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, vocab_size=101, max_position_embeddings=64,
                  rope_theta=1000000.0, tie_word_embeddings=True),
             ["gqa", "head_dim!=hidden/heads", "qk_norm", "tied_embeddings", "odd_vocab"],
             ["q_norm/k_norm: RMSNorm over head_dim per head, before rope",
              "head_dim 16 given explicitly (hidden/heads = 8), so q_proj is [64, 32]"],
             seed=109, tokens=21),
        Case("qwen3-base", "Qwen3Config", "Qwen3Model",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=24, vocab_size=61, max_position_embeddings=64,
                  rope_theta=10000.0),
             ["headless", "mqa", "head_dim!=hidden/heads", "qk_norm"],
             ["head-less Qwen3Model: no 'model.' prefix, no lm_head; output is the final-norm hidden state",
              "head_dim 24 with hidden 32 and 2 heads (hidden/heads = 16)"],
             seed=110, tokens=15),
        # ---- qwen3_moe ----
        Case("qwen3-moe", "Qwen3MoeConfig", "Qwen3MoeForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=12, vocab_size=67, max_position_embeddings=64,
                  rope_theta=1000000.0, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=20,
                  norm_topk_prob=True, tie_word_embeddings=False),
             ["gqa", "head_dim!=hidden/heads", "qk_norm", "moe:top2", "moe:renormalised_topk"],
             ["norm_topk_prob true: top-2 softmax weights renormalised to sum 1",
              "head_dim 12 given explicitly (hidden/heads = 8)"],
             seed=111, tokens=16),
        # ---- gemma ----
        Case("gemma", "GemmaConfig", "GemmaForCausalLM",
             dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=1, head_dim=16, vocab_size=97, max_position_embeddings=64,
                  rope_theta=10000.0, hidden_act="gelu_pytorch_tanh"),
             ["mqa", "head_dim!=hidden/heads", "rmsnorm:1+w", "embedding_scale", "geglu:tanh",
              "tied_embeddings", "odd_vocab"],
             ["embeddings multiplied by sqrt(hidden_size) (normalizer rounded to the model dtype)",
              "RMSNorm weight used as (1 + w); zero-centred in the checkpoint",
              "MLP: gelu_pytorch_tanh(gate) * up; GemmaConfig turns a legacy hidden_act \"gelu\" (as in the "
              "original Hub configs) into gelu_pytorch_tanh, so \"gelu\" means tanh GELU for gemma",
              "head_dim 16 given explicitly (hidden/heads = 8)"],
             seed=112, tokens=18),
        # ---- gemma2 ----
        Case("gemma2-softcap", "Gemma2Config", "Gemma2ForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=24, vocab_size=89, max_position_embeddings=64,
                  rope_theta=10000.0, query_pre_attn_scalar=20, sliding_window=6,
                  attn_logit_softcapping=4.0, final_logit_softcapping=3.0),
             ["mqa", "head_dim!=hidden/heads", "rmsnorm:1+w", "sandwich_norm", "embedding_scale",
              "softcap:attention", "softcap:final", "query_pre_attn_scalar", "alternating_sliding_window",
              "tied_embeddings"],
             ["query_pre_attn_scalar 20: scores scaled by 20^-0.5, not head_dim^-0.5 (head_dim 24)",
              "attn_logit_softcapping 4: scores = 4*tanh(scores/4) after scaling, before mask",
              "final_logit_softcapping 3: logits = 3*tanh(logits/3)",
              "layer_types alternate sliding (even layers) / full (odd layers), window 6 < T=20",
              "four norms per block: input, post_attention (on attn output before residual), "
              "pre_feedforward, post_feedforward; all (1 + w)",
              "embeddings multiplied by sqrt(hidden_size)"],
             seed=113, tokens=20),
        # ---- gemma3_text ----
        Case("gemma3-text", "Gemma3TextConfig", "Gemma3ForCausalLM",
             dict(hidden_size=32, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=12, vocab_size=73, max_position_embeddings=64,
                  query_pre_attn_scalar=20, sliding_window=5, sliding_window_pattern=3,
                  rope_theta=1000000.0, rope_local_base_freq=10000.0,
                  rope_scaling={"rope_type": "linear", "factor": 8.0}),
             ["gqa", "head_dim!=hidden/heads", "rmsnorm:1+w", "sandwich_norm", "qk_norm", "embedding_scale",
              "local_global_layers", "per_layer_rope_theta", "rope:linear(global)", "sliding_window",
              "tied_embeddings"],
             ["layer_types: layers 0,1 sliding (window 5), layer 2 full; in the Hub spelling used here that is "
              "sliding_window_pattern 3: layer i is sliding unless (i + 1) % 3 == 0",
              "sliding layers use rope_parameters.sliding_attention (theta 1e4, default), full layers use "
              "rope_parameters.full_attention (theta 1e6, linear factor 8)",
              "q_norm/k_norm: Gemma RMSNorm (1 + w) over head_dim",
              "query_pre_attn_scalar 20 sets the score scale (20^-0.5; head_dim is 12)",
              "embeddings multiplied by sqrt(hidden_size)"],
             seed=114, tokens=16, hub=hub_gemma3(3)),
        # ---- phi3 ----
        Case("phi3", "Phi3Config", "Phi3ForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=97, max_position_embeddings=64,
                  original_max_position_embeddings=64, rope_theta=10000.0, pad_token_id=0, bos_token_id=1,
                  eos_token_id=2, tie_word_embeddings=False),
             ["gqa", "fused_qkv", "fused_gate_up", "odd_vocab"],
             ["qkv_proj rows: all q heads, then k heads, then v heads",
              "gate_up_proj rows: gate (first intermediate_size rows) then up"],
             seed=115, tokens=15),
        Case("phi3-longrope", "Phi3Config", "Phi3ForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, vocab_size=75, max_position_embeddings=64,
                  original_max_position_embeddings=16, rope_theta=10000.0, partial_rotary_factor=0.75,
                  rope_scaling={"rope_type": "longrope",
                                "short_factor": [1.0, 1.2, 1.5, 2.0, 2.6, 3.2],
                                "long_factor": [1.0, 1.8, 3.0, 4.5, 7.0, 11.0]},
                  pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
             ["mha", "fused_qkv", "fused_gate_up", "rope:longrope", "partial_rotary", "T>original_max"],
             ["rope longrope: T=26 > original_max_position_embeddings=16, so inv_freq /= long_factor "
              "(short_factor when T <= 16); cos/sin multiplied by "
              "sqrt(1 + ln(max_pos/orig_max)/ln(orig_max)) (max_pos/orig_max = 4)",
              "partial_rotary_factor 0.75 (phi-4-mini style): rope on the first 12 of 16 dims of each head; "
              "the factor lists have rotary_dim/2 = 6 entries"],
             seed=116, tokens=26,
             hub=hub_rope(partial="partial_rotary_factor", type_key="type", drop=["original_max_position_embeddings"])),
        # ---- gpt_neox ----
        Case("gpt-neox", "GPTNeoXConfig", "GPTNeoXForCausalLM",
             dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  vocab_size=97, max_position_embeddings=64, rotary_pct=0.25, rotary_emb_base=10000.0,
                  use_parallel_residual=True, attention_bias=True, hidden_act="gelu", tie_word_embeddings=False),
             ["mha", "fused_qkv:per_head_interleaved", "parallel_residual", "partial_rotary", "layernorm",
              "odd_vocab"],
             ["query_key_value rows are per head [heads, 3, head_dim] (q,k,v of head 0, then head 1...), "
              "not all-q then all-k",
              "partial rotary 0.25: rope on the first head_dim/4 = 2 dims of each head",
              "use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x))",
              "final layer norm is gpt_neox.final_layer_norm; head is embed_out",
              "hidden_act gelu = erf GELU; " + GELU_NOTE],
             seed=117, tokens=18, tweak=gelu_tail("dense_h_to_4h", "dense_4h_to_h", -2.4),
             hub=hub_rope(theta="rotary_emb_base", partial="rotary_pct")),
        Case("gpt-neox-seq-base", "GPTNeoXConfig", "GPTNeoXModel",
             dict(hidden_size=36, intermediate_size=48, num_hidden_layers=2, num_attention_heads=3,
                  vocab_size=64, max_position_embeddings=64, rotary_pct=0.5, rotary_emb_base=10000.0,
                  use_parallel_residual=False, attention_bias=True, hidden_act="gelu"),
             ["headless", "mha", "fused_qkv:per_head_interleaved", "sequential_residual", "partial_rotary",
              "layernorm"],
             ["use_parallel_residual false: h = x + attn(ln1(x)); out = h + mlp(ln2(h))",
              "partial rotary 0.5 of head_dim 12 = 6 dims",
              "head-less GPTNeoXModel: output is the final_layer_norm hidden state",
              "hidden_act gelu = erf GELU; " + GELU_NOTE],
             seed=118, tokens=14, tweak=gelu_tail("dense_h_to_4h", "dense_4h_to_h", -2.4)),
        # ---- opt ----
        Case("opt-pre", "OPTConfig", "OPTForCausalLM",
             dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=97,
                  max_position_embeddings=64, do_layer_norm_before=True, activation_function="relu",
                  pad_token_id=1, bos_token_id=2, eos_token_id=2, dropout=0.0),
             ["mha", "learned_positions:offset2", "layernorm", "relu", "tied_embeddings", "odd_vocab"],
             ["learned positions: embed_positions has max_position_embeddings + 2 rows; token at position p "
              "uses row p + 2",
              "attention scale head_dim^-0.5 applied to q after its bias (q_proj(x) * scale)",
              "do_layer_norm_before true: pre-norm with a final_layer_norm"],
             seed=119, tokens=17, avoid=[1]),
        Case("opt-post-proj", "OPTConfig", "OPTForCausalLM",
             dict(hidden_size=32, ffn_dim=48, num_hidden_layers=2, num_attention_heads=2, vocab_size=80,
                  max_position_embeddings=48, do_layer_norm_before=False, word_embed_proj_dim=24,
                  activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2, dropout=0.0),
             ["mha", "learned_positions:offset2", "post_layernorm", "relu", "project_in_out",
              "tied_embeddings"],
             ["do_layer_norm_before false (opt-350m): layer norm after each residual add, no final layer norm",
              "word_embed_proj_dim 24 != hidden 32: embeddings [V, 24] -> project_in [32, 24] (no bias) "
              "before adding positions; project_out [24, 32] before the tied head",
              "learned positions with offset 2 (embed_positions [max_pos + 2, hidden])"],
             seed=120, tokens=16, avoid=[1]),
        # ---- falcon ----
        Case("falcon-new", "FalconConfig", "FalconForCausalLM",
             dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2, vocab_size=97,
                  max_position_embeddings=64, new_decoder_architecture=True, parallel_attn=True, bias=False,
                  alibi=False, multi_query=False, rope_theta=10000.0, ffn_hidden_size=64,
                  tie_word_embeddings=True),
             ["gqa", "fused_qkv:grouped", "parallel_residual", "two_layernorms", "layernorm", "gelu",
              "tied_embeddings", "odd_vocab"],
             ["new_decoder_architecture: query_key_value rows grouped per kv head "
              "[kv_heads, heads/kv_heads + 2, head_dim] (the group's q heads, then its k, then its v)",
              "num_ln_in_parallel_attn 2 (default): ln_attn feeds attention, ln_mlp feeds the MLP, "
              "x + attn + mlp",
              "ffn_hidden_size 64 (defaults to 4*hidden)"],
             seed=121, tokens=16),
        Case("falcon-mq", "FalconConfig", "FalconForCausalLM",
             dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=70,
                  max_position_embeddings=64, new_decoder_architecture=False, multi_query=True,
                  parallel_attn=True, bias=False, alibi=False, rope_theta=10000.0, ffn_hidden_size=64,
                  tie_word_embeddings=True),
             ["mqa", "fused_qkv", "parallel_residual", "one_layernorm", "layernorm", "gelu"],
             ["multi_query (falcon-7b): query_key_value is [heads*hd + 2*hd, hidden]: all q heads, then the one "
              "k, then the one v",
              "parallel_attn with one input_layernorm shared by attention and MLP: x + attn(ln(x)) + mlp(ln(x))"],
             seed=122, tokens=15),
        Case("falcon-alibi", "FalconConfig", "FalconForCausalLM",
             dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=83,
                  max_position_embeddings=64, new_decoder_architecture=False, multi_query=False,
                  parallel_attn=False, bias=True, alibi=True, ffn_hidden_size=64, tie_word_embeddings=True),
             ["mha", "alibi", "fused_qkv:per_head_interleaved", "sequential_residual", "layernorm", "bias"],
             ["alibi (falcon-rw): no rope; scores = (q.k + slope_h * j) / sqrt(head_dim) for key position j "
              "(j - i up to a per-row constant); slopes 2^(-8h/n), h = 1..n, for n a power of two (n = 4 here; "
              "transformers rounds slope and slope*j to bfloat16, exact for <= 8 heads and short sequences)",
              "made with attn_implementation sdpa, NOT eager: transformers 5.24's eager Falcon path adds the "
              "ALiBi bias twice (in the attention and again folded into the causal mask; 3.6e-2 relative off); "
              "its sdpa path adds it once, as Falcon-RW was trained, and matches an independent reference to 4e-6",
              "multi_query false and not new_decoder_architecture: query_key_value rows per head "
              "[heads, 3, head_dim]",
              "parallel_attn false: h = x + attn(ln1(x)); out = h + mlp(post_attention_layernorm(h))",
              "activation gelu = erf GELU; " + GELU_NOTE],
             seed=123, tokens=14, tweak=gelu_tail("dense_h_to_4h", "dense_4h_to_h", -2.4), attn="sdpa"),
        # ---- stablelm ----
        Case("stablelm", "StableLmConfig", "StableLmForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=97, max_position_embeddings=64, rope_theta=10000.0,
                  partial_rotary_factor=0.25, qk_layernorm=True, use_qkv_bias=True,
                  use_parallel_residual=False, tie_word_embeddings=False),
             ["gqa", "partial_rotary", "qk_layernorm:per_head", "qkv_bias", "layernorm", "odd_vocab"],
             ["partial_rotary_factor 0.25: rope on the first 2 of 8 dims of each head",
              "qk_layernorm: a separate LayerNorm (no bias) for EACH head: q_layernorm.norms.<h>.weight [head_dim]",
              "norms are LayerNorm with bias (input_layernorm, post_attention_layernorm, model.norm)"],
             seed=124, tokens=16, hub=hub_rope(partial="partial_rotary_factor")),
        Case("stablelm-parallel", "StableLmConfig", "StableLmForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, vocab_size=60, max_position_embeddings=64, rope_theta=10000.0,
                  partial_rotary_factor=0.5, qk_layernorm=False, use_qkv_bias=False,
                  use_parallel_residual=True, tie_word_embeddings=False),
             ["mha", "partial_rotary", "parallel_residual", "layernorm"],
             ["use_parallel_residual: x + attn(ln(x)) + mlp(ln(x)) with the ONE input_layernorm "
              "(no post_attention_layernorm exists)",
              "partial_rotary_factor 0.5 of head_dim 16 = 8 dims"],
             seed=125, tokens=13),
        # ---- olmo2 ----
        Case("olmo2", "Olmo2Config", "Olmo2ForCausalLM",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=97, max_position_embeddings=64, rope_theta=500000.0,
                  pad_token_id=1, eos_token_id=2, tie_word_embeddings=False),
             ["gqa", "post_norm", "qk_norm:full_width", "odd_vocab"],
             ["norm placement: h = x + post_attention_layernorm(attn(x)); out = h + "
              "post_feedforward_layernorm(mlp(h)); no norm on the block input",
              "q_norm / k_norm are RMSNorm over the whole projection (heads*head_dim = 32 and "
              "kv_heads*head_dim = 16), before splitting into heads"],
             seed=126, tokens=17),
        # ---- starcoder2 ----
        Case("starcoder2", "Starcoder2Config", "Starcoder2ForCausalLM",
             dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=1, vocab_size=91, max_position_embeddings=64, rope_theta=10000.0,
                  sliding_window=8, use_bias=True, hidden_act="gelu_pytorch_tanh", norm_epsilon=1e-5,
                  bos_token_id=0, eos_token_id=0,
                  tie_word_embeddings=True),
             ["mqa", "bias", "layernorm", "gelu_tanh_mlp", "sliding_window", "tied_embeddings", "odd_vocab"],
             ["sliding_window 8 < T=20",
              "MLP is c_fc -> gelu_pytorch_tanh -> c_proj (not gated), with biases; norms are LayerNorm "
              "with bias (norm_epsilon)",
              GELU_NOTE],
             seed=127, tokens=20, tweak=gelu_tail("c_fc", "c_proj", -3.2)),
        # ---- granite ----
        Case("granite", "GraniteConfig", "GraniteForCausalLM",
             dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=97, max_position_embeddings=64, rope_theta=10000.0,
                  embedding_multiplier=6.0, residual_multiplier=0.35, attention_multiplier=0.2,
                  logits_scaling=4.0, tie_word_embeddings=True),
             ["gqa", "embedding_multiplier", "residual_multiplier", "attention_multiplier", "logits_scaling",
              "tied_embeddings", "odd_vocab"],
             ["embedding_multiplier 6: embeddings * 6",
              "residual_multiplier 0.35: x + 0.35 * attn(...), h + 0.35 * mlp(...)",
              "attention_multiplier 0.2 REPLACES head_dim^-0.5 as the score scale",
              "logits_scaling 4: logits DIVIDED by 4"],
             seed=128, tokens=16),
    ]


def encoder_cases():
    return [
        Case("bert-gelunew", "BertConfig", "BertModel",
             dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  vocab_size=97, max_position_embeddings=40, type_vocab_size=2, hidden_act="gelu_new",
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
             ["encoder", "gelu_new", "token_type_embeddings", "post_layernorm", "odd_vocab"],
             ["hidden_act gelu_new: tanh approximation of GELU (not erf)", GELU_NOTE,
              "token_type_ids are all 0: row 0 of token_type_embeddings is added"],
             seed=201, tokens=19, tweak=gelu_tail("intermediate.dense", "output.dense", -3.2)),
        Case("roberta", "RobertaConfig", "RobertaModel",
             dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  vocab_size=90, max_position_embeddings=40, type_vocab_size=1, pad_token_id=1,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5),
             ["encoder", "learned_positions:padding_idx_offset", "post_layernorm"],
             ["position ids = padding_idx + 1 + index (padding_idx = pad_token_id = 1, so offset 2); "
              "pad tokens would get position padding_idx (tokens avoid id 1 here)",
              "type_vocab_size 1"],
             seed=202, tokens=21, avoid=[1]),
        Case("xlm-roberta", "XLMRobertaConfig", "XLMRobertaModel",
             dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=72,
                  vocab_size=101, max_position_embeddings=34, type_vocab_size=1, pad_token_id=1,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5),
             ["encoder", "learned_positions:padding_idx_offset", "post_layernorm", "odd_vocab"],
             ["same computation as roberta: position ids = padding_idx + 1 + index (offset 2)"],
             seed=203, tokens=32, avoid=[1]),
        Case("distilbert", "DistilBertConfig", "DistilBertModel",
             dict(dim=32, n_layers=3, n_heads=4, hidden_dim=64, vocab_size=97, max_position_embeddings=40,
                  activation="gelu", dropout=0.0, attention_dropout=0.0, sinusoidal_pos_embds=False,
                  pad_token_id=0),
             ["encoder", "no_token_types", "post_layernorm", "odd_vocab"],
             ["no token_type embeddings; embeddings LayerNorm then blocks with sa_layer_norm / "
              "output_layer_norm after each residual (post-norm), eps 1e-12",
              "parameter names: transformer.layer.<i>.attention.{q,k,v,out}_lin, ffn.lin1/lin2",
              "activation gelu = erf GELU; " + GELU_NOTE],
             seed=204, tokens=18, tweak=gelu_tail("ffn.lin1", "ffn.lin2", -2.4)),
        Case("modernbert", "ModernBertConfig", "ModernBertModel",
             dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                  vocab_size=97, max_position_embeddings=64, global_attn_every_n_layers=2, local_attention=8,
                  global_rope_theta=160000.0, local_rope_theta=10000.0, hidden_activation="gelu",
                  norm_bias=False, attention_bias=False, mlp_bias=False, pad_token_id=0, bos_token_id=2,
                  eos_token_id=3, cls_token_id=2, sep_token_id=3, attention_dropout=0.0, mlp_dropout=0.0,
                  embedding_dropout=0.0),
             ["encoder", "rope", "local_global_layers", "per_layer_rope_theta", "geglu:fused", "no_bias",
              "layernorm:no_bias", "pre_norm", "embedding_norm", "odd_vocab"],
             ["layer_types: layers 0 and 2 full attention (rope theta 160000), layer 1 sliding "
              "(rope theta 10000) with local_attention 8: bidirectional window, |i - j| <= 4",
              "layer 0 has no attn_norm (Identity); others pre-norm with LayerNorm without bias",
              "attn.Wqkv is fused [3*hidden, hidden]: all q rows, then all k, then all v",
              "mlp.Wi is fused [2*intermediate, hidden]: input half then gate half; act(input) * gate",
              "embeddings: tok_embeddings -> norm (LayerNorm, no bias), no position embeddings; "
              "final_norm after the last block"],
             seed=205, tokens=24),
    ]


# --------------------------------------------------------------------------------------------------------------


def randomise(model):
    """Order-one activations: see the module docstring."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:
                centre = 0.0 if n.endswith("bias") else float(p.mean())
                centre = 1.0 if abs(centre - 1.0) < 0.5 else 0.0
                p.normal_(centre, 0.1)
            elif "embed" in n or n.endswith("wte.weight") or n.endswith("word_embeddings.weight"):
                p.normal_(0.0, 1.0)
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))


def block_list(model, n_layers):
    """The module list of the blocks (the largest ModuleList of n_layers entries)."""
    best = None
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) == n_layers and not any(
                isinstance(c, (nn.Linear, nn.LayerNorm)) for c in m):
            if best is None or sum(p.numel() for p in m.parameters()) > sum(p.numel() for p in best[1].parameters()):
                best = (name, m)
    if best is None:
        raise RuntimeError("no block list")
    return best[1]


def n_layers_of(cfg):
    for k in ("num_hidden_layers", "n_layers", "n_layer"):
        if hasattr(cfg, k):
            return getattr(cfg, k)
    raise RuntimeError("layer count")


def router_margin(model, ids, k):
    """Smallest gap between the k-th and (k+1)-th largest router logit over all tokens and layers."""
    gaps = []

    def hook(_m, _inp, out):
        logits = out[0] if isinstance(out, tuple) else out
        top = torch.topk(logits.float(), k + 1, dim=-1).values
        gaps.append(float((top[..., k - 1] - top[..., k]).min()))

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules()
               if type(m).__name__.endswith("TopKRouter")]
    with torch.no_grad():
        model(input_ids=ids)
    for h in handles:
        h.remove()
    if not handles:
        raise RuntimeError("MoE model without a *TopKRouter module")
    return min(gaps)


def run(model, ids):
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    main = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    return main, out.hidden_states


def tokens_for(vocab, n, seed, avoid):
    g = torch.Generator().manual_seed(seed)
    allowed = torch.tensor([t for t in range(vocab) if t not in avoid])
    return allowed[torch.randint(0, len(allowed), (n,), generator=g)]


def implementations(case):
    """Eager attention; mixture-of-experts layers also with their eager per-expert loop (the default,
    grouped_mm, is a fused kernel)."""
    extra = {"experts_implementation": "eager"} if "num_experts_per_tok" in case.kw else {}
    return dict(attn_implementation=case.attn, **extra)


def build(case):
    cfg_cls = getattr(transformers, case.config)
    model_cls = getattr(transformers, case.model)
    seed = case.seed
    for attempt in range(20):
        torch.manual_seed(seed)
        cfg = cfg_cls(**case.kw, **implementations(case))
        model = model_cls(cfg).eval()
        randomise(model)
        if case.tweak:
            case.tweak(model)
        ids = tokens_for(cfg.vocab_size, case.tokens, seed, case.avoid)[None]
        k = getattr(cfg, "num_experts_per_tok", None)
        if k is None or router_margin(model, ids, k) >= ROUTER_MARGIN:
            return cfg, model, ids, seed
        seed += 1000  # routing too close to a tie: another draw
    raise RuntimeError(f"{case.name}: no draw with a clear routing margin")


def make(case):
    cfg, model, ids, seed = build(case)
    n_layers = n_layers_of(cfg)
    blocks = block_list(model, n_layers)
    inputs = []
    handles = [b.register_forward_pre_hook(
        lambda _m, args, kwargs: inputs.append((args[0] if args else kwargs["hidden_states"]).detach().clone()),
        with_kwargs=True) for b in blocks]
    main, hidden = run(model, ids)
    for h in handles:
        h.remove()
    if hidden is None or len(hidden) < n_layers:
        raise RuntimeError(f"{case.name}: {0 if hidden is None else len(hidden)} hidden states for {n_layers} blocks")
    for i in range(n_layers):
        if not torch.equal(inputs[i], hidden[i]):
            raise RuntimeError(f"{case.name}: hidden_states[{i}] is not the input of block {i}")

    # The fp32 reference must sit well inside the 1e-4 tolerance of the exact result, or a correct
    # implementation rounding differently could fail it: compare with the same model in float64.
    main64, _ = run(copy.deepcopy(model).double(), ids)
    fp32_error = float((main.double() - main64).abs().max() / main64.abs().max())
    if fp32_error > 1e-5:
        raise RuntimeError(f"{case.name}: fp32 output is {fp32_error:.2e} (relative) from float64")

    out_dir = os.path.join(MODELS, case.name)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir)
    gen = os.path.join(out_dir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    if case.hub:
        path = os.path.join(out_dir, "config.json")
        with open(path) as f:
            d = json.load(f)
        case.hub(d)
        with open(path, "w") as f:
            json.dump(d, f, indent=2, sort_keys=True)
            f.write("\n")
        read = getattr(transformers, case.config).from_pretrained(out_dir)
        for key in ("rope_parameters", "layer_types", "sliding_window"):
            if same_setting(getattr(read, key, None)) != same_setting(getattr(cfg, key, None)):
                raise RuntimeError(f"{case.name}: Hub spelling reads back {key} = {getattr(read, key, None)}, "
                                   f"not {getattr(cfg, key, None)}")

    # The committed files must be self-consistent: transformers reading them gives the same numbers.
    again = getattr(transformers, case.model).from_pretrained(out_dir, **implementations(case)).eval()
    main2, hidden2 = run(again, ids)
    if not torch.equal(main, main2) or not all(torch.equal(hidden[i], hidden2[i]) for i in range(n_layers)):
        raise RuntimeError(f"{case.name}: reloading {out_dir} changes the output "
                           f"(max diff {float((main - main2).abs().max())})")

    expected = {"tokens": ids[0].to(torch.int64), "output": main[0].float()}
    for i in range(n_layers):
        expected[f"hidden.{i}"] = hidden[i][0].float()
    if case.attn != "eager":  # keep the reason for not using eager measured
        eager = getattr(transformers, case.model).from_pretrained(out_dir, attn_implementation="eager").eval()
        gap = float((run(eager, ids)[0] - main).abs().max() / main.abs().max())
        case.notes = case.notes + [f"eager attention differs from {case.attn} by {gap:.1e} (relative) here"]
        case.eager_gap = gap
    return cfg, model, expected, seed, fp32_error


def save_expected(name, tensors):
    save_file({k: v.contiguous().clone() for k, v in tensors.items()},
              os.path.join(MODELS, name + ".expected.safetensors"), metadata={"format": "pt"})


def entry(case, cfg, expected, seed, fp32_error):
    return {"name": case.name, "model_type": cfg.model_type, "class": case.model,
            "output": "logits" if case.model.endswith("ForCausalLM") else "hidden_state",
            "attn_implementation": case.attn,
            **({"eager_differs_by": float(f"{case.eager_gap:.1e}")} if case.attn != "eager" else {}),
            "tokens": int(expected["tokens"].numel()), "layers": n_layers_of(cfg), "seed": seed,
            "fp32_vs_fp64": float(f"{fp32_error:.1e}"),
            "config_spelling": "hub" if case.hub else "transformers-5",
            "features": case.features + (["config:hub_spelling"] if case.hub else []),
            "notes": case.notes + ([hub_note(case.name)] if case.hub else [])}


def hub_note(name):
    with open(os.path.join(MODELS, name, "config.json")) as f:
        d = json.load(f)
    keys = ["rope_theta", "rope_scaling", "rotary_pct", "rotary_emb_base", "partial_rotary_factor",
            "rope_local_base_freq", "sliding_window_pattern", "use_sliding_window", "max_window_layers"]
    shown = ", ".join(f"{k}={json.dumps(d[k])}" for k in keys if k in d)
    return ("config.json in the Hub (transformers 4) spelling, no rope_parameters or layer_types: " + shown)


def sentence_transformers_bert():
    """A sentence-transformers directory (Transformer -> mean Pooling -> Normalize) around a tiny BERT."""
    case = Case("st-bert-mean", "BertConfig", "BertModel",
                dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     vocab_size=97, max_position_embeddings=40, type_vocab_size=2,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                ["encoder", "sentence_transformers", "pooling:mean", "normalize", "odd_vocab"],
                ["sentence-transformers layout: modules.json (Transformer at '', 1_Pooling, 2_Normalize), "
                 "sentence_bert_config.json, 1_Pooling/config.json; the empty 2_Normalize folder is not in git",
                 "pooled = mean of the token embeddings (no padding); embedding = pooled / |pooled|"],
                seed=206, tokens=15)
    cfg, model, expected, seed, fp32_error = make(case)
    out_dir = os.path.join(MODELS, case.name)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {"word_embedding_dimension": cfg.hidden_size, "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
               "pooling_mode_lasttoken": False, "include_prompt": True}
    os.makedirs(os.path.join(out_dir, "1_Pooling"), exist_ok=True)
    for path, obj in [("modules.json", modules),
                      ("sentence_bert_config.json", {"max_seq_length": 32, "do_lower_case": False}),
                      ("1_Pooling/config.json", pooling)]:
        with open(os.path.join(out_dir, path), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    pooled = expected["output"].mean(dim=0)
    expected["pooled"] = pooled
    expected["embedding"] = pooled / pooled.norm().clamp_min(1e-12)
    save_expected(case.name, expected)
    return entry(case, cfg, expected, seed, fp32_error)


def main(argv):
    os.makedirs(MODELS, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    manifest = {"generator": "tools/make_family_fixtures.py", "transformers": transformers.__version__,
                "torch": torch.__version__.split("+")[0],
                "about": "one entry per fixtures/models/<name>/ (+ <name>.expected.safetensors: tokens, output, "
                         "hidden.<i>). class: the transformers class that made it; output: logits or "
                         "hidden_state (last, after the final norm); features: what it exercises; notes: config "
                         "fields whose effect is easy to miss; config_spelling: transformers-5 (rope_parameters, "
                         "layer_types) or hub (rope_theta/rope_scaling and other transformers-4 keys); "
                         "fp32_vs_fp64: relative gap of the fp32 reference to the same model in float64",
                "fixtures": []}
    old = {}
    if argv and os.path.exists(MANIFEST):
        old = {e["name"]: e for e in json.load(open(MANIFEST))["fixtures"]}
    failures = []
    cases = decoder_cases() + encoder_cases()
    names = [c.name for c in cases] + ["st-bert-mean"]
    for case in cases:
        if argv and not any(case.name.startswith(a) for a in argv):
            if case.name in old:
                manifest["fixtures"].append(old[case.name])
            continue
        try:
            cfg, _, expected, seed, fp32_error = make(case)
        except Exception as e:  # report every family transformers cannot run, then fail
            failures.append(f"{case.name}: {type(e).__name__}: {e}")
            print("FAILED", failures[-1], file=sys.stderr)
            continue
        save_expected(case.name, expected)
        manifest["fixtures"].append(entry(case, cfg, expected, seed, fp32_error))
        print(f"{case.name:20s} {cfg.model_type:12s} {case.model:22s} T={case.tokens}")
    if not argv or any("st-bert-mean".startswith(a) for a in argv):
        manifest["fixtures"].append(sentence_transformers_bert())
        print("st-bert-mean         bert         BertModel (sentence-transformers)")
    elif "st-bert-mean" in old:
        manifest["fixtures"].append(old["st-bert-mean"])
    manifest["fixtures"].sort(key=lambda e: names.index(e["name"]))
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    if failures:
        sys.exit("could not generate:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main(sys.argv[1:])
