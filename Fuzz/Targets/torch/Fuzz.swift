// A torch.save file, zip or legacy: the zip container, the unpickler, storages and views
// (strided ones gathered when read).
import CkptCore
import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = Scratch.write(data, size, name: "input.pt")
    if let graph = try? PyTorch.read(path: path) { readAll(graph) }
    return 0
}
