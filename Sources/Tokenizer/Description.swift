// What a tokenizer is made of, for writers that describe it in another format (GGUF's
// tokenizer.ggml.* keys) — read-only views of the parsed components.

import CkptCore

extension Tokenizer {
    /// "BPE", "WordPiece", "Unigram" or "WordLevel".
    public var modelType: String {
        switch model {
        case is BPE: return "BPE"
        case is WordPiece: return "WordPiece"
        case is Unigram: return "Unigram"
        default: return "WordLevel"
        }
    }

    /// Every id's token (added tokens included); nil for ids nothing uses.
    public var tokens: [String?] {
        var t = model.vocabulary
        if t.count < vocabularySize { t += [String?](repeating: nil, count: vocabularySize - t.count) }
        for a in addedTokens { t[a.id] = a.content }
        return t
    }

    /// BPE merges in rank order.
    public var merges: [(String, String)] { (model as? BPE)?.mergeList ?? [] }

    /// Unigram log-probabilities by id.
    public var scores: [Double]? { (model as? Unigram)?.scores }

    /// Whether unknown characters become <0xXX> byte tokens.
    public var byteFallback: Bool { (model as? BPE)?.byteFallback ?? (model as? Unigram)?.byteFallback ?? false }

    public var ignoreMerges: Bool { (model as? BPE)?.ignoreMerges ?? false }

    public var unknownTokenID: Int? {
        if let b = model as? BPE { return b.unkToken.flatMap { b.vocab[$0] } }
        if let w = model as? WordPiece { return w.vocab[w.unkToken] }
        if let w = model as? WordLevel { return w.unkToken.flatMap { w.vocab[$0] } }
        return (model as? Unigram)?.unkID
    }

    /// The ids the post-processor puts after a sequence (e.g. EOS, [SEP]).
    public var specialSuffix: [Int] {
        guard let postProcessor else { return [] }
        let out = postProcessor.process([-1])
        guard let i = out.firstIndex(of: -1) else { return [] }
        return Array(out[(i + 1)...])
    }

    /// The tokenizer.json's own JSON (nil for a vocab.txt directory): its normalizer,
    /// pre_tokenizer (e.g. the Split regexes, to recognise llama.cpp's pre-tokenizers),
    /// post_processor and decoder exactly as written.
    public var definition: JSONValue? { json }
}
