// What torch's pickles mean: the allow-listed globals, storage references and the
// tensor-rebuilding calls, interpreted symbolically (nothing here calls anything).
//
// Sources: torch/serialization.py (`_save`'s `persistent_id`, `_load`'s `persistent_load`),
// torch/_utils.py (`_rebuild_tensor`, `_rebuild_tensor_v2`, `_rebuild_tensor_v3`,
// `_rebuild_parameter`, `_rebuild_parameter_with_state`), torch/storage.py
// (`_dtype_to_storage_type_map`), and the allow-list of torch/_weights_only_unpickler.py.
//
// What `torch.save(state_dict)` pickles, per tensor:
//   REDUCE(torch._utils._rebuild_tensor_v2,
//          (BINPERSID(('storage', torch.FloatStorage, '<key>', 'cpu', <numel>)),
//           <storage offset>, (<sizes>), (<strides>), <requires_grad>, OrderedDict()[, <metadata>]))
// offsets and strides in elements; the storage's bytes are the zip member `data/<key>`
// (numel elements of the storage type). dtypes without a typed storage class (float8,
// uint16/32/64) use `torch.storage.UntypedStorage` (numel in bytes) and
// `_rebuild_tensor_v3(..., <dtype global>)`. Legacy (non-zip) files add a sixth element to
// the storage tuple, a view description, which torch has not written since 2018; only None
// is accepted.

import CkptCore

/// The globals a state_dict pickle may name. Everything else is refused by `resolve`.
enum TorchGlobal: Equatable {
    case orderedDict
    case rebuildTensor, rebuildTensorV2, rebuildTensorV3
    case rebuildParameter, rebuildParameterWithState
    case size
    /// A storage class: typed (`torch.FloatStorage`) or `torch.storage.UntypedStorage` (nil).
    case storage(DType?, name: String)
    case dtype(DType, name: String)

    /// torch.storage's `_dtype_to_storage_type_map`, for the dtypes ckpt has.
    static let storageTypes: [String: DType] = [
        "DoubleStorage": .f64, "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool, "ComplexFloatStorage": .c64,
    ]

    /// `torch.<dtype>` globals (their pickled names are the canonical ones, e.g. float32).
    static let dtypes: [String: DType] = [
        "float64": .f64, "float32": .f32, "float16": .f16, "bfloat16": .bf16,
        "int64": .i64, "int32": .i32, "int16": .i16, "int8": .i8,
        "uint64": .u64, "uint32": .u32, "uint16": .u16, "uint8": .u8, "bool": .bool,
        "float8_e4m3fn": .f8_e4m3, "float8_e5m2": .f8_e5m2, "float8_e4m3fnuz": .f8_e4m3fnuz,
        "float8_e5m2fnuz": .f8_e5m2fnuz, "float8_e8m0fnu": .f8_e8m0, "complex64": .c64,
    ]

    static func resolve(module: String, name: String) throws(PyTorchError) -> TorchGlobal {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch", "Size"): return .size
        case ("torch.storage", "UntypedStorage"): return .storage(nil, name: name)
        case ("torch", _):
            if let d = storageTypes[name] { return .storage(d, name: name) }
            if let d = dtypes[name] { return .dtype(d, name: name) }
        default: break
        }
        // Module and name are shown as Python would join them; control characters escaped so
        // the message stays one line.
        let shown = (module + "." + name).unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
        throw .forbiddenGlobal(shown)
    }

    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensor: return "torch._utils._rebuild_tensor"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensorV3: return "torch._utils._rebuild_tensor_v3"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case .size: return "torch.Size"
        case .storage(nil, _): return "torch.storage.UntypedStorage"
        case .storage(_, let name), .dtype(_, let name): return "torch." + name
        }
    }
}

/// A storage as the pickle describes it: `numel` elements of `dtype` (bytes when untyped)
/// in the record `key`.
struct TorchStorageRef: Equatable {
    var key: String
    /// nil for UntypedStorage (numel counts bytes).
    var dtype: DType?
    var numel: Int
    var location: String

    /// Bytes the storage holds, overflow-checked.
    var byteCount: Int? {
        guard let dtype else { return numel }
        let (n, o) = numel.multipliedReportingOverflow(by: dtype.elementSize ?? 0)
        return o ? nil : n
    }

    var typeName: String { dtype.flatMap { d in TorchGlobal.storageTypes.first { $0.value == d }?.key } ?? "UntypedStorage" }
}

/// A tensor as a view: `shape`/`stride` in elements of `dtype` from `offset` of a storage.
struct TorchTensorRef: Equatable {
    var storage: TorchStorageRef
    var dtype: DType
    var offset: Int
    var shape: [Int]
    var stride: [Int]
}

extension PickleMachine {
    /// BINPERSID: torch's `('storage', storage_type, key, location, numel[, view_metadata])`.
    mutating func persistentLoad(_ pid: PickleValue) throws(PyTorchError) -> PickleValue {
        guard case .tuple(let t) = object(pid), t.count == 5 || t.count == 6, t[0] == .string("storage") else {
            throw .malformedPickle("persistent id is not a ('storage', type, key, location, numel) tuple")
        }
        guard case .global(.storage(let dtype, _)) = t[1] else {
            throw .malformedPickle("persistent id names a storage type that is not a torch storage class")
        }
        guard case .string(let key) = t[2], case .string(let location) = t[3], case .int(let numel) = t[4] else {
            throw .malformedPickle("persistent id has a non-string key or location, or a non-integer size")
        }
        guard numel >= 0 else { throw .badStorage(key: key, reason: "negative size \(numel)") }
        if t.count == 6, t[5] != .none {
            throw .badStorage(key: key, reason: "legacy storage views (torch < 0.4) are not supported")
        }
        let ref = TorchStorageRef(key: key, dtype: dtype, numel: numel, location: location)
        guard ref.byteCount != nil else { throw .badStorage(key: key, reason: "size \(numel) × element size overflows") }
        return try allocate(.storage(ref), items: 0)
    }

    /// REDUCE with an allow-listed callable: interpreted into data, never called.
    mutating func reduce(_ g: TorchGlobal, _ args: [PickleValue]) throws(PyTorchError) -> PickleValue {
        let name = g.qualifiedName
        func bad(_ why: String) -> PyTorchError { .malformedPickle("\(name): \(why)") }
        switch g {
        case .orderedDict:
            guard args.isEmpty else { throw bad("only OrderedDict() with no arguments is interpreted") }
            return try allocate(.dict([]), items: 0)
        case .size:
            guard args.count == 1, case .tuple = object(args[0]) else { throw bad("expects one tuple") }
            return args[0]
        case .rebuildParameter, .rebuildParameterWithState:
            // (data, requires_grad, backward_hooks[, state]): the parameter is its data.
            guard args.count == (g == .rebuildParameter ? 3 : 4), case .tensor = object(args[0]) else {
                throw bad("expects a tensor, requires_grad and hooks")
            }
            return args[0]
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3:
            // _rebuild_tensor(storage, offset, size, stride)
            // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
            // _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])
            let counts = g == .rebuildTensor ? 4...4 : g == .rebuildTensorV2 ? 6...7 : 7...8
            guard counts.contains(args.count) else { throw bad("expects \(counts.lowerBound)–\(counts.upperBound) arguments, got \(args.count)") }
            guard case .storage(let storage) = object(args[0]) else { throw bad("first argument is not a storage") }
            guard case .int(let offset) = args[1] else { throw bad("storage offset is not an integer") }
            let shape = try ints(args[2], what: "size", in: name)
            let stride = try ints(args[3], what: "stride", in: name)
            var dtype: DType
            if g == .rebuildTensorV3 {
                guard case .global(.dtype(let d, _)) = args[6] else { throw bad("seventh argument is not a torch dtype") }
                dtype = d
            } else {
                guard let d = storage.dtype else { throw bad("an untyped storage needs _rebuild_tensor_v3's dtype") }
                dtype = d
            }
            return try allocate(.tensor(TorchTensorRef(storage: storage, dtype: dtype, offset: offset, shape: shape, stride: stride)), items: 0)
        case .storage, .dtype:
            throw .notCallable(name)
        }
    }

    private func ints(_ v: PickleValue, what: String, in name: String) throws(PyTorchError) -> [Int] {
        guard case .tuple(let items) = object(v) else { throw .malformedPickle("\(name): \(what) is not a tuple") }
        var out: [Int] = []
        for i in items {
            guard case .int(let x) = i else { throw .malformedPickle("\(name): \(what) holds a non-integer") }
            out.append(x)
        }
        return out
    }
}
