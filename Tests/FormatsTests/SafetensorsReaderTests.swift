import CkptCore
import Foundation
@testable import Formats
import Testing
import TestSupport

struct ExpectedTensor: Decodable {
    var dtype: String
    var shape: [Int]
    var sha256: String
    var hex: String?
}

struct ExpectedFile: Decodable {
    var metadata: [String: String]
    var tensors: [String: ExpectedTensor]
}

func loadExpected() throws -> ExpectedFile {
    try JSONDecoder().decode(ExpectedFile.self, from: Data(contentsOf: URL(fileURLWithPath: Repo.fixture("safetensors/every_dtype.expected.json"))))
}

/// Parses bytes as a safetensors file (written to disk, mapped, validated).
func parse(_ bytes: [UInt8]) throws -> WeightGraph {
    let dir = TempDir()
    let path = dir.file("t.safetensors")
    try writeFile(path, bytes)
    return try Safetensors.read(path: path)
}

@Suite struct SafetensorsReaderTests {
    @Test func readsEveryDTypeWrittenByThePythonLibrary() throws {
        let expected = try loadExpected()
        let graph = try Safetensors.read(path: Repo.fixture("safetensors/every_dtype.safetensors"))
        #expect(Set(graph.tensors.keys) == Set(expected.tensors.keys))
        #expect(Dictionary(uniqueKeysWithValues: graph.metadata.map { ($0.key, $0.value) }) == expected.metadata)
        for (name, e) in expected.tensors {
            let t = try #require(graph.tensors[name])
            #expect(SafetensorsDType.name(t.dtype) == e.dtype, "\(name)")
            #expect(t.shape == e.shape, "\(name)")
            let bytes = try t.data.load()
            if let hex = e.hex { #expect(bytes == hexBytes(hex), "\(name)") }
            #expect(try sha256(bytes) == e.sha256, "\(name)")
        }
    }

    @Test func ordersTensorsByDataOffset() throws {
        let header = #"{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#
        let g = try parse(safetensorsBytes(header: header, data: [7, 9]))
        #expect(g.tensors.keys.elements == ["a", "b"])
        #expect(try g.tensors["b"]!.data.load() == [9])
    }

    @Test func acceptsSpacePaddedHeadersAndEmptyFiles() throws {
        let g = try parse(safetensorsBytes(header: "{}      "))
        #expect(g.tensors.isEmpty)
        let m = try parse(safetensorsBytes(header: #"{"__metadata__":{"k":"v"}}"#))
        #expect(m.metadata["k"] == "v")
    }

    // One row per way a file can be wrong, each built from bytes here.
    static let f32x2 = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    static let malformed: [(String, [UInt8], SafetensorsError)] = [
        ("empty file", [], .fileTooSmall(size: 0)),
        ("truncated length", [1, 0, 0], .fileTooSmall(size: 3)),
        ("header too large", safetensorsBytes(header: "{}", lengthOverride: 100_000_001), .headerTooLarge(length: 100_000_001)),
        ("header past end", safetensorsBytes(header: "{}", lengthOverride: 50), .headerPastEnd(length: 50, fileSize: 10)),
        ("header length near 2^64", safetensorsBytes(header: "{}", lengthOverride: UInt64.max), .headerTooLarge(length: UInt64.max)),
        ("not UTF-8", safetensorsBytes(header: "{\"\u{FF}\"") .enumerated().map { $0.offset == 10 ? 0xFF : $0.element }, .headerNotUTF8),
        ("not an object", safetensorsBytes(header: "[1, 2]"), .headerNotObject),
        ("duplicate names", safetensorsBytes(header: "{\"w\":\(f32x2),\"w\":\(f32x2)}", data: [UInt8](repeating: 0, count: 8)), .duplicateTensor("w")),
        ("unknown dtype", safetensorsBytes(header: #"{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), .unknownDType(tensor: "w", dtype: "F33")),
        ("negative dimension", safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[-1, 2],"data_offsets":[0,0]}}"#), .negativeDimension(tensor: "w", shape: ["-1", "2"])),
        ("fractional dimension", safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), .invalidEntry(tensor: "w", reason: "shape holds a non-integer 1.5")),
        ("missing offsets", safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[1]}}"#), .invalidEntry(tensor: "w", reason: "missing \"data_offsets\" or not two numbers")),
        ("size overflow", safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[4611686018427387904, 4],"data_offsets":[0,0]}}"#), .sizeOverflow(tensor: "w")),
        ("dimension past Int", safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,0]}}"#), .sizeOverflow(tensor: "w")),
        ("reversed offsets", safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]), .invalidOffsets(tensor: "w", begin: 4, end: 0, expectedBegin: 0)),
        ("overlapping offsets", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)), .invalidOffsets(tensor: "b", begin: 4, end: 8, expectedBegin: 8)),
        ("gap between tensors", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: [UInt8](repeating: 0, count: 12)), .invalidOffsets(tensor: "b", begin: 8, end: 12, expectedBegin: 4)),
        ("shape × dtype ≠ length", safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)), .byteLengthMismatch(tensor: "w", dtype: "F32", shape: [3], expected: 12, actual: 8)),
        ("offsets past the end (truncated)", safetensorsBytes(header: "{\"w\":\(f32x2)}", data: [0, 0, 0]), .dataPastEnd(tensor: "w", end: 8, dataSize: 3)),
        ("trailing bytes", safetensorsBytes(header: "{\"w\":\(f32x2)}", data: [UInt8](repeating: 0, count: 9)), .trailingBytes(dataEnd: 8, dataSize: 9)),
        ("metadata not strings", safetensorsBytes(header: #"{"__metadata__":{"k":1}}"#), .invalidMetadata("value of \"k\" is not a string")),
        ("sub-byte dtype not filling bytes", safetensorsBytes(header: #"{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}"#, data: [0]), .sizeOverflow(tensor: "w")),
    ]

    @Test(arguments: 0..<malformed.count)
    func reportsMalformedFiles(_ i: Int) throws {
        let (what, bytes, expected) = Self.malformed[i]
        #expect(throws: expected, "\(what)") { try parse(bytes) }
    }

    @Test func reportsJSONSyntaxErrors() {
        #expect {
            try parse(safetensorsBytes(header: #"{"w": }"#))
        } throws: { error in
            guard case .headerNotJSON(let m) = error as? SafetensorsError else { return false }
            return m.contains("unexpected character")
        }
    }

    @Test func everyErrorMessageNamesTheTensorWhereThereIsOne() {
        for (what, _, error) in Self.malformed {
            let text = error.description
            #expect(!text.isEmpty && !text.contains("\n"), "\(what)")
            if case .byteLengthMismatch = error { #expect(text.contains("`w`")) }
            if case .invalidOffsets(let t, _, _, _) = error { #expect(text.contains("`\(t)`")) }
        }
    }
}
