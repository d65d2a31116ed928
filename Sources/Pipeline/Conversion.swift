// Conversion as a library call: what `ckpt convert` and the `convert` pipeline step do.

import CkptCore
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

public enum Conversion {
    /// Reads `input`, applies the options, writes `output` (atomically).
    public static func convert(_ input: String, to output: String, options: ConvertOptions) throws {
        let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: options.to, maxShardSize: options.maxShardSize)
        var (graph, _) = try Checkpoint.open(input, configPath: options.config, jobs: options.jobs)
        if let target = options.dtype { try cast(&graph, to: target) }
        // Quantized tensors stay quantized where the output can hold them (.gguf, .ckz, .h5);
        // otherwise they become f32, with a notice unless --dequantize asked for it.
        if options.dequantize {
            for t in graph.tensors.values where t.dtype.isQuantized { try graph.replace(t.dequantizedLazily()) }
        }
        let lost = Checkpoint.tensorsNeedingDequantization(graph, for: format)
        if !lost.isEmpty {
            options.notice?("\(format) cannot hold block-quantized tensors; \(lost.count) tensor(s) (\(lost.prefix(3).joined(separator: ", "))\(lost.count > 3 ? ", ..." : "")) written as f32 — write .gguf or .ckz to keep them quantized")
        }
        options.progress?.start(total: graph.byteCount)
        try Checkpoint.write(graph, to: output, format: format, directory: directory,
                             options: .init(maxShardSize: options.maxShardSize, progress: options.progress, hdf5: options.hdf5,
                                           ckz: options.ckz, dequantize: true, deflate: options.deflate))
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
