// Foundation's file errors become one line naming the path and the problem.

import Foundation
import Formats
import Testing

@Suite struct ErrorTextTests {
    @Test func foundationFileErrorsReadAsOneLine() throws {
        let missing = "/nonexistent-\(UUID().uuidString)/x.safetensors"
        do {
            _ = try Data(contentsOf: URL(fileURLWithPath: missing))
            Issue.record("reading a missing file succeeded")
        } catch {
            let line = ErrorText.line(error)
            #expect(line == missing + ": no such file or directory", "\(line)")
            #expect(!line.contains("Domain"))
        }
        do {
            try FileManager.default.moveItem(atPath: missing, toPath: missing + ".2")
            Issue.record("moving a missing file succeeded")
        } catch {
            #expect(!ErrorText.line(error).contains("Domain") && ErrorText.line(error).contains("no such file"), "\(ErrorText.line(error))")
        }
        let wrapped = FileError(path: "a.h5", error: CocoaError(.fileWriteOutOfSpace))
        #expect(wrapped.description == "a.h5: no space left on device")
    }
}
