// A NumPy .npy file: magic, version, header dict, shape × dtype against the data.
import CkptCore
import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = Scratch.write(data, size, name: "input.npy")
    if let t = try? Npy.read(path: path, name: "x") { _ = try? t.data.withBytes { $0.count } }
    return 0
}
