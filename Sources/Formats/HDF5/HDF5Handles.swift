// libhdf5 access: one process-wide lock, owned ids, and errors.
//
// libhdf5 1.10 as Debian builds it (`--disable-threadsafe`) must not be entered from two
// threads at once: its id tables, caches and error stack are global. Every call goes
// through `H5.locked`, a recursive lock (wrappers nest: reading a tensor from one HDF5 file
// while writing another happens under one acquisition per call chain).
//
// Automatic error printing is switched off once (`H5Eset_auto2(H5E_DEFAULT, NULL, NULL)`);
// after a failed call the error stack is walked and condensed into one `HDF5Error`.
// Plugin loading is switched off too (`H5PLset_loading_state(0)`): a file naming an unknown
// filter would otherwise make libhdf5 dlopen() shared objects from HDF5_PLUGIN_PATH.
//
// SAFETY: the unsafe pointers here are C strings and the walk callback's context, each used
// only inside the call that receives it.

import CHDF5
import Foundation

enum H5 {
    private static let lock = NSRecursiveLock()
    nonisolated(unsafe) private static var ready = false

    /// Runs `body` holding the libhdf5 lock (set up on first use).
    static func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        if !ready {
            _ = H5open()
            _ = H5Eset_auto2(chdf5_e_default(), nil, nil)
            _ = H5PLset_loading_state(0)
            ready = true
        }
        return try body()
    }

    /// Condenses and clears the error stack: the API-level entry and the innermost cause.
    /// Call with the lock held, right after a failed call.
    static func takeErrorStack() -> String {
        final class Entries { var items: [String] = [] }
        let entries = Entries()
        let walker: H5E_walk2_t = { _, err, context in
            guard let err, let context else { return 0 }
            let box = Unmanaged<Entries>.fromOpaque(context).takeUnretainedValue()
            var text = err.pointee.desc.map { String(cString: $0) } ?? ""
            if text.isEmpty {
                var buf = [CChar](repeating: 0, count: 256)
                var type = H5E_MINOR
                if H5Eget_msg(err.pointee.min_num, &type, &buf, buf.count) > 0 { text = H5.text(buf) }
            }
            box.items.append(text)
            return 0
        }
        withExtendedLifetime(entries) {
            _ = H5Ewalk2(chdf5_e_default(), H5E_WALK_DOWNWARD, walker, Unmanaged.passUnretained(entries).toOpaque())
        }
        _ = H5Eclear2(chdf5_e_default())
        let items = entries.items.filter { !$0.isEmpty }
        guard let first = items.first else { return "call failed without an error message" }
        if items.count == 1 || items.last == first { return first }
        return first + ": " + items.last!
    }

    /// Throws the error stack when a status is negative.
    static func check(_ status: herr_t, _ context: @autoclosure () -> String) throws(HDF5Error) {
        if status < 0 { throw .library(context: context(), message: takeErrorStack()) }
    }

    /// Throws the error stack when a tri-state (htri_t) result is negative; else its truth.
    static func truth(_ value: htri_t, _ context: @autoclosure () -> String) throws(HDF5Error) -> Bool {
        if value < 0 { throw .library(context: context(), message: takeErrorStack()) }
        return value > 0
    }

    /// A libhdf5 string getter called twice (size, then bytes), as its API expects.
    static func string(_ context: @autoclosure () -> String,
                       _ get: (UnsafeMutablePointer<CChar>?, Int) -> Int) throws(HDF5Error) -> String {
        let n = get(nil, 0)
        if n < 0 { throw .library(context: context(), message: takeErrorStack()) }
        var buf = [CChar](repeating: 0, count: n + 1)
        if get(&buf, buf.count) < 0 { throw .library(context: context(), message: takeErrorStack()) }
        return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The NUL-terminated text in a buffer libhdf5 filled.
    static func text(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Takes a C string libhdf5 allocated (H5Tget_tag, H5Tget_member_name) and frees it.
    static func ownedString(_ p: UnsafeMutablePointer<CChar>?) -> String? {
        guard let p else { return nil }
        defer { H5free_memory(p) }
        return String(cString: p)
    }
}

/// An id returned by libhdf5, closed exactly once: by `close()` (which reports failure, used
/// for files being written) or by `deinit` (error paths).
struct H5ID: ~Copyable {
    enum Kind { case file, group, dataset, dataspace, datatype, plist, attribute, object }

    let raw: hid_t
    let kind: Kind

    /// Takes ownership of `raw`, or throws libhdf5's error if the call that produced it failed.
    init(_ raw: hid_t, _ kind: Kind, _ context: @autoclosure () -> String) throws(HDF5Error) {
        if raw < 0 { throw .library(context: context(), message: H5.locked { H5.takeErrorStack() }) }
        self.raw = raw
        self.kind = kind
    }

    deinit { H5.locked { _ = H5ID.close(raw, kind) } }

    consuming func close(_ context: @autoclosure () -> String) throws(HDF5Error) {
        let raw = self.raw, kind = self.kind
        discard self
        try H5.locked { () throws(HDF5Error) in try H5.check(H5ID.close(raw, kind), context()) }
    }

    private static func close(_ raw: hid_t, _ kind: Kind) -> herr_t {
        switch kind {
        case .file: return H5Fclose(raw)
        case .group: return H5Gclose(raw)
        case .dataset: return H5Dclose(raw)
        case .dataspace: return H5Sclose(raw)
        case .datatype: return H5Tclose(raw)
        case .plist: return H5Pclose(raw)
        case .attribute: return H5Aclose(raw)
        case .object: return H5Oclose(raw)
        }
    }
}

/// An HDF5 file kept open for lazily read tensors; closed when the last tensor is released.
final class H5OpenFile: @unchecked Sendable {
    let id: H5ID
    let path: String
    init(id: consuming H5ID, path: String) {
        self.id = id
        self.path = path
    }
}
