// TempFiles: the temporary paths of this process's unfinished outputs, and the one lock
// under which they are created, published (renamed into place) and removed.
//
// The CLI's SIGINT/SIGTERM handler (a thread of its own, not a signal context) calls
// `interrupt()`: it takes the lock and never gives it back, removes every registered path
// and returns what was already published; the caller then ends the process with _exit.
// Because creation and publication hold the same lock, no temporary path can appear after
// the removal, and no output is half-published: each target holds its old content or its
// complete new content. Threads that reach a guarded step after that simply wait for the
// _exit.
//
// Names: `.<target name>.ckpt-tmp-<pid>-<random>` beside the target. `removeStale` deletes
// those of processes that no longer exist (left by SIGKILL or a crash) — one host's process
// ids are assumed, as for lock files.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public final class TempFiles: @unchecked Sendable {
    public static let shared = TempFiles()

    private var mutex = pthread_mutex_t()
    private var paths: Set<String> = []
    private var published: [String] = []

    private init() { pthread_mutex_init(&mutex, nil) }

    private func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    static let marker = ".ckpt-tmp-"

    /// A fresh temporary name for `name` in `dir`.
    static func tempName(dir: String, name: String) -> String {
        dir + "/." + name + marker + "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Creates `path` with `make` (open with O_CREAT|O_EXCL, mkdir, ...), registering it when
    /// that succeeds. Returns make's result and errno.
    func create(_ path: String, _ make: (String) -> Int32) -> (Int32, Int32) {
        let result = locked { () -> (Int32, Int32) in
            let r = make(path)
            let error = errno
            if r >= 0 { paths.insert(path) }
            return (r, error)
        }
        if result.0 >= 0 { Self.testPoint("created") }
        return result
    }

    /// Runs a step that creates something inside a registered temporary directory (a link,
    /// a subdirectory) or hands a reserved path to a library that opens it (libhdf5).
    func guarded<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R { try locked(body) }

    /// Renames `temp` to `target` with `move` (rename, or an exchange of directories) and
    /// records the target as published. Returns 0 or the errno of the failed move. With
    /// `keepRegistered` the temporary name stays registered (after an exchange it holds the
    /// old content, still to be removed).
    func publish(_ temp: String, as target: String, keepRegistered: Bool = false,
                 _ move: (String, String) -> Int32) -> Int32 {
        let error = locked { () -> Int32 in
            guard move(temp, target) == 0 else { return errno == 0 ? EIO : errno }
            if !keepRegistered { paths.remove(temp) }
            // A file moved into place inside a staging directory is not an output yet.
            if !paths.contains(where: { target.hasPrefix($0 + "/") }) { published.append(target) }
            return 0
        }
        if error == 0 { Self.testPoint("published") }
        return error
    }

    /// Removes a temporary path (file or directory tree) that is not needed any more and
    /// forgets it.
    func remove(_ path: String) {
        locked {
            Self.removeTree(path)
            paths.remove(path)
        }
    }

    /// For the signal handler: takes the lock for good, removes every temporary path and
    /// returns the targets already published by this process. Never call it from a thread
    /// that holds the lock.
    public func interrupt() -> [String] {
        pthread_mutex_lock(&mutex)
        for p in paths { Self.removeTree(p) }
        paths.removeAll()
        return published
    }

    /// Waits until no output step is in progress and keeps any from starting: for the
    /// process's normal end, so an interruption cannot report on a run that already ended.
    public func holdForExit() { pthread_mutex_lock(&mutex) }

    // MARK: Fault injection

    /// For the interruption tests (Tests/CLITests/InterruptionTests.swift): with
    /// CKPT_TEST_PAUSE_AT=NAME:N in the environment, every point an output passes is announced
    /// on stderr as `ckpt-test-point NAME K`, and the N-th point called NAME sleeps for a
    /// minute, so a test can signal or kill the process exactly there. Unset: nothing happens.
    static let pauseAt: (name: String, count: Int)? = {
        guard let value = getenv("CKPT_TEST_PAUSE_AT").map({ String(cString: $0) }) else { return nil }
        let parts = value.split(separator: ":")
        return (String(parts.first ?? ""), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()
    private static let pointLock = NSLock()
    nonisolated(unsafe) private static var pointCounts: [String: Int] = [:]

    static func testPoint(_ name: String) {
        guard let pause = pauseAt else { return }
        let k = pointLock.withLock { () -> Int in
            pointCounts[name, default: 0] += 1
            return pointCounts[name]!
        }
        let line = Array("ckpt-test-point \(name) \(k)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if pause.name == name && pause.count == k { sleep(60) }
    }

    /// Removes a file, or a directory and everything under it, without following links.
    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if let names = try? FileManager.default.contentsOfDirectory(atPath: path) {
                for n in names { removeTree(path + "/" + n) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Removes the temporary paths that dead processes left in `dir` (kill -9, a crash).
    public static func removeStale(in dir: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where name.hasPrefix(".") {
            guard let r = name.range(of: marker, options: .backwards) else { continue }
            let parts = name[r.upperBound...].split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, UInt32(parts[1]) != nil,
                  pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { removeTree(dir + "/" + name) }
        }
    }
}
