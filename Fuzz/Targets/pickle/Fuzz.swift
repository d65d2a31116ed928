// The data-only unpickler on raw pickle bytes (a zip's data.pkl is behind a CRC check).
@_spi(Fuzzing) import Formats

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzHooks.unpickle(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
