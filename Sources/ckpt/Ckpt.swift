// ckpt: convert, shrink and verify Transformer checkpoints.
//
// Exit status: 0 success; 1 a verification gate failed; 2 bad input or usage (one line on
// stderr naming the file, the tensor and what is wrong); 130/143 interrupted by SIGINT/SIGTERM
// (one line; no partial or temporary output left). Never a crash for bad input.

import ArgumentParser
import COpenBLAS
import CkptCore
import Formats
import Foundation
import Pipeline

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
        // OpenBLAS's idle workers spin at load time (COpenBLAS/shim.h); stop them until needed.
        _ = blas_thread_shutdown_()
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
            exit(code: 2, error: message)
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
            exit(code: 2, error: message)
        } catch let e as JobError {
            // A job's option, named as the command's flag.
            exit(code: 2, error: "ckpt: error: \(e.flagDescription)")
        } catch {
            // Anything a command throws is bad input: one line naming the file and what is
            // wrong (the errors carry the tensor), status 2.
            exit(code: 2, error: "ckpt: error: \(ErrorText.line(error))")
        }
        exit(code: 0)
    }

    /// The end of every run. Output steps stop first (an interruption arriving now finds the
    /// run over and waits), so the status and the last line are this run's, not a handler's.
    static func exit(code: Int32, error: String? = nil) -> Never {
        TempFiles.shared.holdForExit()
        if let error { FileHandle.standardError.write(Data((error + "\n").utf8)) }
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

/// SIGINT/SIGTERM: the signal is taken by a dispatch source on a serial queue of its own (a
/// thread, not a signal context, never starved by busy work queues). Its handler stops every
/// output step for good and removes the temporary paths (`TempFiles.interrupt`), prints one
/// line and ends the process with `_exit(128 + signal)`: not `exit()`, whose atexit handlers
/// (libhdf5's library shutdown among them) would run while other threads still use them.
private nonisolated(unsafe) var signalSources: [DispatchSourceSignal] = []

func installSignalHandlers() {
    // The HDF5 probe child keeps the default actions: an interrupted probe just dies and the
    // parent, interrupted too, reports (dispositions set to ignore would be inherited).
    if CommandLine.arguments.count > 1, CommandLine.arguments[1] == HDF5ProbeCommand.configuration.commandName {
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        return
    }
    let queue = DispatchQueue(label: "ckpt.signals")
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
        source.setEventHandler { interrupted(by: sig) }
        source.resume()
        signalSources.append(source)
    }
}

private func interrupted(by sig: Int32) -> Never {
    let published = TempFiles.shared.interrupt()
    let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
    let line = published.isEmpty
        ? "ckpt: interrupted (\(name)); no output written"
        : "ckpt: interrupted (\(name)); complete before it: \(published.joined(separator: ", ")); nothing else written"
    // One line, after the progress bar's unfinished one.
    let bytes = Array(("\n" + line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    _exit(128 + sig)
}
