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
            Formats: safetensors (single file or sharded Hugging Face directory). \
            HDF5, .ckz, GGUF, NumPy and PyTorch are recognised and arrive in later versions.
            Exit status: 0 ok, 1 verification gate failed, 2 bad input or usage.
            """,
        version: "ckpt \(version) (libhdf5 \(LinkedLibraries.hdf5Version))",
        subcommands: [Inspect.self, Convert.self, Forward.self, VerifyCommand.self, DiffCommand.self, Run.self, Distill.self]
    )

    static func main() {
        installSignalHandlers()
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            // Help and version: status 0. Usage errors: ArgumentParser's message, status 2
            // (never its default 64).
            let message = Ckpt.fullMessage(for: error)
            if Ckpt.exitCode(for: error) == .success {
                if !message.isEmpty { print(message) }
                exit(code: 0)
            }
            FileHandle.standardError.write(Data((message + "\n").utf8))
            exit(code: 2)
        }
        do {
            try command.run()
        } catch let code as ExitCode {
            exit(code: code.rawValue)
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // `ckpt --help` and validation: ArgumentParser's own errors, raised while running.
            let message = Ckpt.fullMessage(for: error)
            if Ckpt.exitCode(for: error) == .success {
                print(message)
                exit(code: 0)
            }
            FileHandle.standardError.write(Data((message + "\n").utf8))
            exit(code: 2)
        } catch {
            // Anything a command throws is bad input: one line naming the file and what is
            // wrong (the errors carry the tensor), status 2.
            let line = "\(error)".replacingOccurrences(of: "\n", with: " ")
            FileHandle.standardError.write(Data("ckpt: error: \(line)\n".utf8))
            exit(code: 2)
        }
        exit(code: 0)
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
