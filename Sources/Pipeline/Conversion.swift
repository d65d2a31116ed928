// Conversion as a library call: what `ckpt convert` and the `convert` pipeline step do.

import CkptCore
import Foundation
import Formats
import Quantize

public struct ConvertOptions: Sendable {
    /// Output format name (default: from the output's extension).
    public var to: String?
    /// Cast floating-point tensors to this dtype (f32, f16, bf16).
    public var dtype: DType?
    public var maxShardSize: Int?
    public var config: String?
    public var progress: (any ProgressSink)?
    /// HDF5 output: compression.
    public var hdf5: HDF5WriteOptions
    /// .ckz output: level, threads, provenance.
    public var ckz: CKZ.WriteOptions
    /// Threads for decoding a compressed input (nil: all cores).
    public var jobs: Int?
    /// Dequantize every block-quantized tensor to f32 (otherwise only those the output
    /// format cannot hold, with a notice).
    public var dequantize: Bool
    /// .npz output: deflate the members.
    public var deflate: Bool
    /// Receives one-line notices (e.g. tensors dequantized because the format cannot hold them).
    public var notice: (@Sendable (String) -> Void)?
    /// Regular expressions (searched anywhere in the name) of tensors to leave out.
    public var exclude: [String] = []
    /// Single-file output: also write config.json beside it.
    public var configBeside = false
    /// PyTorch input: the dotted key of a wrapped state_dict.
    public var key: String?

    public init(to: String? = nil, dtype: DType? = nil, maxShardSize: Int? = nil, config: String? = nil,
                progress: (any ProgressSink)? = nil, hdf5: HDF5WriteOptions = .init(), ckz: CKZ.WriteOptions = .init(),
                jobs: Int? = nil, dequantize: Bool = false, deflate: Bool = false,
                notice: (@Sendable (String) -> Void)? = nil) {
        self.dequantize = dequantize
        self.deflate = deflate
        self.notice = notice
        self.hdf5 = hdf5
        self.ckz = ckz
        self.jobs = jobs
        self.to = to
        self.dtype = dtype
        self.maxShardSize = maxShardSize
        self.config = config
        self.progress = progress
    }
}

/// What a conversion did besides copying tensors, for the command's summary.
public struct ConversionSummary: Sendable {
    /// Tensors left out by --exclude.
    public var excluded: [String] = []
    /// Non-float tensors cast because the output format cannot hold them.
    public var castForFormat: [String] = []
    /// Files and folders of the input model directory carried into the output directory.
    public var carried: [String] = []

    public init() {}

    /// The summary lines a command prints (none when there is nothing to say).
    public func lines(input: String) -> [String] {
        var out: [String] = []
        func list(_ names: [String]) -> String { names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", ... (\(names.count) in all)" : "") }
        if !excluded.isEmpty { out.append("left out \(excluded.count) tensor(s) matching --exclude: \(list(excluded))") }
        if !castForFormat.isEmpty { out.append("cast \(castForFormat.count) integer/bool tensor(s) the output format cannot hold: \(list(castForFormat))") }
        if !carried.isEmpty { out.append("carried from \(input): \(carried.joined(separator: ", "))") }
        return out
    }
}

public enum Conversion {
    /// Reads `input`, applies the options, writes `output` (atomically).
    @discardableResult
    public static func convert(_ input: String, to output: String, options: ConvertOptions) throws -> ConversionSummary {
        let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: options.to, maxShardSize: options.maxShardSize)
        let patterns = try compile(options.exclude)
        var (graph, _) = try Checkpoint.open(input, configPath: options.config, jobs: options.jobs, key: options.key)
        var summary = ConversionSummary()
        summary.excluded = try exclude(&graph, patterns, path: input)
        if let target = options.dtype {
            try cast(&graph, to: target)
            // Integer and bool tensors the output cannot hold: the target float too.
            for t in graph.tensors.values where !format.canHold(t.dtype) && Cast.integerSources.contains(t.dtype) {
                try graph.replace(Cast.lazyCast(t, to: target, integers: true))
                summary.castForFormat.append(t.name)
            }
        }
        // Quantized tensors stay quantized where the output can hold them (.gguf, .ckz, .h5);
        // otherwise they become f32, with a notice unless --dequantize asked for it.
        if options.dequantize {
            for t in graph.tensors.values where t.dtype.isQuantized { try graph.replace(t.dequantizedLazily()) }
        }
        let lost = Checkpoint.tensorsNeedingDequantization(graph, for: format)
        if !lost.isEmpty {
            options.notice?("\(format) cannot hold block-quantized tensors; \(lost.count) tensor(s) (\(lost.prefix(3).joined(separator: ", "))\(lost.count > 3 ? ", ..." : "")) written as f32 — write .gguf or .ckz to keep them quantized")
        }
        let companions = directory ? companionSource(input) : nil
        summary.carried = companions.map { Companions.list(in: $0).map(\.name) } ?? []
        options.progress?.start(total: graph.byteCount)
        try Checkpoint.write(graph, to: output, format: format, directory: directory,
                             options: .init(maxShardSize: options.maxShardSize, progress: options.progress, hdf5: options.hdf5,
                                           ckz: options.ckz, dequantize: true, deflate: options.deflate,
                                           configBeside: options.configBeside, companionsFrom: companions,
                                           tokenizerFrom: format == .gguf ? GGUFTokenizer.source(for: input) : nil))
        return summary
    }

    /// The model directory whose other files a directory output carries: the input, when
    /// it is a directory.
    public static func companionSource(_ input: String) -> String? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDir), isDir.boolValue else { return nil }
        return input
    }

    /// Compiles `--exclude` patterns (checked before any file is read).
    public static func compile(_ patterns: [String]) throws -> [NSRegularExpression] {
        try patterns.map { p in
            guard let r = try? NSRegularExpression(pattern: p) else { throw ConversionError.invalidPattern(p) }
            return r
        }
    }

    /// Leaves out the tensors whose names match any pattern (and aliases tied to them);
    /// returns their names. Leaving out every tensor is an error.
    public static func exclude(_ graph: inout WeightGraph, _ patterns: [NSRegularExpression], path: String) throws -> [String] {
        guard !patterns.isEmpty else { return [] }
        func matches(_ name: String) -> Bool {
            patterns.contains { $0.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil }
        }
        let names = Array(graph.tensors.keys.filter(matches))
        for n in names { graph.remove(n) }
        for alias in graph.ties.keys where matches(alias) { graph.removeTie(alias) }
        if graph.tensors.isEmpty { throw FileError(path: path, error: ConversionError.excludedEverything) }
        return names
    }

    /// Casts every floating-point tensor lazily (converted as it is written) and records the
    /// new dtype in the config's `torch_dtype`/`dtype`.
    public static func cast(_ graph: inout WeightGraph, to target: DType) throws {
        for t in graph.tensors.values where Cast.applies(to: t, target: target) {
            try graph.replace(Cast.lazyCast(t, to: target))
        }
        if var c = graph.config {
            let name = ["f32": "float32", "f16": "float16", "bf16": "bfloat16"][target.rawValue] ?? target.rawValue
            for key in ["torch_dtype", "dtype"] where c.json[key] != nil { c.json[key] = .string(name) }
            graph.config = c
        }
    }

    /// Parses a `--dtype` value.
    public static func castTarget(_ name: String) -> DType? {
        guard let d = DType(rawValue: name.lowercased()), Cast.supportedTargets.contains(d) else { return nil }
        return d
    }
}

public enum ConversionError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidPattern(String)
    case excludedEverything

    public var description: String {
        switch self {
        case .invalidPattern(let p): return "--exclude: \"\(p)\" is not a valid regular expression"
        case .excludedEverything: return "--exclude leaves no tensor to write"
        }
    }
}
