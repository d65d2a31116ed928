// Builders for hand-made PyTorch checkpoints: pickle opcodes and a stored zip archive, so
// tests control every byte of malformed inputs. Written from the pickletools documentation
// and APPNOTE.TXT, independently of ckpt's reader.

/// A pickle, opcode by opcode (starts with PROTO).
public struct PickleBytes {
    public var bytes: [UInt8]

    public init(protocol p: UInt8 = 2) { bytes = [0x80, p] }

    public mutating func raw(_ b: UInt8...) { bytes += b }
    public mutating func mark() { bytes.append(0x28) }
    public mutating func tuple() { bytes.append(0x74) }
    public mutating func emptyTuple() { bytes.append(0x29) }
    public mutating func emptyDict() { bytes.append(0x7D) }
    public mutating func setItems() { bytes.append(0x75) }
    public mutating func reduce() { bytes.append(0x52) }
    public mutating func stop() { bytes.append(0x2E) }
    public mutating func persistentID() { bytes.append(0x51) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 0x88 : 0x89) }

    public mutating func string(_ s: String) {
        let u = Array(s.utf8)
        bytes.append(0x58)
        bytes += le32(UInt32(u.count))
        bytes += u
    }

    /// BININT (signed 32-bit).
    public mutating func int(_ v: Int32) {
        bytes.append(0x4A)
        bytes += le32(UInt32(bitPattern: v))
    }

    /// LONG1 of a 64-bit value.
    public mutating func long(_ v: Int64) {
        bytes += [0x8A, 8]
        bytes += (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
    }

    public mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)
        bytes += Array((module + "\n" + name + "\n").utf8)
    }

    public mutating func intTuple(_ v: [Int]) {
        mark()
        for x in v { long(Int64(x)) }
        tuple()
    }

    /// `_rebuild_tensor_v2(BINPERSID(('storage', torch.<type>, key, 'cpu', numel)), offset,
    /// size, stride, False, OrderedDict())`, as torch.save writes it.
    public mutating func tensor(type: String = "FloatStorage", key: String, numel: Int, offset: Int, size: [Int], stride: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark(); string("storage"); global("torch", type); string(key); string("cpu"); long(Int64(numel)); tuple()
        persistentID()
        long(Int64(offset))
        intTuple(size)
        intTuple(stride)
        bool(false)
        global("collections", "OrderedDict"); emptyTuple(); reduce()
        tuple()
        reduce()
    }

    /// A whole state_dict pickle: {name: tensor, ...}.
    public static func stateDict(_ tensors: [(name: String, type: String, key: String, numel: Int, offset: Int, size: [Int], stride: [Int])]) -> [UInt8] {
        var p = PickleBytes()
        p.emptyDict()
        p.mark()
        for t in tensors {
            p.string(t.name)
            p.tensor(type: t.type, key: t.key, numel: t.numel, offset: t.offset, size: t.size, stride: t.stride)
        }
        p.setItems()
        p.stop()
        return p.bytes
    }
}

/// A zip archive of stored members, as APPNOTE.TXT describes (optionally with every size and
/// offset moved into zip64 extra fields and zip64 end records, as torch does for large files).
public struct ZipBytes {
    public struct Member {
        public var name: String
        public var data: [UInt8]
        public var method: UInt16 = 0
        public init(_ name: String, _ data: [UInt8], method: UInt16 = 0) {
            self.name = name
            self.data = data
            self.method = method
        }
    }

    public static func build(_ members: [Member], zip64: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for m in members {
            let offset = out.count
            let name = Array(m.name.utf8)
            let crc = crc32(m.data)
            var zip64Extra: [UInt8] = []
            if zip64 {
                zip64Extra = le16(1) + le16(24) + le64(UInt64(m.data.count)) + le64(UInt64(m.data.count)) + le64(UInt64(offset))
            }
            let size32: UInt32 = zip64 ? 0xFFFF_FFFF : UInt32(m.data.count)
            // Local header (4.3.7): sizes in the header, no data descriptor.
            out += le32(0x0403_4B50) + le16(zip64 ? 45 : 20) + le16(0) + le16(m.method) + le16(0) + le16(0)
            out += le32(crc) + le32(size32) + le32(size32) + le16(UInt16(name.count)) + le16(UInt16(zip64Extra.count))
            out += name + zip64Extra + m.data
            // Central directory record (4.3.12).
            central += le32(0x0201_4B50) + le16(zip64 ? 45 : 20) + le16(zip64 ? 45 : 20) + le16(0) + le16(m.method)
            central += le16(0) + le16(0) + le32(crc) + le32(size32) + le32(size32)
            central += le16(UInt16(name.count)) + le16(UInt16(zip64Extra.count)) + le16(0) + le16(0) + le16(0) + le32(0)
            central += le32(zip64 ? 0xFFFF_FFFF : UInt32(offset)) + name + zip64Extra
        }
        let cdOffset = out.count
        out += central
        let n = UInt16(members.count)
        if zip64 {
            let record = out.count
            out += le32(0x0606_4B50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0)
            out += le64(UInt64(n)) + le64(UInt64(n)) + le64(UInt64(central.count)) + le64(UInt64(cdOffset))
            out += le32(0x0706_4B50) + le32(0) + le64(UInt64(record)) + le32(1)
            out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(0xFFFF) + le16(0xFFFF)
            out += le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) + le16(0)
        } else {
            out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(n) + le16(n)
            out += le32(UInt32(central.count)) + le32(UInt32(cdOffset)) + le16(0)
        }
        return out
    }

    /// A torch.save-style archive: `<archive>/data.pkl`, `byteorder`, `data/<key>`..., `version`.
    public static func torch(pickle: [UInt8], storages: [(key: String, bytes: [UInt8])], archive: String = "archive",
                             byteorder: String = "little", zip64: Bool = false) -> [UInt8] {
        var members = [Member("\(archive)/data.pkl", pickle), Member("\(archive)/byteorder", Array(byteorder.utf8))]
        members += storages.map { Member("\(archive)/data/\($0.key)", $0.bytes) }
        members.append(Member("\(archive)/version", Array("3\n".utf8)))
        return build(members, zip64: zip64)
    }
}

public func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
public func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
public func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

/// Little-endian bytes of Float values.
public func f32Bytes(_ values: [Float]) -> [UInt8] { values.flatMap { le32($0.bitPattern) } }

/// CRC-32 (zip's), bit by bit.
public func crc32(_ data: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in data {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
    }
    return ~c
}
