// Fault injection (issue 19 item 5, issue 13 defect 5): SIGINT, SIGTERM and SIGKILL at every
// point an output passes (temporary path created, buffer written, staged directory filled,
// renamed into place, directories exchanged), for every writable format, file and directory
// outputs, new and replacing an existing one; a full disk and a read-only target (small
// tmpfs mounts, as root); input == output. Nothing partial or temporary may stay, an
// existing output is intact or completely replaced, and the exit status and the one line
// are the documented ones.
//
// The points come from the binary itself: with CKPT_TEST_PAUSE_AT=NAME:N it announces each
// point on stderr (`ckpt-test-point NAME K`) and sleeps at the N-th NAME, where the test
// signals it (TempFiles.testPoint). A first run lists the points of each output.

#if canImport(Glibc)
import Glibc
#endif
import CkptCore
import Foundation
import Testing
import TestSupport

/// A ckpt process stopped at a test point and then signalled.
struct SignalledRun {
    var exitStatus: Int32?      // nil when killed by a signal
    var signal: Int32?
    var lines: [String]         // stderr, test-point announcements removed
    var points: [String]        // the announcements, in order ("created 1", ...)
    var paused: Bool            // the point was reached
}

enum Interrupt {
    /// Runs ckpt with `arguments`; when it announces `point` (e.g. "published:1"), sends
    /// `sig` and collects how it ended. With point "none:0" it runs to the end.
    static func run(_ arguments: [String], point: String, signal sig: Int32) throws -> SignalledRun {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CkptBinary.path)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["CKPT_TEST_PAUSE_AT"] = point
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let parts = point.split(separator: ":")
        let wanted = "ckpt-test-point \(parts[0]) \(parts.count > 1 ? String(parts[1]) : "1")"
        var text = ""
        var paused = false
        let handle = err.fileHandleForReading
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if !paused, text.split(separator: "\n").contains(where: { $0 == wanted }), text.hasSuffix("\n") {
                paused = true
                kill(p.processIdentifier, sig)
            }
        }
        p.waitUntilExit()
        let all = text.split(separator: "\n").map(String.init)
        let points = all.filter { $0.hasPrefix("ckpt-test-point ") }.map { String($0.dropFirst("ckpt-test-point ".count)) }
        let lines = all.filter { !$0.hasPrefix("ckpt-test-point ") && !$0.isEmpty }
        let bySignal = p.terminationReason == .uncaughtSignal
        return SignalledRun(exitStatus: bySignal ? nil : p.terminationStatus, signal: bySignal ? p.terminationStatus : nil,
                            lines: lines, points: points, paused: paused)
    }

    /// Hidden temporary entries (ours) in a directory.
    static func temporaries(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".ckpt-tmp-") }.sorted()
    }

    /// Every file under `path` (a file or a directory) with its bytes' digest, for "intact".
    static func snapshot(_ path: String) throws -> [String: String] {
        var out: [String: String] = [:]
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [:] }
        if !isDir.boolValue { return ["": try digest(path)] }
        for name in try FileManager.default.subpathsOfDirectory(atPath: path).sorted() {
            var d: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &d)
            out[name] = d.boolValue ? "dir" : try digest(path + "/" + name)
        }
        return out
    }

    static func digest(_ path: String) throws -> String {
        let bytes = try readFile(path)
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return "\(bytes.count):\(h)"
    }

    /// A model of a few MB (several 1 MiB write buffers, several 1 MB shards): GPT-2 names
    /// so every writer (GGUF's renaming included) takes it.
    static func model(in dir: TempDir) throws -> String {
        let src = dir.file("model")
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        var header: [String] = []
        var data: [UInt8] = []
        var rng = SplitMix64(seed: 7)
        let names = (0..<4).flatMap { i in ["transformer.h.\(i).mlp.c_fc.weight", "transformer.h.\(i).mlp.c_proj.weight"] }
        for name in names {
            let count = 64 * 1024  // 256 kB of f32 each... times 8 = 2 MiB
            let start = data.count
            for _ in 0..<count { data += withUnsafeBytes(of: Float(Double(rng.next() % 2000) / 1000 - 1).bitPattern.littleEndian) { Array($0) } }
            header.append("\"\(name)\":{\"dtype\":\"F32\",\"shape\":[256,256],\"data_offsets\":[\(start),\(data.count)]}")
        }
        var text = "{" + header.joined(separator: ",") + "}"
        while text.utf8.count % 8 != 0 { text += " " }
        try writeFile(src + "/model.safetensors", safetensorsBytes(header: text, data: data))
        return src
    }
}

/// Outputs to interrupt: name, extra arguments.
let interruptedOutputs: [(String, [String])] = [
    ("x.safetensors", []), ("x.h5", []), ("x.ckz", []), ("x.gguf", []), ("x.npz", []),
    ("shards", ["--max-shard-size", "1MB"]),
]

@Suite(.serialized) struct InterruptionTests {
    /// Stops a convert at each of its points with SIGINT, SIGTERM or SIGKILL (in turn; all
    /// three at the final rename), for every output kind, into a new target.
    @Test(arguments: interruptedOutputs.map(\.0))
    func newOutputIsCompleteOrAbsent(output: String) throws {
        let dir = TempDir()
        let model = try Interrupt.model(in: dir)
        let extra = interruptedOutputs.first { $0.0 == output }!.1
        let target = dir.file(output)
        let args = ["convert", model, target, "--quiet"] + extra
        let survey = try Interrupt.run(args, point: "none:0", signal: SIGINT)
        #expect(survey.exitStatus == 0, "\(survey.lines)")
        let complete = try Interrupt.snapshot(target)
        let points = survey.points
        #expect(points.contains { $0.hasPrefix("created") } && points.contains { $0.hasPrefix("published") })
        // HDF5 files record creation times: compare them by content (ckpt diff).
        let reference = dir.file("complete-" + output)
        try FileManager.default.moveItem(atPath: target, toPath: reference)
        func isComplete(_ now: [String: String]) throws -> Bool {
            if now == complete { return true }
            guard output.hasSuffix(".h5"), now.keys.sorted() == complete.keys.sorted() else { return false }
            return try CkptBinary.run("diff", reference, target).status == 0
        }
        let signals: [Int32] = [SIGINT, SIGTERM, SIGKILL]
        for (i, point) in points.enumerated() {
            let isLast = i == points.count - 1
            for sig in isLast ? signals : [signals[i % 3]] {
                let spec = point.replacingOccurrences(of: " ", with: ":")
                let r = try Interrupt.run(args, point: spec, signal: sig)
                let context = Comment(rawValue: "\(output) at \(point), signal \(sig): \(r.lines)")
                #expect(r.paused, context)
                let now = try Interrupt.snapshot(target)
                let whole = try isComplete(now)
                #expect(now.isEmpty || whole, context)
                if sig == SIGKILL {
                    #expect(r.signal == SIGKILL, context)
                } else {
                    #expect(r.exitStatus == 128 + sig, context)
                    #expect(r.lines.count == 1, context)
                    let expected = now.isEmpty ? "no output written" : "complete before it: \(target)"
                    #expect(r.lines.first?.hasPrefix("ckpt: interrupted (\(sig == SIGINT ? "SIGINT" : "SIGTERM"))") == true, context)
                    #expect(r.lines.first?.contains(expected) == true, context)
                    #expect(Interrupt.temporaries(dir.path).isEmpty, context)
                }
                // The final rename done means complete; the run after a kill -9 removes what
                // the dead process left.
                if isLast { #expect(whole, context) }
                if sig == SIGKILL {
                    let again = try CkptBinary.run(["convert", model, dir.file("again.safetensors"), "--quiet"])
                    #expect(again.status == 0)
                    #expect(Interrupt.temporaries(dir.path).isEmpty, context)
                }
                try? FileManager.default.removeItem(atPath: target)
            }
        }
    }

    /// Replacing an existing model directory (sharded f32 → one f16 file), interrupted or
    /// killed at every point: the directory is the old one or the new one, never a mix;
    /// files that are not weights (tokenizer.json, a subdirectory) survive either way.
    @Test func existingDirectoryIsOldOrNew() throws {
        let dir = TempDir()
        let model = try Interrupt.model(in: dir)
        let target = dir.file("out")
        func prepareOld() throws {
            try? FileManager.default.removeItem(atPath: target)
            let r = try CkptBinary.run(["convert", model, target, "--max-shard-size", "1MB", "--quiet"])
            #expect(r.status == 0, "\(r.stderr)")
            try writeFile(target + "/tokenizer.json", Array("{}".utf8))
            try FileManager.default.createDirectory(atPath: target + "/1_Pooling", withIntermediateDirectories: true)
            try writeFile(target + "/1_Pooling/config.json", Array("{\"pooling\": 1}".utf8))
        }
        try prepareOld()
        let old = try Interrupt.snapshot(target)
        #expect(old.keys.contains("model-00002-of-00003.safetensors"))
        let args = ["convert", model, target, "--dtype", "f16", "--quiet"]
        let survey = try Interrupt.run(args, point: "none:0", signal: SIGINT)
        #expect(survey.exitStatus == 0, "\(survey.lines)")
        let new = try Interrupt.snapshot(target)
        #expect(new.keys.sorted() == ["1_Pooling", "1_Pooling/config.json", "model.safetensors", "tokenizer.json"])
        #expect(survey.points.contains("exchanged 1"))
        let signals: [Int32] = [SIGINT, SIGTERM, SIGKILL]
        for (i, point) in survey.points.enumerated() {
            let late = point.hasPrefix("exchanged") || point.hasPrefix("carried") || i == survey.points.count - 1
            for sig in late ? signals : [signals[i % 3]] {
                try prepareOld()
                let r = try Interrupt.run(args, point: point.replacingOccurrences(of: " ", with: ":"), signal: sig)
                let context = Comment(rawValue: "at \(point), signal \(sig): \(r.lines)")
                #expect(r.paused, context)
                let now = try Interrupt.snapshot(target)
                #expect(now == old || now == new, context)
                if sig != SIGKILL {
                    #expect(r.exitStatus == 128 + sig, context)
                    #expect(r.lines.count == 1, context)
                    #expect(Interrupt.temporaries(dir.path).isEmpty, context)
                }
                if point.hasPrefix("exchanged") { #expect(now == new, context) }
                // inspect --check accepts what is there (old or new, both whole).
                let check = try CkptBinary.run("inspect", target, "--check")
                #expect(check.status == 0, "\(context): \(check.stderr)")
                if sig == SIGKILL {
                    let again = try CkptBinary.run(["convert", model, dir.file("after.safetensors"), "--quiet"])
                    #expect(again.status == 0)
                    #expect(Interrupt.temporaries(dir.path).isEmpty, context)
                }
            }
        }
    }

    /// input == output: interrupted or killed anywhere, the file is the old one or the new
    /// one, and readable.
    @Test func inputEqualsOutput() throws {
        let dir = TempDir()
        let model = try Interrupt.model(in: dir)
        let file = dir.file("same.safetensors")
        try FileManager.default.copyItem(atPath: model + "/model.safetensors", toPath: file)
        let old = try Interrupt.snapshot(file)
        let args = ["convert", file, file, "--dtype", "bf16", "--quiet"]
        let survey = try Interrupt.run(args, point: "none:0", signal: SIGINT)
        #expect(survey.exitStatus == 0, "\(survey.lines)")
        let new = try Interrupt.snapshot(file)
        #expect(new != old)
        for (i, point) in survey.points.enumerated() {
            for sig in [SIGINT, SIGTERM, SIGKILL] where i % 3 == Int(sig) % 3 || i == survey.points.count - 1 {
                try? FileManager.default.removeItem(atPath: file)
                try FileManager.default.copyItem(atPath: model + "/model.safetensors", toPath: file)
                let r = try Interrupt.run(args, point: point.replacingOccurrences(of: " ", with: ":"), signal: sig)
                let now = try Interrupt.snapshot(file)
                #expect(r.paused && (now == old || now == new), "at \(point), signal \(sig): \(r.lines)")
                if sig != SIGKILL { #expect(Interrupt.temporaries(dir.path).isEmpty) }
            }
        }
    }

    /// SIGINT/SIGTERM while libhdf5 is writing (no test point inside the library: signals at
    /// spread-out times): 130/143 and one line, never a libhdf5 message or status 2.
    @Test func hdf5OutputInterruptedAnywhere() throws {
        let dir = TempDir()
        let model = try Interrupt.model(in: dir)
        let target = dir.file("x.h5")
        for i in 0..<12 {
            let sig = i % 2 == 0 ? SIGINT : SIGTERM
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CkptBinary.path)
            p.arguments = ["convert", model, target, "--quiet"]
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            // After the temporary file exists: then the main thread is in libhdf5 or close to it.
            var waited = 0
            while Interrupt.temporaries(dir.path).isEmpty && !FileManager.default.fileExists(atPath: target) && waited < 20_000 {
                usleep(100)
                waited += 1
            }
            usleep(UInt32(i * 2_000))
            kill(p.processIdentifier, sig)
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let lines = text.split(separator: "\n").filter { !$0.isEmpty }
            if p.terminationStatus == 0 {
                #expect(lines.isEmpty)  // finished before the signal
            } else {
                #expect(p.terminationStatus == 128 + sig, "\(text)")
                #expect(lines.count == 1 && lines[0].hasPrefix("ckpt: interrupted"), "\(text)")
                #expect(!FileManager.default.fileExists(atPath: target))
            }
            #expect(Interrupt.temporaries(dir.path).isEmpty, "\(text)")
            try? FileManager.default.removeItem(atPath: target)
        }
    }
}

/// Whether this process may mount a tmpfs (root in CI; not in an unprivileged container).
let canMountTmpfs: Bool = {
    guard geteuid() == 0 else { return false }
    let dir = FileManager.default.temporaryDirectory.path + "/ckpt-mount-probe-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    guard let r = try? runProcess("/usr/bin/env", ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]), r.status == 0 else { return false }
    _ = try? runProcess("/usr/bin/env", ["umount", dir])
    return true
}()

/// A small tmpfs mounted for one test, unmounted at the end.
final class SmallDisk {
    let path: String
    init(kilobytes: Int, readOnly: Bool = false) throws {
        path = FileManager.default.temporaryDirectory.path + "/ckpt-disk-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let r = try runProcess("/usr/bin/env", ["mount", "-t", "tmpfs", "-o", "size=\(kilobytes)k" + (readOnly ? ",ro" : ""), "tmpfs", path])
        guard r.status == 0 else { throw SupportError("mount failed: \(r.stderr)") }
    }
    deinit {
        _ = try? runProcess("/usr/bin/env", ["umount", path])
        try? FileManager.default.removeItem(atPath: path)
    }
}

@Suite(.serialized, .enabled(if: canMountTmpfs, "needs root and mount (a tmpfs per test)"))
struct DiskFaultTests {
    /// A 1 MiB disk for a 2 MiB model: every output kind fails with one line, exit 2, and
    /// leaves nothing on the disk; an existing directory output stays as it was.
    @Test(arguments: interruptedOutputs.map(\.0))
    func fullDiskLeavesNothing(output: String) throws {
        let dir = TempDir()
        let model = try Interrupt.model(in: dir)
        let disk = try SmallDisk(kilobytes: 1024)
        let extra = interruptedOutputs.first { $0.0 == output }!.1
        let r = try CkptBinary.run(["convert", model, disk.path + "/" + output, "--quiet"] + extra)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("No space left on device"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path).isEmpty)
    }

    @Test func fullDiskKeepsAnExistingDirectory() throws {
        let dir = TempDir()
        let model = try Interrupt.model(in: dir)
        let disk = try SmallDisk(kilobytes: 3 * 1024)
        let target = disk.path + "/out/"
        let first = try CkptBinary.run(["convert", model, target, "--quiet", "--dtype", "f16"])
        #expect(first.status == 0, "\(first.stderr)")
        let old = try Interrupt.snapshot(target)
        let r = try CkptBinary.run(["convert", model, target, "--quiet"])  // f32: does not fit beside it
        #expect(r.status == 2, "\(r.stderr)")
        #expect(try Interrupt.snapshot(target) == old)
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path) == ["out"])
    }

    @Test(arguments: interruptedOutputs.map(\.0))
    func readOnlyTargetIsRefused(output: String) throws {
        let dir = TempDir()
        let model = try Interrupt.model(in: dir)
        let disk = try SmallDisk(kilobytes: 64, readOnly: true)
        let extra = interruptedOutputs.first { $0.0 == output }!.1
        let r = try CkptBinary.run(["convert", model, disk.path + "/" + output, "--quiet"] + extra)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("Read-only file system"), "\(r.stderr)")
    }
}

@Suite struct MixedDirectoryTests {
    /// What a writer killed while moving shards one by one used to leave (issue 19): the new
    /// index and first shard over old shards of the same names, or a leftover shard of an
    /// earlier split. Each shard is valid alone; `inspect --check` must say it is a mix.
    @Test func inspectCheckRejectsShardsOfTwoConversions() throws {
        let dir = TempDir()
        let model = try Interrupt.model(in: dir)
        let f32 = dir.file("f32"), f16 = dir.file("f16")
        #expect(try CkptBinary.run(["convert", model, f32, "--max-shard-size", "1MB", "--quiet"]).status == 0)
        #expect(try CkptBinary.run(["convert", model, f16, "--max-shard-size", "500KB", "--dtype", "f16", "--quiet"]).status == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: f16).sorted()
        #expect(names.contains("model-00003-of-00003.safetensors"), "\(names)")
        #expect(try CkptBinary.run("inspect", f32, "--check").status == 0)
        #expect(try CkptBinary.run("inspect", f16, "--check").status == 0)

        // New index and first shard, old second and third shards (same names, other dtype).
        let mixed = dir.file("mixed")
        try FileManager.default.copyItem(atPath: f32, toPath: mixed)
        for name in ["model.safetensors.index.json", "model-00001-of-00003.safetensors"] {
            try FileManager.default.removeItem(atPath: mixed + "/" + name)
            try FileManager.default.copyItem(atPath: f16 + "/" + name, toPath: mixed + "/" + name)
        }
        #expect(try CkptBinary.run("inspect", mixed).status == 0)  // each part valid
        let r = try CkptBinary.run("inspect", mixed, "--check")
        #expect(r.status == 2)
        #expect(r.stderr.contains("total_size") && r.stderr.contains("shards of different conversions?"), "\(r.stderr)")

        // A leftover shard of an earlier split beside a complete checkpoint.
        let leftover = dir.file("leftover")
        #expect(try CkptBinary.run(["convert", model, leftover, "--max-shard-size", "1500KB", "--quiet"]).status == 0)
        try FileManager.default.copyItem(atPath: f32 + "/model-00003-of-00003.safetensors",
                                         toPath: leftover + "/model-00003-of-00003.safetensors")
        let l = try CkptBinary.run("inspect", leftover, "--check")
        #expect(l.status == 2)
        #expect(l.stderr.contains("model-00003-of-00003.safetensors is a shard the index does not name"), "\(l.stderr)")
    }
}
