// .ckz provenance: where a file came from, as a JSON object in the index.
//
//   {"writer": "ckpt 0.1.0", "recipe": "convert --dtype bf16 --level 2",
//    "sources": [{"file": "model.safetensors", "bytes": 90868376, "sha256": "…"}]}
//
// Only what makes the output reproducible goes in: no timestamps, host names or absolute
// paths (two runs on the same input with the same options must give identical files, for
// any --jobs), so sources are named by their base name and identified by their SHA-256.

import Crypto
import CkptCore
import Dispatch
import Foundation
import OrderedCollections

extension CKZ {
    public struct Provenance: Sendable, Equatable {
        public struct Source: Sendable, Equatable {
            public var file: String
            public var bytes: Int
            public var sha256: String
        }

        public var writer: String
        public var recipe: String?
        public var sources: [Source]

        public init(writer: String = "ckpt", recipe: String? = nil, sources: [Source] = []) {
            self.writer = writer
            self.recipe = recipe
            self.sources = sources
        }

        /// Describes files by base name, size and SHA-256 (read through a memory mapping;
        /// SHA-256 from swift-crypto, BoringSSL's SHA-NI/AVX2 code on x86-64).
        public static func source(_ path: String) throws -> Source {
            let file = try MappedFile(path: path)
            let digest = file.withBytes { bytes in
                var hasher = SHA256()
                // 64 MiB at a time, handing pages back: hashing a large file must not grow RSS.
                var offset = 0
                repeat {
                    let n = min(64 << 20, bytes.count - offset)
                    hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]))
                    file.dontNeed(offset: offset, count: n)
                    offset += n
                } while offset < bytes.count
                return hasher.finalize()
            }
            return Source(file: URL(fileURLWithPath: path).lastPathComponent, bytes: file.count,
                          sha256: digest.map { String(format: "%02x", $0) }.joined())
        }

        /// A provenance computed on its own thread from the moment it is made: the sources'
        /// SHA-256 (about a fifth of a single-threaded bf16 compression's work) runs beside
        /// the encoder, and the writer waits for it only when it writes the index at the end.
        public final class Pending: @unchecked Sendable {
            private let done = DispatchSemaphore(value: 0)
            // SAFETY: written once by the thread before `done` is signalled, read after.
            private var result: Result<Provenance, any Error>?

            public init(_ make: @escaping @Sendable () throws -> Provenance) {
                Thread.detachNewThread { [self] in
                    result = Result { try make() }
                    done.signal()
                }
            }

            /// The provenance, or the error computing it threw.
            public func wait() throws -> Provenance {
                done.wait()
                done.signal()  // later waits return at once
                return try result!.get()
            }
        }

        func json() -> String {
            var o = OrderedDictionary<String, JSONValue>()
            o["writer"] = .string(writer)
            if let recipe { o["recipe"] = .string(recipe) }
            o["sources"] = .array(sources.map { .object(["file": .string($0.file), "bytes": .int($0.bytes), "sha256": .string($0.sha256)]) })
            return JSONValue.object(o).serialized()
        }

        static func parse(_ text: String) -> Provenance? {
            guard let o = try? JSONValue.parse(text), case .object = o else { return nil }
            let sources = (o["sources"]?.arrayValue ?? []).compactMap { s -> Source? in
                guard let f = s["file"]?.stringValue, let b = s["bytes"]?.intValue, let h = s["sha256"]?.stringValue else { return nil }
                return Source(file: f, bytes: b, sha256: h)
            }
            return Provenance(writer: o["writer"]?.stringValue ?? "", recipe: o["recipe"]?.stringValue, sources: sources)
        }
    }
}
