// A GGUF file: header, typed metadata, tensor infos, data; then llama.cpp's names and
// layouts mapped back to Hugging Face's (q/k row order, transposed Conv1D), as `forward` and
// `convert` do, and every tensor read.
import CkptCore
@_spi(Fuzzing) import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = FuzzHooks.file(UnsafeRawBufferPointer(start: data, count: size), path: "input.gguf")
    if let graph = try? GGUFNaming.toHF(GGUF.read(file: file)) { readAll(graph) }
    return 0
}
