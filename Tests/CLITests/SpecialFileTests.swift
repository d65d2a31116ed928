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
}
