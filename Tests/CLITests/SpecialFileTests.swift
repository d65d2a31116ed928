// Named pipes, devices and directories where a file is expected (issue 19 item 3): refused
// with one line before open(2) can block, for checkpoints, --config, pipelines and token files.

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TestSupport

@Suite struct SpecialFileTests {
    /// Runs ckpt; a run still going after a minute is killed and reported (a blocked open
    /// would otherwise hang the suite). Not a timing assertion: the expected run takes
    /// milliseconds, the failure never ends.
    static func run(_ arguments: [String]) throws -> (status: Int32, stderr: String, hung: Bool) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CkptBinary.path)
        p.arguments = arguments
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        try p.run()
        let hung = done.wait(timeout: .now() + 60) == .timedOut
        if hung { kill(p.processIdentifier, SIGKILL); done.wait() }
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (p.terminationStatus, text, hung)
    }

    @Test func namedPipesAndDevicesAreRefused() throws {
        let dir = TempDir()
        let fifo = dir.file("pipe")
        #expect(mkfifo(fifo, 0o644) == 0)
        let model = Repo.fixture("tiny-gpt2")
        let cases: [([String], String)] = [
            (["inspect", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["convert", fifo, dir.file("x.safetensors")], "\(fifo): is a named pipe (FIFO), not a file"),
            (["inspect", model, "--config", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["forward", model, "--tokens", "1,2", "--config", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["run", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["verify", model, model, "--tokens", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["inspect", "/dev/zero"], "/dev/zero: is a character device, not a file"),
            (["inspect", model, "--config", dir.path], "\(dir.path): is a directory, not a file"),
        ]
        for (args, message) in cases {
            let r = try Self.run(args)
            #expect(!r.hung, "\(args) blocked")
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr == "ckpt: error: \(message)\n", "\(args)")
        }
    }

    /// The same for files ckpt reads beside a checkpoint or as an option's argument, found
    /// after the first round: a model directory's tokenizer_config.json (convert to GGUF) and
    /// modules.json (forward of a sentence-transformers encoder), --imatrix, and
    /// --reference-logits; text files (--text, --calibrate, tokenize --file) and tokenizers
    /// (tokenizer.json given or in a directory). Before, each blocked on a FIFO.
    @Test func optionalFilesOfAModelDirectoryAndOptionFilesAreRefused() throws {
        let dir = TempDir()
        let fifo = dir.file("pipe")
        #expect(mkfifo(fifo, 0o644) == 0)
        let fm = FileManager.default
        let tokenized = dir.file("gpt2"), encoder = dir.file("st")
        try fm.copyItem(atPath: Repo.fixture("tokenizers/gpt2-model"), toPath: tokenized)
        try fm.copyItem(atPath: Repo.fixture("models/st-bert-mean"), toPath: encoder)
        #expect(mkfifo(tokenized + "/tokenizer_config.json", 0o644) == 0)
        try fm.removeItem(atPath: encoder + "/modules.json")
        #expect(mkfifo(encoder + "/modules.json", 0o644) == 0)
        try writeFile(dir.file("text.txt"), Array("hello world, hello world".utf8))
        let withPipe = dir.file("pipe-tokenizer")
        try fm.createDirectory(atPath: withPipe, withIntermediateDirectories: false)
        #expect(mkfifo(withPipe + "/tokenizer.json", 0o644) == 0)
        let model = Repo.fixture("tiny-gpt2")
        let cases: [([String], String)] = [
            (["convert", tokenized, dir.file("x.gguf")], "\(tokenized)/tokenizer_config.json: is a named pipe (FIFO), not a file"),
            (["forward", encoder, "--tokens", "1,2"], "\(encoder)/modules.json: is a named pipe (FIFO), not a file"),
            (["quantize", model, dir.file("q.gguf"), "--scheme", "q4_0", "--imatrix", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["verify", tokenized, tokenized, "--text", dir.file("text.txt"), "--reference-logits", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["verify", tokenized, tokenized, "--text", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["quantize", tokenized, dir.file("c.gguf"), "--scheme", "q4_0", "--calibrate", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["tokenize", tokenized, "--file", fifo], "\(fifo): is a named pipe (FIFO), not a file"),
            (["tokenize", fifo, "--text", "hello"], "\(fifo): is a named pipe (FIFO), not a file"),
            (["tokenize", withPipe, "--text", "hello"], "\(withPipe)/tokenizer.json: is a named pipe (FIFO), not a file"),
        ]
        for (args, message) in cases {
            let r = try Self.run(args)
            #expect(!r.hung, "\(args) blocked")
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.hasSuffix(message + "\n") && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        #expect(!fm.fileExists(atPath: dir.file("x.gguf")) && !fm.fileExists(atPath: dir.file("q.gguf")))
    }

    /// A folder carried beside the weights that contains a symbolic link to itself: refused
    /// with one line naming the link (it used to be copied 40 levels deep, then fail with
    /// "No such file or directory" on a path of 40 "self/"), nothing written. Links to files
    /// are still followed (a Hugging Face cache snapshot is made of them).
    @Test func aSymbolicLinkLoopInACompanionFolderIsRefused() throws {
        let dir = TempDir()
        let fm = FileManager.default
        let source = dir.file("model"), target = dir.file("out")
        try fm.copyItem(atPath: Repo.fixture("models/gpt2-a"), toPath: source)
        try fm.createDirectory(atPath: source + "/extra", withIntermediateDirectories: false)
        try writeFile(source + "/extra/notes.txt", Array("notes".utf8))
        #expect(symlink("notes.txt", source + "/extra/link.txt") == 0)
        #expect(symlink(".", source + "/extra/self") == 0)
        let r = try Self.run(["convert", source, target + "/", "--to", "safetensors"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr == "ckpt: error: \(source)/extra/self: a symbolic link to a folder that contains it (a loop); not copied\n")
        #expect(!fm.fileExists(atPath: target))
        // Without the loop the folder is carried, the linked file as a file.
        try fm.removeItem(atPath: source + "/extra/self")
        let ok = try Self.run(["convert", source, target + "/", "--to", "safetensors"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try readFile(target + "/extra/link.txt") == Array("notes".utf8))
    }
}
