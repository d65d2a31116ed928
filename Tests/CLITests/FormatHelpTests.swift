import Formats
import Foundation
import Testing
import TestSupport

/// The CLI's help and errors list the formats from the registry, not a copy of it.
@Suite struct FormatHelpTests {
    @Test func convertHelpAndUnknownFormatComeFromTheRegistry() throws {
        let help = try CkptBinary.run("convert", "--help")
        #expect(help.status == 0)
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(text.contains("Output format: \(FormatRegistry.standard.writableNames) "), "\(help.stdout)")
        let dir = TempDir()
        let bad = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("out.x"), "--to", "parquet")
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("unknown output format \"parquet\" (one of: \(FormatRegistry.standard.writableNames))"), "\(bad.stderr)")
        let noExt = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("out.x"))
        #expect(noExt.status == 2 && noExt.stderr.contains("use --to FORMAT (one of: \(FormatRegistry.standard.writableNames))"), "\(noExt.stderr)")
        // A format ckpt reads but does not write: refused before the input is read.
        let pt = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("out.pt"))
        #expect(pt.status == 2 && pt.stderr.contains("\(dir.file("out.pt")): writing pytorch is not supported yet"), "\(pt.stderr)")
        #expect(dir.contents().isEmpty)
    }
}
