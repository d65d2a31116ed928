#!/usr/bin/env python3
"""Fixtures for `ckpt distill` (issue 9): a trained teacher and PyTorch autograd gradients.

    /path/to/python-with-torch tools/make_train_fixtures.py    # torch + transformers; CI never runs it

fixtures/models/gpt2-teacher4/   a 4-layer GPT-2 (n_embd 48, 4 heads, vocab 64, 64 positions)
    *trained* (AdamW, a few hundred steps) on a synthetic language: an order-2 Markov chain over
    64 tokens in which each pair of previous tokens allows 3 next tokens with Dirichlet(0.5)
    probabilities. Predicting the next token needs the two previous ones, so the model must use
    attention; a student cut to 2 of its layers loses that and distillation has to win it back.
    `save_pretrained` output (config.json + model.safetensors, tied head).

fixtures/train/gpt2-a-grads.safetensors   the reference for Train's backward pass: the 2-layer
    fixtures/models/gpt2-a student (random weights, random LayerNorm/bias values) run in float64 on
      tokens            i64 [B, T]        B = 2, T = 8
      teacher_logits    f32 [B, T, V]     random "teacher" logits
      hidden_target.<i> f32 [B, T, C]     random targets for the output of block i (pre ln_f)
      loss              f32 []            the loss below
      grad.<name>       f32 (param shape) d loss / d parameter, for every parameter (HF names;
                                          the tied wte gets both its embedding and head parts)
    loss = tau^2 * mean over the B*T positions of KL(softmax(t/tau) || softmax(s/tau))
         + alpha * mean over blocks i of mean((h_i - hidden_target_i)^2),   tau = 2, alpha = 0.5
    Recorded in the file's metadata too.
"""

import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from markov import markov_language, sample_sequences  # noqa: F401 (make_llama_train_fixtures imports them from here)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
TAU, ALPHA = 2.0, 0.5


def train_teacher(model, nxt, prob, rng, steps, T, out_name):
    """Trains `model` on sequences of the Markov language (AdamW, one-cycle schedule, batch 32)
    and saves it to fixtures/models/<out_name> (save_pretrained, no generation_config.json)."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        ids = torch.from_numpy(sample_sequences(nxt, prob, 32, T, rng))
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"teacher step {step} loss {loss.item():.4f}")
    # The chain's own entropy rate: the loss a perfect model reaches (from position 2 on).
    p = prob.reshape(-1, 3)
    print(f"entropy rate of the language: {-(p * np.log(p + 1e-30)).sum(1).mean():.4f} nats")
    out = os.path.join(ROOT, "models", out_name)
    model.eval().save_pretrained(out)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)


def teacher():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(4)
    vocab, T = 64, 64
    nxt, prob = markov_language(vocab, seed=4)
    rng = np.random.default_rng(40)
    cfg = GPT2Config(n_layer=4, n_embd=48, n_head=4, n_positions=T, vocab_size=vocab, bos_token_id=0,
                     eos_token_id=0, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, attn_implementation="eager")
    train_teacher(GPT2LMHeadModel(cfg), nxt, prob, rng, steps=600, T=T, out_name="gpt2-teacher4")


def write_gradients(model, blocks, hidden, out_name):
    """The distillation loss of the docstring on `model` (float64, eval mode) and its autograd
    gradients, written to fixtures/train/<out_name>-grads.safetensors. `blocks` are the
    transformer blocks whose outputs get hidden targets; `hidden` is the model width."""
    cfg = model.config
    B, T, V, C = 2, 8, cfg.vocab_size, hidden
    g = torch.Generator().manual_seed(9)
    tokens = torch.randint(0, V, (B, T), generator=g)
    teacher_logits = (torch.randn(B, T, V, generator=g) * 2).double()
    targets = [torch.randn(B, T, C, generator=g).double() for _ in range(len(blocks))]
    block_out = []
    hooks = [blk.register_forward_hook(lambda m, i, o: block_out.append(o[0] if isinstance(o, tuple) else o))
             for blk in blocks]
    logits = model(input_ids=tokens).logits
    for h in hooks:
        h.remove()
    kl = F.kl_div(F.log_softmax(logits / TAU, -1), F.log_softmax(teacher_logits / TAU, -1),
                  log_target=True, reduction="sum") / (B * T) * TAU ** 2
    mse = sum(((h - t) ** 2).mean() for h, t in zip(block_out, targets)) / len(targets)
    loss = kl + ALPHA * mse
    loss.backward()
    out = {"tokens": tokens.to(torch.int64), "teacher_logits": teacher_logits.float(),
           "loss": loss.detach().float().reshape(())}
    for i, t in enumerate(targets):
        out[f"hidden_target.{i}"] = t.float()
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.float()
    print(f"{out_name}: loss {loss.item():.6f} (kl {kl.item():.6f}, mse {mse.item():.6f}), {len(out)} tensors")
    os.makedirs(os.path.join(ROOT, "train"), exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(ROOT, "train", f"{out_name}-grads.safetensors"),
              metadata={"format": "pt", "tau": str(TAU), "alpha": str(ALPHA)})


def gradients():
    from transformers import GPT2LMHeadModel
    model = GPT2LMHeadModel.from_pretrained(os.path.join(ROOT, "models", "gpt2-a"), attn_implementation="eager")
    model = model.double().eval()
    write_gradients(model, list(model.transformer.h), model.config.n_embd, "gpt2-a")


if __name__ == "__main__":
    torch.set_num_threads(1)
    gradients()
    teacher()
