// The .ckz plane decoders, differentially: input = u32 LE output length (capped at 1 MiB,
// a chunk's size) + a raw DEFLATE stream. ckpt's literal-only fast path must never accept
// what libdeflate refuses, nor decode it differently (FuzzHooks.ckzInflate traps if it does).
@_spi(Fuzzing) import Formats

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 4 else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let count = Int(UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self))) % ((1 << 20) + 1)
    FuzzHooks.ckzInflate(UnsafeRawBufferPointer(rebasing: bytes[4...]), outputCount: count)
    return 0
}
