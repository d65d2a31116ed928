// What the fuzz targets share: the input written to a scratch file (for the entry points that
// only take a path: a sharded index, a pipeline file; the single-file readers get the input as
// an in-memory MappedFile, FuzzHooks.file), and reading every tensor's bytes, so a mutated input reaches the code behind the header checks
// (strided gathers, inflation, dequantization of lazily read tensors).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CkptCore
import Foundation

public enum Scratch {
    /// A directory of this process's own ($FUZZ_SCRATCH, else the temporary directory),
    /// removed at exit.
    public static let directory: String = {
        let base = ProcessInfo.processInfo.environment["FUZZ_SCRATCH"] ?? NSTemporaryDirectory()
        let dir = base + "/ckpt-fuzz-\(getpid())"
        mkdir(base, 0o755)
        mkdir(dir, 0o755)
        atexit { try? FileManager.default.removeItem(atPath: Scratch.directory) }
        return dir
    }()

    /// Writes the input to `directory/name` (replacing what was there) and returns its path.
    public static func write(_ data: UnsafePointer<UInt8>, _ size: Int, name: String) -> String {
        write(UnsafeRawBufferPointer(start: data, count: size), name: name)
    }

    public static func write(_ bytes: UnsafeRawBufferPointer, name: String) -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot create \(path)")
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
        close(fd)
        return path
    }
}

/// Reads every tensor of the graph (errors are fine: a refused tensor is an answer).
public func readAll(_ graph: WeightGraph) {
    for t in graph.tensors.values {
        _ = try? t.data.withBytes { b in b.count }
    }
    _ = graph.parameterCount
    _ = graph.byteCount
}
