// How much memory a forward pass needs, in memory or streamed, and which of the two to run.
//
// The estimate (README, "Models bigger than memory: streamed execution"), in bytes, for M models run on S sequences of T tokens:
//   in-memory = base + Σ_models bytes(P) + work
//   streamed  = base + max_models (bytes(P_block) + 4·P_edge + 4·R·E + B_tensor) + work
//   work      = Σ_models (4·S·T·(2·C + 2·V) + 4·T·(4·W + T))
// bytes(·): 4 per value, except linear weights multiplied as stored (the types
// `IntegerProducts.kernelType` names, with integer products: their stored size; plus the stored table for a tied head in memory),
// P all parameters, P_block the largest block's, P_edge the embedding projection/norms and
// the final norm/projection, R·E the head rows widened at a time (StreamedModel.headBlockBytes),
// B_tensor the largest stored tensor of a block (resident while it is widened; a GGUF q/k
// weight is copied once to reorder its rows),
// C hidden size, V outputs per position (vocabulary, or C for encoders), W the widest linear
// output of a block, base the process itself (code, BLAS buffers).

import CkptCore
import Foundation

/// How a forward pass runs: whole model widened to f32, or one block at a time.
public enum Execution: String, CaseIterable, Sendable {
    /// Streamed when that is also the cheaper way (`MemoryEstimate.streamedIsCheaper`) or when
    /// in memory does not fit under the memory cap; in memory otherwise.
    case auto
    case streamed
    case inMemory = "in-memory"
}

public struct ExecutionOptions: Sendable {
    public var execution: Execution
    /// The cap in bytes for the estimate (`--max-memory`).
    public var maxMemory: Int

    public init(execution: Execution = .auto, maxMemory: Int? = nil) {
        self.execution = execution
        self.maxMemory = maxMemory ?? Memory.defaultCap
    }
}

public struct MemoryEstimate: Sendable, Equatable {
    public var inMemory: Int
    public var streamed: Int
    /// Every model multiplies at least half of its blocks' linear weights (by parameter count)
    /// in integers from their stored bytes (quantized GGUFs of the types `IntegerProducts.kernelType` names). Streamed, those
    /// weights are read from the mapped file as they are needed and the token table by rows;
    /// in memory, the stored bytes are copied and the token table widened to f32 first, so one
    /// pass costs more time as well as more memory (BENCHMARKS.md: 1.36–1.62× slower on a
    /// 1.24B Q8_0 GGUF). For float weights a pass widens every weight once either way, and the
    /// in-memory load does it on all cores at once: in memory is the faster of the two.
    public var streamedIsCheaper = false
}

public enum Memory {
    /// The process without weights: code, OpenBLAS's thread buffers, the allocator.
    public static let base = 96 << 20

    /// Physical memory (or the cgroup's limit, when lower).
    public static var physical: Int {
        var total = Int(ProcessInfo.processInfo.physicalMemory)
        if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
           let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
            total = min(total, limit)
        }
        return total
    }

    /// The default `--max-memory`: half of physical memory, leaving the rest to the page
    /// cache (the checkpoint's pages are read through it) and to the rest of the machine.
    public static var defaultCap: Int { physical / 2 }

    /// The estimate for running `models` together on `sequences` inputs of `tokens` tokens.
    public static func estimate(_ models: [ModelDescription], storedBytes: [WeightGraph], sequences: Int, tokens: Int) -> MemoryEstimate {
        var inMemory = base, streamedWeights = 0, work = 0, allMostlyInteger = !models.isEmpty
        for (i, d) in models.enumerated() {
            let graph = i < storedBytes.count ? storedBytes[i] : nil
            let all = d.slots().reduce(0) { $0 + weightBytes($1, graph) }
            let block = d.blocks.map { b in b.slots().reduce(0) { $0 + weightBytes($1, graph) } }.max() ?? 0
            var edge = 0
            if let l = d.embedding.projection { edge += l.inFeatures * l.outFeatures }
            if let l = d.head.projection { edge += l.inFeatures * l.outFeatures }
            var headRows = 0
            switch d.head.output {
            case .hiddenState: break
            case .logits(let l) where l.layout == .conv1d: headRows = l.inFeatures * l.outFeatures
            case .logits(let l): headRows = min(StreamedModel.headBlockBytes / 4, l.inFeatures * l.outFeatures)
            case .tiedLogits: headRows = min(StreamedModel.headBlockBytes / 4, (d.embedding.tokens?.rows ?? 0) * (d.embedding.tokens?.width ?? 0))
            }
            let largest = d.blocks.flatMap { $0.slots() }.compactMap { graph?.tensor(named: $0.name)?.byteCount }.max() ?? 0
            streamedWeights = max(streamedWeights, block + 4 * (edge + headRows) + largest)
            inMemory += all
            // A tied head multiplied in integers keeps the table's stored rows beside its f32 copy.
            if case .tiedLogits = d.head.output, let t = d.embedding.tokens, let table = graph?.tensor(named: t.name),
               Transformers.integerProducts, PackedWeights.hasIntegerKernel(table.dtype) {
                inMemory += table.byteCount
            }
            let C = d.hiddenSize, V = d.vocabSize.map { d.outputKind == .logits ? $0 : C } ?? C
            let linears = d.blocks.flatMap { b in b.attention.linears + (b.mlp?.linears ?? []) + (b.moe?.linears ?? []) }
            let W = linears.map(\.outFeatures).max() ?? C
            let linearParams = linears.reduce(0) { $0 + $1.inFeatures * $1.outFeatures }
            let integerParams = linears.reduce(0) { sum, l in
                guard Transformers.integerProducts, l.layout == .linear, let t = graph?.tensor(named: l.weightName),
                      PackedWeights.hasIntegerKernel(t.dtype) else { return sum }
                return sum + l.inFeatures * l.outFeatures
            }
            allMostlyInteger = allMostlyInteger && linearParams > 0 && 2 * integerParams >= linearParams
            work += 4 * sequences * tokens * (2 * C + 2 * V) + 4 * tokens * (4 * max(W, C) + tokens)
        }
        return MemoryEstimate(inMemory: inMemory + work, streamed: base + streamedWeights + work, streamedIsCheaper: allMostlyInteger)
    }

    private static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Bytes a parameter takes while used: its stored size for a linear weight that an integer
    /// kernel multiplies as stored (`IntegerProducts.kernelType`; `Transformers.integerProducts`), else 4 per value.
    static func weightBytes(_ slot: ParamSlot, _ graph: WeightGraph?) -> Int {
        if Transformers.integerProducts, slot.shape.count == 2, ![.tokenEmbedding, .positionEmbedding, .tokenTypeEmbedding].contains(slot.role),
           let t = graph?.tensor(named: slot.name), PackedWeights.hasIntegerKernel(t.dtype) {
            return t.byteCount
        }
        return 4 * count(slot.shape)
    }

    /// The execution `options` asks for, given the estimate: auto runs streamed when that is
    /// the cheaper way (`streamedIsCheaper`), else in memory when that fits under the cap.
    /// Throws when the chosen way does not fit.
    public static func choose(_ options: ExecutionOptions, _ e: MemoryEstimate) throws -> Execution {
        let cap = options.maxMemory
        switch options.execution {
        case .auto where e.inMemory <= cap && !(e.streamedIsCheaper && e.streamed <= cap), .inMemory:
            guard e.inMemory <= cap else {
                throw TransformerError.memory("in memory needs about \(format(e.inMemory)), over --max-memory \(format(cap)); streamed needs about \(format(e.streamed))")
            }
            return .inMemory
        case .auto, .streamed:
            guard e.streamed <= cap else {
                throw TransformerError.memory("even streamed, one block at a time needs about \(format(e.streamed)), over --max-memory \(format(cap))")
            }
            return .streamed
        }
    }

    /// The largest resident set this process has had so far, in bytes.
    ///
    /// On Linux this is VmHWM from /proc/self/status, the high-water mark of this program's
    /// own address space. getrusage's ru_maxrss is not: exec records the old address space's
    /// high-water mark into it, and a child started with posix_spawn (vfork-style, sharing the
    /// parent's memory until exec) inherits its PARENT's peak — ckpt run from a 450 MB test
    /// process or Python script would report 450 MB however little it used itself.
    public static var peakResident: Int {
        #if os(Linux)
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kB = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Int($0) }) {
            return kB * 1024
        }
        #endif
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        #if os(Linux)
        return usage.ru_maxrss * 1024
        #else
        return usage.ru_maxrss
        #endif
    }

    /// "1.23 GB"-style sizes (powers of 1000, as `ls -h --si` and the README's figures).
    public static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        if b >= 1e9 { return String(format: "%.2f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.1f MB", b / 1e6) }
        return String(format: "%.0f kB", b / 1e3)
    }

    /// Parses a size: bytes, or a number with K/M/G/T (powers of 1024; "GB" = "G" = "GiB").
    public static func parse(_ text: String) -> Int? {
        var s = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where s.hasSuffix(suffix) { s.removeLast(suffix.count); break }
        let units: [Character: Double] = ["K": 0x1p10, "M": 0x1p20, "G": 0x1p30, "T": 0x1p40]
        var scale = 1.0
        if let last = s.last, let u = units[last] { scale = u; s.removeLast() }
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite, v > 0, v * scale < 9e18 else { return nil }
        return Int(v * scale)
    }
}
