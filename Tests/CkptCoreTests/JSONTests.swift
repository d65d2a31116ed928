import CkptCore
import Testing

@Suite struct JSONTests {
    @Test func parsesAndKeepsOrderAndNumberText() throws {
        let v = try JSONValue.parse(#"{"b": [1, 2.50, -3e5], "a": {"x": null, "y": true}, "big": 18446744073709551615}"#)
        #expect(v.objectValue?.keys.elements == ["b", "a", "big"])
        #expect(v["b"]?.arrayValue?[1] == .number("2.50"))
        #expect(v["big"]?.uint64Value == UInt64.max)
        #expect(v["big"]?.intValue == nil)
        #expect(v["a"]?["y"]?.boolValue == true)
    }

    @Test func refusesDuplicateKeysNamingTheKey() {
        #expect {
            try JSONValue.parse(#"{"w": 1, "v": 2, "w": 3}"#)
        } throws: { error in
            (error as? JSONError)?.duplicateKey == "w"
        }
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "1e", "\"\u{01}\"", "\"\\x\"", "\"\\ud800\"",
        "\"\\udc00\"", "tru", "nul", "{} x", "{\"a\" 1}", "[1 2]", "'a'", "NaN", "Infinity",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONError.self) { try JSONValue.parse(text) }
    }

    @Test func rejectsInvalidUTF8InStrings() {
        #expect(throws: JSONError.self) { try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func capsNestingDepth() throws {
        let ok = String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        _ = try JSONValue.parse(ok)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONError.self) { try JSONValue.parse(deep) }
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let v = try JSONValue.parse(#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#)
        #expect(v.stringValue == "a\"b\\c/d\né😀")
    }

    @Test func serializesLikeSerdeJSON() {
        // serde_json: short escapes, other control characters as lowercase \u00xx, '/' and
        // non-ASCII raw.
        let v = JSONValue.object(["k\u{1F}\"\\/é\t": .array([.int(1), .bool(false), .null, .string("")])])
        #expect(v.serialized() == "{\"k\\u001f\\\"\\\\/é\\t\":[1,false,null,\"\"]}")
    }

    @Test func prettyPrintsLikePythonIndent2() {
        let v = JSONValue.object(["a": .array([.int(1), .int(2)]), "b": .object([:]), "c": .array([])])
        #expect(v.prettyPrinted() == "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": []\n}")
    }

    @Test func roundTripsThroughSerialization() throws {
        let text = #"{"x":[1,2.5e-3,{"y":"z"}],"w":null}"#
        #expect(try JSONValue.parse(text).serialized() == text)
    }
}
