// HDF5: reading any HDF5 file as a weight graph, through libhdf5.
//
// The file is opened read-only and its structure walked once (`scan`): groups depth-first,
// links in creation order where the group tracks it (ckpt's writer does) and otherwise in
// name order with all-digit names first, as numbers (Keras' `vars/10` after `vars/9`).
// Every dataset becomes a tensor named by its path (`/a/b/c` -> `a.b.c`), unless a Keras
// layout is recognised (HDF5Keras.swift). Attributes become metadata: the root group's under
// their own names, other objects' as `<path>:<name>` (`layers/dense:units`); ckpt's own
// `ckpt:*` attributes are consumed (model config, dtype tags, packed shapes).
//
// Links: hard links only are descended. A second hard link (or a soft link) to a dataset
// already seen becomes a tie (alias) of the first name, which is how ckpt's writer stores
// ties. Soft links to groups are not descended (everything they reach is reached through
// hard links too), a group reached twice is walked once (cycles), and external links are
// refused outright: ckpt never opens another file on a file's say-so. A link-access list
// whose external-link callback always fails backs that up.
//
// Safety checks before anything is trusted (libhdf5 itself is not hardened against
// hostile files; see also HDF5Probe.swift): virtual datasets and external raw-data storage
// are refused; filters must be in the allow-list (deflate, shuffle, fletcher32: libhdf5's
// built-in lossless decoders; plugins are never loaded); rank <= 32 (HDF5's own maximum);
// element count x size computed with overflow checks; a dataset may not declare more bytes
// than its stored bytes could expand to (1032:1, deflate's maximum ratio) plus 64 MiB of
// fill values; contiguous raw data must lie inside the file. Group nesting is capped at 64
// and the file at 1,000,000 links.
//
// Data: tensors are lazy. Contiguous, unfiltered, little-endian datasets are memory-mapped
// at the offset libhdf5 reports (H5Dget_offset), so reading them costs what safetensors does;
// all others are read on demand with H5Dread in slabs of whole chunk rows (about 64 MiB),
// without datatype conversion, then byte-swapped when big-endian. Memory is bounded by the
// largest tensor being converted.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CHDF5
import CkptCore
import Foundation
import OrderedCollections

public enum HDF5 {
    /// The 8-byte format signature at the start of an HDF5 file (no user block).
    public static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    static let maxDepth = 64
    static let maxLinks = 1_000_000
    static let maxRank = 32
    /// deflate's largest expansion ratio (zlib technical details: 1032:1).
    static let maxExpansion = 1032
    /// Unwritten chunks read as fill values; allow this much beyond what is stored.
    static let fillAllowance = 64 << 20
    /// Target size of one H5Dread/H5Dwrite call (a task-local so tests can shrink it).
    @TaskLocal static var slabBytes = 64 << 20
    static let allowedFilters: [H5Z_filter_t: String] = [
        H5Z_filter_t(H5Z_FILTER_DEFLATE): "deflate", H5Z_filter_t(H5Z_FILTER_SHUFFLE): "shuffle",
        H5Z_filter_t(H5Z_FILTER_FLETCHER32): "fletcher32",
    ]

    // MARK: Scanned structure

    struct Dataset {
        var path: String
        var element: H5ElementType
        var shape: [Int]
        /// Bytes of the tensor (little-endian, as ckpt holds it).
        var byteCount: Int
        /// Rows (first dimension) per chunk; 1 for contiguous or scalars.
        var chunkRows: Int
        /// File offset of contiguous raw data that can be mapped as it is.
        var mappableOffset: Int?
        var attributes: [(String, H5AttributeValue)]
    }

    struct Scan {
        var datasets: [Dataset] = []
        /// (alias path, target path): further links to a dataset already listed.
        var aliases: [(String, String)] = []
        /// Attributes by object path ("/" for the root group), in walk order.
        var attributes: [(path: String, values: [(String, H5AttributeValue)])] = []
        func attributes(of path: String) -> [(String, H5AttributeValue)] {
            attributes.first { $0.path == path }?.values ?? []
        }
    }

    // MARK: Reading

    /// Opens an HDF5 file: probes it in a sandboxed child process first when the process
    /// has configured one (the CLI does), then walks its structure here. Tensors are read
    /// when used.
    public static func read(path: String) throws -> WeightGraph {
        try HDF5Probe.check(path: path)
        return try readInProcess(path: path)
    }

    /// The structure walk alone, for the sandboxed probe: every libhdf5 call `read` makes
    /// before tensors are used, and the naming; no memory mapping, no data.
    public static func probeStructure(path: String) throws {
        let (_, scan, _) = try open(path: path)
        _ = try HDF5Naming.names(for: scan)
    }

    static func readInProcess(path: String) throws -> WeightGraph {
        let (file, scan, fileSize) = try open(path: path)
        return try assemble(scan, file: file, fileSize: fileSize)
    }

    static func open(path: String) throws -> (H5OpenFile, Scan, Int) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw IOError.cannotOpen(path: path, errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw IOError.notARegularFile(path: path) }
        let fileSize = Int(st.st_size)
        let (file, scan) = try H5.locked { () throws(HDF5Error) -> (H5OpenFile, Scan) in
            let fapl = try H5ID(H5Pcreate(chdf5_p_file_access()), .plist, "file access properties")
            // Lock when the file system can (so a concurrent writer is noticed), but do not fail
            // on file systems without locks (NFS mounts), as libhdf5 1.10.7+ allows.
            try H5.check(H5Pset_file_locking(fapl.raw, true, true), "file access properties")
            let id = try H5ID(H5Fopen(path, chdf5_f_acc_rdonly(), fapl.raw), .file, "")
            let file = H5OpenFile(id: id, path: path)
            var walker = Walker(fileSize: fileSize)
            try walker.walk(file: file.id.raw)
            return (file, walker.scan)
        }
        return (file, scan, fileSize)
    }

    /// Builds the weight graph: names (generic or Keras), lazy tensors, ties, metadata, config.
    static func assemble(_ scan: Scan, file: H5OpenFile, fileSize: Int) throws -> WeightGraph {
        let naming = try HDF5Naming.names(for: scan)
        var graph = WeightGraph()
        var mapping: MappedFile?
        for index in naming.order {
            let d = scan.datasets[index]
            let name = naming.names[d.path]!
            let data: TensorData
            if let offset = d.mappableOffset, d.byteCount > 0 {
                if mapping == nil { mapping = try MappedFile(path: file.path) }
                // The mapping is of the file as it is now; the offset was checked against
                // the size stat() gave. Re-check against the mapping itself.
                guard offset <= mapping!.count - d.byteCount else {
                    throw HDF5Error.storageOutsideFile(dataset: d.path, end: UInt64(offset + d.byteCount), fileSize: mapping!.count)
                }
                data = .external(mapping!.slice(offset: offset, count: d.byteCount))
            } else if d.byteCount == 0 {
                data = .owned([])
            } else {
                data = .external(HDF5DatasetBytes(file: file, dataset: d, tensor: name))
            }
            do { try graph.add(Tensor(name: name, dtype: d.element.dtype, shape: d.shape, data: data)) } catch {
                throw HDF5Error.invalidShape(dataset: d.path, reason: error.description)
            }
        }
        for (alias, target) in scan.aliases {
            guard let aliasName = naming.aliasNames[alias], let targetName = naming.names[target] else { continue }
            if graph.tensors[aliasName] != nil || graph.ties[aliasName] != nil { continue }
            try graph.tie(aliasName, to: targetName)
        }
        for (path, values) in scan.attributes {
            for (key, value) in values {
                if naming.consumedAttributes.contains(path + ":" + key) { continue }
                if key.hasPrefix("ckpt:") {
                    if path == "/" && key == "ckpt:config" {
                        guard case .string(let text) = value else { throw HDF5Error.invalidConfig("not a string") }
                        do { graph.config = try ModelConfig(jsonBytes: Array(text.utf8)) } catch {
                            throw HDF5Error.invalidConfig(error.description)
                        }
                        continue
                    }
                    if path != "/" && (key == "ckpt:dtype" || key == "ckpt:shape") { continue }
                }
                let metadataKey = path == "/" ? key : String(path.dropFirst()) + ":" + key
                graph.metadata[metadataKey] = value.metadataText
            }
        }
        return graph
    }

    // MARK: The walk

    /// Whether an object's creation order can be used for by-index queries: it must be both
    /// tracked and indexed (without the index, libhdf5 fails such queries on dense storage).
    static func indexedOrder(_ flags: UInt32) -> Bool {
        let both = UInt32(H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED)
        return flags & both == both
    }

    struct Walker {
        let fileSize: Int
        var scan = Scan()
        var links = 0
        var groupsSeen: Set<haddr_t> = []
        var datasetsSeen: [haddr_t: String] = [:]
        var softLinks: [String] = []

        init(fileSize: Int) { self.fileSize = fileSize }

        mutating func walk(file: hid_t) throws(HDF5Error) {
            let root = try H5ID(H5Gopen2(file, "/", chdf5_p_default()), .group, "group `/`")
            var info = H5O_info_t()
            try H5.check(H5Oget_info2(root.raw, &info, UInt32(H5O_INFO_BASIC)), "group `/`")
            groupsSeen.insert(info.addr)
            try walkGroup(root.raw, path: "/", depth: 0)
            // Soft links last, once every dataset's first name is known.
            let lapl = try linkAccess()
            for link in softLinks {
                var target = H5O_info_t()
                // A dangling soft link, or one into an external link, is not an error: it
                // names nothing ckpt would read.
                guard H5Oget_info_by_name2(file, link, &target, UInt32(H5O_INFO_BASIC), lapl.raw) >= 0 else {
                    _ = H5Eclear2(chdf5_e_default())
                    continue
                }
                if target.type == H5O_TYPE_DATASET, let first = datasetsSeen[target.addr] {
                    scan.aliases.append((link, first))
                }
            }
        }

        /// A link-access property list whose external-link traversal callback always fails.
        func linkAccess() throws(HDF5Error) -> H5ID {
            let lapl = try H5ID(H5Pcreate(chdf5_p_link_access()), .plist, "link access properties")
            try H5.check(H5Pset_elink_cb(lapl.raw, { _, _, _, _, _, _, _ in -1 }, nil), "link access properties")
            return lapl
        }

        mutating func walkGroup(_ group: hid_t, path: String, depth: Int) throws(HDF5Error) {
            guard depth < HDF5.maxDepth else { throw .nestedTooDeep(path: path, limit: HDF5.maxDepth) }
            let context = "group `\(path)`"
            let gcpl = try H5ID(H5Gget_create_plist(group), .plist, context)
            var linkOrder: UInt32 = 0, attrOrder: UInt32 = 0
            try H5.check(H5Pget_link_creation_order(gcpl.raw, &linkOrder), context)
            try H5.check(H5Pget_attr_creation_order(gcpl.raw, &attrOrder), context)
            let attributes = try H5Attributes.read(group, objectPath: path, creationOrderTracked: HDF5.indexedOrder(attrOrder))
            if !attributes.isEmpty { scan.attributes.append((path, attributes)) }

            var ginfo = H5G_info_t()
            try H5.check(H5Gget_info(group, &ginfo), context)
            guard ginfo.nlinks <= UInt64(HDF5.maxLinks - links) else { throw .tooManyObjects(limit: HDF5.maxLinks) }
            links += Int(ginfo.nlinks)
            let tracked = HDF5.indexedOrder(linkOrder)
            var names: [String] = []
            for i in 0..<ginfo.nlinks {
                names.append(try H5.string(context) { buf, n in
                    H5Lget_name_by_idx(group, ".", tracked ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME, H5_ITER_INC, i, buf, n, chdf5_p_default())
                })
            }
            if !tracked { names.sort(by: HDF5Naming.naturalOrder) }

            let lapl = try linkAccess()
            for name in names {
                guard !name.isEmpty else {
                    throw .library(context: "group `\(path)`", message: "a link has an empty name (corrupt file)")
                }
                let child = path == "/" ? "/" + name : path + "/" + name
                var linfo = H5L_info_t()
                try H5.check(H5Lget_info(group, name, &linfo, lapl.raw), "link `\(child)`")
                switch linfo.type {
                case H5L_TYPE_HARD:
                    var oinfo = H5O_info_t()
                    try H5.check(H5Oget_info_by_name2(group, name, &oinfo, UInt32(H5O_INFO_BASIC), lapl.raw), "object `\(child)`")
                    switch oinfo.type {
                    case H5O_TYPE_GROUP:
                        guard groupsSeen.insert(oinfo.addr).inserted else { continue }
                        let sub = try H5ID(H5Gopen2(group, name, chdf5_p_default()), .group, "group `\(child)`")
                        try walkGroup(sub.raw, path: child, depth: depth + 1)
                    case H5O_TYPE_DATASET:
                        if let first = datasetsSeen[oinfo.addr] {
                            scan.aliases.append((child, first))
                            continue
                        }
                        datasetsSeen[oinfo.addr] = child
                        scan.datasets.append(try scanDataset(group, name: name, path: child))
                    default:
                        continue  // a committed datatype: a type definition, not data
                    }
                case H5L_TYPE_SOFT:
                    softLinks.append(child)
                case H5L_TYPE_EXTERNAL:
                    throw .externalLink(link: child)
                default:
                    throw .unsupportedLink(link: child, type: Int(linfo.type.rawValue))
                }
            }
        }

        mutating func scanDataset(_ group: hid_t, name: String, path: String) throws(HDF5Error) -> Dataset {
            let context = "dataset `\(path)`"
            let ds = try H5ID(H5Dopen2(group, name, chdf5_p_default()), .dataset, context)
            let dcpl = try H5ID(H5Dget_create_plist(ds.raw), .plist, context)

            // Layout and storage: nothing outside this file, nothing assembled from others.
            let layout = H5Pget_layout(dcpl.raw)
            guard layout == H5D_CONTIGUOUS || layout == H5D_CHUNKED || layout == H5D_COMPACT else {
                throw .unsupportedLayout(dataset: path, reason: layout == H5D_VIRTUAL
                    ? "virtual dataset (data assembled from other datasets or files); ckpt refuses these"
                    : "unknown storage layout \(layout.rawValue)")
            }
            let externalCount = H5Pget_external_count(dcpl.raw)
            guard externalCount == 0 else {
                if externalCount < 0 { throw .library(context: context, message: H5.takeErrorStack()) }
                throw .unsupportedLayout(dataset: path, reason: "raw data stored in \(externalCount) external file(s); ckpt refuses external storage")
            }
            let filterCount = H5Pget_nfilters(dcpl.raw)
            guard filterCount >= 0 else { throw .library(context: context, message: H5.takeErrorStack()) }
            for i in 0..<UInt32(filterCount) {
                var flags: UInt32 = 0, nelmts = 0, config: UInt32 = 0
                var nameBuf = [CChar](repeating: 0, count: 256)
                let id = H5Pget_filter2(dcpl.raw, i, &flags, &nelmts, nil, nameBuf.count, &nameBuf, &config)
                guard id >= 0 else { throw .library(context: context, message: H5.takeErrorStack()) }
                guard HDF5.allowedFilters[id] != nil else {
                    throw .filterNotAllowed(dataset: path, filter: Int(id), name: H5.text(nameBuf))
                }
            }
            var chunkRows = 1
            if layout == H5D_CHUNKED {
                var dims = [hsize_t](repeating: 0, count: HDF5.maxRank)
                let rank = H5Pget_chunk(dcpl.raw, Int32(HDF5.maxRank), &dims)
                guard rank >= 1 else { throw .library(context: context, message: H5.takeErrorStack()) }
                chunkRows = Int(clamping: dims[0])
            }

            // Type and shape.
            let type = try H5ID(H5Dget_type(ds.raw), .datatype, context)
            let classified = try H5Types.classify(type.raw, dataset: path)
            let space = try H5ID(H5Dget_space(ds.raw), .dataspace, context)
            var shape: [Int] = []
            switch H5Sget_simple_extent_type(space.raw) {
            case H5S_SCALAR: shape = []
            case H5S_SIMPLE:
                let rank = H5Sget_simple_extent_ndims(space.raw)
                guard rank >= 0, rank <= Int32(HDF5.maxRank) else { throw .invalidShape(dataset: path, reason: "rank \(rank) outside 0...\(HDF5.maxRank)") }
                var dims = [hsize_t](repeating: 0, count: Int(rank))
                guard H5Sget_simple_extent_dims(space.raw, &dims, nil) == rank else { throw .library(context: context, message: H5.takeErrorStack()) }
                for d in dims {
                    guard d <= hsize_t(Int.max) else { throw .invalidShape(dataset: path, reason: "dimension \(d) too large") }
                    shape.append(Int(d))
                }
            default:
                throw .invalidShape(dataset: path, reason: "empty (null) dataspace: no shape, not a tensor")
            }

            // Attributes. ckpt's writer tags the types an HDF5 reader cannot tell apart
            // (`ckpt:dtype`): bf16 (checked against the float layout) and the 8/6/4-bit floats
            // stored as uint8 bit patterns; the packed ones take their shape from `ckpt:shape`.
            var attrOrder: UInt32 = 0
            try H5.check(H5Pget_attr_creation_order(dcpl.raw, &attrOrder), context)
            let attributes = try H5Attributes.read(ds.raw, objectPath: path, creationOrderTracked: HDF5.indexedOrder(attrOrder))
            if !attributes.isEmpty { scan.attributes.append((path, attributes)) }
            var element = classified
            if let tag = attributes.first(where: { $0.0 == "ckpt:dtype" })?.1.metadataText, tag != element.dtype.rawValue {
                guard element.dtype == .u8, let d = DType(rawValue: tag), H5Types.byteStoredDTypes.contains(d) else {
                    throw .unsupportedType(dataset: path, type: "\(element.dtype) tagged `ckpt:dtype` = \(tag)")
                }
                element.dtype = d
                element.packed = d.elementSize == nil
            }
            // Packed types are 1-D byte arrays: their element count is their byte count.
            guard let storedBytes = elementCount(shape) else { throw .invalidShape(dataset: path, reason: "element count of \(shape) overflows") }
            var tensorShape = shape
            if element.packed {
                guard shape.count == 1, case .text(let text)? = attributes.first(where: { $0.0 == "ckpt:shape" })?.1,
                      case .array(let dims)? = try? JSONValue.parse(text.hasPrefix("[") ? text : "[" + text + "]") else {
                    throw .invalidShape(dataset: path, reason: "\(element.dtype) data needs a 1-D byte array and a `ckpt:shape` attribute")
                }
                tensorShape = []
                for d in dims {
                    guard let v = d.intValue, v >= 0 else { throw .invalidShape(dataset: path, reason: "`ckpt:shape` holds \(d.serialized())") }
                    tensorShape.append(v)
                }
                guard element.dtype.byteCount(shape: tensorShape) == storedBytes else {
                    throw .invalidShape(dataset: path, reason: "`ckpt:shape` \(tensorShape) does not fill the \(storedBytes) stored bytes of \(element.dtype)")
                }
            }
            guard let byteCount = element.dtype.byteCount(shape: tensorShape) else {
                throw .invalidShape(dataset: path, reason: "size of \(element.dtype) \(tensorShape) overflows")
            }

            // Declared size against stored size: a small file must not make us allocate much.
            let stored = Int(clamping: H5Dget_storage_size(ds.raw))
            let (ceiling, overflow) = stored.multipliedReportingOverflow(by: filterCount > 0 ? HDF5.maxExpansion : 1)
            if !overflow, byteCount > ceiling + HDF5.fillAllowance {
                throw .implausibleSize(dataset: path, declared: byteCount, stored: stored)
            }
            var mappable: Int?
            if layout == H5D_CONTIGUOUS, filterCount == 0, element.swapUnit == 0, !element.isBool, byteCount > 0 {
                let offset = H5Dget_offset(ds.raw)
                if offset != chdf5_haddr_undef() {
                    let (end, over) = UInt64(offset).addingReportingOverflow(UInt64(byteCount))
                    guard !over, end <= UInt64(fileSize) else {
                        throw .storageOutsideFile(dataset: path, end: over ? UInt64.max : end, fileSize: fileSize)
                    }
                    // Anything but exactly the tensor's bytes goes through H5Dread, which knows.
                    if stored == byteCount { mappable = Int(offset) }
                } else {
                    _ = H5Eclear2(chdf5_e_default())
                }
            }
            return Dataset(path: path, element: element, shape: tensorShape, byteCount: byteCount,
                           chunkRows: max(1, chunkRows), mappableOffset: mappable, attributes: attributes)
        }
    }
}

/// A dataset read on demand with H5Dread, in slabs of whole chunk rows.
final class HDF5DatasetBytes: ExternalBytes, @unchecked Sendable {
    let file: H5OpenFile
    let dataset: HDF5.Dataset
    let tensor: String
    var count: Int { dataset.byteCount }
    var origin: String { file.path }

    init(file: H5OpenFile, dataset: HDF5.Dataset, tensor: String) {
        self.file = file
        self.dataset = dataset
        self.tensor = tensor
    }

    func releaseResidentPages() {}

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        // malloc rather than Swift's allocator: a failure is an error, not a trap.
        guard let buffer = malloc(count) else { throw FileError(path: file.path, error: HDF5Error.outOfMemory(tensor: tensor, bytes: count)) }
        defer { free(buffer) }
        let bytes = UnsafeMutableRawBufferPointer(start: buffer, count: count)
        // Read errors surface long after opening (while converting): name the file here.
        do { try read(into: bytes) } catch { throw FileError(path: file.path, error: error) }
        return try body(UnsafeRawBufferPointer(bytes))
    }

    /// SAFETY: `bytes` holds exactly `count` bytes; every H5Dread below writes inside it (its
    /// memory space is the slab's element count times the file element size, which equals the
    /// slab's share of `count`).
    func read(into bytes: UnsafeMutableRawBufferPointer) throws(HDF5Error) {
        let path = dataset.path
        let context = "tensor `\(tensor)` (dataset `\(path)`)"
        try H5.locked { () throws(HDF5Error) in
            let ds = try H5ID(H5Dopen2(file.id.raw, path, chdf5_p_default()), .dataset, context)
            // The file's own type as the memory type: libhdf5 copies bytes, converts nothing.
            let type = try H5ID(H5Dget_type(ds.raw), .datatype, context)
            let space = try H5ID(H5Dget_space(ds.raw), .dataspace, context)
            let shape = dataset.element.packed ? [count] : dataset.shape
            let rows = shape.first ?? 1
            let rowBytes = shape.isEmpty ? count : count / max(rows, 1)
            if shape.isEmpty || rows <= 1 || rowBytes == 0 {
                try H5.check(H5Dread(ds.raw, type.raw, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), bytes.baseAddress), context)
            } else {
                // Slabs of whole chunk rows, so each chunk is read (and inflated) once.
                let chunk = dataset.chunkRows
                let slabRows = max(chunk, (HDF5.slabBytes / rowBytes) / chunk * chunk)
                var start = 0
                while start < rows {
                    let n = min(slabRows, rows - start)
                    var offset = [hsize_t](repeating: 0, count: shape.count)
                    var extent = shape.map { hsize_t($0) }
                    offset[0] = hsize_t(start)
                    extent[0] = hsize_t(n)
                    try H5.check(H5Sselect_hyperslab(space.raw, H5S_SELECT_SET, offset, nil, extent, nil), context)
                    var memDims = [hsize_t(n * rowBytes / H5Tget_size(type.raw))]
                    let mem = try H5ID(H5Screate_simple(1, &memDims, nil), .dataspace, context)
                    try H5.check(H5Dread(ds.raw, type.raw, mem.raw, space.raw, chdf5_p_default(), bytes.baseAddress! + start * rowBytes), context)
                    start += n
                }
            }
        }
        if dataset.element.swapUnit > 1 { Self.swapBytes(bytes, unit: dataset.element.swapUnit) }
        if dataset.element.isBool, let bad = bytes.firstIndex(where: { $0 > 1 }) {
            throw .invalidBool(tensor: tensor, index: bad, value: bytes[bad])
        }
    }

    /// Reverses every `unit`-byte group: big-endian to little-endian.
    static func swapBytes(_ bytes: UnsafeMutableRawBufferPointer, unit: Int) {
        var i = 0
        while i + unit <= bytes.count {
            var a = i, b = i + unit - 1
            while a < b {
                bytes.swapAt(a, b)
                a += 1
                b -= 1
            }
            i += unit
        }
    }
}
