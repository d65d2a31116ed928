// GPTQ on the k-quant grids (q2_k, q3_k, q4_k, q5_k, q6_k): a super-block's scales and mins
// are chosen first and frozen, then GPTQ picks every value's level on the frozen grid of its
// sub-block, with error feedback, column by column.
//
// A super-block's grid is made when GPTQ reaches the super-block's first column, from its 256
// current (error-updated) weights of that row, by the type's own encoder: by default the
// importance-weighted search (ImportanceQuants, llama.cpp's imatrix search) with the Hessian's
// diagonal / 2 = Σx²/N as the importance, or the plain round-to-nearest search
// (`KQuantScales.plain`). The encoder's header bytes (super-block scale(s), sub-block scales and
// mins) are kept as they are, only the quantized values are replaced, so the block is a standard
// one of the type. Per sub-block j the grid is value = k·d_j − m_j with
//   q2_k  d·(sc_j & 15), dmin·(sc_j >> 4)   k in 0...3    (16 values per sub-block)
//   q3_k  d·(sc_j − 32), 0                  k in −4...3   (16)
//   q4_k  d·sc_j, dmin·m_j                  k in 0...15   (32)
//   q5_k  d·sc_j, dmin·m_j                  k in 0...31   (32)
//   q6_k  d·sc_j (int8), 0                  k in −32...31 (16)
// d_j and m_j in f32 as ggml's dequantizers compute them.

import CkptCore

/// How GPTQ chooses a k-quant super-block's frozen scales.
public enum KQuantScales: String, Sendable, CaseIterable {
    /// llama.cpp's importance-weighted search with the Hessian diagonal as importance.
    case importance
    /// The round-to-nearest encoder's search (weights only).
    case plain
}

enum KQuantGrids {
    static func supports(_ dtype: DType) -> Bool {
        switch dtype {
        case .q2_k, .q3_k, .q4_k, .q5_k, .q6_k: return true
        default: return false
        }
    }

    /// Values per sub-block (one scale).
    static func subBlock(_ dtype: DType) -> Int { dtype == .q4_k || dtype == .q5_k ? 32 : 16 }

    /// Encodes one super-block of 256 values (`importance`: 256 weights, or nil for the plain
    /// search) into `y` (the type's block size).
    static func encode(_ dtype: DType, _ x: UnsafePointer<Float>, importance: UnsafePointer<Float>?, into y: UnsafeMutableRawPointer) {
        if let q = importance {
            ImportanceQuants.row(dtype, x, y, n: 256, qw: q)
            return
        }
        switch dtype {
        case .q2_k: KQuants.quantizeQ2K(x, y, blocks: 1)
        case .q3_k: KQuants.quantizeQ3K(x, y, blocks: 1)
        case .q4_k: KQuants.quantizeQ45K(bits: 4, x, y, blocks: 1)
        case .q5_k: KQuants.quantizeQ45K(bits: 5, x, y, blocks: 1)
        default: KQuants.quantizeQ6K(x, y, blocks: 1)
        }
    }

    /// The sub-block grids of an encoded super-block (its header bytes).
    static func grids(_ dtype: DType, _ y: UnsafeRawPointer) -> [QuantGrid] {
        switch dtype {
        case .q4_k, .q5_k:
            let d = GGML.loadHalf(y, 0), dmin = GGML.loadHalf(y, 2), top = dtype == .q4_k ? 15 : 31
            return (0..<8).map { j in
                let (sc, m) = KQuants.scaleMinK4(j, y + 4)
                return QuantGrid(d: Double(d * Float(sc)), m: Double(-(dmin * Float(m))), lo: 0, hi: top)
            }
        case .q6_k:
            let d = GGML.loadHalf(y, 208)
            return (0..<16).map { j in
                QuantGrid(d: Double(d * Float(y.load(fromByteOffset: 192 + j, as: Int8.self))), m: 0, lo: -32, hi: 31)
            }
        case .q3_k:
            let d = GGML.loadHalf(y, 108)
            return (0..<16).map { j in QuantGrid(d: Double(d * Float(KQuants.scaleQ3K(j, y + 96))), m: 0, lo: -4, hi: 3) }
        default:  // q2_k
            let d = GGML.loadHalf(y, 80), dmin = GGML.loadHalf(y, 82)
            return (0..<16).map { j in
                let sc = y.load(fromByteOffset: j, as: UInt8.self)
                return QuantGrid(d: Double(d * Float(sc & 0xF)), m: Double(-(dmin * Float(sc >> 4))), lo: 0, hi: 3)
            }
        }
    }

    /// Writes 256 levels (each within its grid's lo...hi) into the block's value bits, leaving
    /// the header as the encoder wrote it.
    static func packLevels(_ dtype: DType, _ k: [Int], into y: UnsafeMutableRawPointer) {
        switch dtype {
        case .q4_k:
            for c in 0..<4 {
                for l in 0..<32 {
                    y.storeBytes(of: UInt8(k[64 * c + l]) | UInt8(k[64 * c + l + 32]) << 4, toByteOffset: 16 + 32 * c + l, as: UInt8.self)
                }
            }
        case .q5_k:
            var qh = [UInt8](repeating: 0, count: 32)
            for c in 0..<4 {
                for l in 0..<32 {
                    let a = UInt8(k[64 * c + l]), b = UInt8(k[64 * c + l + 32])
                    y.storeBytes(of: (a & 0xF) | (b & 0xF) << 4, toByteOffset: 48 + 32 * c + l, as: UInt8.self)
                    qh[l] |= (a >> 4) << UInt8(2 * c) | (b >> 4) << UInt8(2 * c + 1)
                }
            }
            for l in 0..<32 { y.storeBytes(of: qh[l], toByteOffset: 16 + l, as: UInt8.self) }
        case .q6_k:
            for h in 0..<2 {
                let ql = 64 * h, qh = 128 + 32 * h, j = 128 * h
                for l in 0..<32 {
                    let q1 = UInt8(k[j + l] + 32), q2 = UInt8(k[j + l + 32] + 32)
                    let q3 = UInt8(k[j + l + 64] + 32), q4 = UInt8(k[j + l + 96] + 32)
                    y.storeBytes(of: (q1 & 0xF) | (q3 & 0xF) << 4, toByteOffset: ql + l, as: UInt8.self)
                    y.storeBytes(of: (q2 & 0xF) | (q4 & 0xF) << 4, toByteOffset: ql + l + 32, as: UInt8.self)
                    y.storeBytes(of: (q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6, toByteOffset: qh + l, as: UInt8.self)
                }
            }
        case .q3_k:
            var hmask = [UInt8](repeating: 0, count: 32), low = [UInt8](repeating: 0, count: 256)
            for e in 0..<256 {
                let v = UInt8(k[e] + 4)
                if v > 3 { hmask[e % 32] |= 1 << UInt8(e / 32) }
                low[e] = v & 3
            }
            for i in 0..<32 { y.storeBytes(of: hmask[i], toByteOffset: i, as: UInt8.self) }
            KQuants.pack2Bit(low, into: y + 32)
        default:  // q2_k
            KQuants.pack2Bit(k.map { UInt8($0) }, into: y + 16)
        }
    }
}
