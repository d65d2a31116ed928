// .ckz in the format registry.

import CkptCore

extension CheckpointFormat {
    public static let ckz = CheckpointFormat(CKZHandler())
}

struct CKZHandler: FormatHandler {
    var name: String { "ckz" }
    var displayName: String { ".ckz" }
    var extensions: [String] { ["ckz"] }
    var isReadable: Bool { true }
    var isWritable: Bool { true }

    func sniff(_ p: FormatProbe) -> Bool { p.starts(with: CKZ.magic) }

    func read(path: String, options: ReadOptions) throws -> WeightGraph { try CKZ.read(path: path, jobs: options.jobs) }

    func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws {
        try CKZ.write(graph, to: target, options: options.ckz, progress: options.progress)
    }
}
