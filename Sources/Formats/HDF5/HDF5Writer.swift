// HDF5: writing a weight graph through libhdf5.
//
// Layout written (readable by h5py, h5dump and ckpt):
//   /                      attributes: the graph's metadata (variable-length UTF-8 strings, in
//                          order) and `ckpt:config`, the model config's JSON text
//   /a/b/c                 one dataset per tensor, in nested groups following the dotted name
//                          (`a.b.c`); little-endian types as in HDF5Types.swift; bf16 and the
//                          8/6/4-bit floats carry `ckpt:dtype`, packed ones `ckpt:shape`
//   tie aliases            extra hard links to the target's dataset (no extra storage)
// Groups track link and attribute creation order, so reading back gives the graph's order.
//
// Names: `a.b.c` goes to `/a/b/c`. Where that is impossible the rest of the name becomes one
// link name with its dots: `a.b` beside `a.b.c` (group `/a/b` exists) is stored as `/a.b`,
// `x..y` as `/x/.y`, so the generic reading (`/` -> `.`) gives the name back. A name holding
// '/' (impossible in an HDF5 link name) is stored under a lookalike (U+2215) and spelled out
// in the dataset's `ckpt:name` attribute. A NUL byte in a name is refused.
//
// Compression (`--compression gzip[=LEVEL]`, level 4 by default as in h5py): chunks of about
// 1 MiB (whole trailing rows where they fit), byte shuffle, then deflate. Without it datasets
// are contiguous, which ckpt (and h5py users via `id.get_offset()`) can memory-map.
// libhdf5 runs its filters on one thread, so ckpt does not hand it the data: it gathers,
// shuffles and zlib-compresses (libdeflate) the chunks itself on all cores, then stores each
// with `H5Dwrite_chunk` (HDF5ChunksUnsafe.swift). The dataset keeps the same filter pipeline
// (shuffle + deflate), so every HDF5 reader decodes the chunks as if libhdf5 had made them.
//
// Data is written in slabs of whole chunk rows straight from the source tensor's bytes
// (memory-mapped for safetensors), one tensor at a time; the file appears under its name
// only when complete (AtomicPath: temporary file beside it, fsync, rename).

import CHDF5
import CkptCore
import Foundation
import OrderedCollections

public struct HDF5WriteOptions: Sendable, Equatable {
    /// deflate level (0-9) for chunked, shuffled, deflated datasets; nil for contiguous ones.
    public var gzipLevel: Int?
    /// Threads compressing chunks (default: all cores); the file's bytes do not depend on it.
    public var jobs: Int
    public init(gzipLevel: Int? = nil, jobs: Int? = nil) {
        self.gzipLevel = gzipLevel
        self.jobs = max(1, jobs ?? ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Parses `gzip` or `gzip=LEVEL` (h5py's default level is 4).
    public static func parse(compression: String) throws(HDF5Error) -> HDF5WriteOptions {
        let parts = compression.lowercased().split(separator: "=", maxSplits: 1).map(String.init)
        guard let kind = parts.first, kind == "gzip" || kind == "deflate" else { throw .invalidCompression(compression) }
        if parts.count == 1 { return .init(gzipLevel: 4) }
        guard let level = Int(parts[1]), (0...9).contains(level) else { throw .invalidCompression(compression) }
        return .init(gzipLevel: level)
    }
}

extension HDF5 {
    /// Target bytes of one chunk when compressing (h5py aims for 16 KiB-1 MiB; larger chunks
    /// compress better and cost fewer index entries for multi-GB tensors). Task-local so the
    /// tests can make small tensors span many chunks.
    @TaskLocal static var chunkBytes = 1 << 20

    /// Where each tensor and tie alias goes: dataset path per name, and the groups to create
    /// (in order). Decided before anything is written; see the header comment for the rules.
    struct Plan {
        /// Groups each name needs, parents first (created when the name is first written, so
        /// the file's creation order follows the graph's order as closely as a tree can).
        var groups: [String: [String]] = [:]
        var paths: [String: String] = [:]       // tensor or alias name -> dataset path
        /// Names stored under a path that does not spell them (a '/' in the name).
        var storedNames: Set<String> = []
    }

    static func plan(_ graph: WeightGraph) throws(HDF5Error) -> Plan {
        var plan = Plan()
        var groups: Set<String> = ["/"]
        var datasets: Set<String> = []
        func join(_ group: String, _ link: String) -> String { group == "/" ? "/" + link : group + "/" + link }
        func place(_ name: String) throws(HDF5Error) {
            if name.isEmpty { throw .invalidTensorName(tensor: name, reason: "empty name") }
            if name.utf8.contains(0) { throw .invalidTensorName(tensor: name, reason: "NUL byte in the name (HDF5 names end at NUL)") }
            // HDF5 link names cannot hold '/': such a name is stored under a lookalike and
            // kept verbatim in the dataset's `ckpt:name` attribute.
            let spelled = !name.contains("/")
            let parts = name.replacingOccurrences(of: "/", with: "\u{2215}").split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            // The deepest placement possible: groups parts[..<k], link name parts[k...].
            var k = parts.count - 1
            while true {
                var group = "/"
                var ok = true
                for part in parts[..<k] {
                    group = join(group, part)
                    if part.isEmpty || datasets.contains(group) { ok = false; break }
                }
                let leaf = parts[k...].joined(separator: ".")
                if ok && !leaf.isEmpty && leaf != "." {
                    var link = join(group, leaf)
                    if !spelled {
                        var n = 1
                        while datasets.contains(link) || groups.contains(link) { n += 1; link = join(group, leaf + "~\(n)") }
                    }
                    if !datasets.contains(link) && !groups.contains(link) {
                        var g = "/"
                        var needed: [String] = []
                        for part in parts[..<k] {
                            g = join(g, part)
                            groups.insert(g)
                            needed.append(g)
                        }
                        plan.groups[name] = needed
                        datasets.insert(link)
                        plan.paths[name] = link
                        if !spelled { plan.storedNames.insert(name) }
                        return
                    }
                }
                if k == 0 { break }
                k -= 1
            }
            throw .nameClash(path: join("/", name), first: name, second: name)
        }
        for name in graph.tensors.keys { try place(name) }
        for alias in graph.ties.keys { try place(alias) }
        for key in graph.metadata.keys where key.hasPrefix("ckpt:") { throw .reservedMetadataKey(key) }
        for (key, value) in graph.metadata where key.utf8.contains(0) || value.utf8.contains(0) {
            throw .invalidMetadata(key: key, reason: "NUL byte in the key or value (HDF5 strings end at NUL)")
        }
        return plan
    }

    /// Chunk dimensions of about `chunkBytes`: leading dimensions shrink first, so a chunk is
    /// a run of whole rows wherever a row fits.
    static func chunkShape(_ shape: [Int], elementSize: Int) -> [Int] {
        var chunk = shape.map { max($0, 1) }
        var bytes = chunk.reduce(elementSize) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        for i in chunk.indices where bytes > chunkBytes {
            let rest = max(1, bytes / chunk[i])
            chunk[i] = max(1, min(chunk[i], chunkBytes / rest))
            bytes = rest.multipliedReportingOverflow(by: chunk[i]).overflow ? Int.max : rest * chunk[i]
        }
        return chunk
    }

    /// Writes a graph as one HDF5 file.
    public static func write(_ graph: WeightGraph, to target: String, options: HDF5WriteOptions = .init(),
                             progress: (any ProgressSink)? = nil) throws {
        let plan = try plan(graph)
        let output = try AtomicPath(target: target)
        try H5.locked { () throws in
            let fcpl = try H5ID(H5Pcreate(chdf5_p_file_create()), .plist, "file creation properties")
            let order = UInt32(H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED)
            try H5.check(H5Pset_link_creation_order(fcpl.raw, order), "file creation properties")
            try H5.check(H5Pset_attr_creation_order(fcpl.raw, order), "file creation properties")
            let file = try H5ID(output.opening { H5Fcreate($0, chdf5_f_acc_trunc(), fcpl.raw, chdf5_p_default()) }, .file, "creating the file")
            // libhdf5 opens without O_CLOEXEC and flock()s the file: a child process started
            // meanwhile (any thread) would inherit the descriptor and keep the lock after
            // we close it, so a later open of the file fails with "unable to lock file".
            var handle: UnsafeMutableRawPointer?
            if H5Fget_vfd_handle(file.raw, chdf5_p_default(), &handle) >= 0, let handle {
                let fd = handle.load(as: Int32.self)
                _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
            }
            let gcpl = try H5ID(H5Pcreate(chdf5_p_group_create()), .plist, "group creation properties")
            try H5.check(H5Pset_link_creation_order(gcpl.raw, order), "group creation properties")
            try H5.check(H5Pset_attr_creation_order(gcpl.raw, order), "group creation properties")
            // Names are UTF-8 (h5py marks non-ASCII names the same way).
            let lcpl = try H5ID(H5Pcreate(chdf5_p_link_create()), .plist, "link creation properties")
            try H5.check(H5Pset_char_encoding(lcpl.raw, H5T_CSET_UTF8), "link creation properties")

            let root = try H5ID(H5Gopen2(file.raw, "/", chdf5_p_default()), .group, "group `/`")
            for (key, value) in graph.metadata {
                try writeString(root.raw, name: key, value: value, context: "metadata `\(key)`")
            }
            if let config = graph.config {
                try writeString(root.raw, name: "ckpt:config", value: String(decoding: config.serialized(), as: UTF8.self),
                                context: "model config")
            }
            var created: Set<String> = []
            let fileID = file.raw
            func createGroups(for name: String) throws(HDF5Error) {
                for group in plan.groups[name] ?? [] where created.insert(group).inserted {
                    let g = try H5ID(H5Gcreate2(fileID, group, lcpl.raw, gcpl.raw, chdf5_p_default()), .group, "group `\(group)`")
                    try g.close("group `\(group)`")
                }
            }
            for tensor in graph.tensors.values {
                try createGroups(for: tensor.name)
                try writeTensor(tensor, path: plan.paths[tensor.name]!, storedName: plan.storedNames.contains(tensor.name),
                                file: file.raw, lcpl: lcpl.raw, gzipLevel: options.gzipLevel, jobs: options.jobs)
                tensor.data.releaseResidentPages()
                progress?.advance(bytes: tensor.byteCount)
            }
            for (alias, target) in graph.ties {
                // A hard link has no attributes of its own, so an alias needing `ckpt:name`
                // cannot be one; plan() gave it a spelled path or the write fails here.
                guard !plan.storedNames.contains(alias) else {
                    throw HDF5Error.invalidTensorName(tensor: alias, reason: "a tied alias cannot contain '/' in HDF5")
                }
                try createGroups(for: alias)
                try H5.check(H5Lcreate_hard(file.raw, plan.paths[target]!, file.raw, plan.paths[alias]!, lcpl.raw, chdf5_p_default()),
                             "tensor `\(alias)`: linking it to `\(target)`")
            }
            try root.close("group `/`")
            try file.close("closing the file")
        }
        try output.commit()
    }

    /// A scalar variable-length UTF-8 string attribute, as h5py writes a Python str.
    static func writeString(_ obj: hid_t, name: String, value: String, context: String) throws(HDF5Error) {
        let type = try H5ID(H5Tcopy(chdf5_c_s1()), .datatype, context)
        try H5.check(H5Tset_size(type.raw, chdf5_variable()), context)
        try H5.check(H5Tset_cset(type.raw, H5T_CSET_UTF8), context)
        let space = try H5ID(H5Screate(H5S_SCALAR), .dataspace, context)
        let acpl = try H5ID(H5Pcreate(chdf5_p_attribute_create()), .plist, context)
        try H5.check(H5Pset_char_encoding(acpl.raw, H5T_CSET_UTF8), context)
        let attr = try H5ID(H5Acreate2(obj, name, type.raw, space.raw, acpl.raw, chdf5_p_default()), .attribute, context)
        let status = value.withCString { p in
            var pointer: UnsafePointer<CChar>? = p
            return H5Awrite(attr.raw, type.raw, &pointer)
        }
        try H5.check(status, context)
    }

    static func writeTensor(_ t: Tensor, path: String, storedName: Bool, file: hid_t, lcpl: hid_t, gzipLevel: Int?, jobs: Int) throws {
        let context = "tensor `\(t.name)`"
        let type = try H5Types.create(for: t.dtype, tensor: t.name)
        let packed = t.dtype.elementSize == nil
        let elementSize = t.dtype.elementSize ?? 1
        let shape = packed ? [t.byteCount] : t.shape
        var dims = shape.map { hsize_t($0) }
        let space = shape.isEmpty ? try H5ID(H5Screate(H5S_SCALAR), .dataspace, context)
                                  : try H5ID(H5Screate_simple(Int32(shape.count), &dims, nil), .dataspace, context)
        let dcpl = try H5ID(H5Pcreate(chdf5_p_dataset_create()), .plist, context)
        try H5.check(H5Pset_fill_time(dcpl.raw, H5D_FILL_TIME_NEVER), context)
        var chunkRows = 1
        var chunked: [Int]?
        if let level = gzipLevel, !shape.isEmpty, t.byteCount > 0 {
            var chunk = chunkShape(shape, elementSize: elementSize).map { hsize_t($0) }
            chunked = chunk.map { Int($0) }
            chunkRows = Int(chunk[0])
            try H5.check(H5Pset_chunk(dcpl.raw, Int32(chunk.count), &chunk), context)
            if elementSize > 1 { try H5.check(H5Pset_shuffle(dcpl.raw), context) }
            try H5.check(H5Pset_deflate(dcpl.raw, UInt32(level)), context)
        }
        let ds = try H5ID(H5Dcreate2(file, path, type.raw, space.raw, lcpl, dcpl.raw, chdf5_p_default()), .dataset, context)
        if storedName { try writeString(ds.raw, name: "ckpt:name", value: t.name, context: context) }
        if t.dtype == .bf16 || H5Types.byteStoredDTypes.contains(t.dtype) {
            try writeString(ds.raw, name: "ckpt:dtype", value: t.dtype.rawValue, context: context)
        }
        if packed {
            var rank = [hsize_t(t.shape.count)]
            let s = try H5ID(H5Screate_simple(1, &rank, nil), .dataspace, context)
            let a = try H5ID(H5Acreate2(ds.raw, "ckpt:shape", chdf5_std_i64le(), s.raw, chdf5_p_default(), chdf5_p_default()), .attribute, context)
            var values = t.shape.map { Int64($0) }
            try H5.check(H5Awrite(a.raw, chdf5_native_int64(), &values), context)
        }
        guard t.byteCount > 0 else { return try ds.close(context) }
        if let chunk = chunked, let level = gzipLevel {
            try t.data.withBytes { (bytes: UnsafeRawBufferPointer) throws in
                try ChunkWriter.write(bytes, dataset: ds.raw, shape: shape, chunk: chunk, elementSize: elementSize,
                                      level: level, jobs: jobs, context: context)
            }
            return try ds.close(context)
        }
        try t.data.withBytes { (bytes: UnsafeRawBufferPointer) throws in
            // SAFETY: each H5Dwrite reads n rows × rowBytes bytes starting at row `start`,
            // inside `bytes` (count = rows × rowBytes, checked by Tensor's initialiser).
            let rows = shape.first ?? 1
            let rowBytes = shape.isEmpty ? t.byteCount : t.byteCount / rows
            if shape.isEmpty || rows <= 1 {
                try H5.check(H5Dwrite(ds.raw, type.raw, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), bytes.baseAddress), context)
                return
            }
            let slabRows = max(chunkRows, (slabBytes / max(rowBytes, 1)) / chunkRows * chunkRows)
            var start = 0
            while start < rows {
                let n = min(slabRows, rows - start)
                var offset = [hsize_t](repeating: 0, count: shape.count)
                var extent = dims
                offset[0] = hsize_t(start)
                extent[0] = hsize_t(n)
                try H5.check(H5Sselect_hyperslab(space.raw, H5S_SELECT_SET, offset, nil, extent, nil), context)
                var memDims = [hsize_t(n * rowBytes / elementSize)]
                let mem = try H5ID(H5Screate_simple(1, &memDims, nil), .dataspace, context)
                try H5.check(H5Dwrite(ds.raw, type.raw, mem.raw, space.raw, chdf5_p_default(), bytes.baseAddress! + start * rowBytes), context)
                start += n
            }
        }
        try ds.close(context)
    }
}
