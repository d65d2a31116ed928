// A safetensors file: header (length, JSON, dtypes, shapes, offsets) and every tensor's bytes.
import CkptCore
@_spi(Fuzzing) import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = FuzzHooks.file(UnsafeRawBufferPointer(start: data, count: size), path: "input.safetensors")
    if let graph = try? Safetensors.read(file: file) { readAll(graph) }
    return 0
}
