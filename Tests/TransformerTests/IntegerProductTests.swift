// Integer products of the GGUF block types but Q2_K (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q3_K…Q6_K) (PackedLinear.swift, CKernels/dot.c):
// every kernel path gives the same bits as a plain Swift reference of the order ckdot.h
// defines, the result is the f32 product up to the rounding of the activations to 8 bits
// (within a bound computed per output from that rounding), and a weight whose bytes can no
// longer be read ends in an error, not a trap.

import CkptCore
import Formats
import Foundation
import Quantize
import Testing
import TestSupport
@testable import Transformer

@Suite(.serialized) struct IntegerProductTests {
    static let types: [DType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q3_k, .q4_k, .q5_k, .q6_k]

    /// A weight [OC, C] of `dtype` and its widened values.
    func weights(_ dtype: DType, _ OC: Int, _ C: Int, seed: UInt64) throws -> (PackedWeights, Tensor, [Float]) {
        var w = randomFloats(OC * C, seed: seed)
        for i in stride(from: 0, to: w.count, by: 97) { w[i] *= 8 }  // a few larger weights per row
        let src = try Tensor(name: "w", dtype: .f32, shape: [OC, C], data: .owned(w.withUnsafeBytes { Array($0) }))
        let t = try Quantizer.quantize(src, to: dtype).tensor
        return (try #require(try PackedWeights(t)), t, try #require(try Cast.floats(t)))
    }

    /// Block b of a stored row as (integers, scale, offset), written from ggml's block layouts
    /// (ggml-common.h) independently of dot.c.
    static func block(_ dtype: DType, _ row: [UInt8], _ b: Int) -> ([Int32], Float, Float) {
        func half(_ i: Int) -> Float { Float(Float16(bitPattern: UInt16(row[i]) | UInt16(row[i + 1]) << 8)) }
        switch dtype {
        case .q8_0:
            return ((0..<32).map { Int32(Int8(bitPattern: row[34 * b + 2 + $0])) }, half(34 * b), 0)
        case .q4_0:
            let q = (0..<32).map { i -> Int32 in
                let byte = row[18 * b + 2 + i % 16]
                return Int32(i < 16 ? byte & 15 : byte >> 4) - 8
            }
            return (q, half(18 * b), 0)
        case .q4_1, .q5_0, .q5_1:  // {d, [m], [qh: UInt32 LE], qs[16]}: nibble i % 16, bit i of qh on top
            let bs = dtype == .q4_1 ? 20 : dtype == .q5_0 ? 22 : 24, at = bs * b
            let qsAt = at + (dtype == .q5_1 ? 8 : dtype == .q5_0 ? 6 : 4)
            let qh: UInt32 = dtype == .q4_1 ? 0 : (0..<4).reduce(0) { $0 | UInt32(row[qsAt - 4 + $1]) << (8 * $1) }
            let q = (0..<32).map { i -> Int32 in
                let byte = row[qsAt + i % 16]
                let v = Int32(i < 16 ? byte & 15 : byte >> 4) | Int32((qh >> i) & 1) << 4
                return dtype == .q5_0 ? v - 16 : v
            }
            return (q, half(at), dtype == .q5_0 ? 0 : half(at + 2))
        case .q6_k:  // {ql[128], qh[64], int8 scales[16], d}; block b % 8 of super-block b / 8:
            // half n = (b % 8) / 4 of 128 values, quarter g = b % 4 of it (ggml's dequantize_row_q6_K).
            // Each value times its 16-value scale: Σ s·w·a = s·Σ w·a, the same integer.
            let s = 210 * (b / 8), n = b % 8 / 4, g = b % 4
            let q = (0..<32).map { l -> Int32 in
                let low = row[s + 64 * n + 32 * (g % 2) + l], high = row[s + 128 + 32 * n + l]
                let v = Int32(g < 2 ? low & 15 : low >> 4) | Int32((high >> (2 * g)) & 3) << 4
                return Int32(Int8(bitPattern: row[s + 192 + 8 * n + 2 * g + l / 16])) * (v - 32)
            }
            return (q, half(s + 208), 0)
        case .q3_k:  // {hmask[32], qs[64], scales[12], d}; block b % 8 of super-block b / 8:
            // half n = (b % 8) / 4, j = b % 4: bits 2j of qs[32n + l], −4 unless bit 4n + j of
            // hmask[l]; 6-bit scales 8n + 2j + l / 16 minus 32 (ggml's dequantize_row_q3_K).
            let s = 110 * (b / 8), n = b % 8 / 4, j = b % 4
            func scale(_ k: Int) -> Int32 {
                let low = Int32(row[s + 96 + k % 8] >> (4 * (k / 8))) & 15, high = Int32(row[s + 104 + k % 4] >> (2 * (k / 4))) & 3
                return (low | high << 4) - 32
            }
            let q = (0..<32).map { l -> Int32 in
                let v = Int32((row[s + 32 + 32 * n + l] >> (2 * j)) & 3) - ((row[s + l] >> (4 * n + j)) & 1 == 1 ? 0 : 4)
                return scale(8 * n + 2 * j + l / 16) * v
            }
            return (q, half(s + 108), 0)
        default:  // q4_k: {d, dmin, scales[12], qs[128]}; q5_k: {d, dmin, scales[12], qh[32], qs[128]}
            // with bit j of qh[i] on top; sub-block j of super-block b / 8
            let five = dtype == .q5_k
            let s = (five ? 176 : 144) * (b / 8), j = b % 8, sc = s + 4, qs = s + (five ? 48 : 16)
            let (scale, m): (Int, Int) = j < 4
                ? (Int(row[sc + j] & 63), Int(row[sc + j + 4] & 63))
                : (Int(row[sc + j + 4] & 15) | Int(row[sc + j - 4] >> 6) << 4, Int(row[sc + j + 4] >> 4) | Int(row[sc + j] >> 6) << 4)
            let q = (0..<32).map { i -> Int32 in
                let low = Int32(j % 2 == 0 ? row[qs + 32 * (j / 2) + i] & 15 : row[qs + 32 * (j / 2) + i] >> 4)
                return five ? low | Int32((row[s + 16 + i] >> j) & 1) << 4 : low
            }
            return (q, half(s) * Float(scale), -(half(s + 2) * Float(m)))
        }
    }

    /// The order of ckdot.h in Swift: acc = fma(Σ w·a, dw·da, acc) (+ fma(mw, sa, acc)) per block.
    static func reference(_ t: Tensor, _ a: IntegerProducts.Activations) throws -> [Float] {
        let OC = t.shape[0], C = t.shape[1], nb = C / 32
        let bytes = try t.data.load(), rowBytes = bytes.count / OC
        var out = [Float](repeating: 0, count: a.T * OC)
        for r in 0..<OC {
            let row = Array(bytes[r * rowBytes..<(r + 1) * rowBytes])
            let blocks = (0..<nb).map { block(t.dtype, row, $0) }
            for tok in 0..<a.T {
                var acc: Float = 0
                for (b, (q, dw, mw)) in blocks.enumerated() {
                    var sum: Int32 = 0
                    for i in 0..<32 { sum += q[i] * (Int32(a.q[tok * C + 32 * b + i]) - 128) }
                    acc = acc.addingProduct(Float(sum), dw * a.d[tok * nb + b])
                    if [.q4_1, .q5_1, .q4_k, .q5_k].contains(t.dtype) { acc = acc.addingProduct(mw, a.sums[tok * nb + b]) }
                }
                out[tok * OC + r] = acc
            }
        }
        return out
    }

    /// Every path of the kernel (AVX-512 VNNI, AVX2, scalar; those this CPU has) gives the
    /// bits of the Swift reference, on shapes with partial tiles: 37 rows (not a multiple of
    /// 16 or 8), 11 tokens (not a multiple of 8 or 4), an odd number of blocks.
    @Test(arguments: types)
    func everyPathEqualsTheReference(_ dtype: DType) throws {
        let OC = 37, C = [.q3_k, .q4_k, .q5_k, .q6_k].contains(dtype) ? 768 : 96, T = 11
        let (packed, t, _) = try weights(dtype, OC, C, seed: 11)
        let x = randomFloats(T * C, seed: 12)
        let want = try Self.reference(t, IntegerProducts.Activations(x, T: T, C: C))
        defer { unsetenv("CKPT_Q8_PATH") }
        for path in ["", "avx2", "scalar"] {
            if path.isEmpty { unsetenv("CKPT_Q8_PATH") } else { setenv("CKPT_Q8_PATH", path, 1) }
            let got = try packed.multiply(x, T: T, bias: nil, integer: true)
            #expect(got == want, "\(dtype), path \(path.isEmpty ? "best" : path): differs from the reference")
        }
        // The threads split the rows differently; each output is computed the same way.
        unsetenv("CKPT_Q8_PATH")
        let threads = Transformers.threads
        defer { Transformers.threads = threads }
        for n in [1, 3] {
            Transformers.threads = n
            #expect(try packed.multiply(x, T: T, bias: nil, integer: true) == want, "\(dtype), \(n) threads")
        }
    }

    /// A bias is added after the product.
    @Test func biasIsAdded() throws {
        let OC = 20, C = 64, T = 3
        let (packed, _, _) = try weights(.q8_0, OC, C, seed: 15)
        let x = randomFloats(T * C, seed: 16), bias = randomFloats(OC, seed: 17)
        let plain = try packed.multiply(x, T: T, bias: nil, integer: true)
        let biased = try packed.multiply(x, T: T, bias: bias, integer: true)
        for t in 0..<T { for r in 0..<OC { #expect(biased[t * OC + r] == plain[t * OC + r] + bias[r]) } }
    }

    /// The product equals Σ_i w_i·x_i up to the activations' rounding: with x quantized per
    /// block of 32 to a step of d = max|x|/127, each x_i moves by at most d/2, so output (t, r)
    /// moves by at most Σ_i |w_ri|·d(t, block of i)/2 (plus f32 summation, 1e-5 of Σ|w·x|).
    /// And, measured: the error is a small fraction of that worst case.
    @Test(arguments: types)
    func equalsTheF32ProductUpToTheActivationsRounding(_ dtype: DType) throws {
        let OC = 64, C = 512, T = 9
        let (packed, _, w) = try weights(dtype, OC, C, seed: 21)
        let x = randomFloats(T * C, seed: 22)
        let got = try packed.multiply(x, T: T, bias: nil, integer: true)
        let exactF32 = try packed.multiply(x, T: T, bias: nil, integer: false)
        var sumSquares = 0.0, sumSquaredErrors = 0.0
        for t in 0..<T {
            for r in 0..<OC {
                var want = 0.0, bound = 0.0, magnitude = 0.0
                for b in 0..<C / 32 {
                    let block = x[t * C + 32 * b..<t * C + 32 * b + 32]
                    let step = Double(block.map { abs($0) }.max()!) / 127
                    for i in 32 * b..<32 * b + 32 {
                        want += Double(w[r * C + i]) * Double(x[t * C + i])
                        bound += abs(Double(w[r * C + i])) * step / 2
                        magnitude += abs(Double(w[r * C + i]) * Double(x[t * C + i]))
                    }
                }
                let err = abs(Double(got[t * OC + r]) - want)
                #expect(err <= bound + 1e-5 * magnitude, "\(dtype) output (\(t), \(r)): error \(err) over the bound \(bound)")
                #expect(abs(Double(exactF32[t * OC + r]) - want) <= 1e-5 * magnitude)
                sumSquares += want * want
                sumSquaredErrors += err * err
            }
        }
        // Rounding errors of independent values mostly cancel: the relative RMS error here
        // is ~0.3 %, far below the worst case; a wrong scale or block would be ~100 %.
        let relRMS = (sumSquaredErrors / sumSquares).squareRoot()
        #expect(relRMS < 0.01, "\(dtype): relative RMS error \(relRMS)")
    }

    /// Non-finite activations give NaN in every output they enter, not a silent zero.
    @Test(arguments: types)
    func nonFiniteInputsGiveNaN(_ dtype: DType) throws {
        let OC = 8, C = 256, T = 2
        let (packed, _, _) = try weights(dtype, OC, C, seed: 31)
        var x = randomFloats(T * C, seed: 32)
        x[C + 40] = .infinity                                     // token 1, second block
        let y = try packed.multiply(x, T: T, bias: nil, integer: true)
        #expect(y[0..<OC].allSatisfy { $0.isFinite })
        #expect(y[OC..<2 * OC].allSatisfy { $0.isNaN })
    }

    /// With integer products off, a quantized layer is the widened f32 product (panels).
    @Test(arguments: types)
    func offMeansTheWidenedProduct(_ dtype: DType) throws {
        let OC = 12, C = 256, T = 3
        let (packed, _, w) = try weights(dtype, OC, C, seed: 41)
        let x = randomFloats(T * C, seed: 42)
        let want = Kernels.linear(x, T: T, Matrix(data: w, inFeatures: C, outFeatures: OC, layout: .outIn), bias: nil)
        #expect(try packed.multiply(x, T: T, bias: nil, integer: false) == want)
        #expect(try packed.multiply(x, T: T, bias: nil, integer: true) != want)
    }

    /// A streamed weight is read from the mapped file for each product. A file truncated after
    /// it was opened ends in an error naming the tensor and the file, not SIGBUS or a trap.
    @Test func truncatedFileIsAnErrorNotATrap() throws {
        let dir = TempDir()
        let path = dir.file("w.gguf")
        let (_, t, _) = try weights(.q8_0, 64, 256, seed: 51)
        var graph = WeightGraph()
        try graph.add(t)
        try GGUF.write(graph, to: path)
        let mapped = try #require(try GGUF.read(path: path).tensor(named: "w"))
        let packed = try #require(try PackedWeights(mapped, mapped: true))
        let x = randomFloats(2 * 256, seed: 52)
        _ = try packed.multiply(x, T: 2, bias: nil, integer: true)      // readable
        #expect(truncate(path, 100) == 0)
        do {
            _ = try packed.multiply(x, T: 2, bias: nil, integer: true)
            Issue.record("a product from a truncated file succeeded")
        } catch let e as TransformerError {
            guard case .unreadableTensor(let name, let why) = e else { throw e }
            #expect(name == "w")
            #expect(why.contains(path) && why.contains("truncated"), "\(why)")
        }
    }
}

/// Whole forward passes of GGUFs with integer products against the same weights widened to
/// f32 (exact products): the difference is the activations' 8-bit rounding only.
@Suite struct IntegerForwardTests {
    /// A LLaMA of 2 layers (hidden 256 so that Q4_K's 256-value rows fit), its block weights
    /// quantized by `scheme` ("q4_0"; "q4_k_m": Q4_K with Q6_K for v and down, as llama.cpp's
    /// Q4_K_M recipe), written to GGUF and read back.
    func model(_ scheme: String, _ dir: TempDir) throws -> WeightGraph {
        let C = 256, I = 512, L = 2, V = 96, kv = 128
        var g = WeightGraph()
        var seed: UInt64 = 100
        func add(_ name: String, _ shape: [Int], one: Bool = false) throws {
            seed += 1
            let n = shape.reduce(1, *)
            let values = one ? [Float](repeating: 1, count: n) : randomFloats(n, seed: seed).map { $0 / Float(shape.last!).squareRoot() * 2 }
            var t = try Tensor(name: name, dtype: .f32, shape: shape, data: .owned(values.withUnsafeBytes { Array($0) }))
            if shape.count == 2, name.contains("layers") {
                let type: DType = scheme == "q4_0" ? .q4_0 : (name.contains("v_proj") || name.contains("down_proj")) ? .q6_k : .q4_k
                t = try Quantizer.quantize(t, to: type).tensor
            }
            try g.add(t)
        }
        for t in llamaTensorShapes(vocab: V, hidden: C, intermediate: I, layers: L, kvWidth: kv) { try add(t.name, t.shape, one: t.norm) }
        g.config = ModelConfig(json: [
            "model_type": .string("llama"), "architectures": .array([.string("LlamaForCausalLM")]), "hidden_size": .int(C),
            "intermediate_size": .int(I), "num_hidden_layers": .int(L), "num_attention_heads": .int(4),
            "num_key_value_heads": .int(2), "vocab_size": .int(V), "max_position_embeddings": .int(64),
            "rms_norm_eps": .number("1e-5"), "hidden_act": .string("silu"), "tie_word_embeddings": .bool(false)])
        let path = dir.file("\(scheme).gguf")
        try GGUF.write(g, to: path)
        return try GGUFNaming.toHF(try Checkpoint.openModel(path))
    }

    /// A checkpoint truncated after the streamed model was opened: the pass ends in an error
    /// naming a tensor of a later block and saying the file was truncated (no SIGBUS, no trap).
    @Test func truncatedCheckpointStopsTheStreamWithAnError() throws {
        let dir = TempDir()
        let graph = try model("q4_0", dir)
        let model = try StreamedModel(graph)
        let path = dir.file("q4_0.gguf")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(truncate(path, off_t(size * 3 / 4)) == 0)
        do {
            _ = try model.forward([.tokens([1, 2, 3])])
            Issue.record("a forward pass over a truncated file succeeded")
        } catch let e as TransformerError {
            guard case .unreadableTensor(let name, let why) = e else { throw e }
            #expect(name.hasPrefix("model.layers.") || name == "lm_head.weight", "\(name)")
            #expect(why.contains("truncated"), "\(why)")
        }
    }

    @Test(arguments: ["q4_0", "q4_k_m"])
    func integerForwardIsTheWidenedOneWithinTolerance(_ scheme: String) throws {
        let dir = TempDir()
        let graph = try model(scheme, dir)
        #expect(graph.tensors.values.contains { $0.dtype == (scheme == "q4_0" ? .q4_0 : .q4_k) })
        var widened = WeightGraph()
        widened.config = graph.config
        for t in graph.tensors.values {
            let values = try #require(try Cast.floats(t))
            try widened.add(try Tensor(name: t.name, dtype: .f32, shape: t.shape, data: .owned(values.withUnsafeBytes { Array($0) })))
        }
        let tokens = (0..<24).map { ($0 * 37 + 5) % 96 }
        let got = try StreamedModel(graph).forward([.tokens(tokens)])[0]
        let inMemory = try Transformers.load(graph).forward(.tokens(tokens), collectHidden: false)
        #expect(got.values == inMemory.values, "\(scheme): streamed and in-memory integer products differ")
        let want = try Transformers.load(widened).forward(.tokens(tokens), collectHidden: false)
        var worstCosine = 1.0, se = 0.0, ss = 0.0
        for t in 0..<got.rows {
            var dot = 0.0, a2 = 0.0, b2 = 0.0
            for v in 0..<got.cols {
                let a = Double(got.values[t * got.cols + v]), b = Double(want.values[t * got.cols + v])
                dot += a * b; a2 += a * a; b2 += b * b; se += (a - b) * (a - b); ss += b * b
            }
            worstCosine = min(worstCosine, dot / (a2 * b2).squareRoot())
        }
        let relRMS = (se / ss).squareRoot()
        print("\(scheme): integer vs widened forward, worst row cosine \(worstCosine), relative RMS \(relRMS)")
        #expect(worstCosine > 0.999 && relRMS < 0.03, "\(scheme): cosine \(worstCosine), relative RMS \(relRMS)")
    }
}
