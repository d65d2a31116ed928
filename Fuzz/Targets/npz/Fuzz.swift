// A NumPy .npz archive: the zip reader (central directory, zip64, local headers, stored and
// deflated members, CRCs, bomb limits) and each member's .npy header.
import CkptCore
@_spi(Fuzzing) import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = FuzzHooks.file(UnsafeRawBufferPointer(start: data, count: size), path: "input.npz")
    if let graph = try? FuzzHooks.npz(file) { readAll(graph) }
    return 0
}
