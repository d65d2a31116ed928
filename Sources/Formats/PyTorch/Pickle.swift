// A restricted, data-only pickle interpreter: enough of protocols 2–5 to read what
// `torch.save(state_dict)` writes, and nothing that could run code.
//
// Why a new interpreter: Python's `pickle.load` calls whatever the pickle names
// (`GLOBAL os system` + `REDUCE` is `os.system(...)`), which is how malicious checkpoints
// take over a machine. PyTorch's own answer, `torch.load(weights_only=True)`
// (torch/_weights_only_unpickler.py), is an unpickler with an allow-list of globals; this
// one goes further: it never calls anything. Every value is plain data (ints, strings,
// tuples, dicts, ...); the allow-listed globals are symbols (`TorchGlobal`), and REDUCE with
// one of them is *interpreted* (TorchPickle.swift): `_rebuild_tensor_v2(storage, offset,
// size, stride, ...)` becomes a tensor description, `OrderedDict()` an empty dict. Any other
// global is refused where it appears, with its name, before anything else happens.
//
// Opcodes (pickletools' names and bytes; semantics from Python's Lib/pickle.py and the
// pickletools documentation):
//   framing      PROTO (2–5 only, first opcode), FRAME, STOP
//   constants    NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1 BINFLOAT
//   text, bytes  BINUNICODE SHORT_BINUNICODE BINUNICODE8 BINSTRING SHORT_BINSTRING (ASCII)
//                BINBYTES SHORT_BINBYTES BINBYTES8
//   containers   MARK EMPTY_TUPLE TUPLE TUPLE1-3 EMPTY_LIST APPEND APPENDS EMPTY_DICT
//                SETITEM SETITEMS POP POP_MARK DUP
//   memo         BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET
//   objects      GLOBAL STACK_GLOBAL (allow-list), REDUCE (interpreted), BUILD (state of a
//                dict, ignored), BINPERSID (torch's storage references)
// Refused by name: INST OBJ NEWOBJ NEWOBJ_EX (they instantiate classes), PERSID, EXT1/2/4
// (the extension registry names arbitrary globals), BYTEARRAY8 NEXT_BUFFER READONLY_BUFFER
// (out-of-band buffers); any other byte is refused as unknown.
//
// Values never nest in Swift: containers live in an arena and values refer to them by index,
// so a hostile pickle nesting a million tuples costs no recursion anywhere (not even in
// deinit). Every allocation is capped (`Limits`).

import CkptCore

/// A pickled value. Containers and torch objects are `.object(index)` into the arena.
enum PickleValue: Equatable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer that does not fit 64 bits (LONG1, e.g. torch's legacy magic number),
    /// little-endian two's complement.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case global(TorchGlobal)
    case object(Int)
}

enum PickleObject {
    case tuple([PickleValue])
    case list([PickleValue])
    /// A dict or OrderedDict: pairs in insertion order, duplicates kept (see `setItems`).
    case dict([(key: PickleValue, value: PickleValue)])
    /// `BINPERSID` of torch's `('storage', type, key, location, numel)`.
    case storage(TorchStorageRef)
    /// The result of an interpreted `_rebuild_tensor*` call.
    case tensor(TorchTensorRef)
}

struct PickleMachine {
    /// Caps on what a pickle may make us allocate. A state_dict costs ~15 objects and ~150
    /// bytes of pickle per tensor (GPT-2's 149 tensors: 4 kB, 300 memo entries), so these
    /// allow a quarter of a million tensors while bounding memory to a few hundred MB.
    struct Limits {
        var objects = 4_000_000
        var memo = 4_000_000
        var stack = 1_000_000
        var marks = 1_000
        /// Total elements held by all containers.
        var containerItems = 16_000_000
        /// One string or bytes object: tensor names and metadata are short.
        var stringBytes = 16 << 20
    }

    var limits = Limits()
    private(set) var objects: [PickleObject] = []
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var containerItems = 0

    init(limits: Limits = Limits()) { self.limits = limits }

    func object(_ v: PickleValue) -> PickleObject? {
        if case .object(let i) = v { return objects[i] }
        return nil
    }

    /// Runs one pickle starting at the cursor's position and returns its value; the cursor
    /// ends just after STOP (legacy torch files hold several pickles back to back). The
    /// arena persists across calls, so values of earlier pickles stay valid. Byte
    /// offsets in errors count from the pickle's first byte.
    mutating func run(_ c: inout ByteCursor) throws(PyTorchError) -> PickleValue {
        stack.removeAll(keepingCapacity: true)
        marks.removeAll()
        memo.removeAll()
        let start = c.position
        guard let first = c.u8() else { throw .truncatedPickle(offset: 0, opcode: "PROTO") }
        guard first == 0x80 else {
            throw first == 0x28 || first == 0x7D || first == 0x5D
                ? .unsupportedProtocol(first == 0x28 ? 0 : 1)
                : .malformedPickle("does not start with PROTO (first byte 0x\(String(first, radix: 16)))")
        }
        guard let proto = c.u8() else { throw .truncatedPickle(offset: 1, opcode: "PROTO") }
        guard (2...5).contains(proto) else { throw .unsupportedProtocol(Int(proto)) }

        while true {
            let at = c.position - start
            guard let op = c.u8() else { throw .truncatedPickle(offset: at, opcode: "opcode") }
            func need<T: FixedWidthInteger>(_ t: T.Type, _ name: String) throws(PyTorchError) -> T {
                guard let v = c.le(t) else { throw .truncatedPickle(offset: at, opcode: name) }
                return v
            }
            switch op {
            case 0x2E:  // STOP
                guard marks.isEmpty, stack.count == 1 else {
                    throw .malformedPickle("STOP at byte \(at) with \(stack.count) values on the stack and \(marks.count) open marks")
                }
                return stack[0]
            case 0x80:  // PROTO inside the stream: allowed by pickle, must still be 2–5
                let p = try need(UInt8.self, "PROTO")
                guard (2...5).contains(p) else { throw .unsupportedProtocol(Int(p)) }
            case 0x95:  // FRAME: an 8-byte length announcing the next bytes; nothing to do
                let n = try need(UInt64.self, "FRAME")
                guard n <= UInt64(c.remaining) else { throw .truncatedPickle(offset: at, opcode: "FRAME of \(n) bytes") }

            case 0x4E: try push(.none)
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4A: try push(.int(Int(Int32(bitPattern: try need(UInt32.self, "BININT")))))
            case 0x4B: try push(.int(Int(try need(UInt8.self, "BININT1"))))
            case 0x4D: try push(.int(Int(try need(UInt16.self, "BININT2"))))
            case 0x8A:  // LONG1: n bytes, little-endian two's complement
                let n = Int(try need(UInt8.self, "LONG1"))
                guard let b = c.array(n) else { throw .truncatedPickle(offset: at, opcode: "LONG1") }
                try push(Self.long(b))
            case 0x47:  // BINFLOAT: 8 bytes, *big*-endian IEEE double
                try push(.float(Double(bitPattern: try need(UInt64.self, "BINFLOAT").byteSwapped)))

            case 0x58: try push(.string(try text(&c, count: Int(try need(UInt32.self, "BINUNICODE")), at: at, "BINUNICODE")))
            case 0x8C: try push(.string(try text(&c, count: Int(try need(UInt8.self, "SHORT_BINUNICODE")), at: at, "SHORT_BINUNICODE")))
            case 0x8D:
                let n = try need(UInt64.self, "BINUNICODE8")
                try push(.string(try text(&c, count: n > UInt64(Int.max) ? Int.max : Int(n), at: at, "BINUNICODE8")))
            case 0x54, 0x55:  // BINSTRING, SHORT_BINSTRING: Python 2 str, decoded as ASCII (pickle's default)
                let n = op == 0x54 ? Int(Int32(bitPattern: try need(UInt32.self, "BINSTRING"))) : Int(try need(UInt8.self, "SHORT_BINSTRING"))
                guard n >= 0 else { throw .malformedPickle("negative BINSTRING length at byte \(at)") }
                let s = try text(&c, count: n, at: at, "BINSTRING")
                guard s.utf8.allSatisfy({ $0 < 0x80 }) else { throw .malformedPickle("non-ASCII BINSTRING at byte \(at)") }
                try push(.string(s))
            case 0x42, 0x43, 0x8E:  // BINBYTES, SHORT_BINBYTES, BINBYTES8
                let n: UInt64 = op == 0x42 ? UInt64(try need(UInt32.self, "BINBYTES"))
                    : op == 0x43 ? UInt64(try need(UInt8.self, "SHORT_BINBYTES")) : try need(UInt64.self, "BINBYTES8")
                guard n <= UInt64(limits.stringBytes) else { throw .limitExceeded("bytes object of \(n) bytes at byte \(at) (cap \(limits.stringBytes))") }
                guard let b = c.array(Int(n)) else { throw .truncatedPickle(offset: at, opcode: "BINBYTES") }
                try push(.bytes(b))

            case 0x28:  // MARK
                guard marks.count < limits.marks else { throw .limitExceeded("more than \(limits.marks) nested marks") }
                marks.append(stack.count)
            case 0x29: try push(try allocate(.tuple([]), items: 0))
            case 0x74: let items = try popMark(at); try push(try allocate(.tuple(items), items: items.count))
            case 0x85, 0x86, 0x87:
                let n = Int(op) - 0x84
                guard stack.count - (marks.last ?? 0) >= n else { throw .malformedPickle("TUPLE\(n) at byte \(at) with too few values") }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                try push(try allocate(.tuple(items), items: n))
            case 0x5D: try push(try allocate(.list([]), items: 0))
            case 0x7D: try push(try allocate(.dict([]), items: 0))
            case 0x61:  // APPEND
                let v = try pop(at)
                try append([v], at: at)
            case 0x65: try append(try popMark(at), at: at)  // APPENDS
            case 0x73:  // SETITEM
                let v = try pop(at), k = try pop(at)
                try setItems([(k, v)], at: at)
            case 0x75:  // SETITEMS
                let items = try popMark(at)
                guard items.count % 2 == 0 else { throw .malformedPickle("SETITEMS at byte \(at) with an odd number of values") }
                try setItems(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }, at: at)
            case 0x30: _ = try pop(at)  // POP
            case 0x31: _ = try popMark(at)  // POP_MARK
            case 0x32: try push(try top(at))  // DUP

            case 0x71: try put(Int(try need(UInt8.self, "BINPUT")), at: at)
            case 0x72: try put(Int(try need(UInt32.self, "LONG_BINPUT")), at: at)
            case 0x94: try put(memo.count, at: at)  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let i = op == 0x68 ? Int(try need(UInt8.self, "BINGET")) : Int(try need(UInt32.self, "LONG_BINGET"))
                guard let v = memo[i] else { throw .malformedPickle("BINGET of memo entry \(i) at byte \(at), which was never stored") }
                try push(v)

            case 0x63:  // GLOBAL: "module\nname\n"
                guard let module = c.line(limit: 1024), let name = c.line(limit: 1024) else {
                    throw .truncatedPickle(offset: at, opcode: "GLOBAL")
                }
                try push(.global(try TorchGlobal.resolve(module: String(decoding: module, as: UTF8.self),
                                                         name: String(decoding: name, as: UTF8.self))))
            case 0x93:  // STACK_GLOBAL: module and name strings on the stack
                let name = try pop(at), module = try pop(at)
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw .malformedPickle("STACK_GLOBAL at byte \(at) without two strings")
                }
                try push(.global(try TorchGlobal.resolve(module: m, name: n)))
            case 0x52:  // REDUCE: callable(*args), interpreted, never called
                let args = try pop(at), callable = try pop(at)
                guard case .global(let g) = callable else {
                    throw .malformedPickle("REDUCE at byte \(at) calls a value that is not an allowed global")
                }
                guard case .object(let ai) = args, case .tuple(let argv) = objects[ai] else {
                    throw .malformedPickle("REDUCE of `\(g.qualifiedName)` at byte \(at) without an argument tuple")
                }
                try push(try reduce(g, argv))
            case 0x62:  // BUILD: sets an object's state; only a dict's attributes (state_dict._metadata), ignored
                let state = try pop(at), target = try top(at)
                guard case .dict = object(target) else {
                    throw .malformedPickle("BUILD at byte \(at) on something other than a dict")
                }
                guard state == .none || { if case .dict = object(state) { return true }; return false }() else {
                    throw .malformedPickle("BUILD at byte \(at) with a state that is not a dict")
                }
            case 0x51:  // BINPERSID: torch's storage reference
                let pid = try pop(at)
                try push(try persistentLoad(pid))

            case 0x69: throw .forbiddenOpcode(name: "INST", offset: at)
            case 0x6F: throw .forbiddenOpcode(name: "OBJ", offset: at)
            case 0x81: throw .forbiddenOpcode(name: "NEWOBJ", offset: at)
            case 0x92: throw .forbiddenOpcode(name: "NEWOBJ_EX", offset: at)
            case 0x50: throw .forbiddenOpcode(name: "PERSID", offset: at)
            case 0x82, 0x83, 0x84: throw .forbiddenOpcode(name: "EXT\([1, 2, 4][Int(op) - 0x82])", offset: at)
            case 0x96: throw .forbiddenOpcode(name: "BYTEARRAY8", offset: at)
            case 0x97: throw .forbiddenOpcode(name: "NEXT_BUFFER", offset: at)
            case 0x98: throw .forbiddenOpcode(name: "READONLY_BUFFER", offset: at)
            default: throw .unknownOpcode(op, offset: at)
            }
        }
    }

    // MARK: Stack, memo and arena

    private mutating func push(_ v: PickleValue) throws(PyTorchError) {
        guard stack.count < limits.stack else { throw .limitExceeded("stack deeper than \(limits.stack) values") }
        stack.append(v)
    }

    private mutating func pop(_ at: Int) throws(PyTorchError) -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw .malformedPickle("stack underflow at byte \(at)") }
        return stack.removeLast()
    }

    private func top(_ at: Int) throws(PyTorchError) -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.last else { throw .malformedPickle("stack underflow at byte \(at)") }
        return v
    }

    private mutating func popMark(_ at: Int) throws(PyTorchError) -> [PickleValue] {
        guard let m = marks.popLast() else { throw .malformedPickle("no MARK for the opcode at byte \(at)") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private mutating func put(_ index: Int, at: Int) throws(PyTorchError) {
        guard memo.count < limits.memo || memo[index] != nil else { throw .limitExceeded("more than \(limits.memo) memo entries") }
        memo[index] = try top(at)
    }

    mutating func allocate(_ o: PickleObject, items: Int) throws(PyTorchError) -> PickleValue {
        guard objects.count < limits.objects else { throw .limitExceeded("more than \(limits.objects) objects") }
        try count(items)
        objects.append(o)
        return .object(objects.count - 1)
    }

    private mutating func count(_ items: Int) throws(PyTorchError) {
        containerItems += items
        guard containerItems <= limits.containerItems else {
            throw .limitExceeded("more than \(limits.containerItems) container elements")
        }
    }

    private mutating func append(_ values: [PickleValue], at: Int) throws(PyTorchError) {
        guard case .object(let i) = try top(at), case .list(var items) = objects[i] else {
            throw .malformedPickle("APPEND at byte \(at) to something other than a list")
        }
        try count(values.count)
        objects[i] = .tuple([])  // drop the arena's reference so the append does not copy
        items.append(contentsOf: values)
        objects[i] = .list(items)
    }

    private mutating func setItems(_ pairs: [(PickleValue, PickleValue)], at: Int) throws(PyTorchError) {
        guard case .object(let i) = try top(at), case .dict(var items) = objects[i] else {
            throw .malformedPickle("SETITEM at byte \(at) on something other than a dict")
        }
        try count(2 * pairs.count)
        objects[i] = .tuple([])  // drop the arena's reference so the update does not copy
        // Python would let an equal key replace the value; here both pairs are kept and the
        // state_dict reader refuses duplicate tensor names (other dicts are not used).
        items.append(contentsOf: pairs.map { (key: $0.0, value: $0.1) })
        objects[i] = .dict(items)
    }

    private func text(_ c: inout ByteCursor, count: Int, at: Int, _ op: String) throws(PyTorchError) -> String {
        guard count <= limits.stringBytes else { throw .limitExceeded("\(op) of \(count) bytes at byte \(at) (cap \(limits.stringBytes))") }
        guard let s = c.utf8(count) else { throw .truncatedPickle(offset: at, opcode: op) }
        guard let s else { throw .malformedPickle("\(op) at byte \(at) is not valid UTF-8") }
        return s
    }

    /// LONG1's bytes as an Int when they fit, else kept as bytes.
    static func long(_ b: [UInt8]) -> PickleValue {
        if b.isEmpty { return .int(0) }
        if b.count <= 8 {
            var v: UInt64 = 0
            for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
            if b.count < 8, b.last! & 0x80 != 0 { v |= ~0 << (8 * UInt64(b.count)) }  // sign-extend
            return .int(Int(Int64(bitPattern: v)))
        }
        return .bigInt(b)
    }
}
