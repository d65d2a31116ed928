// The .ckz index on its own (a whole file must also match the index's CRC to reach it).
@_spi(Fuzzing) import Formats

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzHooks.ckzIndex(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
