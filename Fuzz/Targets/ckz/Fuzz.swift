// A whole .ckz file: trailer, index, offsets, padding, and every tensor decoded (chunks
// whose checksums match). The index and the decoders alone: fuzz-ckz-index, fuzz-ckz-chunk.
import CkptCore
import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = Scratch.write(data, size, name: "input.ckz")
    if let graph = try? CKZ.read(path: path, jobs: 1) { readAll(graph) }
    return 0
}
