// .ckz: ckpt's compressed checkpoint format. The full specification is docs/ckz.md; this
// file holds its constants. All integers are little-endian.
//
//   offset 0        header, 64 bytes:
//                     magic  89 43 4B 5A 0D 0A 1A 0A   ("\x89CKZ\r\n\x1a\n", PNG-style: catches
//                                                      text-mode transfers and 7-bit channels)
//                     u32 version (1), u32 flags (0), 48 zero bytes
//   offset 64       tensor data, tensor after tensor in index order; each tensor starts at a
//                   multiple of 64 and is a run of independently decodable chunks
//   index_offset    the index (a multiple of 64): provenance, metadata, config, ties, tensor
//                   table with per-chunk records; all gaps before it are zero bytes
//   end - 32        trailer: u64 index_offset, u64 index_length, u32 crc32(index), u32 flags (0),
//                   u32 crc32(trailer[0..<24]), end magic 43 4B 5A 1A ("CKZ\x1a")
//
// A chunk is `chunk_size` raw bytes of one tensor (the last may be shorter). It is stored as
// one or more planes, each either verbatim or as a raw DEFLATE stream (RFC 1951):
//   filter 0  one plane, the raw bytes
//   filter 1  P planes (P = 2, 4 or 8): each P-byte little-endian element is rotated left by
//             one bit (the sign moves to bit 0), then byte j of every element goes to plane j.
//             For IEEE-style floats the top plane then holds exactly the exponent's high
//             bits (the whole 8-bit exponent for f32 and bf16), where nearly all the
//             redundancy of trained weights is (ZipNN, Hershcovitch et al. 2024).

import CkptCore

public enum CKZ {
    static let magic: [UInt8] = [0x89, 0x43, 0x4B, 0x5A, 0x0D, 0x0A, 0x1A, 0x0A]
    static let endMagic: [UInt8] = [0x43, 0x4B, 0x5A, 0x1A]
    static let version: UInt32 = 1
    static let headerSize = 64
    static let trailerSize = 32
    /// Tensor data and the index start at multiples of this, so stored tensors can be used
    /// straight from a memory mapping with any SIMD alignment up to AVX-512.
    static let alignment = 64

    /// Raw bytes per chunk. 1 MiB: large enough that per-chunk costs (a Huffman table, a
    /// CRC record, a thread hand-off) vanish, small enough that a 2-core machine has work
    /// for both cores on any tensor above 2 MiB, and that one tensor's chunks can be
    /// read without the rest.
    public static let defaultChunkSize = 1 << 20

    // Caps on lengths read from a file; each documented in docs/ckz.md "Limits".
    /// The index: 57 bytes per 1 MiB chunk at most, so 1 GiB covers ~18 TB of weights.
    /// (llama.cpp caps GGUF strings and arrays at 1 GiB for the same reason.)
    static let maxIndexLength = 1 << 30
    static let maxNameLength = 1 << 16
    static let maxDTypeNameLength = 64
    static let maxQuantizationLength = 1 << 16
    static let maxProvenanceLength = 1 << 20
    /// Same cap `Checkpoint.readConfig` puts on config.json.
    static let maxConfigLength = 16 << 20
    static let maxMetadataLength = 100_000_000  // safetensors' whole-header cap
    /// safetensors and PyTorch have no rank limit; GGUF has 4. 32 leaves room for anything real.
    static let maxRank = 32
    /// A chunk is decoded into one buffer: the cap bounds what one record can make us allocate.
    static let maxChunkSize = 64 << 20
    /// Chunk sizes are multiples of this (so any plane width divides them).
    static let chunkSizeGranule = 64
    /// A DEFLATE stream expands by at most 1032:1 (a 258-byte match per 2-bit-ish code;
    /// zlib's FAQ and RFC 1951's length codes): a record claiming more is corrupt, and the
    /// cap keeps a tiny hostile file from making us allocate huge buffers.
    static let maxDeflateRatio = 1032

    enum Filter: UInt8 {
        case none = 0
        case planes = 1
    }

    enum Codec: UInt8 {
        case stored = 0
        case deflate = 1
    }

    /// The plane width filter 1 uses for a dtype, or nil for types stored unfiltered:
    /// integers, bool, 8/6/4-bit floats (one byte or less: nothing to split) and, later,
    /// block-quantized types (their bytes are already dense codes and scales).
    static func planeWidth(for dtype: DType) -> Int? {
        switch dtype {
        case .f16, .bf16: return 2
        case .f32: return 4
        case .c64: return 4  // two f32 parts
        case .f64: return 8
        default: return nil
        }
    }

    // MARK: Levels

    /// `--level`: what the writer tries for each chunk. Readers do not care.
    public struct Level: Sendable, Equatable {
        public let value: Int
        public static let `default` = Level(checked: 2)
        public static let range = 0...9

        public init?(_ value: Int) {
            guard Self.range.contains(value) else { return nil }
            self.value = value
        }
        private init(checked: Int) { value = checked }

        /// Level 0 stores everything verbatim (the fastest to write, and every tensor can
        /// then be memory-mapped).
        var compresses: Bool { value > 0 }
        /// A Huffman-coded plane is kept only if it saves at least this fraction: at level 1
        /// planes that barely shrink (trained mantissas save 2–3 %) stay verbatim, which
        /// makes reading faster.
        var minimumSaving: Double { value == 1 ? 0.05 : 0.005 }
        /// The libdeflate level tried on unfiltered chunks (integers, quantized, 8-bit
        /// types), where repeated strings exist; nil = Huffman only.
        var deflateLevelUnfiltered: Int32? {
            switch value {
            case 0, 1: return nil
            case 2, 3: return 1
            default: return deflateLevelAll
            }
        }
        /// The libdeflate level also tried on float planes (levels 4–9). Measured on
        /// all-MiniLM-L6-v2, LZ matching finds nothing in exponents that Huffman coding
        /// does not (zlib-6 leaves the exponent plane at 39 %, Huffman alone at 33 %), so
        /// this costs time for little or nothing; it is there for unusual tensors.
        var deflateLevelAll: Int32? {
            switch value {
            case 4: return 3
            case 5: return 5
            case 6: return 6
            case 7: return 8
            case 8: return 10
            case 9: return 12
            default: return nil
            }
        }
    }
}
