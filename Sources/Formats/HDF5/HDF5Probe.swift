// Probing untrusted HDF5 files in a child process before opening them in this one.
//
// Why: libhdf5 parses a file's structure (superblock, object headers, B-trees, heaps,
// datatype and dataspace messages, filter pipelines) with checks written for honest files;
// fuzzing campaigns keep finding inputs that make it read out of bounds or recurse without
// end (the CVE list for 1.10 is long). A crash there would take the whole ckpt process down
// with it, and no error handling in Swift can catch a SIGSEGV.
//
// What: before an HDF5 file is opened in process, the executable is re-run with a hidden
// subcommand (`ckpt __hdf5-probe FILE`) that performs the same structure walk the reader does
// (every group, link, attribute, datatype, dataspace, filter pipeline, and each chunked
// dataset's chunk index through H5Dget_storage_size) under limits: no core dump, 4 GiB of
// address space, and a time limit (60 s, or CKPT_HDF5_PROBE_TIMEOUT seconds). If the child
// dies from a signal or runs out of time, the file is refused with one clear error; if it
// exits normally (success or a clean error), the parent walks the file itself, which then
// gives the same result without risk. Re-executing (rather than fork() alone) gives the
// child a fresh, single-threaded process: forking a multi-threaded Swift process and running
// Swift code in the child is not safe.
//
// Not covered: raw data is read in process, after the probe, through libhdf5's reads (which
// bound every address by the file's end of allocation) and the allow-listed decoders only
// (zlib's inflate, shuffle, fletcher32). A file changed between probe and open is outside
// the threat model. Library users who cannot re-execute a binary get in-process reading
// (the default); the CLI configures the probe at start-up.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public enum HDF5Probe {
    public struct Sandbox: Sendable {
        /// The executable to run and the arguments before the file's path.
        public var executable: String
        public var arguments: [String]
        public var timeout: Double
        public init(executable: String, arguments: [String], timeout: Double = 60) {
            self.executable = executable
            self.arguments = arguments
            self.timeout = timeout
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var sandbox: Sandbox?

    /// Sets (or clears) the child-process probe used before every HDF5 file is opened.
    public static func configure(_ s: Sandbox?) { lock.withLock { sandbox = s } }

    /// The child's side: limits, then the structure walk. Returns the exit status (0 ok,
    /// 2 a clean error, printed as one line on stderr).
    public static func runChild(path: String) -> Int32 {
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        _ = setrlimit(Int32(RLIMIT_CORE.rawValue), &none)
        var space = rlimit(rlim_cur: 4 << 30, rlim_max: 4 << 30)
        _ = setrlimit(Int32(RLIMIT_AS.rawValue), &space)
        do {
            try HDF5.probeStructure(path: path)
            return 0
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            return 2
        }
    }

    /// Runs the probe, if configured; throws if the child crashed or timed out.
    static func check(path: String) throws(HDF5Error) {
        guard let s = lock.withLock({ sandbox }) else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: s.executable)
        process.arguments = s.arguments + [path]
        // No crash report from Swift's backtracer: the child's death is the expected outcome
        // of a hostile file, and the report would only cost time.
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do { try process.run() } catch { throw .probeFailed("cannot start \(s.executable): \(ErrorText.line(error))") }
        if done.wait(timeout: .now() + s.timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            done.wait()
            throw .probeTimedOut(seconds: s.timeout)
        }
        switch process.terminationReason {
        case .uncaughtSignal:
            let sig = process.terminationStatus
            if sig == SIGINT || sig == SIGTERM {
                // Ctrl-C reaches the whole process group: this process was interrupted too.
                // Its own handling (the CLI's: clean up, one line, 130/143) decides, not a
                // "probe crashed" error racing it.
                kill(getpid(), sig)
                Thread.sleep(forTimeInterval: 5)
            }
            throw .probeCrashed(signal: sig)
        case .exit:
            // 0: fine. 2: a clean error, which the in-process walk reproduces and reports.
            guard process.terminationStatus == 0 || process.terminationStatus == 2 else {
                throw .probeFailed("the probe exited with status \(process.terminationStatus)")
            }
        @unknown default:
            throw .probeFailed("the probe ended abnormally")
        }
    }
}
