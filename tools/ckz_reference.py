#!/usr/bin/env python3
"""An independent .ckz decoder written from docs/ckz.md alone: Python's struct and zlib only.

    python tools/ckz_reference.py FILE.ckz          # prints JSON: per tensor dtype, shape, sha256
    python tools/ckz_reference.py FILE.ckz --raw DIR  # also writes each tensor's raw bytes

It checks what the spec says a reader must check (magic, version, trailer and index CRC32s,
tensor placement, per-chunk CRC32s of stored and decoded bytes) and inflates DEFLATE planes
with zlib (wbits=-15, raw DEFLATE). The test suite runs it on files ckpt writes, to show
that the spec is implementable by someone who never read ckpt's Swift code.
"""
import hashlib
import json
import struct
import sys
import zlib

MAGIC = b"\x89CKZ\r\n\x1a\n"
END = b"CKZ\x1a"


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        if n > len(self.b) - self.p:
            raise ValueError("index ends early")
        self.p += n
        return self.b[self.p - n:self.p]

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def str(self):
        return self.take(self.u32()).decode("utf-8")


def unplanes(planes, width):
    n = len(planes[0])
    out = bytearray(n * width)
    for j, p in enumerate(planes):
        out[j::width] = p
    # Undo the rotate-left-by-one of each little-endian element.
    v = int.from_bytes(out, "little")  # fine for test-sized tensors
    bits = 8 * width
    res = bytearray()
    for i in range(n):
        e = (v >> (bits * i)) & ((1 << bits) - 1)
        e = (e >> 1) | ((e & 1) << (bits - 1))
        res += e.to_bytes(width, "little")
    return bytes(res)


def decode(path, index_only=False):
    f = open(path, "rb").read()
    assert f[:8] == MAGIC, "bad magic"
    version, flags = struct.unpack_from("<II", f, 8)
    assert version == 1 and flags == 0 and f[16:64] == bytes(48)
    t = f[-32:]
    assert t[28:] == END, "truncated"
    io, il, icrc, tflags, tcrc = struct.unpack_from("<QQIII", t, 0)
    assert zlib.crc32(t[:24]) == tcrc and tflags == 0
    assert io + il == len(f) - 32 and io % 64 == 0
    index = f[io:io + il]
    assert zlib.crc32(index) == icrc, "index crc"
    r = Reader(index)
    out = {"provenance": json.loads(r.str())}
    out["metadata"] = {r.str(): r.str() for _ in range(r.u32())}
    out["config"] = r.take(r.u32()).decode() if r.u8() == 1 else None
    out["ties"] = {r.str(): r.str() for _ in range(r.u32())}
    tensors = {}
    pos = 64
    for _ in range(r.u32()):
        name, dtype = r.str(), r.str()
        shape = [r.u64() for _ in range(r.u8())]
        quant = r.str()
        assert quant == ""
        off, stored, raw, chunk_size, nchunks = r.u64(), r.u64(), r.u64(), r.u32(), r.u32()
        assert off == (pos + 63) // 64 * 64 and f[pos:off] == bytes(off - pos)
        data = bytearray()
        plane_stats = {}  # "filter/plane/codec" -> [stored, raw]
        at = off
        for c in range(nchunks):
            filt, nplanes, rawcrc, storedcrc = r.u8(), r.u8(), r.u32(), r.u32()
            planes = [(r.u8(), r.u32()) for _ in range(nplanes)]
            chunk_raw = min(chunk_size, raw - c * chunk_size)
            total = sum(n for _, n in planes)
            for j, (codec, n) in enumerate(planes):
                key = f"{filt}/{j}/{codec}"
                plane_stats[key] = [a + b for a, b in zip(plane_stats.get(key, [0, 0]), [n, chunk_raw // nplanes])]
            if index_only:
                at += total
                continue
            blob = f[at:at + total]
            assert zlib.crc32(blob) == storedcrc, f"{name} chunk {c}: crc"
            at += total
            parts, p = [], 0
            for codec, n in planes:
                part = blob[p:p + n]
                p += n
                parts.append(zlib.decompress(part, wbits=-15) if codec == 1 else part)
            plain = b"".join(parts) if filt == 0 else unplanes(parts, nplanes)
            assert len(plain) == chunk_raw and zlib.crc32(plain) == rawcrc, f"{name} chunk {c}: raw crc"
            data += plain
        assert at - off == stored and (index_only or len(data) == raw)
        pos = at
        tensors[name] = {"dtype": dtype, "shape": shape, "sha256": hashlib.sha256(data).hexdigest(),
                         "stored": stored, "raw": raw, "planes": plane_stats}
        if "--raw" in sys.argv:
            open(sys.argv[sys.argv.index("--raw") + 1] + "/" + name, "wb").write(data)
    assert r.p == len(index) and (pos + 63) // 64 * 64 == io
    out["tensors"] = tensors
    return out


if __name__ == "__main__":
    print(json.dumps(decode(sys.argv[1])))
