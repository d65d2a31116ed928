// NumPy `.npy`: one array.
//
// Layout (NEP 1, numpy/lib/format.py):
//   "\x93NUMPY" major minor
//   header length: u16 LE (version 1.0) or u32 LE (2.0, 3.0)
//   header: an ASCII (3.0: UTF-8) Python dict literal, padded with spaces and '\n' so the data
//           starts on a 64-byte boundary:  {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
//   data: C-order (or Fortran-order) elements
//
// The header is capped at 10,000 bytes (numpy's own `max_header_size` default) and parsed
// with a small strict reader of exactly that dict shape. Writing uses version 1.0.

import CkptCore

public enum NpyError: Error, Equatable, Sendable, CustomStringConvertible {
    case notNpy
    case unsupportedVersion(UInt8, UInt8)
    case headerTooLarge(Int)
    case truncated(expected: Int, actual: Int)
    case invalidHeader(String)
    case unsupportedDType(String)
    case fortranOrder
    case cannotWrite(DType)

    public var description: String {
        switch self {
        case .notNpy: return "not a .npy file (no \\x93NUMPY magic)"
        case .unsupportedVersion(let a, let b): return ".npy version \(a).\(b) is not supported"
        case .headerTooLarge(let n): return ".npy header of \(n) bytes exceeds the 10,000-byte cap"
        case .truncated(let e, let a): return "truncated: data needs \(e) bytes, file has \(a)"
        case .invalidHeader(let m): return "invalid .npy header: \(m)"
        case .unsupportedDType(let d): return "dtype \(d) is not supported"
        case .fortranOrder: return "Fortran-ordered arrays are not supported; save with np.ascontiguousarray"
        case .cannotWrite(let d): return "dtype \(d) has no NumPy equivalent"
        }
    }
}

public enum Npy {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    /// numpy's default `max_header_size`.
    static let maxHeaderSize = 10_000

    static let descrs: [(String, DType)] = [
        ("<f8", .f64), ("<f4", .f32), ("<f2", .f16), ("<c8", .c64),
        ("<i8", .i64), ("<i4", .i32), ("<i2", .i16), ("|i1", .i8),
        ("<u8", .u64), ("<u4", .u32), ("<u2", .u16), ("|u1", .u8), ("|b1", .bool),
    ]

    /// Parses a whole .npy file: dtype, shape and the byte range of the data.
    public static func parse(_ file: UnsafeRawBufferPointer) throws(NpyError) -> (dtype: DType, shape: [Int], dataOffset: Int, dataCount: Int) {
        try parse(head: file, fileSize: file.count)
    }

    /// Parses a .npy file of `fileSize` bytes from its first bytes `head` (enough to hold
    /// the header: .npz members are parsed before they are inflated).
    public static func parse(head file: UnsafeRawBufferPointer, fileSize: Int) throws(NpyError) -> (dtype: DType, shape: [Int], dataOffset: Int, dataCount: Int) {
        var c = ByteCursor(file)
        guard file.count >= 10, c.matches(magic, at: 0) else { throw .notNpy }
        _ = c.skip(6)
        let major = c.u8()!, minor = c.u8()!  // SAFETY: 10 bytes are there, checked above
        let headerLength: Int
        switch major {
        case 1:
            headerLength = Int(c.le(UInt16.self)!)
        case 2, 3:
            guard let n = c.le(UInt32.self) else { throw .truncated(expected: 12, actual: file.count) }
            headerLength = Int(n)
        default:
            throw .unsupportedVersion(major, minor)
        }
        let start = c.position
        guard headerLength <= maxHeaderSize else { throw .headerTooLarge(headerLength) }
        guard let textBytes = c.utf8(headerLength) else { throw .truncated(expected: start + headerLength, actual: file.count) }
        guard let text = textBytes else { throw .invalidHeader("not UTF-8") }
        let (descr, fortran, shape) = try parseHeader(text)
        guard let dtype = descrs.first(where: { $0.0 == descr || ($0.0.hasPrefix("<") && "=" + $0.0.dropFirst() == descr) })?.1 else {
            throw .unsupportedDType(descr)
        }
        if fortran && shape.count > 1 { throw .fortranOrder }
        guard let bytes = dtype.byteCount(shape: shape) else {
            throw .invalidHeader("shape \(shape) overflows")
        }
        let offset = start + headerLength
        guard fileSize - offset == bytes else {
            if fileSize - offset < bytes { throw .truncated(expected: offset + bytes, actual: fileSize) }
            throw .invalidHeader("\(fileSize - offset - bytes) bytes after the data")
        }
        return (dtype, shape, offset, bytes)
    }

    /// The dict literal: exactly the keys descr, fortran_order, shape, in any order.
    static func parseHeader(_ text: String) throws(NpyError) -> (String, Bool, [Int]) {
        var s = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        guard s.hasPrefix("{"), s.hasSuffix("}") else { throw .invalidHeader("not a dict") }
        s = s.dropFirst().dropLast()
        var descr: String?, fortran: Bool?, shape: [Int]?
        func skipSpaces() { while s.first == " " { s = s.dropFirst() } }
        while true {
            skipSpaces()
            if s.isEmpty { break }
            guard s.first == "'" || s.first == "\"" else { throw .invalidHeader("expected a key") }
            let quote = s.removeFirst()
            guard let end = s.firstIndex(of: quote) else { throw .invalidHeader("unterminated key") }
            let key = String(s[..<end])
            s = s[s.index(after: end)...]
            skipSpaces()
            guard s.first == ":" else { throw .invalidHeader("expected ':'") }
            s = s.dropFirst()
            skipSpaces()
            switch key {
            case "descr":
                guard let q = s.first, q == "'" || q == "\"" else { throw .invalidHeader("descr is not a string (structured dtypes are not supported)") }
                s = s.dropFirst()
                guard let end = s.firstIndex(of: q) else { throw .invalidHeader("unterminated descr") }
                descr = String(s[..<end])
                s = s[s.index(after: end)...]
            case "fortran_order":
                if s.hasPrefix("True") { fortran = true; s = s.dropFirst(4) } else if s.hasPrefix("False") { fortran = false; s = s.dropFirst(5) } else { throw .invalidHeader("fortran_order is not a bool") }
            case "shape":
                guard s.first == "(", let close = s.firstIndex(of: ")") else { throw .invalidHeader("shape is not a tuple") }
                let inner = s[s.index(after: s.startIndex)..<close]
                var dims: [Int] = []
                for part in inner.split(separator: ",") {
                    let p = part.trimmingCharacters(in: .whitespaces)
                    if p.isEmpty { continue }
                    guard p.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let d = Int(p) else { throw .invalidHeader("shape holds \(p)") }
                    dims.append(d)
                }
                shape = dims
                s = s[s.index(after: close)...]
            default:
                throw .invalidHeader("unexpected key \(key)")
            }
            skipSpaces()
            if s.first == "," { s = s.dropFirst() }
        }
        guard let descr, let fortran, let shape else { throw .invalidHeader("missing descr, fortran_order or shape") }
        return (descr, fortran, shape)
    }

    /// The bytes of a version-1.0 .npy file holding `data` (little-endian, C order).
    public static func encode(dtype: DType, shape: [Int], data: [UInt8]) throws(NpyError) -> [UInt8] {
        guard let descr = descrs.first(where: { $0.1 == dtype })?.0 else { throw .cannotWrite(dtype) }
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad with spaces and a final newline so the data starts on a 64-byte boundary.
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        let n = header.utf8.count
        return magic + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + data
    }

    public static func encode(floats: [Float], shape: [Int]) -> [UInt8] {
        var data = [UInt8](repeating: 0, count: floats.count * 4)
        data.withUnsafeMutableBytes { d in
            for (i, f) in floats.enumerated() { d.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        return try! encode(dtype: .f32, shape: shape, data: data)  // f32 always has a descr
    }

    /// Reads a .npy file as a tensor named `name`.
    public static func read(path: String, name: String = "array") throws -> Tensor {
        let file = try MappedFile(path: path)
        do {
            let (dtype, shape, offset, count) = try file.withBytes { (b) throws(NpyError) in try parse(b) }
            return try Tensor(name: name, dtype: dtype, shape: shape, data: .external(file.slice(offset: offset, count: count)))
        } catch {
            throw FileError(path: path, error: error)
        }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws {
        var f = try AtomicFile(target: path)
        try f.write(bytes)
        try f.commit()
    }
}
