// The other files of a model directory: tokenizer files, generation config, chat templates,
// sentence-transformers modules (modules.json, 1_Pooling/, ...), README ... A directory
// output carries them over byte for byte, so a converted or shrunk model is still a whole
// project. Weight files (every format ckpt or the ecosystem writes) and folders holding
// them (onnx/, openvino/: exports of the original weights, stale after any change) are not
// carried; neither is config.json (the writer writes the graph's, which may have changed)
// nor hidden files (.git, .cache).

import CkptCore
import Foundation
import Transformer
#if canImport(Glibc)
import Glibc
#endif

public enum Companions {
    /// Extensions of weight files, in any framework.
    static let weightExtensions: Set<String> = ["safetensors", "bin", "pt", "pth", "ckpt", "h5", "hdf5", "keras", "msgpack",
                                                "gguf", "ckz", "onnx", "onnx_data", "ot", "npz", "npy", "tflite", "pb", "mlmodel",
                                                "mlpackage", "pdparams"]
    /// Names written by the directory writer itself.
    static let writtenByWriter: Set<String> = ["config.json", ShardedSafetensors.indexName, PyTorch.indexName]

    static func isWeightFile(_ name: String) -> Bool {
        let lower = name.lowercased()
        if lower.hasSuffix(".index.json") { return true }  // shard indexes of any weight format
        // pytorch_model.bin, training_args.bin is a pickle of arguments, not weights.
        if lower == "training_args.bin" { return false }
        return weightExtensions.contains(URL(fileURLWithPath: lower).pathExtension)
    }

    /// Whether `path` (a folder) holds any weight file, at any depth (bounded).
    static func holdsWeights(_ path: String) -> Bool {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return false }
        var seen = 0
        while let next = walker.nextObject() as? String {
            seen += 1
            if seen > 10_000 || isWeightFile(URL(fileURLWithPath: next).lastPathComponent) { return true }
        }
        return false
    }

    /// The files and folders of model directory `dir` that a directory output carries, by
    /// name, sorted.
    public static func list(in dir: String) -> [(name: String, source: String)] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        var out: [(String, String)] = []
        for name in names where !name.hasPrefix(".") && !writtenByWriter.contains(name) {
            let path = dir + "/" + name
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { continue }
            if isDir.boolValue ? holdsWeights(path) : isWeightFile(name) { continue }
            out.append((name, path))
        }
        return out
    }

    /// Moves the folders among `names` that exist in `dir` to hidden names beside them;
    /// returns (name, hidden path) pairs.
    static func moveAsideFolders(_ names: [String], in dir: String) -> [(name: String, aside: String)] {
        var moved: [(String, String)] = []
        for name in names {
            var isDir: ObjCBool = false
            let path = dir + "/" + name
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else { continue }
            let aside = dir + "/." + name + ".ckpt-old-\(getpid())"
            if rename(path, aside) == 0 { moved.append((name, aside)) }
        }
        return moved
    }

    static func restore(_ moved: [(name: String, aside: String)], in dir: String) {
        for m in moved where !FileManager.default.fileExists(atPath: dir + "/" + m.name) { _ = rename(m.aside, dir + "/" + m.name) }
    }

    static func removeAside(_ moved: [(name: String, aside: String)]) {
        for m in moved { try? FileManager.default.removeItem(atPath: m.aside) }
    }

    /// Copies a file (byte for byte) or a folder (recursively) to `target`. Symbolic links are
    /// followed (a Hugging Face cache snapshot is links into its blobs), except one that leads
    /// back to a folder being copied: refused, rather than copied ever deeper until the path is
    /// too long. `ancestors`: (device, inode) of the folders above `source`.
    static func copy(_ source: String, to target: String, ancestors: Set<[UInt64]> = []) throws {
        var st = stat()
        guard stat(source, &st) == 0 else { throw IOError.cannotOpen(path: source, errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let id = [UInt64(st.st_dev), UInt64(st.st_ino)]
            guard !ancestors.contains(id) else { throw IOError.linkLoop(path: source) }
            guard mkdir(target, 0o755) == 0 else { throw IOError.cannotCreate(path: target, errno: errno) }
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: source)) ?? []).sorted() {
                try copy(source + "/" + name, to: target + "/" + name, ancestors: ancestors.union([id]))
            }
            return
        }
        let file = try MappedFile(path: source)
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IOError.cannotCreate(path: target, errno: errno) }
        defer { close(fd) }
        try file.withBytes { (b) throws(IOError) in
            var done = 0
            while done < b.count {
                let n = write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw IOError.writeFailed(path: target, errno: errno)
                }
                done += n
            }
        }
    }
}

extension SentencePooling {
    /// `read(directory:file:)` on the directory's files as ckpt reads every optional file of a
    /// model directory: FIFOs and devices refused before they can block, at most 16 MiB each.
    public static func read(directory: String) throws -> SentencePooling? {
        try read(directory: directory) { try RegularFile.readIfPresent($0, cap: 16 << 20) }
    }
}
