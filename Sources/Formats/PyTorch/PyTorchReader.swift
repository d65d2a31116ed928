// PyTorch checkpoints: what `torch.save(state_dict, f)` writes, read without Python and
// without executing anything.
//
// Two containers (torch/serialization.py):
//   zip (torch ≥ 1.6, the default)   TorchZip.swift: `<archive>/data.pkl` is the pickle,
//       `<archive>/data/<key>` each storage's raw bytes, `<archive>/byteorder` "little" or
//       "big" (absent in files before torch 1.12: little), `<archive>/version` the format
//       version; other members (.format_version, .storage_alignment, .data/serialization_id)
//       are not needed.
//   legacy (`_use_new_zipfile_serialization=False`, and torch < 1.6): five pickles back to
//       back, then the storages:
//         pickle  magic number 0x1950a86a20f9469cfc6c
//         pickle  protocol version 1001
//         pickle  sys_info {"protocol_version", "little_endian", "type_sizes"}
//         pickle  the object (storage references carry the key)
//         pickle  list of storage keys, in the order their bytes follow
//         per key: u64 little-endian element count, then count × element size bytes
//
// The pickle is run by PickleMachine (Pickle.swift), which calls nothing; its result must be
// a dict (or OrderedDict) of names to tensors. Each tensor is a view (offset, sizes, strides
// in elements) of a storage; every view is bounds-checked against its storage with
// overflow-checked arithmetic. Contiguous views are zero-copy slices of the memory-mapped
// file; others are gathered into contiguous bytes when written (UnsafeStridedBytes.swift).
// Two names that are the same view of the same storage (GPT-2's `lm_head.weight` and
// `transformer.wte.weight` in `model.state_dict()`) become one tensor and a tie, the second
// name an alias of the first.

import CkptCore
import OrderedCollections

public enum PyTorch {
    /// torch/serialization.py's MAGIC_NUMBER and PROTOCOL_VERSION of the legacy format.
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
    static let legacyProtocolVersion = 1001

    /// Opens a `torch.save` file (zip or legacy); tensors are views of its memory mapping.
    /// `key`: a dotted path into the pickled dicts where the state_dict is, for wrapped
    /// checkpoints (`{"model": sd}`, `{"state_dict": sd, "epoch": 3}`: "model", "state_dict").
    public static func read(path: String, key: String? = nil) throws -> WeightGraph {
        try read(file: MappedFile(path: path), key: key)
    }

    public static func read(file: MappedFile, key: String? = nil) throws(PyTorchError) -> WeightGraph {
        let zipMagic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]
        let isZip = file.withBytes { b in b.count >= 4 && Array(b.prefix(4)) == zipMagic }
        let (entries, storages) = try isZip ? readZip(file, key: key) : readLegacy(file, key: key)
        return try makeGraph(entries, storages: storages, file: file)
    }

    /// Where a storage's bytes are in the file.
    struct StorageRegion {
        var ref: TorchStorageRef
        var offset: Int
        var count: Int
    }

    // MARK: Containers

    static func readZip(_ file: MappedFile, key: String?) throws(PyTorchError) -> ([(String, TorchTensorRef)], [String: StorageRegion]) {
        try file.withBytes { (b) throws(PyTorchError) in
            let zip = try TorchZip.parse(b)
            if let order = zip.members["byteorder"] {
                try zip.verifyCRC(order, in: b)
                var c = ByteCursor(b, position: order.dataOffset, end: order.dataOffset + order.size)
                switch c.utf8(order.size) {
                case .some(.some("little")): break
                case .some(.some("big")): throw .bigEndian
                default: throw .badMember(member: "\(zip.archiveName)/byteorder", reason: "neither \"little\" nor \"big\"")
                }
            }
            let pkl = try zip.member("data.pkl")
            try zip.verifyCRC(pkl, in: b)
            var machine = PickleMachine()
            var c = ByteCursor(b, position: pkl.dataOffset, end: pkl.dataOffset + pkl.size)
            let root = try machine.run(&c)
            guard c.remaining == 0 else {
                throw .malformedPickle("\(c.remaining) bytes after STOP in \(zip.archiveName)/data.pkl")
            }
            let entries = try stateDict(root, machine, key: key)
            var regions: [String: StorageRegion] = [:]
            for (_, t) in entries {
                let ref = t.storage
                if let seen = regions[ref.key] {
                    guard seen.ref == ref else {
                        throw .badStorage(key: ref.key, reason: "referenced as both \(seen.ref.typeName)(\(seen.ref.numel)) and \(ref.typeName)(\(ref.numel))")
                    }
                    continue
                }
                let m = try zip.member("data/" + ref.key)
                let need = ref.byteCount!  // checked in persistentLoad
                guard m.size == need else {
                    throw .badStorage(key: ref.key, reason: "\(ref.typeName) of \(ref.numel) elements needs \(need) bytes, zip member \(zip.archiveName)/data/\(ref.key) has \(m.size)")
                }
                regions[ref.key] = StorageRegion(ref: ref, offset: m.dataOffset, count: m.size)
            }
            return (entries, regions)
        }
    }

    static func readLegacy(_ file: MappedFile, key: String?) throws(PyTorchError) -> ([(String, TorchTensorRef)], [String: StorageRegion]) {
        try file.withBytes { (b) throws(PyTorchError) in
            var c = ByteCursor(b)
            var machine = PickleMachine()
            guard case .bigInt(let magic) = try machine.run(&c), magic == legacyMagic else {
                throw .malformedPickle("not a torch.save file: the first pickle is not torch's magic number")
            }
            guard case .int(legacyProtocolVersion) = try machine.run(&c) else {
                throw .malformedPickle("legacy torch.save protocol version is not \(legacyProtocolVersion)")
            }
            let sysInfo = try machine.run(&c)
            guard case .dict(let info) = machine.object(sysInfo) else { throw .malformedPickle("legacy sys_info is not a dict") }
            if let little = info.first(where: { $0.key == .string("little_endian") })?.value, little != .bool(true) {
                throw .bigEndian
            }
            let root = try machine.run(&c)
            let keysValue = try machine.run(&c)
            guard case .list(let keyValues) = machine.object(keysValue) else {
                throw .malformedPickle("legacy storage key list is not a list")
            }
            let entries = try stateDict(root, machine, key: key)
            var refs: [String: TorchStorageRef] = [:]
            for (_, t) in entries {
                if let seen = refs[t.storage.key], seen != t.storage {
                    throw .badStorage(key: t.storage.key, reason: "referenced as both \(seen.typeName)(\(seen.numel)) and \(t.storage.typeName)(\(t.storage.numel))")
                }
                refs[t.storage.key] = t.storage
            }
            var regions: [String: StorageRegion] = [:]
            for k in keyValues {
                guard case .string(let key) = k else { throw .malformedPickle("legacy storage key list holds a non-string") }
                guard let ref = refs[key] else { throw .badStorage(key: key, reason: "listed in the file but used by no tensor") }
                guard regions[key] == nil else { throw .badStorage(key: key, reason: "listed twice") }
                guard let count = c.le(UInt64.self) else { throw .badStorage(key: key, reason: "truncated before its element count") }
                guard count == UInt64(ref.numel) else {
                    throw .badStorage(key: key, reason: "file holds \(count) elements, the pickle says \(ref.numel)")
                }
                let bytes = ref.byteCount!  // checked in persistentLoad
                guard c.has(bytes) else {
                    throw .badStorage(key: key, reason: "\(ref.typeName) of \(ref.numel) elements needs \(bytes) bytes, only \(c.remaining) remain in the file")
                }
                regions[key] = StorageRegion(ref: ref, offset: c.position, count: bytes)
                _ = c.skip(bytes)
            }
            for key in refs.keys where regions[key] == nil {
                throw .badStorage(key: key, reason: "used by a tensor but its bytes are not in the file")
            }
            guard c.remaining == 0 else { throw .malformedPickle("\(c.remaining) bytes after the last storage") }
            return (entries, regions)
        }
    }

    /// The pickle's result as (name, tensor) pairs: it (or the dict at `key`) must be a dict
    /// of string → tensor. When it is not, but a dict inside it is, the error names the key.
    static func stateDict(_ root: PickleValue, _ m: PickleMachine, key: String? = nil) throws(PyTorchError) -> [(String, TorchTensorRef)] {
        var root = root
        if let key {
            var path: [String] = []
            for part in key.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
                guard case .dict(let items) = m.object(root) else {
                    throw .keyNotFound(key: key, reason: "`\(path.joined(separator: "."))` is \(describe(root, m)), not a dict")
                }
                guard let next = items.first(where: { $0.key == .string(part) }) else {
                    let keys = items.compactMap { if case .string(let s) = $0.key { return s } else { return nil } }
                    throw .keyNotFound(key: key, reason: "no key `\(part)`\(path.isEmpty ? "" : " in `\(path.joined(separator: "."))`") (keys: \(keys.prefix(8).joined(separator: ", "))\(keys.count > 8 ? ", ..." : ""))")
                }
                path.append(part)
                root = next.value
            }
        }
        guard case .dict(let items) = m.object(root) else {
            throw .notAStateDict("the pickled object is \(describe(root, m))")
        }
        if key == nil, let inner = nestedStateDict(root, m, depth: 0), !inner.isEmpty, !isStateDict(items, m) {
            throw .wrapped(suggestion: inner)
        }
        var out: [(String, TorchTensorRef)] = []
        out.reserveCapacity(items.count)
        var seen = Set<String>()
        for (k, v) in items {
            guard case .string(let name) = k else { throw .notAStateDict("a key is \(describe(k, m)), not a string") }
            guard case .tensor(let t) = m.object(v) else {
                throw .notAStateDict("`\(name)` holds \(describe(v, m)), not a tensor")
            }
            guard seen.insert(name).inserted else { throw .duplicateTensor(name) }
            out.append((name, t))
        }
        return out
    }

    static func isStateDict(_ items: [(key: PickleValue, value: PickleValue)], _ m: PickleMachine) -> Bool {
        items.allSatisfy { item in
            if case .string = item.key, case .tensor = m.object(item.value) { return true }
            return false
        }
    }

    /// The dotted key of the first dict of tensors nested in `v` (depth-first, three levels
    /// at most), for the error's suggestion.
    static func nestedStateDict(_ v: PickleValue, _ m: PickleMachine, depth: Int) -> String? {
        guard depth < 3, case .dict(let items) = m.object(v) else { return nil }
        for (k, value) in items {
            guard case .string(let name) = k, case .dict(let inner) = m.object(value) else { continue }
            if !inner.isEmpty, isStateDict(inner, m) { return name }
            if let deeper = nestedStateDict(value, m, depth: depth + 1) { return name + "." + deeper }
        }
        return nil
    }

    static func describe(_ v: PickleValue, _ m: PickleMachine) -> String {
        switch v {
        case .none: return "None"
        case .bool: return "a bool"
        case .int, .bigInt: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .global(let g): return "`\(g.qualifiedName)`"
        case .object:
            switch m.object(v)! {
            case .tuple: return "a tuple"
            case .list: return "a list"
            case .dict: return "a dict"
            case .storage: return "a storage"
            case .tensor: return "a tensor"
            }
        }
    }

    // MARK: Tensors

    struct ViewKey: Hashable {
        var storage: String, dtype: DType, offset: Int, shape: [Int], stride: [Int]
    }

    static func makeGraph(_ entries: [(String, TorchTensorRef)], storages: [String: StorageRegion], file: MappedFile) throws(PyTorchError) -> WeightGraph {
        var graph = WeightGraph()
        var firstName: [ViewKey: String] = [:]
        var slices: [String: MappedSlice] = [:]
        // Views may repeat their storage's bytes (stride 0 from `expand`, overlapping
        // slices), so a few hundred bytes of pickle can describe terabytes. What all the
        // tensors hold together is capped at twice the file's size plus 16 MiB (room for
        // small expanded buffers such as position ids); aliases of one view count once.
        let budget = 2 * file.count + (16 << 20)
        var described = 0
        for (name, t) in entries {
            let region = storages[t.storage.key]!  // every referenced key has a region
            let view = try checkView(name, t, storageBytes: region.count)
            let key = ViewKey(storage: t.storage.key, dtype: t.dtype, offset: t.offset, shape: t.shape, stride: t.stride)
            if firstName[key] == nil {
                let (sum, overflow) = described.addingReportingOverflow(view.byteCount)
                guard !overflow, sum <= budget else {
                    throw .badTensor(tensor: name, reason: "with the tensors before it, \(overflow ? "more than \(Int.max)" : "\(sum)") bytes, more than twice the file's \(file.count) bytes plus 16 MiB (views that repeat a storage's bytes: stride 0, overlaps)")
                }
                described = sum
            }
            do {
                if let first = firstName[key] {
                    try graph.tie(name, to: first)
                    continue
                }
                firstName[key] = name
                let data: TensorData
                if view.contiguous {
                    data = .external(file.slice(offset: region.offset + view.byteOffset, count: view.byteCount))
                } else {
                    let storage = slices[t.storage.key] ?? file.slice(offset: region.offset, count: region.count)
                    slices[t.storage.key] = storage
                    data = .external(StridedBytes(storage: storage, name: name, elementSize: view.elementSize,
                                                  offset: t.offset, shape: t.shape, stride: t.stride, count: view.byteCount))
                }
                try graph.add(Tensor(name: name, dtype: t.dtype, shape: t.shape, data: data))
            } catch {
                throw .badTensor(tensor: name, reason: error.description)
            }
        }
        return graph
    }

    struct CheckedView {
        var elementSize: Int
        var byteOffset: Int
        var byteCount: Int
        var contiguous: Bool
    }

    /// Checks that a view lies inside its storage, with overflow-checked arithmetic, and
    /// whether it is contiguous (row-major strides, ignoring dimensions of size 1 as
    /// torch's `is_contiguous` does).
    static func checkView(_ name: String, _ t: TorchTensorRef, storageBytes: Int) throws(PyTorchError) -> CheckedView {
        func bad(_ why: String) -> PyTorchError { .badTensor(tensor: name, reason: why) }
        guard let e = t.dtype.elementSize else { throw bad("dtype \(t.dtype) has no whole-byte element size") }
        if let sd = t.storage.dtype, sd != t.dtype {
            throw bad("dtype \(t.dtype) differs from its storage's \(t.storage.typeName)")
        }
        guard t.shape.count == t.stride.count else { throw bad("size \(t.shape) and stride \(t.stride) differ in length") }
        guard t.shape.allSatisfy({ $0 >= 0 }) else { throw bad("negative size \(t.shape)") }
        guard t.stride.allSatisfy({ $0 >= 0 }) else { throw bad("negative stride \(t.stride)") }
        guard t.offset >= 0 else { throw bad("negative storage offset \(t.offset)") }
        let where_ = "storage `\(t.storage.key)` (\(t.storage.typeName) of \(t.storage.numel), \(storageBytes) bytes)"
        guard let numel = elementCount(t.shape), let bytes = ok(numel.multipliedReportingOverflow(by: e))
        else { throw bad("size \(t.shape) overflows") }
        guard let byteOffset = ok(t.offset.multipliedReportingOverflow(by: e)), byteOffset <= storageBytes else {
            throw bad("storage offset \(t.offset) lies past the end of \(where_)")
        }
        if numel > 0 {
            // Last element touched: offset + Σ (size_i − 1)·stride_i; its end must be inside.
            var last = t.offset
            for (n, s) in zip(t.shape, t.stride) {
                guard let step = ok((n - 1).multipliedReportingOverflow(by: s)),
                      let sum = ok(last.addingReportingOverflow(step)) else {
                    throw bad("view of size \(t.shape), stride \(t.stride) overflows")
                }
                last = sum
            }
            guard let endElement = ok(last.addingReportingOverflow(1)),
                  let end = ok(endElement.multipliedReportingOverflow(by: e)), end <= storageBytes else {
                throw bad("view (offset \(t.offset), size \(t.shape), stride \(t.stride)) runs past the end of \(where_)")
            }
        }
        var expected = 1
        var contiguous = true
        for (n, s) in zip(t.shape, t.stride).reversed() where n != 1 {
            if s != expected { contiguous = false; break }
            expected = ok(expected.multipliedReportingOverflow(by: n)) ?? 0
        }
        if numel == 0 { contiguous = true }
        return CheckedView(elementSize: e, byteOffset: byteOffset, byteCount: bytes, contiguous: contiguous)
    }
}

extension PyTorch {
    /// Hugging Face's names for PyTorch checkpoints in a model directory.
    public static let singleName = "pytorch_model.bin"
    public static let indexName = "pytorch_model.bin.index.json"
}

/// The value of an overflow-reporting operation, nil when it overflowed.
private func ok(_ r: (partialValue: Int, overflow: Bool)) -> Int? { r.overflow ? nil : r.partialValue }
