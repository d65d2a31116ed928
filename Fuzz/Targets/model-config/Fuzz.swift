// A model's config.json through the public entry point of the forward pass: parsed, then
// `Transformers.load` on a graph with no weights (it must refuse the config or the missing
// weights with an error, never trap or allocate by the config's numbers).
import CkptCore
import Transformer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let config = try? ModelConfig(jsonBytes: Array(UnsafeBufferPointer(start: data, count: size))) else { return 0 }
    var graph = WeightGraph()
    graph.config = config
    _ = try? Transformers.load(graph)
    return 0
}
