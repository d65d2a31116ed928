// Reading a Hugging Face config.json into a family's typed description, validated before any
// buffer is sized from it (a hostile config must cost nothing): every size is a positive
// integer that fits BLAS's 32-bit dimensions, products of sizes are checked for overflow, the
// layer count is bounded by the tensors actually present, and every refusal is one line
// naming the key (TransformerError.invalidConfig → exit 2).

import CkptCore

public struct ConfigReader: Sendable {
    public let config: ModelConfig
    public let graph: WeightGraph
    public var modelType: String { config.modelType ?? "" }
    /// Largest size accepted: BLAS dimensions are 32-bit.
    static let maxSize = Int(Int32.max)

    public init(_ config: ModelConfig, graph: WeightGraph) {
        self.config = config
        self.graph = graph
    }

    public subscript(key: String) -> JSONValue? { config[key] }

    func invalid(_ message: String) -> TransformerError { .invalidConfig(message) }

    /// The first key present among `keys` (aliases), with its value.
    func lookup(_ keys: [String]) -> (String, JSONValue)? {
        for k in keys { if let v = config[k], v != .null { return (k, v) } }
        return nil
    }

    /// A size (hidden size, heads, widths): a positive integer ≤ 2³¹ − 1.
    public func size(_ keys: String..., default d: Int? = nil) throws -> Int {
        guard let (key, value) = lookup(keys) else {
            if let d { return d }
            throw invalid("missing or invalid \(keys[0])")
        }
        return try checkedSize(value, key)
    }

    /// A size that may be absent (nil) or null.
    public func optionalSize(_ keys: String...) throws -> Int? {
        guard let (key, value) = lookup(keys) else { return nil }
        return try checkedSize(value, key)
    }

    func checkedSize(_ value: JSONValue, _ key: String) throws -> Int {
        guard let n = value.intValue else { throw invalid("\(key) is not an integer") }
        guard n > 0 else { throw invalid("\(key) \(n) must be positive") }
        guard n <= Self.maxSize else { throw invalid("\(key) \(n) is too large") }
        return n
    }

    /// The number of blocks, bounded by the tensors present (each block has parameters), so an
    /// absurd count is refused before anything is sized by it.
    public func layerCount(_ keys: String...) throws -> Int {
        guard let (key, value) = lookup(keys) else { throw invalid("missing or invalid \(keys[0])") }
        let n = try checkedSize(value, key)
        guard n <= graph.tensors.count else {
            throw invalid("\(key) \(n) is more layers than the checkpoint has tensors (\(graph.tensors.count))")
        }
        return n
    }

    /// a · b, refused when it overflows or exceeds 2³¹ − 1.
    public func product(_ a: Int, _ b: Int, _ what: String) throws -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow, p <= Self.maxSize else { throw invalid("\(what) (\(a) × \(b)) is too large") }
        return p
    }

    /// A finite number.
    public func number(_ keys: String..., default d: Double) throws -> Double {
        guard let (key, value) = lookup(keys) else { return d }
        guard let x = value.doubleValue, x.isFinite else { throw invalid("\(key) is not a finite number") }
        return x
    }

    /// A finite number > 0 (rope_theta, rope factors, soft-caps, scales).
    public func positive(_ keys: String..., default d: Double? = nil) throws -> Double {
        guard let (key, value) = lookup(keys) else {
            if let d { return d }
            throw invalid("missing \(keys[0])")
        }
        guard let x = value.doubleValue, x.isFinite, x > 0 else { throw invalid("\(key) \(value) must be a positive number") }
        return x
    }

    /// A positive number that may be absent or null (soft-capping).
    public func optionalPositive(_ key: String) throws -> Double? {
        guard let value = config[key], value != .null else { return nil }
        guard let x = value.doubleValue, x.isFinite, x > 0 else { throw invalid("\(key) \(value) must be a positive number") }
        return x
    }

    /// A norm epsilon: finite and ≥ 0.
    public func epsilon(_ keys: String..., default d: Float) throws -> Float {
        guard let (key, value) = lookup(keys) else { return d }
        guard let x = value.doubleValue, x.isFinite, x >= 0 else { throw invalid("\(key) \(value) must be a non-negative number") }
        return Float(x)
    }

    public func string(_ key: String) -> String? { config[key]?.stringValue }

    /// `tie_word_embeddings` as stated, else the family's default (its transformers config
    /// class's: true for GPT-2, BERT, Gemma, OPT, Falcon..., false for LLaMA, Mistral, Qwen...).
    public func tieWordEmbeddings(default familyDefault: Bool) -> Bool { config.tieWordEmbeddings(default: familyDefault) }

    public func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = config[key], v != .null else { return d }
        guard let b = v.boolValue else { throw invalid("\(key) is not true or false") }
        return b
    }

    /// The activation named by the first key present, which must be one of `allowed`.
    public func activation(_ keys: String..., default d: Activation, allowed: Set<Activation>) throws -> Activation {
        try activation(keys, default: d, allowed: allowed)
    }

    public func activation(_ keys: [String], default d: Activation, allowed: Set<Activation>) throws -> Activation {
        guard let (key, value) = lookup(keys) else { return d }
        guard let name = value.stringValue, let a = Activation(huggingFace: name), allowed.contains(a) else {
            throw invalid("\(key) \(value) is not supported (\(allowed.map(\.rawValue).sorted().joined(separator: ", ")))")
        }
        return a
    }

    /// Refuses a key whose value would change the computation in a way not implemented,
    /// unless it equals one of `harmless` (JSON null always counts as absent).
    public func refuse(_ key: String, unless harmless: [JSONValue] = [], _ why: String = "is not supported") throws {
        guard let v = config[key], v != .null, !harmless.contains(where: { $0.sameValue(v) }) else { return }
        throw invalid("\(key) \(v) \(why)")
    }

    // MARK: Weight names

    public func has(_ name: String) -> Bool { graph.tensor(named: name) != nil }
    /// Present as a tensor of its own (not only as a tie alias).
    public func stored(_ name: String) -> Bool { graph.tensors[name] != nil }

    /// The name prefix (e.g. "transformer.", "bert.", "model.") under which `anchor` exists.
    public func prefix(anchor: String, missing: String) throws -> String {
        if graph.tensor(named: anchor) != nil { return "" }
        for name in graph.tensors.keys where name.hasSuffix("." + anchor) {
            return String(name.dropLast(anchor.count))
        }
        throw TransformerError.missingTensor(missing)
    }

    /// `required` if the checkpoint has `name`, else absent: for biases a family reads when present.
    public func presence(_ name: String) -> Presence { has(name) ? .required : .absent }

    /// Whether the configured architecture is a bare `XxxModel` (no head: last hidden state).
    public var isBaseModel: Bool {
        guard let a = config.architecture else { return false }
        return a.hasSuffix("Model") && !a.hasSuffix("LMHeadModel")
    }
}

extension JSONValue {
    /// Equal as JSON values (numbers by value: 1 == 1.0).
    func sameValue(_ other: JSONValue) -> Bool {
        if let a = doubleValue, let b = other.doubleValue { return a == b }
        return self == other
    }
}

/// Heads per layer after a config's `pruned_heads` ({"layer": [head indices]}), as
/// transformers 4.x applied them (GPT-2, BERT).
func prunedHeadCounts(_ c: ConfigReader, layers L: Int, heads NH: Int) throws -> [Int] {
    var counts = [Int](repeating: NH, count: L)
    guard let pruned = c["pruned_heads"]?.objectValue else { return counts }
    for (key, value) in pruned {
        guard let layer = Int(key), layer >= 0, layer < L, let heads = value.arrayValue?.compactMap(\.intValue),
              Set(heads).count == heads.count, heads.allSatisfy({ $0 >= 0 && $0 < NH }), heads.count < NH
        else { throw TransformerError.invalidConfig("pruned_heads entry \"\(key)\" is not a layer with a list of distinct heads, keeping at least one") }
        counts[layer] = NH - heads.count
    }
    return counts
}
