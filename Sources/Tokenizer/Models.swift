// Models: a pre-tokenized word → token ids. BPE (with merges, ignore_merges, byte_fallback,
// fuse_unk, continuing_subword_prefix / end_of_word_suffix; dropout must be off), WordPiece
// (greedy longest match), Unigram (Viterbi over the pieces' log probabilities) and WordLevel.

import CkptCore
import HeapModule

protocol TokenModel: Sendable {
    /// Token strings by id (nil for ids the model leaves unused).
    var vocabulary: [String?] { get }
    func id(of token: String) -> Int?
    func tokenize(_ word: String, cache: WordCache) throws -> [Int]
}

/// Results of words already tokenized in one encoding run (the reference keeps such a cache).
final class WordCache {
    var map: [ExactString: [Int]] = [:]
    static let capacity = 200_000
    func get(_ w: String) -> [Int]? { map[ExactString(w)] }
    func set(_ w: String, _ ids: [Int]) { if map.count < WordCache.capacity { map[ExactString(w)] = ids } }
}

/// Vocabulary size cap: the largest real vocabularies hold ~260k tokens.
let maxVocabulary = 4_000_000

struct Vocabulary: Sendable {
    var ids: [ExactString: Int] = [:]
    var tokens: [String?] = []

    /// A `{token: id}` object (as a list of entries, compared by bytes).
    init(entries: [(String, JSONValue)], what: String) throws {
        guard entries.count <= maxVocabulary else { throw TokenizerError.invalid("\(what): vocabulary of \(entries.count) tokens is larger than \(maxVocabulary)") }
        var maxID = -1
        var pairs: [(String, Int)] = []
        pairs.reserveCapacity(entries.count)
        for (token, v) in entries {
            guard let id = v.intValue, id >= 0, id < maxVocabulary else {
                throw TokenizerError.invalid("\(what): token \(Pattern.quoted(token)) has an invalid id")
            }
            pairs.append((token, id))
            maxID = max(maxID, id)
        }
        tokens = [String?](repeating: nil, count: maxID + 1)
        ids.reserveCapacity(pairs.count)
        for (token, id) in pairs {
            if ids.updateValue(id, forKey: ExactString(token)) != nil {
                throw TokenizerError.invalid("\(what): token \(Pattern.quoted(token)) appears twice")
            }
            if tokens[id] != nil { throw TokenizerError.invalid("\(what): id \(id) is given to two tokens") }
            tokens[id] = token
        }
    }

    subscript(_ token: String) -> Int? { ids[ExactString(token)] }
}

enum Models {
    static let registry: Registry<any TokenModel> = Registry(kind: "model", builders: [
        "BPE": { f in try BPE(f) },
        "WordPiece": { f in try WordPiece(f) },
        "WordLevel": { f in try WordLevel(f) },
        "Unigram": { f in try Unigram(f) },
    ])

    /// Older files leave out the model's `type`; the reference tells the models apart by their fields.
    static func build(_ json: JSONValue) throws -> any TokenModel {
        if json["type"] == nil, var o = json.objectValue {
            let type: String
            if o["merges"] != nil { type = "BPE" }
            else if o["vocab"]?.arrayValue != nil { type = "Unigram" }
            else if o["max_input_chars_per_word"] != nil || o["continuing_subword_prefix"] != nil { type = "WordPiece" }
            else { type = "WordLevel" }
            o["type"] = .string(type)
            return try registry.build(.object(o))
        }
        return try registry.build(json)
    }

    /// The `vocab` object's entries, from the raw-entries form the loader parses it into.
    static func entries(_ f: Fields) throws -> [(String, JSONValue)] {
        guard let v = f.json["vocab"] else { throw TokenizerError.invalid("\(f.what): `vocab` is missing") }
        if let pairs = TokenizerJSON.entries(v) { return pairs }
        throw TokenizerError.invalid("\(f.what): `vocab` must be an object of token: id")
    }
}

// MARK: BPE

struct BPE: TokenModel {
    let vocab: Vocabulary
    /// (left id << 32 | right id) → (rank, merged id)
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let mergeList: [(String, String)]
    let unkToken: String?
    let prefix: String?
    let suffix: String?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// <0x00>…<0xFF> ids when byte_fallback is on (nil where missing).
    let byteIDs: [Int?]

    var vocabulary: [String?] { vocab.tokens }
    func id(of token: String) -> Int? { vocab[token] }

    init(_ f: Fields) throws {
        try f.only(["dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
                    "byte_fallback", "ignore_merges", "vocab", "merges"])
        if let d = f.json["dropout"], d != .null {
            guard let p = d.doubleValue, p == 0 else { throw TokenizerError.unsupported("\(f.what): dropout \(d.serialized()) is not supported (only null or 0: encoding must be deterministic)") }
        }
        vocab = try Vocabulary(entries: try Models.entries(f), what: f.what)
        unkToken = try f.string("unk_token")
        prefix = try f.string("continuing_subword_prefix")
        suffix = try f.string("end_of_word_suffix")
        fuseUnk = try f.bool("fuse_unk", default: false)
        byteFallback = try f.bool("byte_fallback", default: false)
        ignoreMerges = try f.bool("ignore_merges", default: false)
        let raw = try f.array("merges")
        guard raw.count <= maxVocabulary else { throw TokenizerError.invalid("\(f.what): \(raw.count) merges is more than \(maxVocabulary)") }
        var map: [UInt64: (rank: Int32, id: Int32)] = [:]
        map.reserveCapacity(raw.count)
        var list: [(String, String)] = []
        list.reserveCapacity(raw.count)
        for (rank, m) in raw.enumerated() {
            let a: String, b: String
            if let s = m.stringValue {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw TokenizerError.invalid("\(f.what): merge \(Pattern.quoted(s)) is not two tokens separated by a space") }
                (a, b) = (String(parts[0]), String(parts[1]))
            } else if let arr = m.arrayValue, arr.count == 2, let x = arr[0].stringValue, let y = arr[1].stringValue {
                (a, b) = (x, y)
            } else {
                throw TokenizerError.invalid("\(f.what): merge \(rank) is neither \"a b\" nor [a, b]")
            }
            guard let ia = vocab[a] else { throw TokenizerError.invalid("\(f.what): merge token \(Pattern.quoted(a)) is not in the vocabulary") }
            guard let ib = vocab[b] else { throw TokenizerError.invalid("\(f.what): merge token \(Pattern.quoted(b)) is not in the vocabulary") }
            var right = b
            if let prefix, !prefix.isEmpty {
                guard b.hasBytePrefix(prefix) else { throw TokenizerError.invalid("\(f.what): merge token \(Pattern.quoted(b)) lacks the subword prefix") }
                right = String(decoding: b.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
            }
            guard let merged = vocab[a + right] else { throw TokenizerError.invalid("\(f.what): merged token \(Pattern.quoted(a + right)) is not in the vocabulary") }
            map[UInt64(ia) << 32 | UInt64(ib)] = (Int32(rank), Int32(merged))
            list.append((a, b))
        }
        merges = map
        mergeList = list
        if let unkToken, vocab[unkToken] == nil, !byteFallback {
            // The reference only fails when an unknown character is met; so do we (below).
            _ = unkToken
        }
        var bytes = [Int?](repeating: nil, count: 256)
        if byteFallback {
            for b in 0..<256 { bytes[b] = vocab[byteToken(UInt8(b))] }
        }
        byteIDs = bytes
    }

    func tokenize(_ word: String, cache: WordCache) throws -> [Int] {
        if word.isEmpty { return [] }
        if let hit = cache.get(word) { return hit }
        let ids = try merge(word)
        cache.set(word, ids)
        return ids
    }

    private func merge(_ word: String) throws -> [Int] {
        if ignoreMerges, let id = vocab[word] { return [id] }
        // Initial symbols: one per character (with the subword prefix/suffix where they apply),
        // bytes when the character is unknown and byte_fallback is on, else the unknown token.
        var symbols: [Int] = []
        var pendingUnk: Int? = nil
        let scalars = Array(word.unicodeScalars)
        for (i, c) in scalars.enumerated() {
            var s = String(c)
            if i > 0, let prefix { s = prefix + s }
            if i == scalars.count - 1, let suffix { s = s + suffix }
            if let id = vocab[s] {
                if let u = pendingUnk { symbols.append(u); pendingUnk = nil }
                symbols.append(id)
                continue
            }
            if byteFallback {
                let bs = Array(s.utf8)
                if bs.allSatisfy({ byteIDs[Int($0)] != nil }) {
                    // As the reference does, a pending unknown token is not flushed first.
                    for b in bs { symbols.append(byteIDs[Int(b)]!) }
                    continue
                }
            }
            if let unkToken {
                guard let unk = vocab[unkToken] else {
                    throw TokenizerError.encoding("the unknown token \(Pattern.quoted(unkToken)) is not in the vocabulary")
                }
                if pendingUnk != nil && !fuseUnk { symbols.append(unk) }
                pendingUnk = unk
            }
        }
        if let u = pendingUnk { symbols.append(u) }
        return BPE.applyMerges(symbols, merges)
    }

    /// The reference's merge loop: repeatedly the lowest-ranked adjacent pair (leftmost on a
    /// tie) is merged, via a priority queue of candidate merges whose stale entries are skipped.
    static func applyMerges(_ ids: [Int], _ merges: [UInt64: (rank: Int32, id: Int32)]) -> [Int] {
        let n = ids.count
        if n < 2 { return ids }
        struct Candidate: Comparable {
            var rank: Int32, pos: Int, id: Int32
            static func < (a: Candidate, b: Candidate) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos }
        }
        var c = ids
        var prev = Array(-1..<(n - 1))
        var next = Array(1...n)
        next[n - 1] = -1
        var alive = [Bool](repeating: true, count: n)
        var heap = Heap<Candidate>()
        func key(_ a: Int, _ b: Int) -> UInt64 { UInt64(UInt32(truncatingIfNeeded: a)) << 32 | UInt64(UInt32(truncatingIfNeeded: b)) }
        for i in 0..<(n - 1) {
            if let m = merges[key(c[i], c[i + 1])] { heap.insert(Candidate(rank: m.rank, pos: i, id: m.id)) }
        }
        while let top = heap.popMin() {
            let p = top.pos
            guard alive[p], next[p] != -1 else { continue }
            let q = next[p]
            guard let m = merges[key(c[p], c[q])], m.id == top.id else { continue }
            c[p] = Int(top.id)
            alive[q] = false
            next[p] = next[q]
            if next[q] != -1 { prev[next[q]] = p }
            if prev[p] >= 0, let m2 = merges[key(c[prev[p]], c[p])] {
                heap.insert(Candidate(rank: m2.rank, pos: prev[p], id: m2.id))
            }
            if next[p] != -1, let m3 = merges[key(c[p], c[next[p]])] {
                heap.insert(Candidate(rank: m3.rank, pos: p, id: m3.id))
            }
        }
        var out: [Int] = []
        out.reserveCapacity(n)
        for i in 0..<n where alive[i] { out.append(c[i]) }
        return out
    }
}

/// "<0x0A>": the byte tokens of byte_fallback models.
func byteToken(_ b: UInt8) -> String {
    let hex = String(b, radix: 16, uppercase: true)
    return "<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"
}

// MARK: WordPiece

struct WordPiece: TokenModel {
    let vocab: Vocabulary
    let unkToken: String
    let prefix: String
    let maxChars: Int

    var vocabulary: [String?] { vocab.tokens }
    func id(of token: String) -> Int? { vocab[token] }

    init(_ f: Fields) throws {
        try f.only(["unk_token", "continuing_subword_prefix", "max_input_chars_per_word", "vocab"])
        try self.init(vocab: try Vocabulary(entries: try Models.entries(f), what: f.what),
                      unkToken: try f.string("unk_token") ?? "[UNK]", prefix: try f.string("continuing_subword_prefix") ?? "##",
                      maxChars: try f.int("max_input_chars_per_word", default: 100))
    }

    init(vocab: Vocabulary, unkToken: String, prefix: String, maxChars: Int) throws {
        self.vocab = vocab
        self.unkToken = unkToken
        self.prefix = prefix
        self.maxChars = maxChars
    }

    func unk() throws -> [Int] {
        guard let id = vocab[unkToken] else { throw TokenizerError.encoding("the unknown token \(Pattern.quoted(unkToken)) is not in the vocabulary") }
        return [id]
    }

    func tokenize(_ word: String, cache: WordCache) throws -> [Int] {
        if let hit = cache.get(word) { return hit }
        let ids = try greedy(word)
        cache.set(word, ids)
        return ids
    }

    private func greedy(_ word: String) throws -> [Int] {
        let scalars = Array(word.unicodeScalars)
        if scalars.count > maxChars { return try unk() }
        var out: [Int] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int? = nil
            while start < end {
                var s = String(scalars: scalars[start..<end])
                if start > 0 { s = prefix + s }
                if let id = vocab[s] { found = id; break }
                end -= 1
            }
            guard let id = found else { return try unk() }
            out.append(id)
            start = end
        }
        return out
    }
}

// MARK: WordLevel

struct WordLevel: TokenModel {
    let vocab: Vocabulary
    let unkToken: String?

    var vocabulary: [String?] { vocab.tokens }
    func id(of token: String) -> Int? { vocab[token] }

    init(_ f: Fields) throws {
        try f.only(["vocab", "unk_token"])
        vocab = try Vocabulary(entries: try Models.entries(f), what: f.what)
        unkToken = try f.string("unk_token")
    }

    func tokenize(_ word: String, cache: WordCache) throws -> [Int] {
        if let id = vocab[word] { return [id] }
        guard let unkToken, let id = vocab[unkToken] else {
            throw TokenizerError.encoding("\(Pattern.quoted(word)) is not in the vocabulary and there is no unknown token")
        }
        return [id]
    }
}

// MARK: Unigram

struct Unigram: TokenModel {
    let pieces: [String]
    let scores: [Double]
    let ids: [ExactString: Int]
    let unkID: Int?
    let byteFallback: Bool
    let minScore: Double
    /// A byte trie of the pieces: (node << 8 | byte) → child node; terminal id per node.
    let children: [Int: Int32]
    let terminal: [Int32]
    static let unknownPenalty = 10.0

    var vocabulary: [String?] { pieces }
    func id(of token: String) -> Int? { ids[ExactString(token)] }

    init(_ f: Fields) throws {
        try f.only(["unk_id", "vocab", "byte_fallback"])
        let raw = try f.array("vocab")
        guard raw.count <= maxVocabulary else { throw TokenizerError.invalid("\(f.what): vocabulary of \(raw.count) pieces is larger than \(maxVocabulary)") }
        var pieces: [String] = [], scores: [Double] = [], ids: [ExactString: Int] = [:]
        for (i, e) in raw.enumerated() {
            guard let pair = e.arrayValue, pair.count == 2, let p = pair[0].stringValue, let s = pair[1].doubleValue, s.isFinite else {
                throw TokenizerError.invalid("\(f.what): vocabulary entry \(i) is not [piece, finite score]")
            }
            pieces.append(p)
            scores.append(s)
            // The reference keeps the last id of a repeated piece.
            ids[ExactString(p)] = i
        }
        self.pieces = pieces
        self.scores = scores
        self.ids = ids
        if f.has("unk_id") {
            let u = try f.int("unk_id", default: 0)
            guard u < pieces.count else { throw TokenizerError.invalid("\(f.what): unk_id \(u) is outside the vocabulary") }
            unkID = u
        } else {
            unkID = nil
        }
        byteFallback = try f.bool("byte_fallback", default: false)
        minScore = scores.min() ?? 0
        var children: [Int: Int32] = [:]
        var terminal: [Int32] = [-1]
        for (i, p) in pieces.enumerated() {
            var node = 0
            for b in p.utf8 {
                let k = node << 8 | Int(b)
                if let c = children[k] { node = Int(c) } else {
                    terminal.append(-1)
                    children[k] = Int32(terminal.count - 1)
                    node = terminal.count - 1
                }
            }
            if node != 0 { terminal[node] = Int32(ids[ExactString(p)]!) }
        }
        self.children = children
        self.terminal = terminal
    }

    func tokenize(_ word: String, cache: WordCache) throws -> [Int] {
        if word.isEmpty { return [] }
        if let hit = cache.get(word) { return hit }
        let ids = try viterbi(word)
        cache.set(word, ids)
        return ids
    }

    private func viterbi(_ word: String) throws -> [Int] {
        let bytes = Array(word.utf8)
        let n = bytes.count
        var bestScore = [Double](repeating: 0, count: n + 1)
        var startOf = [Int](repeating: -1, count: n + 1)
        var idAt = [Int](repeating: -1, count: n + 1)
        let unkScore = minScore - Unigram.unknownPenalty
        var pos = 0
        while pos < n {
            let base = bestScore[pos]
            let charLen = min(utf8Length(leading: bytes[pos]), n - pos)
            var hasSingle = false
            var node = 0
            var k = pos
            while k < n, let c = children[node << 8 | Int(bytes[k])] {
                node = Int(c)
                k += 1
                let id = terminal[node]
                if id >= 0 {
                    let score = base + scores[Int(id)]
                    if startOf[k] < 0 || score > bestScore[k] {
                        bestScore[k] = score
                        startOf[k] = pos
                        idAt[k] = Int(id)
                    }
                    if k - pos == charLen { hasSingle = true }
                }
            }
            if !hasSingle {
                guard let unkID else { throw TokenizerError.encoding("a character has no piece and the model has no unk_id") }
                let e = pos + charLen
                let score = base + unkScore
                if startOf[e] < 0 || score > bestScore[e] {
                    bestScore[e] = score
                    startOf[e] = pos
                    idAt[e] = unkID
                }
            }
            pos += charLen
        }
        // Walk back; consecutive unknown pieces are fused into one (the reference always fuses).
        var strings: [(Int, Int, Bool)] = []  // byte range, is unknown
        var end = n
        while end > 0 {
            let s = startOf[end]
            let isUnk = unkID != nil && idAt[end] == unkID
            if isUnk, let last = strings.last, last.2 {
                strings[strings.count - 1].0 = s
            } else {
                strings.append((s, end, isUnk))
            }
            end = s
        }
        strings.reverse()
        var out: [Int] = []
        for (s, e, _) in strings {
            let piece = String(decoding: bytes[s..<e], as: UTF8.self)
            if let id = ids[ExactString(piece)] { out.append(id); continue }
            if byteFallback {
                let bids = bytes[s..<e].map { ids[ExactString(byteToken($0))] }
                if bids.allSatisfy({ $0 != nil }) { out.append(contentsOf: bids.map { $0! }); continue }
            }
            guard let unkID else { throw TokenizerError.encoding("a character has no piece and the model has no unk_id") }
            out.append(unkID)
        }
        return out
    }
}
