// A NumPy .npz archive: the zip reader (central directory, zip64, local headers, stored and
// deflated members, CRCs, bomb limits) and each member's .npy header.
import CkptCore
import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = Scratch.write(data, size, name: "input.npz")
    if let graph = try? Npz.read(path: path) { readAll(graph) }
    return 0
}
