// PyTorch `torch.save` checkpoints (read) and TorchScript archives (recognised, to say what
// they are) in the format registry.

import CkptCore
import Foundation

extension CheckpointFormat {
    public static let pytorch = CheckpointFormat(PyTorchHandler())
    /// A TorchScript archive (`torch.jit.save`): recognised to say what it is, not read.
    public static let torchscript = CheckpointFormat(TorchScriptHandler())
}

struct PyTorchHandler: FormatHandler {
    var name: String { "pytorch" }
    var displayName: String { "PyTorch" }
    var extensions: [String] { ["bin", "pt", "pth"] }
    var isReadable: Bool { true }
    var isWritable: Bool { false }
    var acceptsStateDictKey: Bool { true }

    func sniff(_ p: FormatProbe) -> Bool {
        // torch.save's zip: one archive folder holding data.pkl.
        if let names = p.zipMembers { return names.contains { $0.hasSuffix("/data.pkl") } }
        // torch.save's legacy format starts with the pickled magic number: PROTO 2..5,
        // LONG1 of 10 bytes, the number.
        guard p.byte(at: 0) == 0x80, let proto = p.byte(at: 1), (2...5).contains(proto) else { return false }
        // Protocol 4 and 5 may open a FRAME (0x95 and a u64 length) first.
        let at = proto >= 4 && p.byte(at: 2) == 0x95 ? 11 : 2
        return p.starts(with: [0x8A, 0x0A] + PyTorch.legacyMagic, at: at)
    }

    /// Any other zip, or any other pickle: PyTorch's reader says what it is.
    func fallbackSniff(_ p: FormatProbe) -> Bool { p.isZip || p.head.first == 0x80 }

    func read(path: String, options: ReadOptions) throws -> WeightGraph { try PyTorch.read(path: path, key: options.key) }

    /// transformers' `pytorch_model.bin`, sharded with an index or single.
    func readDirectory(_ dir: String, options: ReadOptions) throws -> WeightGraph? {
        let fm = FileManager.default
        let index = dir + "/" + PyTorch.indexName
        if fm.fileExists(atPath: index) {
            return try ShardedSafetensors.read(indexPath: index, readShard: { shard in
                try FormatRegistry.naming(shard) { try PyTorch.read(path: shard, key: options.key) }
            })
        }
        let single = dir + "/" + PyTorch.singleName
        if fm.fileExists(atPath: single) { return try FormatRegistry.naming(single) { try PyTorch.read(path: single, key: options.key) } }
        return nil
    }
}

struct TorchScriptHandler: FormatHandler {
    var name: String { "torchscript" }
    var displayName: String { "TorchScript" }
    var extensions: [String] { [] }  // shares .pt with torch.save files
    var isReadable: Bool { false }
    var isWritable: Bool { false }

    /// torch.jit.save: the pickled module plus its code and constants.
    func sniff(_ p: FormatProbe) -> Bool {
        guard let names = p.zipMembers else { return false }
        return names.contains { $0.hasSuffix("/constants.pkl") } && names.contains { $0.contains("/code/") }
    }

    func read(path: String, options: ReadOptions) throws -> WeightGraph { throw CheckpointError.torchScript }
}
