#!/usr/bin/env python3
"""`ckpt tokenize --file` against the Hugging Face `tokenizers` library on the same text, with the
fixture tokenizers (fixtures/tokenizers/), and a check that the ids are the same.

    python bench/tokenize_bench.py --ckpt .build/release/ckpt [--text FILE] [--mb 1]

Without --text, the corpus fixture is repeated to --mb megabytes. ckpt's time is the whole
process (start, read, tokenize, print JSON); tokenizers' encode_batch uses every core.
"""
import argparse, json, os, subprocess, tempfile, time

from tokenizers import Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizers")
NAMES = ["gpt2", "llama3", "llama2", "unigram", "wordpiece", "wordlevel"]

ap = argparse.ArgumentParser()
ap.add_argument("--ckpt", required=True)
ap.add_argument("--text")
ap.add_argument("--mb", type=float, default=1.0)
args = ap.parse_args()
path = args.text
if path is None:
    corpus = open(os.path.join(ROOT, "corpus.txt"), encoding="utf-8").read()
    text = corpus * (int(args.mb * 2**20) // len(corpus.encode()) + 1)
    text = text[:text.rfind("\n", 0, int(args.mb * 2**20)) + 1]
    fd, path = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
text = open(path, encoding="utf-8").read()
lines = text.split("\n")
if text.endswith("\n"):
    lines.pop()
print(f"{len(text.encode())} bytes, {len(lines)} lines")
print("| tokenizer | ids | ckpt tokenize (s) | M ids/s | tokenizers encode_batch (s) | encode per line (s) | same ids |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name in NAMES:
    tok = Tokenizer.from_file(os.path.join(ROOT, name, "tokenizer.json"))
    tok.no_truncation(); tok.no_padding()
    t = time.perf_counter(); batch = tok.encode_batch(lines); t_batch = time.perf_counter() - t
    t = time.perf_counter(); [tok.encode(l) for l in lines]; t_seq = time.perf_counter() - t
    t = time.perf_counter()
    r = subprocess.run([args.ckpt, "tokenize", os.path.join(ROOT, name), "--file", path, "--json"], capture_output=True, check=True)
    t_ckpt = time.perf_counter() - t
    ids = json.loads(r.stdout)["ids"]
    n = sum(len(e.ids) for e in batch)
    print(f"| {name} | {n} | {t_ckpt:.3f} | {n / t_ckpt / 1e6:.2f} | {t_batch:.3f} | {t_seq:.3f} | {ids == [e.ids for e in batch]} |")
