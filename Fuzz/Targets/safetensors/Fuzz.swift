// A safetensors file: header (length, JSON, dtypes, shapes, offsets) and every tensor's bytes.
import CkptCore
import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = Scratch.write(data, size, name: "input.safetensors")
    if let graph = try? Safetensors.read(path: path) { readAll(graph) }
    return 0
}
