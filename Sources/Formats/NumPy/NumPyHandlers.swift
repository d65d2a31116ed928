// NumPy's `.npz` (numpy.savez) and `.npy` in the format registry.

import CkptCore
import Foundation

extension CheckpointFormat {
    public static let npz = CheckpointFormat(NpzHandler())
    public static let npy = CheckpointFormat(NpyHandler())
}

struct NpzHandler: FormatHandler {
    var name: String { "npz" }
    var displayName: String { "NumPy" }
    var extensions: [String] { ["npz"] }
    var isReadable: Bool { true }
    var isWritable: Bool { true }

    /// numpy.savez: every member an array (`NAME.npy`), plus the config ckpt adds.
    func sniff(_ p: FormatProbe) -> Bool {
        guard let names = p.zipMembers, names.contains(where: { $0.hasSuffix(".npy") }) else { return false }
        return names.allSatisfy { $0.hasSuffix(".npy") || $0 == Npz.configMember }
    }
    /// A zip named .npz that is not quite one: the .npz reader says what is wrong.
    func fallbackSniff(_ p: FormatProbe) -> Bool { p.isZip && p.hasExtension("npz") }

    func canHold(_ dtype: DType) -> Bool { Npy.descrs.contains { $0.1 == dtype } }

    func read(path: String, options: ReadOptions) throws -> WeightGraph { try Npz.read(path: path) }

    func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws {
        try Npz.write(graph, to: target, deflate: options.deflate, progress: options.progress)
    }
}

struct NpyHandler: FormatHandler {
    var name: String { "npy" }
    var displayName: String { "NumPy" }
    var extensions: [String] { ["npy"] }
    var isReadable: Bool { true }
    var isWritable: Bool { true }

    /// "\x93NUMPY", major version 1 to 3.
    func sniff(_ p: FormatProbe) -> Bool {
        guard p.starts(with: [0x93] + Array("NUMPY".utf8)), let major = p.byte(at: 6) else { return false }
        return (1...3).contains(major)
    }

    func canHold(_ dtype: DType) -> Bool { Npy.descrs.contains { $0.1 == dtype } }

    /// One array, named after the file.
    func read(path: String, options: ReadOptions) throws -> WeightGraph {
        var g = WeightGraph()
        try g.add(Npy.read(path: path, name: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent))
        return g
    }

    func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws {
        guard graph.tensors.count == 1, let t = graph.tensors.values.first else {
            throw CheckpointError.npyNeedsOneTensor(graph.tensors.count)
        }
        try Npy.write(Npy.encode(dtype: t.dtype, shape: t.shape, data: t.data.load()), to: target)
    }
}
