// Format detection, as `ckpt inspect FILE` does it: the first input byte picks the file's name
// (no extension, or one of the extensions the format registry knows, or a few that lie), the
// rest is the file, written to tmpfs under that name. The registry's structural sniffs and
// fallbacks pick a format, then `Checkpoint.open` reads that format's header or index (every
// sniff may be fooled; the reader it picks must still refuse the file with an error). HDF5 and
// .keras files are only detected: their reader runs libhdf5 in a sandboxed child process,
// which is libhdf5's parser, not ckpt's, and a process per input.
import CkptCore
import Formats
import FuzzSupport

/// File names the first byte chooses from: the registry's extensions, none, and a few that
/// name no format or the wrong one.
private let names: [String] = ["model"] + (CheckpointFormat.allCases.flatMap(\.handler.extensions) + ["bin", "pth", "zip", "json", "h5"]).map { "model." + $0 }

/// Formats detected but not read here (see above).
private let detectOnly: Set<CheckpointFormat> = [.hdf5, .keras]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let path = Scratch.write(data + 1, size - 1, name: names[Int(data[0]) % names.count])
    guard let format = try? FormatRegistry.standard.detectFormat(path: path), !detectOnly.contains(format) else { return 0 }
    if let (graph, _) = try? Checkpoint.open(path, jobs: 1) {
        _ = graph.parameterCount
        _ = graph.byteCount
        _ = graph.config?.summary
    }
    return 0
}
