// sentence-transformers checkpoints: a directory whose modules.json chains the Transformer
// with a Pooling module (1_Pooling/config.json: cls, mean, max, mean-sqrt-len or last-token
// pooling over the last hidden state) and optionally Normalize (L2). ckpt's forward pass gives
// the last hidden state; this turns it into the sentence embedding those checkpoints promise.

import CkptCore
import Foundation

public struct SentencePooling: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        case cls, mean, max, meanSqrtLen = "mean_sqrt_len", lastToken = "last_token"
    }
    public var modes: [Mode]
    public var normalize: Bool

    public init(modes: [Mode], normalize: Bool) {
        self.modes = modes
        self.normalize = normalize
    }

    /// The pooling a sentence-transformers directory declares, nil when `directory` has no
    /// modules.json with a Pooling module. Refuses (one line naming the file) pooling modes
    /// not implemented and modules after the Transformer that change the embedding other than
    /// Pooling and Normalize (Dense layers). `file(path)`: that file's bytes, nil when it does
    /// not exist (Formats' `read(directory:)` passes a reader that refuses FIFOs, devices and
    /// oversized files, so a hostile directory cannot block or exhaust the caller).
    public static func read(directory: String, file: (String) throws -> [UInt8]?) throws -> SentencePooling? {
        let modulesPath = directory + "/modules.json"
        guard let data = try file(modulesPath) else { return nil }
        guard let modules = (try? JSONValue.parse(data))?.arrayValue else {
            throw TransformerError.badInput("\(modulesPath): not a list of modules")
        }
        var pooling: SentencePooling?
        var normalize = false
        for m in modules {
            let type = m["type"]?.stringValue ?? ""
            let path = m["path"]?.stringValue ?? ""
            if type.hasSuffix(".Transformer") { continue }
            if type.hasSuffix(".Normalize") { normalize = true; continue }
            guard type.hasSuffix(".Pooling") else {
                throw TransformerError.badInput("\(modulesPath): module \(type) is not supported (only Transformer, Pooling, Normalize)")
            }
            let configPath = directory + "/" + path + "/config.json"
            guard let c = try file(configPath), let config = (try? JSONValue.parse(c))?.objectValue else {
                throw TransformerError.badInput("\(configPath): missing or not a JSON object")
            }
            func on(_ key: String) -> Bool { config[key]?.boolValue == true }
            guard !on("pooling_mode_weightedmean_tokens") else {
                throw TransformerError.badInput("\(configPath): pooling_mode_weightedmean_tokens is not supported")
            }
            if config["include_prompt"]?.boolValue == false {
                throw TransformerError.badInput("\(configPath): include_prompt false is not supported")
            }
            // In the order sentence-transformers concatenates them.
            let modes: [(String, Mode)] = [("pooling_mode_cls_token", .cls), ("pooling_mode_max_tokens", .max),
                                           ("pooling_mode_mean_tokens", .mean), ("pooling_mode_mean_sqrt_len_tokens", .meanSqrtLen),
                                           ("pooling_mode_lasttoken", .lastToken)]
            let chosen = modes.filter { on($0.0) }.map(\.1)
            guard !chosen.isEmpty else { throw TransformerError.badInput("\(configPath): no pooling mode is set") }
            pooling = SentencePooling(modes: chosen, normalize: false)
        }
        pooling?.normalize = normalize
        return pooling
    }

    /// The sentence embedding of a last hidden state [T, C] (every token counts: no padding):
    /// the chosen poolings concatenated in sentence-transformers' order, then L2-normalised.
    public func embed(_ hidden: [Float], rows T: Int, cols C: Int) -> [Float] {
        var out: [Float] = []
        for mode in modes {
            var v = [Float](repeating: 0, count: C)
            switch mode {
            case .cls: v = Array(hidden[0..<C])
            case .lastToken: v = Array(hidden[(T - 1) * C..<T * C])
            case .max:
                v = Array(hidden[0..<C])
                for t in 1..<max(T, 1) { for j in 0..<C { v[j] = Swift.max(v[j], hidden[t * C + j]) } }
            case .mean, .meanSqrtLen:
                for t in 0..<T { for j in 0..<C { v[j] += hidden[t * C + j] } }
                let d = mode == .mean ? Float(T) : Float(T).squareRoot()
                for j in 0..<C { v[j] /= d }
            }
            out += v
        }
        if normalize {  // x / max(‖x‖, 1e-12), as torch's F.normalize
            let n = Swift.max(out.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            out = out.map { $0 / n }
        }
        return out
    }
}
