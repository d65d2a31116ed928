// HDF5 paths -> tensor names, with the Keras layouts recognised.
//
// Generic: `/a/b/c` -> `a.b.c`, in walk order. Two paths giving one name (`/a.b` and
// `/a/b`) are an error naming both.
//
// Keras 3 `.weights.h5` (`model.save_weights`): a root with groups `layers` and `vars`;
// each layer's variables are `layers/<attr-name>/vars/<i>`, nested layers repeat
// `layers/<name>/`, and each `vars` group has an attribute `name` with the layer's own
// name (the group names are Keras' attribute-path names such as `dense_1`). A variable
// becomes `<layer name>[.<inner layer name>...].<i>`: `layers/dense_1/vars/0` whose
// `vars` group is named `head` -> `head.0`. Other datasets keep generic names.
//
// Legacy Keras 2 `model.h5` / `weights.h5`: a group (`/model_weights` in model.h5, the root
// in weights.h5) with attribute `layer_names`; each layer's group has `weight_names` (such as
// `dense/kernel:0`) naming datasets under it. A weight becomes its weight name with the
// `:<n>` suffix dropped and `/` made `.`, prefixed with the layer name when it does not
// already start with it: `dense/kernel:0` -> `dense.kernel`. Tensors follow `layer_names`
// and `weight_names` order (the order Keras loads them in); other datasets (optimizer
// state) follow with generic names.
//
// If the Keras names would clash, the generic names are used instead. The attributes a
// layout was recognised by (`name`, `layer_names`, `weight_names`) are consumed, not
// copied into metadata; the root's (backend, keras_version, model_config) are kept.

import CkptCore

struct HDF5Naming {
    var names: [String: String] = [:]      // dataset path -> tensor name
    var aliasNames: [String: String] = [:]  // alias link path -> tensor name
    var order: [Int] = []                   // indices into scan.datasets, in graph order
    var consumedAttributes: Set<String> = []  // "<path>:<attribute>"

    /// Generic name of a path.
    static func generic(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: ".")
    }

    /// Name order for groups that do not track creation order: all-digit names first, as
    /// numbers (Keras' `vars/2` before `vars/10`), then the others by their UTF-8 bytes (the
    /// order libhdf5's name index gives). A total order, so sorting is well defined.
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        let da = !a.isEmpty && a.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        let db = !b.isEmpty && b.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        if da != db { return da }
        if da && a.utf8.count != b.utf8.count { return a.utf8.count < b.utf8.count }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    static func names(for scan: HDF5.Scan) throws(HDF5Error) -> HDF5Naming {
        var keras = try kerasLegacy(scan)
        if keras == nil { keras = try keras3(scan) }
        if let keras, keras.isUnique { return keras.withAliases(scan) }
        var n = HDF5Naming()
        var seen: [String: String] = [:]
        for (i, d) in scan.datasets.enumerated() {
            var name = generic(d.path)
            // ckpt's writer spells out names that no HDF5 path can hold ('/').
            if case .string(let stored)? = d.attributes.first(where: { $0.0 == "ckpt:name" })?.1 {
                name = stored
                n.consumedAttributes.insert(d.path + ":ckpt:name")
            }
            if let other = seen[name] {
                throw .invalidShape(dataset: d.path, reason: "its tensor name `\(name)` is also the name of `\(other)`")
            }
            seen[name] = d.path
            n.names[d.path] = name
            n.order.append(i)
        }
        return n.withAliases(scan)
    }

    var isUnique: Bool { Set(names.values).count == names.count }

    func withAliases(_ scan: HDF5.Scan) -> HDF5Naming {
        var n = self
        let taken = Set(names.values)
        for (alias, _) in scan.aliases {
            let name = HDF5Naming.generic(alias)
            if !taken.contains(name) { n.aliasNames[alias] = name }
        }
        return n
    }

    // MARK: Keras 3

    static func keras3(_ scan: HDF5.Scan) throws(HDF5Error) -> HDF5Naming? {
        // Recognised by its two top-level groups and variables at layers/<x>/vars/<i>.
        let hasLayout = scan.datasets.contains { d in
            let parts = d.path.split(separator: "/")
            return parts.count >= 4 && parts.count % 2 == 0 && parts[0] == "layers" && parts[parts.count - 2] == "vars"
        }
        guard hasLayout else { return nil }
        var n = HDF5Naming()
        for (i, d) in scan.datasets.enumerated() {
            let parts = d.path.split(separator: "/").map(String.init)
            var name = generic(d.path)
            // layers/<a>/layers/<b>/vars/<i>: pairs of (layers, name), then (vars, index).
            if parts.count >= 4, parts.count % 2 == 0, parts[parts.count - 2] == "vars",
               stride(from: 0, to: parts.count - 2, by: 2).allSatisfy({ parts[$0] == "layers" }) {
                var layerNames: [String] = []
                var prefix = ""
                for j in stride(from: 0, to: parts.count - 2, by: 2) {
                    prefix += "/layers/" + parts[j + 1]
                    let varsGroup = prefix + "/vars"
                    if case .string(let own)? = scan.attributes(of: varsGroup).first(where: { $0.0 == "name" })?.1, !own.isEmpty {
                        layerNames.append(own)
                        n.consumedAttributes.insert(varsGroup + ":name")
                    } else {
                        layerNames.append(parts[j + 1])
                    }
                }
                name = (layerNames + [parts[parts.count - 1]]).joined(separator: ".")
            }
            n.names[d.path] = name
            n.order.append(i)
        }
        // The `name` attributes of vars groups holding no variables (input layers, the
        // model itself) say nothing about any tensor: consumed too.
        for (path, values) in scan.attributes where path.hasSuffix("/vars") || path == "/vars" {
            if values.contains(where: { $0.0 == "name" }) { n.consumedAttributes.insert(path + ":name") }
        }
        return n
    }

    // MARK: Legacy Keras (HDF5 format of Keras 2 and tf.keras)

    static func kerasLegacy(_ scan: HDF5.Scan) throws(HDF5Error) -> HDF5Naming? {
        let base: String
        let layerNames: [String]
        if case .strings(let l)? = scan.attributes(of: "/model_weights").first(where: { $0.0 == "layer_names" })?.1 {
            base = "/model_weights"
            layerNames = l
        } else if case .strings(let l)? = scan.attributes(of: "/").first(where: { $0.0 == "layer_names" })?.1 {
            base = ""
            layerNames = l
        } else {
            return nil
        }
        var n = HDF5Naming()
        n.consumedAttributes.insert((base.isEmpty ? "/" : base) + ":layer_names")
        // Every layer group's `weight_names`, including groups not in `layer_names`
        // (Keras 3 adds `top_level_model_weights`).
        for (path, values) in scan.attributes where values.contains(where: { $0.0 == "weight_names" }) {
            if path.hasPrefix(base + "/") && !path.dropFirst(base.count + 1).contains("/") {
                n.consumedAttributes.insert(path + ":weight_names")
            }
        }
        let indexOf = Dictionary(scan.datasets.enumerated().map { ($1.path, $0) }, uniquingKeysWith: { a, _ in a })
        var placed = Set<Int>()
        for layer in layerNames {
            let group = base + "/" + layer
            n.consumedAttributes.insert(group + ":weight_names")
            let weightNames: [String]
            switch scan.attributes(of: group).first(where: { $0.0 == "weight_names" })?.1 {
            case .strings(let w)?: weightNames = w
            case .string(let w)?: weightNames = [w]
            default: weightNames = []  // Keras writes an empty float array for layers without weights
            }
            for w in weightNames {
                let path = group + "/" + w
                guard let index = indexOf[path] else {
                    throw .kerasLayout("layer `\(layer)` lists weight `\(w)` but the file has no dataset `\(path)`")
                }
                var stem = w
                if let colon = stem.lastIndex(of: ":"), stem[stem.index(after: colon)...].allSatisfy(\.isNumber) {
                    stem = String(stem[..<colon])
                }
                var name = stem.split(separator: "/", omittingEmptySubsequences: true).joined(separator: ".")
                if !(name == layer || name.hasPrefix(layer + ".")) { name = layer + "." + name }
                n.names[path] = name
                if placed.insert(index).inserted { n.order.append(index) }
            }
        }
        for (i, d) in scan.datasets.enumerated() where !placed.contains(i) {
            n.names[d.path] = generic(d.path)
            n.order.append(i)
        }
        return n
    }
}
