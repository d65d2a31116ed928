// ckpt's JSON parser (safetensors headers, indexes, configs), and a property: whatever it
// accepts, it writes back as text that parses to the same value.
import CkptCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let value = try? JSONValue.parse(UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    let text = value.serialized()
    guard let again = try? JSONValue.parse(text) else { fatalError("serialized JSON does not parse: \(text)") }
    precondition(again == value, "JSON round trip changed the value: \(text)")
    return 0
}
