// A whole .ckz file: trailer, index, offsets, padding, and every tensor decoded (chunks
// whose checksums match). The index and the decoders alone: fuzz-ckz-index, fuzz-ckz-chunk.
import CkptCore
@_spi(Fuzzing) import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = FuzzHooks.file(UnsafeRawBufferPointer(start: data, count: size), path: "input.ckz")
    if let graph = try? FuzzHooks.ckz(file, jobs: 1) { readAll(graph) }
    return 0
}
