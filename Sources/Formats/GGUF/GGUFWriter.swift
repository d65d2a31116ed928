// GGUF: writing (version 3, layout in GGUFReader.swift).
//
// As gguf-py's GGUFWriter does: `general.architecture` first, then the other keys in graph
// order; tensor infos in graph order with offsets the padded running total; the data section
// aligned, every tensor padded to the alignment (the last one too). Tensors stream one at a
// time into an AtomicFile. A graph with Hugging Face names (LLaMA, GPT-2) is renamed to
// llama.cpp's names first (GGUFNaming.toGGUF).

import CkptCore
import OrderedCollections

extension GGUF {
    static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    static func append(string s: String, to out: inout [UInt8]) {
        append(UInt64(s.utf8.count), to: &out)
        out.append(contentsOf: s.utf8)
    }

    static func append(value v: GGUFValue, to out: inout [UInt8]) {
        switch v {
        case .u8(let x): append(x, to: &out)
        case .i8(let x): append(x, to: &out)
        case .u16(let x): append(x, to: &out)
        case .i16(let x): append(x, to: &out)
        case .u32(let x): append(x, to: &out)
        case .i32(let x): append(x, to: &out)
        case .u64(let x): append(x, to: &out)
        case .i64(let x): append(x, to: &out)
        case .f32(let x): append(x.bitPattern, to: &out)
        case .f64(let x): append(x.bitPattern, to: &out)
        case .bool(let b): append(UInt8(b ? 1 : 0), to: &out)
        case .string(let s): append(string: s, to: &out)
        case .array(let t, let elements):
            append(t.rawValue, to: &out)
            append(UInt64(elements.count), to: &out)
            for e in elements { append(value: e, to: &out) }
        }
    }

    /// The header (through the padding before the data section) for these tensors and
    /// key/values, and the alignment it uses.
    static func headerBytes(_ tensors: [Tensor], kvs: OrderedDictionary<String, GGUFValue>) throws(GGUFError) -> [UInt8] {
        var alignment = defaultAlignment
        if let a = kvs[alignmentKey] {
            guard case .u32(let v) = a, v > 0, v & (v - 1) == 0 else { throw .invalidAlignment("must be a u32 power of two") }
            alignment = Int(v)
        }
        var out = magic
        append(UInt32(3), to: &out)
        append(UInt64(tensors.count), to: &out)
        append(UInt64(kvs.count), to: &out)
        for (k, v) in kvs {
            if case .array(let t, let e) = v, t == .array, e.contains(where: { if case .array = $0 { return false } else { return true } }) {
                throw .invalidMetadata(key: k, reason: "nested array holds a non-array")
            }
            append(string: k, to: &out)
            append(v.type.rawValue, to: &out)
            append(value: v, to: &out)
        }
        var offset = 0
        for t in tensors {
            guard let id = idByDType[t.dtype] else {
                throw .cannotWrite(tensor: t.name, reason: "dtype \(t.dtype) cannot be stored in GGUF (use .ckz, or a GGUF type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k..q6_k)")
            }
            guard t.shape.count <= maxDims else { throw .cannotWrite(tensor: t.name, reason: "\(t.shape.count) dimensions; GGUF allows \(maxDims)") }
            append(string: t.name, to: &out)
            let dims = ggufDims(rowMajorShape: t.shape)
            append(UInt32(dims.count), to: &out)
            for d in dims { append(UInt64(d), to: &out) }
            append(id, to: &out)
            append(UInt64(offset), to: &out)
            offset += (t.byteCount + alignment - 1) / alignment * alignment
        }
        out.append(contentsOf: repeatElement(0, count: (alignment - out.count % alignment) % alignment))
        return out
    }

    /// The key/values a graph is written with: its metadata (typed as recorded), with
    /// `general.architecture` first.
    static func keyValues(of graph: WeightGraph) throws(GGUFError) -> OrderedDictionary<String, GGUFValue> {
        var kvs = try GGUFMetadata.values(of: graph)
        let arch = kvs.removeValue(forKey: "general.architecture") ?? .string(graph.config?.modelType ?? "unknown")
        kvs.updateValue(arch, forKey: "general.architecture", insertingAt: 0)
        // general.file_type describes the tensors: recomputed when they no longer match it
        // (a Q8_0 file dequantized to f32 is not "mostly Q8_0" any more).
        if let recorded = kvs[fileTypeKey], let main = mainType(of: graph) {
            let current = recorded.intValue.flatMap { fileTypeMainType[UInt32(clamping: $0)] }
            // A quantized mix (Q4_K_M with Q6_K and fallback types) keeps the preset's value.
            let stillQuantized = main.isQuantized && current?.isQuantized == true
            if current != main, !stillQuantized, let ft = fileTypeByMainType[main] { kvs[fileTypeKey] = .u32(ft) }
        }
        return kvs
    }

    static let fileTypeKey = "general.file_type"

    /// llama.cpp's `llama_ftype` (llama.h) -> the type that holds most of the weights
    /// (the "mostly" types and the k-quant mixes S/M/L all name their main type).
    static let fileTypeMainType: [UInt32: DType] = [
        0: .f32, 1: .f16, 2: .q4_0, 3: .q4_1, 7: .q8_0, 8: .q5_0, 9: .q5_1, 10: .q2_k, 21: .q2_k,
        11: .q3_k, 12: .q3_k, 13: .q3_k, 14: .q4_k, 15: .q4_k, 16: .q5_k, 17: .q5_k, 18: .q6_k, 32: .bf16,
    ]
    /// The plain file type of each main type (as Quantization.llamaFileType names schemes).
    static let fileTypeByMainType: [DType: UInt32] = [
        .f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q8_0: 7, .q5_0: 8, .q5_1: 9, .q2_k: 10, .q3_k: 11,
        .q4_k: 14, .q5_k: 16, .q6_k: 18, .bf16: 32,
    ]

    /// The dtype holding the most elements among the weights (tensors of two or more
    /// dimensions; norms and biases stay f32 in every llama.cpp file type).
    static func mainType(of graph: WeightGraph) -> DType? {
        var elements: [DType: Int] = [:]
        for t in graph.tensors.values where t.shape.count >= 2 { elements[t.dtype, default: 0] += t.elementCount }
        return elements.max { ($0.value, $0.key.rawValue) < ($1.value, $1.key.rawValue) }?.key
    }

    /// Writes a graph as one GGUF file. Hugging Face LLaMA/GPT-2 graphs are renamed (and
    /// their tensors rearranged) as llama.cpp's converter does; other graphs keep their names.
    public static func write(_ graph: WeightGraph, to path: String, progress: (any ProgressSink)? = nil) throws {
        let g = try GGUFNaming.toGGUF(graph)
        let tensors = Array(g.tensors.values)
        let kvs = try keyValues(of: g)
        let header = try headerBytes(tensors, kvs: kvs)
        let alignment = kvs[alignmentKey]?.intValue ?? defaultAlignment
        var file = try AtomicFile(target: path)
        try file.write(header)
        for t in tensors {
            try t.data.withBytes { (b) throws in try file.write(b) }
            try file.writeZeros((alignment - t.byteCount % alignment) % alignment)
            t.data.releaseResidentPages()
            progress?.advance(bytes: t.byteCount)
        }
        try file.commit()
    }
}
