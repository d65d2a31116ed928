// ModelConfig: the architecture and hyper-parameters of a checkpoint.
//
// Hugging Face `config.json` keys are the reference vocabulary. The whole JSON object is kept
// (in order), and the file's own bytes too when it was read from one, so writing it back out
// is lossless. Typed accessors know the common aliases (GPT-2's `n_embd`, `n_layer`, ...).

import OrderedCollections

public struct ModelConfig: Sendable, Equatable {
    public var json: OrderedDictionary<String, JSONValue>
    /// The exact bytes of the `config.json` this came from, if any (written back verbatim
    /// as long as `json` is unchanged).
    public var sourceBytes: [UInt8]?
    private var parsedFromSource: OrderedDictionary<String, JSONValue>?

    public init(json: OrderedDictionary<String, JSONValue>) {
        self.json = json
    }

    /// Parses a Hugging Face `config.json`.
    public init(jsonBytes: [UInt8]) throws(CoreError) {
        let value: JSONValue
        do { value = try JSONValue.parse(jsonBytes) } catch { throw .invalidConfig("not valid JSON: \(error)") }
        guard let object = value.objectValue else { throw .invalidConfig("top level is not a JSON object") }
        self.json = object
        self.sourceBytes = jsonBytes
        self.parsedFromSource = object
    }

    /// The bytes to write as `config.json`: the source file when unchanged, otherwise the
    /// JSON indented like `save_pretrained` does.
    public func serialized() -> [UInt8] {
        if let sourceBytes, parsedFromSource == json { return sourceBytes }
        return Array((JSONValue.object(json).prettyPrinted() + "\n").utf8)
    }

    public subscript(key: String) -> JSONValue? { json[key] }

    private func int(_ keys: String...) -> Int? {
        for k in keys { if let v = json[k]?.intValue { return v } }
        return nil
    }

    /// `architectures[0]` (e.g. "GPT2LMHeadModel"), else nil.
    public var architecture: String? { json["architectures"]?.arrayValue?.first?.stringValue }
    /// `model_type` (e.g. "gpt2", "bert", "llama").
    public var modelType: String? { json["model_type"]?.stringValue }
    public var hiddenSize: Int? { int("hidden_size", "n_embd", "d_model") }
    public var numLayers: Int? { int("num_hidden_layers", "n_layer", "num_layers") }
    public var numHeads: Int? { int("num_attention_heads", "n_head", "num_heads") }
    public var numKeyValueHeads: Int? { int("num_key_value_heads") ?? numHeads }
    public var vocabSize: Int? { int("vocab_size") }
    public var intermediateSize: Int? { int("intermediate_size", "n_inner") }
    public var maxPositions: Int? { int("max_position_embeddings", "n_positions") }

    /// `tie_word_embeddings` as the config states it (nil when absent: transformers writes it
    /// into every config it saves, but hand-written configs may leave it out).
    public var statedTieWordEmbeddings: Bool? { json["tie_word_embeddings"]?.boolValue }

    /// Whether the output head shares the token embedding: as stated, else `familyDefault`
    /// (each architecture description knows its config class's default).
    public func tieWordEmbeddings(default familyDefault: Bool) -> Bool { statedTieWordEmbeddings ?? familyDefault }

    /// As stated, else transformers' PretrainedConfig default (true). Where the family is
    /// known, its description applies its own default instead (`tieWordEmbeddings(default:)`).
    public var tieWordEmbeddings: Bool { tieWordEmbeddings(default: true) }

    /// A one-line summary for `inspect`.
    public var summary: String {
        var parts: [String] = []
        if let a = architecture ?? modelType { parts.append(a) }
        if let v = numLayers { parts.append("layers=\(v)") }
        if let v = hiddenSize { parts.append("hidden=\(v)") }
        if let v = numHeads { parts.append("heads=\(v)") }
        if let v = json["num_key_value_heads"]?.intValue { parts.append("kv_heads=\(v)") }
        if let v = intermediateSize { parts.append("intermediate=\(v)") }
        if let v = vocabSize { parts.append("vocab=\(v)") }
        if let v = maxPositions { parts.append("positions=\(v)") }
        return parts.joined(separator: " ")
    }
}

extension WeightGraph {
    /// Output heads that Hugging Face ties to the token embedding and leaves out of the
    /// saved weights, with the embedding names they alias (with and without the
    /// base-model prefix).
    static let conventionalTies: [(alias: String, targets: [String])] = [
        ("lm_head.weight", ["transformer.wte.weight", "wte.weight", "model.embed_tokens.weight", "embed_tokens.weight"]),
    ]

    /// Adds the ties the config implies: when `tie_word_embeddings` is stated true and the
    /// output head is absent, it becomes an alias of the token embedding. When the config
    /// does not say, nothing is added: the architecture description applies its family's
    /// default when the forward pass runs (GPT-2 ties, LLaMA does not).
    public mutating func applyConfigTies() {
        guard let config, config.statedTieWordEmbeddings == true else { return }
        for (alias, targets) in Self.conventionalTies where tensors[alias] == nil && ties[alias] == nil {
            if let target = targets.first(where: { tensors[$0] != nil }) {
                try? tie(alias, to: target)
            }
        }
    }
}
