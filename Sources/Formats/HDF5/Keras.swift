// Keras 3 `.keras` archives (`model.save("x.keras")`): a zip holding `config.json` (the
// Keras model config), `metadata.json` and `model.weights.h5`, the weights in Keras 3's
// HDF5 layout. Reading takes the weights file out of the archive into a temporary file,
// opens it as any HDF5 input (probe included), and unlinks it: the open HDF5 file and its
// mapping keep the data reachable until the graph is released.

import CkptCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

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
        // Created under TempFiles' lock and registered there, so Ctrl-C/SIGTERM removes it too.
        let (fd, createErrno) = TempFiles.shared.create(temp) { open($0, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw IOError.cannotCreate(path: temp, errno: createErrno) }
        defer { TempFiles.shared.remove(temp) }
        var file: Int32? = fd
        defer { if let file { close(file) } }
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
                var written = 0
                while written < bytes.count {
                    let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    guard n > 0 else { throw IOError.cannotCreate(path: temp, errno: n < 0 ? errno : EIO) }
                    written += n
                }
                close(fd)
                file = nil
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
