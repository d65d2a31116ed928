// Quantizer: the entry points for every block type, run in parallel over coarse slices.
//
// Rows are whole blocks (DType.byteCount(shape:) checks it), so a tensor is a plain run of
// blocks and a slice of blocks maps to a slice of the output at a fixed offset. Each worker
// writes only its own slices of a preallocated buffer, so the bytes are the same for any
// number of workers (tests check 1 vs many). Slices hold at least 64 KiB of f32 input so the
// scheduling cost stays negligible.

import CkptCore
import Dispatch
import Foundation

public enum QuantizeError: Error, Equatable, Sendable, CustomStringConvertible {
    case notABlockType(DType)
    case rowNotWholeBlocks(tensor: String, rowLength: Int, dtype: DType, blockValues: Int)
    case notFloat(tensor: String, dtype: DType)
    case unknownScheme(String)
    case invalidGroupSize(Int)
    case invalidPattern(String)

    public var description: String {
        switch self {
        case .notABlockType(let d): return "\(d) is not a block-quantized type"
        case .rowNotWholeBlocks(let t, let n, let d, let v):
            return "tensor `\(t)`: rows of \(n) values are not a whole number of \(d) blocks of \(v)"
        case .notFloat(let t, let d): return "tensor `\(t)`: \(d) is not a floating-point type and cannot be quantized"
        case .unknownScheme(let s):
            return "unknown scheme \"\(s)\" (f16, bf16, int8, int4, int4-asym, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, or a type such as i4_g64)"
        case .invalidGroupSize(let g): return "group size \(g) is not one of 32, 64, 128, 256"
        case .invalidPattern(let p): return "invalid regular expression \"\(p)\""
        }
    }
}

/// Quantization numerics: float rows to block types (ggml's Q8_0, Q4_0, k-quants, ckpt's int8/int4
/// groups) and back, byte-exact with ggml's reference. No file I/O: ``lazyQuantize(_:to:jobs:report:)``
/// gives a tensor that quantizes when written, and a `QuantizeRecipe` decides each tensor's type.
public enum Quantizer {
    /// Block types ckpt can quantize to (every block type in DType).
    public static let quantizable: [DType] = DType.allCases.filter(\.isQuantized)

    typealias Encode = (UnsafePointer<Float>, UnsafeMutableRawPointer, Int) -> Void
    typealias Decode = (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void

    static func codec(_ dtype: DType) -> (encode: Encode, decode: Decode)? {
        if let t = GGML.blockType(dtype) { return (t.encode, t.decode) }
        switch dtype {
        case .q2_k: return (KQuants.quantizeQ2K, KQuants.dequantizeQ2K)
        case .q3_k: return (KQuants.quantizeQ3K, KQuants.dequantizeQ3K)
        case .q4_k: return ({ KQuants.quantizeQ45K(bits: 4, $0, $1, blocks: $2) }, { KQuants.dequantizeQ45K(bits: 4, $0, $1, blocks: $2) })
        case .q5_k: return ({ KQuants.quantizeQ45K(bits: 5, $0, $1, blocks: $2) }, { KQuants.dequantizeQ45K(bits: 5, $0, $1, blocks: $2) })
        case .q6_k: return (KQuants.quantizeQ6K, KQuants.dequantizeQ6K)
        default:
            guard let g = dtype.groupSize else { return nil }
            switch dtype.rawValue.prefix(2) {
            case "i8": return ({ IntegerSchemes.quantizeI8(group: g, $0, $1, blocks: $2) }, { IntegerSchemes.dequantizeI8(group: g, $0, $1, blocks: $2) })
            case "i4": return ({ IntegerSchemes.quantizeI4(group: g, $0, $1, blocks: $2) }, { IntegerSchemes.dequantizeI4(group: g, $0, $1, blocks: $2) })
            default: return ({ IntegerSchemes.quantizeU4(group: g, $0, $1, blocks: $2) }, { IntegerSchemes.dequantizeU4(group: g, $0, $1, blocks: $2) })
            }
        }
    }

    /// Default number of workers: the cores this process may use.
    public static var defaultJobs: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Runs `body(firstBlock, blockCount)` over `blocks` blocks in slices of at least
    /// `minValues` values, on `jobs` workers. Slice w, w+jobs, w+2·jobs, ... go to worker w.
    static func forEachSlice(blocks: Int, valuesPerBlock: Int, jobs: Int, _ body: (Int, Int) -> Void) {
        let minValues = 16_384  // 64 KiB of f32
        let perSlice = max(1, minValues / valuesPerBlock)
        let slices = (blocks + perSlice - 1) / perSlice
        let workers = max(1, min(jobs, slices))
        if workers == 1 {
            for s in 0..<slices { body(s * perSlice, min(perSlice, blocks - s * perSlice)) }
            return
        }
        // SAFETY: `body` writes only the slice it is given (callers guarantee disjointness).
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var s = w
            while s < slices {
                body(s * perSlice, min(perSlice, blocks - s * perSlice))
                s += workers
            }
        }
    }

    /// Quantizes `values` (rows of `rowLength`, C order) to the block type `dtype`.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, rowLength: Int, to dtype: DType,
                                name: String = "", jobs: Int = defaultJobs) throws(QuantizeError) -> [UInt8] {
        guard case .block(let per, let bytes) = dtype.layout, let (encode, _) = codec(dtype) else { throw .notABlockType(dtype) }
        guard rowLength > 0, rowLength % per == 0, values.count % rowLength == 0 else {
            throw .rowNotWholeBlocks(tensor: name, rowLength: rowLength, dtype: dtype, blockValues: per)
        }
        let blocks = values.count / per
        var out = [UInt8](repeating: 0, count: blocks * bytes)
        guard blocks > 0 else { return out }
        out.withUnsafeMutableBytes { dst in
            // SAFETY: slices are disjoint block ranges; each worker reads values
            // [first·per, (first+n)·per) and writes bytes [first·bytes, (first+n)·bytes), both
            // inside the buffers, which outlive concurrentPerform.
            let src = values.baseAddress!, out = dst.baseAddress!
            forEachSlice(blocks: blocks, valuesPerBlock: per, jobs: jobs) { first, n in
                encode(src + first * per, out + first * bytes, n)
            }
        }
        return out
    }

    /// Quantizes the raw little-endian f32, f16 or bf16 values in `src` (rows of `rowLength`)
    /// without a whole-tensor f32 copy: f32 input 4-byte aligned is read in place; otherwise
    /// each worker widens (or copies) one slice at a time into its own buffer, and encodes it.
    /// The same bytes as quantizing `Cast.floats` of the tensor.
    public static func quantize(bytes src: UnsafeRawBufferPointer, dtype source: DType, rowLength: Int, to dtype: DType,
                                name: String = "", jobs: Int = defaultJobs) throws(QuantizeError) -> [UInt8] {
        guard case .block(let per, let bytes) = dtype.layout, let (encode, _) = codec(dtype) else { throw .notABlockType(dtype) }
        guard let inSize = source.elementSize, [DType.f32, .f16, .bf16].contains(source) else { throw .notFloat(tensor: name, dtype: source) }
        let count = src.count / inSize
        guard rowLength > 0, rowLength % per == 0, count % rowLength == 0 else {
            throw .rowNotWholeBlocks(tensor: name, rowLength: rowLength, dtype: dtype, blockValues: per)
        }
        let blocks = count / per
        var out = [UInt8](repeating: 0, count: blocks * bytes)
        guard blocks > 0, let base = src.baseAddress else { return out }
        let inPlace = source == .f32 && Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0
        out.withUnsafeMutableBytes { dst in
            let o = dst.baseAddress!
            // SAFETY: slices are disjoint block ranges of src and dst (see the other quantize);
            // a widened slice lives in a buffer local to its call.
            forEachSlice(blocks: blocks, valuesPerBlock: per, jobs: jobs) { first, n in
                let values = n * per
                let from = UnsafeRawBufferPointer(start: base + first * per * inSize, count: values * inSize)
                if inPlace {
                    encode(from.baseAddress!.assumingMemoryBound(to: Float.self), o + first * bytes, n)
                    return
                }
                withUnsafeTemporaryAllocation(of: Float.self, capacity: values) { buffer in
                    Cast.decode(from, source, into: UnsafeMutableRawBufferPointer(buffer), count: values)
                    encode(UnsafePointer(buffer.baseAddress!), o + first * bytes, n)
                }
            }
        }
        return out
    }

    /// Quantizes `values` (rows of `rowLength`, C order) to the block type `dtype`; `rowLength` must
    /// be a whole number of its blocks. Throws ``QuantizeError`` otherwise.
    public static func quantize(_ values: [Float], rowLength: Int, to dtype: DType, name: String = "",
                                jobs: Int = defaultJobs) throws(QuantizeError) -> [UInt8] {
        try values.withUnsafeBufferPointer { (v) throws(QuantizeError) in try quantize(v, rowLength: rowLength, to: dtype, name: name, jobs: jobs) }
    }

    /// Decodes `count` values of block type `dtype` from `bytes` (which must hold exactly
    /// count/values blocks). Exact to ggml's and gguf-py's dequantizers.
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, dtype: DType, count: Int,
                                  jobs: Int = defaultJobs) throws(QuantizeError) -> [Float] {
        guard case .block(let per, let size) = dtype.layout, let (_, decode) = codec(dtype) else { throw .notABlockType(dtype) }
        precondition(count % per == 0 && bytes.count == count / per * size, "caller checks the byte count (Tensor does)")
        let blocks = count / per
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if blocks > 0 {
                // SAFETY: as in quantize: disjoint block ranges of buffers that outlive the call.
                let dst = buffer.baseAddress!
                let src = bytes.baseAddress!
                forEachSlice(blocks: blocks, valuesPerBlock: per, jobs: jobs) { first, n in
                    decode(src + first * size, dst + first * per, n)
                }
            }
            initialized = count
        }
    }

    /// The tensor's values as f32, whatever its float or block type; nil for integer types.
    public static func floats(_ tensor: Tensor) throws -> [Float]? { try Cast.floats(tensor) }

    /// A float tensor quantized to `dtype` (blocks along the innermost dimension).
    public static func quantize(_ tensor: Tensor, to dtype: DType, jobs: Int = defaultJobs) throws -> (tensor: Tensor, original: [Float]) {
        guard let values = try Cast.floats(tensor) else { throw QuantizeError.notFloat(tensor: tensor.name, dtype: tensor.dtype) }
        let rowLength = tensor.shape.last ?? 1
        let bytes = try quantize(values, rowLength: rowLength, to: dtype, name: tensor.name, jobs: jobs)
        return (try Tensor(name: tensor.name, dtype: dtype, shape: tensor.shape, data: .owned(bytes)), values)
    }
}

/// Error of a quantized tensor against its original values.
public struct QuantizationError: Sendable, Equatable {
    public var rmse: Double
    public var maxAbs: Double
    /// Signal-to-quantization-noise ratio, 10·log10(Σx² / Σ(x−x̂)²); +inf when exact.
    public var sqnrDB: Double
    /// RMSE divided by the RMS of the original (the usual "relative RMSE" of quantization reports).
    public var relativeRMSE: Double

    public static func measure(original: [Float], reconstructed: [Float]) -> QuantizationError {
        precondition(original.count == reconstructed.count)
        var se = 0.0, ss = 0.0, maxAbs = 0.0
        for i in original.indices {
            let x = Double(original[i]), e = Double(reconstructed[i]) - x
            se += e * e
            ss += x * x
            maxAbs = max(maxAbs, abs(e))
        }
        let n = Double(max(1, original.count))
        let rmse = (se / n).squareRoot()
        let rms = (ss / n).squareRoot()
        let sqnr = se == 0 ? Double.infinity : 10 * log10(ss / se)
        return QuantizationError(rmse: rmse, maxAbs: maxAbs, sqnrDB: sqnr, relativeRMSE: rms > 0 ? rmse / rms : 0)
    }
}
