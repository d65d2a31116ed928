"""`make test-llamacpp`: llama.cpp (llama-cpp-python, compiled from source) against ckpt's GGUF files.

For each model made by tools/make_llamacpp_models.py:
  - ckpt convert DIR x.gguf --dtype f32|f16|bf16 and ckpt quantize DIR x.gguf --scheme q8_0|q4_k_m;
  - llama.cpp loads each file, tokenizes the text to exactly the `tokenizers` ids, and its
    logits match transformers' (f32/f16/bf16 files: row cosine >= 0.999) and ckpt's own forward
    pass on the same file (row cosine >= 0.999; quantized files >= 0.998: llama.cpp rounds activations to
    8 bits for every quantized product, ckpt only for Q8_0, Q4_0 and Q4_K);
  - GGUF -> directory (ckpt convert x.gguf DIR/) writes a tokenizer.json that the `tokenizers`
    library (run with --gen-python) encodes the text with to the same ids;
  - encoders (BERT, RoBERTa, DistilBERT, XLM-RoBERTa with a t5 vocabulary, all-MiniLM-L6-v2) run as
    llama.cpp embedding models: tokens equal
    the `tokenizers` ids, per-token embeddings (pooling none) match transformers' last hidden
    state and ckpt's forward pass (row cosine >= 0.999; q8_0 vs transformers >= ENCODER_Q8_BOUND),
    the file's pooling_type is the sentence-transformers Pooling module's, and llama.cpp's pooled,
    normalised embedding matches the same pooling of transformers' and ckpt's hidden states; the
    f32 file's tokenizer.json written back encodes the text to the same ids;
  - the per-tensor types of ckpt's q4_k_m/q4_0/q8_0/... presets equal llama-quantize's on the
    LLaMA-shaped model (llama_model_quantize from ckpt's f32 file, types read with gguf-py).
A file ckpt wrote without tokenizer.ggml.* keys is reported as a failure; its weights are then
still checked through a copy with the keys added by gguf-py's vocab classes (as
convert_hf_to_gguf.py does), so the two questions are answered separately.

usage: python tools/llamacpp_check.py --ckpt PATH --models DIR --work DIR
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import llama_cpp
import numpy as np

PRESETS = {"q4_k_m": 15, "q4_k_s": 14, "q5_k_m": 17, "q5_k_s": 16, "q3_k_m": 12, "q3_k_s": 11, "q3_k_l": 13,
           "q2_k": 10, "q6_k": 18, "q8_0": 7, "q4_0": 2, "q5_0": 8}
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def row_cos(a, b):
    a = a.astype(np.float64); b = b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def with_tokenizer_keys(path, model_dir, out):
    """A copy of `path` with tokenizer keys written by gguf-py's vocab classes."""
    r = gguf.GGUFReader(path)
    arch = str(r.fields["general.architecture"].contents())
    w = gguf.GGUFWriter(out, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            w.add_array(name, f.contents())
        else:
            w.add_key_value(name, f.contents(), t)
    tok = json.load(open(Path(model_dir) / "tokenizer.json"))
    if tok["model"].get("byte_fallback"):
        vocab = gguf.LlamaHfVocab(Path(model_dir))
        tokens, scores, types = zip(*vocab.all_tokens())
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list([t if isinstance(t, bytes) else t.encode() for t in tokens])
        w.add_token_scores(list(scores))
        w.add_token_types(list(types))
    else:
        vocab = gguf.BpeVocab(Path(model_dir))
        tokens, scores, types = zip(*vocab.all_tokens())
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("llama-bpe" if "llama3" in str(model_dir) else "qwen2")
        w.add_token_list([t if isinstance(t, bytes) else t.encode() for t in tokens])
        w.add_token_types(list(types))
    gguf.SpecialVocab(Path(model_dir), load_merges=not tok["model"].get("byte_fallback"), n_vocab=len(tokens)).add_to_gguf(w)
    for t in r.tensors:
        if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            w.add_tensor(t.name, np.asarray(t.data))
        else:  # bytes, shaped [..., row bytes]
            w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def llama_logits(path, ids_expected, text):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=2)
    md = llm.metadata
    add_bos = md.get("tokenizer.ggml.add_bos_token", "true" if md.get("tokenizer.ggml.bos_token_id") else "false") == "true"
    ids = llm.tokenize(text.encode(), add_bos=add_bos, special=False)
    llm.reset()
    llm.eval(ids_expected)
    logits = np.array(llm.scores[: len(ids_expected)], dtype=np.float32)
    llm.close()
    return ids, logits


def ckpt_logits(ckpt, path, ids, work):
    out = Path(work) / (Path(path).stem + ".ckpt.npy")
    run(ckpt, "forward", path, "--tokens", ",".join(map(str, ids)), "--output", out)
    return np.load(out)


TOKENIZE = """
import json, sys
from tokenizers import Tokenizer
print(json.dumps(Tokenizer.from_file(sys.argv[1]).encode(sys.argv[2]).ids))
"""


def check_tokenizer_back(ckpt, gguf_path, exp, work, gen_python, label):
    """GGUF -> directory: the rebuilt tokenizer.json encodes like the original."""
    out = Path(work) / (Path(gguf_path).stem + ".dir")
    run(ckpt, "convert", gguf_path, str(out) + "/")
    r = run(gen_python, "-c", TOKENIZE, out / "tokenizer.json", exp["text"])
    ids = json.loads(r.stdout)
    print(f"{label:16s} tokenizer.json from GGUF: {'ok' if ids == exp['ids'] else 'DIFFER'}")
    if ids != exp["ids"]:
        fail(f"{label}: tokenizer.json rebuilt from the GGUF encodes to {ids}, tokenizers gives {exp['ids']}")


def check_model(ckpt, model_dir, work, gen_python=None):
    name = Path(model_dir).name
    exp = json.load(open(Path(model_dir) / "expected.json"))
    ref = np.load(Path(model_dir) / "expected_logits.npy")
    files = {}
    for dt in ["f32", "f16", "bf16"]:
        files[dt] = Path(work) / f"{name}-{dt}.gguf"
        run(ckpt, "convert", model_dir, files[dt], "--dtype", dt)
    for s in ["q8_0", "q4_k_m"]:
        files[s] = Path(work) / f"{name}-{s}.gguf"
        run(ckpt, "quantize", model_dir, files[s], "--scheme", s, "--no-errors", "--quiet")
    for kind, path in files.items():
        label = f"{name} {kind}"
        r = gguf.GGUFReader(str(path))
        has_tok = "tokenizer.ggml.model" in r.fields
        target = path
        if not has_tok:
            fail(f"{label}: ckpt wrote no tokenizer.ggml.* keys (llama.cpp refuses the file); weights checked via a gguf-py copy")
            target = Path(work) / f"{name}-{kind}.tok.gguf"
            with_tokenizer_keys(str(path), model_dir, str(target))
        try:
            ids, got = isolated(llama_logits, target, exp["ids"], exp["text"])
        except Exception as e:  # noqa: BLE001
            fail(f"{label}: llama.cpp could not load or run it: {e}")
            continue
        if has_tok and ids != exp["ids"]:
            fail(f"{label}: llama.cpp tokenized to {ids}, tokenizers gives {exp['ids']}")
        mine = ckpt_logits(ckpt, path, exp["ids"], work)
        c_hf = row_cos(got, ref).min()
        c_ck = row_cos(got, mine).min()
        ok_hf = c_hf >= 0.999 or kind in ("q8_0", "q4_k_m")
        print(f"{label:16s} tokens {'ok' if ids == exp['ids'] else 'DIFFER'}  min row cosine vs transformers {c_hf:.6f}  vs ckpt forward {c_ck:.6f}")
        if not ok_hf:
            fail(f"{label}: llama.cpp vs transformers row cosine {c_hf:.6f} < 0.999")
        # Same file, two engines: llama.cpp rounds the activations to 8 bits for every quantized
        # product; ckpt does so only for Q8_0, Q4_0 and Q4_K weights (q4_k_m files of these tiny
        # models are mostly q5_0 fallbacks, which ckpt widens to f32), so quantized files get 0.998
        # (lowest seen: 0.99898, OLMo-2 q4_k_m).
        bound_ck = 0.999 if kind in ("f32", "f16", "bf16") else 0.998
        if c_ck < bound_ck:
            fail(f"{label}: llama.cpp vs ckpt forward row cosine {c_ck:.6f} < {bound_ck}")
        if kind == "f32" and gen_python:
            check_tokenizer_back(ckpt, path, exp, work, gen_python, label)


POOLING = {"none": 0, "mean": 1, "cls": 2, "last": 3}


def llama_embeddings(path, text):
    """llama.cpp as an embedding model: its tokens, per-token embeddings (pooling none), the
    pooling type the file declares and the pooled, normalised sentence embedding."""
    llm = llama_cpp.Llama(model_path=str(path), embedding=True, pooling_type=POOLING["none"], n_ctx=256, n_batch=256,
                          n_ubatch=256, verbose=False, n_threads=2)
    ids = llm.tokenize(text.encode(), add_bos=True, special=False)
    tokens = np.array(llm.embed(text), dtype=np.float32)
    declared = llm.metadata.get(llm.metadata.get("general.architecture", "") + ".pooling_type")
    llm.close()
    llm = llama_cpp.Llama(model_path=str(path), embedding=True, n_ctx=256, n_batch=256, n_ubatch=256, verbose=False, n_threads=2)
    sentence = np.array(llm.embed(text, normalize=True), dtype=np.float32)
    llm.close()
    return ids, tokens, declared, sentence


def isolated(fn, *args):
    """fn in a forked child: a file llama.cpp aborts on fails that file, not the run."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def child():
        try:
            q.put(("ok", fn(*args)))
        except Exception as e:  # noqa: BLE001
            q.put(("error", str(e)))

    proc = ctx.Process(target=child)
    proc.start()
    answer = None
    while answer is None:
        try:
            answer = q.get(timeout=1)
        except Exception:  # noqa: BLE001 -- still running, or died without answering
            if not proc.is_alive():
                proc.join()
                raise RuntimeError(f"llama.cpp crashed (exit {proc.exitcode})")
    proc.join()
    if answer[0] != "ok":
        raise RuntimeError(answer[1])
    return answer[1]


def cos(a, b):
    a = a.astype(np.float64).ravel(); b = b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


# Quantized encoder files against transformers' f32 outputs: q8_0 rounds every weight matrix.
ENCODER_Q8_BOUND = 0.995


def check_encoder(ckpt, model_dir, work, gen_python=None):
    """An encoder as llama.cpp's embedding model: tokens, per-token embeddings and the pooled
    sentence embedding against transformers and ckpt's forward pass on the same file."""
    name = Path(model_dir).name
    exp = json.load(open(Path(model_dir) / "expected.json"))
    ref_tokens = np.load(Path(model_dir) / "expected_hidden.npy")
    ref_sentence = np.load(Path(model_dir) / "expected_sentence.npy")
    files = {}
    for dt in ["f32", "f16", "bf16"]:
        files[dt] = Path(work) / f"{name}-{dt}.gguf"
        run(ckpt, "convert", model_dir, files[dt], "--dtype", dt)
    files["q8_0"] = Path(work) / f"{name}-q8_0.gguf"
    run(ckpt, "quantize", model_dir, files["q8_0"], "--scheme", "q8_0", "--no-errors", "--quiet")
    for kind, path in files.items():
        label = f"{name} {kind}"
        try:
            ids, tokens, declared, sentence = isolated(llama_embeddings, path, exp["text"])
        except Exception as e:  # noqa: BLE001
            fail(f"{label}: llama.cpp could not load or run it: {e}")
            continue
        if ids != exp["ids"]:
            fail(f"{label}: llama.cpp tokenized to {ids}, tokenizers gives {exp['ids']}")
        if declared is None or int(declared) != POOLING[exp["pooling"]]:
            fail(f"{label}: pooling_type {declared}, the sentence-transformers modules say {exp['pooling']} ({POOLING[exp['pooling']]})")
        mine = ckpt_logits(ckpt, path, exp["ids"], work)  # an encoder's forward gives the last hidden state
        v = mine[0] if exp["pooling"] == "cls" else mine.mean(0)
        mine_sentence = v / np.linalg.norm(v)
        bound = 0.999 if kind in ("f32", "f16", "bf16") else ENCODER_Q8_BOUND
        if tokens.shape != ref_tokens.shape:
            fail(f"{label}: llama.cpp gave per-token embeddings {tokens.shape}, transformers {ref_tokens.shape}")
            continue
        t_hf, t_ck = row_cos(tokens, ref_tokens).min(), row_cos(tokens, mine).min()
        s_hf, s_ck = cos(sentence, ref_sentence), cos(sentence, mine_sentence)
        print(f"{label:20s} tokens {'ok' if ids == exp['ids'] else 'DIFFER'}  pooling {declared}  per-token min cosine vs transformers "
              f"{t_hf:.6f} vs ckpt {t_ck:.6f}  sentence cosine vs transformers {s_hf:.6f} vs ckpt {s_ck:.6f}")
        for what, c, b in [("per-token vs transformers", t_hf, bound), ("sentence vs transformers", s_hf, bound),
                           ("per-token vs ckpt forward", t_ck, 0.999), ("sentence vs ckpt forward", s_ck, 0.999)]:
            if c < b:
                fail(f"{label}: llama.cpp {what} cosine {c:.6f} < {b}")
        if kind == "f32" and gen_python:
            check_tokenizer_back(ckpt, path, exp, work, gen_python, label)


def compare_presets(ckpt, model_dir, work):
    f32 = Path(work) / "preset-f32.gguf"
    run(ckpt, "convert", model_dir, f32, "--dtype", "f32")
    rows = []
    for preset, ftype in PRESETS.items():
        mine = Path(work) / f"preset-{preset}.ckpt.gguf"
        theirs = Path(work) / f"preset-{preset}.llama.gguf"
        run(ckpt, "quantize", f32, mine, "--scheme", preset, "--no-errors", "--quiet")
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = ftype
        p.nthread = 2
        rc = llama_cpp.llama_model_quantize(str(f32).encode(), str(theirs).encode(), ctypes.byref(p))
        if rc != 0:
            fail(f"llama_model_quantize {preset} failed ({rc})")
            continue
        a = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(mine)).tensors}
        b = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(theirs)).tensors}
        fa = gguf.GGUFReader(str(mine)).fields["general.file_type"].contents()
        fb = gguf.GGUFReader(str(theirs)).fields["general.file_type"].contents()
        diff = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
        same = len(set(a) | set(b)) - len(diff)
        rows.append((preset, same, len(set(a) | set(b)), fa, fb))
        print(f"preset {preset:7s}: {same}/{len(set(a) | set(b))} tensors same type as llama-quantize; file_type ckpt {fa} llama.cpp {fb}")
        for n in diff[:6]:
            print(f"    {n}: ckpt {a.get(n)}  llama-quantize {b.get(n)}")
        if diff:
            fail(f"preset {preset}: {len(diff)} tensor types differ from llama-quantize")
        if fa != fb:
            fail(f"preset {preset}: general.file_type {fa}, llama-quantize writes {fb}")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", help="comma-separated model names (default: all, and the preset comparison)")
    ap.add_argument("--gen-python", help="a Python with `tokenizers` for the GGUF -> tokenizer.json check")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    print("llama-cpp-python", llama_cpp.__version__)
    only = set(a.only.split(",")) if a.only else None
    if not only:
        compare_presets(a.ckpt, Path(a.models) / "llama3", a.work)
    for m in json.load(open(Path(a.models) / "manifest.json")):
        if only and m not in only:
            continue
        if not (Path(a.models) / m / "expected.json").exists():
            fail(f"{m}: no model (see make_llamacpp_models.py's output)")
            continue
        try:
            if json.load(open(Path(a.models) / m / "expected.json")).get("encoder"):
                check_encoder(a.ckpt, Path(a.models) / m, a.work, a.gen_python)
                continue
            check_model(a.ckpt, Path(a.models) / m, a.work, a.gen_python)
        except Exception as e:  # noqa: BLE001 -- one family's failure does not hide the others'
            fail(f"{m}: {e}")
    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
