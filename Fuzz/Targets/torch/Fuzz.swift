// A torch.save file, zip or legacy: the zip container, the unpickler, storages and views
// (strided ones gathered when read).
import CkptCore
@_spi(Fuzzing) import Formats
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = FuzzHooks.file(UnsafeRawBufferPointer(start: data, count: size), path: "input.pt")
    if let graph = try? PyTorch.read(file: file) { readAll(graph) }
    return 0
}
