// WeightGraph: a checkpoint as ckpt sees it, whatever file it came from.
//
//   tensors   ordered by name, unique; the order is the source file's (or the writer's)
//   ties      alias name -> canonical name: one storage under two names, e.g. GPT-2's
//             `lm_head.weight` tied to `transformer.wte.weight`. An alias is not a tensor of
//             its own: it is not counted, and writers that cannot express ties leave it out,
//             as Hugging Face's `save_pretrained` does.
//   metadata  string -> string, ordered (safetensors `__metadata__`, HDF5 attributes, ...)
//   config    the model config (architecture + hyper-parameters), when known
//
// The module tree is implied by dotted names (`transformer.h.0.attn.c_attn.weight`).

import OrderedCollections

public struct WeightGraph: Sendable {
    public private(set) var tensors: OrderedDictionary<String, Tensor> = [:]
    public private(set) var ties: OrderedDictionary<String, String> = [:]
    public var metadata: OrderedDictionary<String, String> = [:]
    public var config: ModelConfig?

    public init() {}

    public mutating func add(_ tensor: Tensor) throws(CoreError) {
        guard tensors[tensor.name] == nil, ties[tensor.name] == nil else {
            throw .duplicateTensor(tensor.name)
        }
        tensors[tensor.name] = tensor
    }

    /// Declares `alias` to be the same storage as the existing tensor `target`.
    public mutating func tie(_ alias: String, to target: String) throws(CoreError) {
        let canonical = ties[target] ?? target
        guard tensors[canonical] != nil else { throw .unknownTensor(target) }
        guard tensors[alias] == nil, ties[alias] == nil else { throw .duplicateTensor(alias) }
        ties[alias] = canonical
    }

    /// Removes a tensor (and any ties to it).
    public mutating func remove(_ name: String) {
        tensors.removeValue(forKey: name)
        ties.removeValue(forKey: name)
        ties = ties.filter { $0.value != name }
    }

    /// Removes an alias (the tensor it names stays).
    public mutating func removeTie(_ alias: String) {
        ties.removeValue(forKey: alias)
    }

    /// Replaces a tensor's data, dtype or shape under the same name, keeping its position.
    public mutating func replace(_ tensor: Tensor) throws(CoreError) {
        guard tensors[tensor.name] != nil else { throw .unknownTensor(tensor.name) }
        tensors[tensor.name] = tensor
    }

    /// The tensor with this name, following ties.
    public func tensor(named name: String) -> Tensor? {
        if let t = tensors[name] { return t }
        if let target = ties[name], var t = tensors[target] {
            t.name = name
            return t
        }
        return nil
    }

    public var parameterCount: Int { tensors.values.reduce(0) { $0 + $1.elementCount } }
    public var byteCount: Int { tensors.values.reduce(0) { $0 + $1.byteCount } }
    public var largestTensorBytes: Int { tensors.values.map(\.byteCount).max() ?? 0 }

    /// The module tree implied by dotted names, with parameter counts summed up the tree.
    public func moduleTree() -> ModuleNode {
        var root = ModuleNode(name: "")
        for tensor in tensors.values {
            root.insert(path: tensor.name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)[...],
                        parameters: tensor.elementCount, tensor: tensor.name)
        }
        return root
    }
}

public struct ModuleNode: Sendable, Equatable {
    public var name: String
    public var parameters = 0
    /// Tensors held directly by this module (their last name component), in order.
    public var tensors: [String] = []
    public var children: OrderedDictionary<String, ModuleNode> = [:]

    public init(name: String) { self.name = name }

    mutating func insert(path: ArraySlice<String>, parameters: Int, tensor: String) {
        self.parameters += parameters
        guard let first = path.first else { return }
        if path.count == 1 {
            tensors.append(first)
            return
        }
        children[first, default: ModuleNode(name: first)].insert(
            path: path.dropFirst(), parameters: parameters, tensor: tensor)
    }
}
