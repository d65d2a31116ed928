// ckpt: convert, shrink and verify Transformer checkpoints.
//
// Exit status: 0 success; 1 a verification gate failed; 2 bad input or usage (one line on
// stderr naming the file, the tensor and what is wrong). Never a crash for bad input.

import ArgumentParser
import Formats
import Foundation

@main
struct Ckpt: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "ckpt",
        abstract: "Convert, shrink and verify Transformer checkpoints.",
        discussion: """
            Formats: safetensors (single file or sharded Hugging Face directory) and \
            .ckz (ckpt's compressed format, docs/ckz.md). HDF5, GGUF, NumPy and PyTorch are recognised and arrive in later versions.
            Exit status: 0 ok, 1 verification gate failed, 2 bad input or usage.
            """,
        version: "ckpt \(version) (libhdf5 \(LinkedLibraries.hdf5Version))",
        subcommands: [Inspect.self, Convert.self]
    )

    static func main() {
        installSignalHandlers()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(code: report(error))
        }
    }

    /// Prints an error as one line (or ArgumentParser's usage text) and returns the exit code.
    static func report(_ error: any Error) -> Int32 {
        if let code = error as? ExitCode { return code.rawValue }
        if error is CLIError || error is FileError || error is IOError || error is CheckpointError {
            FileHandle.standardError.write(Data("ckpt: error: \(error)\n".utf8))
            return 2
        }
        let code = Ckpt.exitCode(for: error)
        let message = Ckpt.fullMessage(for: error)
        if code == .success {
            if !message.isEmpty { print(message) }
            return 0
        }
        // Usage errors and anything unexpected: bad input, status 2 (never ArgumentParser's 64).
        FileHandle.standardError.write(Data((message.isEmpty ? "ckpt: error: \(error)" : message).utf8 + [0x0A]))
        return 2
    }

    static func exit(code: Int32) -> Never {
        fflush(nil)  // flushes every output stream, stdout included
        Foundation.exit(code)
    }
}

/// Errors the CLI itself detects (usage that parses but makes no sense).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// On SIGINT/SIGTERM, remove temporary outputs before exiting, so an interrupted run
/// leaves nothing behind. Handlers run on a dispatch queue, not in signal context.
private nonisolated(unsafe) var signalSources: [DispatchSourceSignal] = []

func installSignalHandlers() {
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            TempFiles.shared.removeAll()
            FileHandle.standardError.write(Data("\nckpt: interrupted; no output written\n".utf8))
            Foundation.exit(128 + sig)
        }
        source.resume()
        signalSources.append(source)
    }
}
