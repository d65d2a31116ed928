// The one registry of architectures, keyed by the config's `model_type`.
//
// Adding a family: write Families/<Name>.swift with a type conforming to `Architecture` whose
// `describe` turns the config into a `ModelDescription` (see Families/Llama.swift for a decoder,
// Families/Bert.swift for an encoder), and add it to `families` below. Nothing else in the
// code base names families: the forward pass, pruning, GGUF naming and training read the
// description.

import CkptCore

/// One architecture family: the model types it answers to and how it reads their config.
public protocol Architecture: Sendable {
    /// `model_type` values this family describes (e.g. ["llama", "mistral", "qwen2"]).
    static var modelTypes: [String] { get }
    /// The validated description of a checkpoint of this family. Reads no weights; may look
    /// up which tensors exist (name prefix, optional biases, untied head).
    static func describe(_ config: ConfigReader) throws -> ModelDescription
}

public enum Architectures {
    /// Every family, one line each.
    public static let families: [any Architecture.Type] = [
        GPT2Family.self,
        BertFamily.self,
        LlamaFamily.self,
        GemmaFamily.self,
        Phi3Family.self,
        GPTNeoXFamily.self,
        OPTFamily.self,
        DistilBertFamily.self,
        ModernBertFamily.self,
        Starcoder2Family.self,
        Olmo2Family.self,
        GraniteFamily.self,
        MixtralFamily.self,
        StableLMFamily.self,
        FalconFamily.self,
        SeedEncoderFamily.self,
    ]

    static let byModelType: [String: any Architecture.Type] = {
        var table: [String: any Architecture.Type] = [:]
        for f in families { for t in f.modelTypes { precondition(table[t] == nil, "model_type \(t) registered twice"); table[t] = f } }
        return table
    }()

    /// Every supported `model_type`, sorted.
    public static var modelTypes: [String] { byModelType.keys.sorted() }

    public static func family(for modelType: String?) -> (any Architecture.Type)? {
        modelType.flatMap { byModelType[$0] }
    }
}
