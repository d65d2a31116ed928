// A NumPy .npy file: magic, version, header dict, shape × dtype against the data.
import CkptCore
@_spi(Fuzzing) import Formats

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = FuzzHooks.file(UnsafeRawBufferPointer(start: data, count: size), path: "input.npy")
    if let t = try? FuzzHooks.npy(file, name: "x") { _ = try? t.data.withBytes { $0.count } }
    return 0
}
