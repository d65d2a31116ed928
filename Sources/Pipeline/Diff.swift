// `ckpt diff A B`: two checkpoints compared tensor by tensor, whatever their formats.
//
// Tensors are matched by name (ties resolved). For each: present in both or only one,
// dtype and shape, whether the bytes are identical, and — when both decode to numbers and
// the shapes agree — the largest absolute difference and the largest difference relative to
// the largest |value| of A. Values compare across dtypes (an f32 tensor and its f16 cast).

import CkptCore
import Foundation
import OrderedCollections
import Quantize

public struct TensorDiff: Sendable {
    public enum Status: String, Sendable { case identical, equal, differs, onlyInA = "only_in_a", onlyInB = "only_in_b", shapeChanged = "shape_changed" }
    public var name: String
    public var status: Status
    public var dtypeA: DType?
    public var dtypeB: DType?
    public var shapeA: [Int]?
    public var shapeB: [Int]?
    public var maxAbs: Double?
    public var maxRel: Double?
}

public struct DiffReport: Sendable {
    public var tensors: [TensorDiff]
    public var metadataChanges: [String]
    public var configChanges: [String]
    /// Whether A and B hold the same tensors with the same values (within `tolerance`).
    public var same: Bool { tensors.allSatisfy { $0.status == .identical || $0.status == .equal } }

    public func json() -> JSONValue {
        .object([
            "same": .bool(same),
            "tensors": .array(tensors.map { d in
                var o: OrderedDictionary<String, JSONValue> = ["name": .string(d.name), "status": .string(d.status.rawValue)]
                if let v = d.dtypeA { o["dtype_a"] = .string(v.rawValue) }
                if let v = d.dtypeB { o["dtype_b"] = .string(v.rawValue) }
                if let v = d.shapeA { o["shape_a"] = .array(v.map { .int($0) }) }
                if let v = d.shapeB { o["shape_b"] = .array(v.map { .int($0) }) }
                if let v = d.maxAbs { o["max_abs"] = .double(v) }
                if let v = d.maxRel { o["max_rel"] = .double(v) }
                return .object(o)
            }),
            "metadata_changes": .array(metadataChanges.map { .string($0) }),
            "config_changes": .array(configChanges.map { .string($0) }),
        ])
    }
}

public enum CheckpointDiff {
    public static func diff(_ a: WeightGraph, _ b: WeightGraph, tolerance: Double = 0) throws -> DiffReport {
        var out: [TensorDiff] = []
        for (name, ta) in a.tensors {
            guard let tb = b.tensor(named: name) else {
                out.append(TensorDiff(name: name, status: .onlyInA, dtypeA: ta.dtype, shapeA: ta.shape))
                continue
            }
            var d = TensorDiff(name: name, status: .differs, dtypeA: ta.dtype, dtypeB: tb.dtype, shapeA: ta.shape, shapeB: tb.shape)
            if ta.shape != tb.shape {
                d.status = .shapeChanged
                out.append(d)
                continue
            }
            let bytesA = try ta.data.load(), bytesB = try tb.data.load()
            if ta.dtype == tb.dtype && bytesA == bytesB {
                d.status = .identical
                d.maxAbs = 0
                d.maxRel = 0
            } else if let va = try values(ta, bytesA), let vb = try values(tb, bytesB) {
                var maxAbs = 0.0, scale = 0.0
                for (x, y) in zip(va, vb) {
                    let diff = (x.isNaN && y.isNaN) ? 0 : abs(x - y)
                    maxAbs = diff.isNaN ? .infinity : max(maxAbs, diff)
                    if x.isFinite { scale = max(scale, abs(x)) }
                }
                d.maxAbs = maxAbs
                d.maxRel = scale > 0 ? maxAbs / scale : (maxAbs == 0 ? 0 : .infinity)
                d.status = maxAbs <= tolerance ? .equal : .differs
            }
            ta.data.releaseResidentPages()
            tb.data.releaseResidentPages()
            out.append(d)
        }
        for name in b.tensors.keys where a.tensor(named: name) == nil {
            let tb = b.tensors[name]!
            out.append(TensorDiff(name: name, status: .onlyInB, dtypeB: tb.dtype, shapeB: tb.shape))
        }
        var metadata: [String] = []
        for (k, v) in a.metadata where b.metadata[k] != v {
            metadata.append(b.metadata[k] == nil ? "\(k): only in A" : "\(k): \"\(v)\" -> \"\(b.metadata[k]!)\"")
        }
        for k in b.metadata.keys where a.metadata[k] == nil { metadata.append("\(k): only in B") }
        var config: [String] = []
        let ca = a.config?.json ?? [:], cb = b.config?.json ?? [:]
        for (k, v) in ca where cb[k] != v {
            config.append(cb[k] == nil ? "\(k): only in A" : "\(k): \(v.serialized()) -> \(cb[k]!.serialized())")
        }
        for k in cb.keys where ca[k] == nil { config.append("\(k): only in B") }
        return DiffReport(tensors: out, metadataChanges: metadata, configChanges: config)
    }

    /// The tensor's values as Double, for float and integer dtypes; nil for the others.
    static func values(_ t: Tensor, _ bytes: [UInt8]) throws -> [Double]? {
        if let f = try Cast.floats(t) { return f.map(Double.init) }
        guard let ints = try t.integerValues() else { return nil }
        return t.dtype == .u64 ? ints.map { Double(UInt64(bitPattern: $0)) } : ints.map(Double.init)
    }
}
