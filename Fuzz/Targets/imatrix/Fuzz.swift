// An importance matrix as `ckpt quantize --imatrix FILE` reads it: llama-imatrix's GGUF layout
// (`<weight>.in_sum2` / `.counts` tensors, imatrix.* keys) or its legacy .dat records, told
// apart by the magic. Such files are published beside quantized models, so they are inputs
// from strangers. Written to a scratch file: the reader takes a path.
import FuzzSupport
import Pipeline

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = Scratch.write(data, size, name: "input.imatrix")
    _ = try? ImportanceMatrix.read(path: path)
    return 0
}
