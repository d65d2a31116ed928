// A GGUF file: header, typed metadata, tensor infos, data; then llama.cpp's names and
// layouts mapped back to Hugging Face's (q/k row order, transposed Conv1D), as `forward` and
// `convert` do, every tensor read, and the tokenizer.json a conversion to a model directory
// would rebuild from the tokenizer.ggml.* keys.
import CkptCore
@_spi(Fuzzing) import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = FuzzHooks.file(UnsafeRawBufferPointer(start: data, count: size), path: "input.gguf")
    guard let raw = try? GGUF.read(file: file) else { return 0 }
    _ = GGUFTokenizer.huggingFaceFiles(of: raw, warn: { _ in })
    if let graph = try? GGUFNaming.toHF(raw) { readAll(graph) }
    return 0
}
