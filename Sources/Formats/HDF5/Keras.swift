// Keras 3 `.keras` archives (`model.save("x.keras")`): a zip holding `config.json` (the
// Keras model config), `metadata.json` and `model.weights.h5`, the weights in Keras 3's
// HDF5 layout. Reading takes the weights file out of the archive into a temporary file,
// opens it as any HDF5 input (probe included), and unlinks it: the open HDF5 file and its
// mapping keep the data reachable until the graph is released.

import CkptCore
import Foundation

public enum Keras {
    /// The member that holds the weights.
    static let weightsMember = "model.weights.h5"
    /// Cap on the weights member taken out of an archive (larger models ship as .weights.h5).
    static let maxWeightsBytes = 64 << 30

    public static func read(path: String) throws -> WeightGraph {
        let archive = try MappedFile(path: path)
        let entries: [ZipEntry]
        do { entries = try archive.withBytes { (b) throws(ZipError) in try Zip.entries(b) } } catch {
            throw FileError(path: path, error: error)
        }
        guard let e = entries.first(where: { $0.name == weightsMember }) else {
            throw FileError(path: path, error: ZipError.invalid("a .keras archive without \(weightsMember)"))
        }
        guard e.size <= maxWeightsBytes else {
            throw FileError(path: path, error: ZipError.unsupported(member: e.name, reason: "larger than 64 GiB"))
        }
        let temp = FileManager.default.temporaryDirectory.path + "/ckpt-keras-\(getpid())-\(UUID().uuidString).h5"
        TempFiles.shared.register(temp)  // removed on Ctrl-C/SIGTERM too
        defer {
            unlink(temp)
            TempFiles.shared.unregister(temp)
        }
        do {
            try archive.withBytes { (all) throws in
                let data = UnsafeRawBufferPointer(rebasing: all[e.dataOffset..<e.dataOffset + e.compressedSize])
                let bytes: [UInt8]
                if e.method == 0 {
                    guard Zip.crc32(data) == e.crc else { throw ZipError.crcMismatch(member: e.name) }
                    bytes = Array(data)
                } else {
                    bytes = try Zip.inflate(data, size: e.size, member: e.name)
                    guard bytes.withUnsafeBytes({ Zip.crc32($0) }) == e.crc else { throw ZipError.crcMismatch(member: e.name) }
                }
                guard FileManager.default.createFile(atPath: temp, contents: Data(bytes)) else {
                    throw IOError.cannotCreate(path: temp, errno: errno)
                }
            }
        } catch let error as IOError {
            throw error
        } catch {
            throw FileError(path: path, error: error)
        }
        do {
            var graph = try HDF5.read(path: temp)
            graph.metadata["keras_archive"] = URL(fileURLWithPath: path).lastPathComponent
            return graph
        } catch let e as FileError {
            throw FileError(path: path + ":" + weightsMember, error: e.error)
        } catch {
            throw FileError(path: path + ":" + weightsMember, error: error)
        }
    }
}
