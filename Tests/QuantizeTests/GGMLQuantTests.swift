// GGUF block types against the reference: gguf-py's `gguf.quants.quantize` bytes (committed,
// made by tools/make_quant_fixtures.py) and `gguf.quants.dequantize` run live from the tests.

import CkptCore
import Formats
import Foundation
@testable import Quantize
import Testing
import TestSupport

/// The committed reference: `input` rows and gguf-py's quantized bytes per type.
enum QuantFixture {
    static let graph: WeightGraph = try! Safetensors.read(path: Repo.fixture("quant/gguf_quants.safetensors"))
    static var input: [Float] { try! Cast.floats(graph.tensors["input"]!)! }
    static var rows: Int { graph.tensors["input"]!.shape[0] }
    static func expected(_ type: String) -> [UInt8] { try! graph.tensors[type]!.data.load() }
}

/// Runs gguf-py's dequantizer on raw blocks and returns its f32 values.
func ggufDequantize(_ bytes: [UInt8], type: DType) throws -> [Float] {
    let dir = TempDir()
    try writeFile(dir.file("in.bin"), bytes)
    let script = """
    import sys, numpy as np
    from gguf.quants import dequantize
    from gguf import GGMLQuantizationType as T
    raw = np.fromfile(sys.argv[1], dtype=np.uint8)
    t = T[sys.argv[3].upper()]
    out = dequantize(raw.reshape(1, -1), t).astype(np.float32)
    out.tofile(sys.argv[2])
    """
    let r = try Python.run(script, [dir.file("in.bin"), dir.file("out.bin"), type.rawValue])
    guard r.status == 0 else { throw SupportError("gguf-py failed: \(r.stderr)") }
    let out = try readFile(dir.file("out.bin"))
    return out.withUnsafeBytes { b in (0..<out.count / 4).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
}

func bitsEqual(_ a: [Float], _ b: [Float]) -> Int? {
    guard a.count == b.count else { return -1 }
    return a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
}

@Suite struct GGMLQuantTests {
    static let types: [DType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1]

    @Test(arguments: types)
    func bytesEqualGGUFPy(_ type: DType) throws {
        let ours = try Quantizer.quantize(QuantFixture.input, rowLength: 256, to: type)
        let reference = QuantFixture.expected(type.rawValue)
        #expect(ours.count == reference.count)
        guard case .block(_, let size) = type.layout else { return }
        let differing = stride(from: 0, to: min(ours.count, reference.count), by: size).filter {
            ours[$0..<$0 + size] != reference[$0..<$0 + size]
        }
        #expect(differing.isEmpty, "\(type): \(differing.count) of \(ours.count / size) blocks differ, first at block \(differing.first.map { $0 / size } ?? -1)")
    }

    @Test(arguments: types)
    func dequantizationEqualsGGUFPy(_ type: DType) throws {
        let bytes = QuantFixture.expected(type.rawValue)
        let ours = try bytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: type, count: QuantFixture.input.count) }
        let theirs = try ggufDequantize(bytes, type: type)
        #expect(bitsEqual(ours, theirs) == nil, "\(type): first differing value at \(bitsEqual(ours, theirs) ?? 0)")
    }
}
