// A `ckpt run` pipeline file, parsed and validated (nothing runs): YAML through Yams, the
// alias-bomb budget, duplicate keys, every step's options. Inputs starting with `{` are
// also read as .json.
import CkptCore
import FuzzSupport
import Pipeline

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = Scratch.write(data, size, name: "pipeline.yaml")
    _ = try? PipelineSpec.load(path: path)
    if size > 0, data[0] == UInt8(ascii: "{") {
        _ = try? PipelineSpec.load(path: Scratch.write(data, size, name: "pipeline.json"))
    }
    return 0
}
