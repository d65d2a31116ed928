// ckpt: convert, shrink and verify Transformer checkpoints.
//
// Exit status: 0 success; 1 a verification gate failed; 2 bad input or usage (one line on
// stderr naming the file, the tensor and what is wrong). Never a crash for bad input.

import ArgumentParser
import CkptCore
import Formats
import Foundation

@main
struct Ckpt: ParsableCommand {
    static let version = CkptInfo.version

    static let configuration = CommandConfiguration(
        commandName: "ckpt",
        abstract: "Convert, shrink and verify Transformer checkpoints.",
        discussion: """
            Formats: safetensors (single file or sharded Hugging Face directory), HDF5 \
            (.h5/.hdf5, Keras weight files included; Keras 3 .keras archives read), .ckz (ckpt's compressed format, \
            docs/ckz.md), GGUF, NumPy .npz/.npy, and PyTorch .bin/.pt read without executing \
            anything (also pytorch_model.bin directories).
            Exit status: 0 ok, 1 verification gate failed, 2 bad input or usage.
            """,
        version: "ckpt \(version) (libhdf5 \(LinkedLibraries.hdf5Version))",
        subcommands: [Inspect.self, Convert.self, QuantizeCommand.self, Forward.self, VerifyCommand.self, DiffCommand.self,
                      PruneCommand.self, Distill.self, Run.self, TokenizeCommand.self, HDF5ProbeCommand.self]
    )

    static func main() {
        installSignalHandlers()
        var command: any ParsableCommand
        // libhdf5 is not hardened against malformed files: walk each HDF5 input's structure
        // in a child process first (this executable, hidden subcommand), so a crash there is
        // an error here. See Sources/Formats/HDF5/HDF5Probe.swift.
        let timeout = ProcessInfo.processInfo.environment["CKPT_HDF5_PROBE_TIMEOUT"].flatMap(Double.init) ?? 60
        HDF5Probe.configure(.init(executable: selfExecutable(), arguments: [HDF5ProbeCommand.configuration.commandName!, "--"],
                                  timeout: timeout))
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
            let line = ErrorText.line(error)
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

/// The running executable, for re-executing it as a sandboxed probe.
func selfExecutable() -> String {
    #if os(Linux)
    return "/proc/self/exe"
    #else
    return Bundle.main.executablePath ?? CommandLine.arguments[0]
    #endif
}

/// `ckpt __hdf5-probe FILE`: the child side of the HDF5 probe (hidden).
struct HDF5ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__hdf5-probe", shouldDisplay: false)
    @Argument var path: String
    func run() throws { Ckpt.exit(code: HDF5Probe.runChild(path: path)) }
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
