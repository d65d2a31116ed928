// HDF5 (h5py, Keras `.weights.h5`, MATLAB v7.3) and Keras 3 `.keras` archives in the format
// registry.

import CkptCore

extension CheckpointFormat {
    public static let hdf5 = CheckpointFormat(HDF5Handler())
    /// Keras 3's `.keras` archive (read: the weights file inside).
    public static let keras = CheckpointFormat(KerasHandler())
}

struct HDF5Handler: FormatHandler {
    var name: String { "hdf5" }
    var displayName: String { "HDF5" }
    // Not "keras": Keras 3's .keras files are zip archives, not HDF5.
    var extensions: [String] { ["h5", "hdf5"] }
    var isReadable: Bool { true }
    var isWritable: Bool { true }

    /// The superblock is at 0, or after a user block at 512, 1024, 2048, ... bytes (MATLAB
    /// v7.3 .mat files have 512).
    func sniff(_ p: FormatProbe) -> Bool {
        var offset = 0
        while offset <= 1 << 20 {
            if p.starts(with: HDF5.signature, at: offset) { return true }
            offset = offset == 0 ? 512 : offset * 2
        }
        return false
    }

    func read(path: String, options: ReadOptions) throws -> WeightGraph { try HDF5.read(path: path) }

    func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws {
        try HDF5.write(graph, to: target, options: options.hdf5, progress: options.progress)
    }
}

struct KerasHandler: FormatHandler {
    var name: String { "keras" }
    var displayName: String { "Keras" }
    var extensions: [String] { ["keras"] }
    var isReadable: Bool { true }
    var isWritable: Bool { false }

    /// `model.save("x.keras")`: config.json, metadata.json, model.weights.h5.
    func sniff(_ p: FormatProbe) -> Bool { p.zipMembers?.contains(Keras.weightsMember) ?? false }
    /// A zip named .keras that is not quite one: the Keras reader says what is missing.
    func fallbackSniff(_ p: FormatProbe) -> Bool { p.isZip && p.hasExtension("keras") }

    func read(path: String, options: ReadOptions) throws -> WeightGraph { try Keras.read(path: path) }
}
