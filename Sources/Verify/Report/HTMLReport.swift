// `ckpt verify --html FILE` (and a pipeline verify step's `report:`): the verify report as one
// self-contained HTML page. Everything is inline — CSS, SVG charts drawn here — so the page
// opens offline, from a CI artifact, or attached to a ticket, and fetches nothing.
//
// Sections, each chart an <svg> with a fixed id (the screenshot test finds them by id):
//   verdict and gates          pass/fail, each gate's limit and value
//   models                     paths, formats, sizes, parameters, dtypes
//   summary                    the overall metrics
//   #chart-drift               relative RMS drift of each block's input over block index
//   #chart-positions           per-position KL (decoders) or 1 − cosine (encoders), one small
//                              chart per sequence on a shared scale
//   #chart-kl-hist             distribution of the per-position values, log10-binned
//   text statistics            `--text`: perplexities, KL and Δp percentiles, same top
//   #chart-quant               a quantized candidate: per-tensor error against the reference,
//                              largest first, with the recipe from its metadata

import CkptCore
import Formats
import Foundation
import OrderedCollections
import Quantize

/// What the report says about one of the two checkpoints.
public struct ReportModel: Sendable {
    public var role: String
    public var path: String
    public var format: String
    /// Bytes on disk (a directory: every file in it); nil when it cannot be measured.
    public var bytes: Int?
    public var parameters: Int
    /// Tensor count per stored dtype, most common first.
    public var dtypes: [(dtype: String, tensors: Int)]
    /// Architecture and config summary, as the verify table prints it.
    public var summary: String

    public init(role: String, path: String, format: String, bytes: Int?, parameters: Int,
                dtypes: [(dtype: String, tensors: Int)], summary: String) {
        self.role = role
        self.path = path
        self.format = format
        self.bytes = bytes
        self.parameters = parameters
        self.dtypes = dtypes
        self.summary = summary
    }

    static func describe(role: String, path: String, stored: WeightGraph, format: String, summary: String) -> ReportModel {
        var counts: OrderedDictionary<String, Int> = [:]
        for t in stored.tensors.values { counts[t.dtype.rawValue, default: 0] += 1 }
        let sorted = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        return ReportModel(role: role, path: path, format: format, bytes: diskBytes(path), parameters: stored.parameterCount,
                           dtypes: sorted.map { ($0.key, $0.value) }, summary: summary)
    }

    static func diskBytes(_ path: String) -> Int? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        if !isDir.boolValue { return (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil }
        var total = 0
        for case let name as String in FileManager.default.enumerator(atPath: path) ?? FileManager.default.enumerator(atPath: "/dev/null")! {
            if let s = try? FileManager.default.attributesOfItem(atPath: path + "/" + name), (s[.type] as? FileAttributeType) == .typeRegular {
                total += (s[.size] as? Int) ?? 0
            }
        }
        return total
    }
}

/// One tensor of a quantized candidate against the reference's.
public struct TensorQuantizationError: Sendable {
    public var name: String
    public var shape: [Int]
    public var referenceDType: String
    public var storedDType: String
    public var error: QuantizationError
}

/// The candidate's quantization: the recipe recorded by `ckpt quantize` (nil for a file
/// quantized elsewhere) and every changed tensor's error, largest relative RMSE first.
public struct QuantizationSection: Sendable {
    public var recipe: String?
    public var tensors: [TensorQuantizationError]

    /// Compares each tensor whose stored dtype differs from the reference's (same name and
    /// shape after GGUF names are mapped back) value by value, one tensor at a time.
    /// `storedDTypes`: the candidate's dtypes as written (GGUF weights transposed back to
    /// Hugging Face's layout are dequantized to f32 in `candidate`).
    public static func measure(reference: WeightGraph, candidate: WeightGraph, storedDTypes: [String: DType],
                               recipe: String?) throws -> QuantizationSection {
        var rows: [TensorQuantizationError] = []
        for c in candidate.tensors.values {
            guard let r = reference.tensors[c.name], r.shape == c.shape else { continue }
            let stored = storedDTypes[c.name] ?? c.dtype
            guard stored != r.dtype else { continue }
            guard let a = try Cast.floats(r), let b = try Cast.floats(c), a.count == b.count else { continue }
            rows.append(TensorQuantizationError(name: c.name, shape: c.shape, referenceDType: r.dtype.rawValue,
                                                storedDType: stored.rawValue,
                                                error: QuantizationError.measure(original: a, reconstructed: b)))
        }
        rows.sort { ($0.error.relativeRMSE, $1.name) > ($1.error.relativeRMSE, $0.name) }
        return QuantizationSection(recipe: recipe, tensors: rows)
    }
}

/// The HTML page of one verification.
public struct VerifyHTMLReport: Sendable {
    public var report: VerifyReport
    public var models: [ReportModel]
    public var quantization: QuantizationSection?
    /// The command line, shown in the footer.
    public var command: String?
    /// Most per-position charts drawn (one per sequence).
    public var maxPositionCharts = 12

    public init(report: VerifyReport, models: [ReportModel], quantization: QuantizationSection? = nil, command: String? = nil) {
        self.report = report
        self.models = models
        self.quantization = quantization
        self.command = command
    }

    /// Gathers what the page shows besides the report: both checkpoints as stored (format,
    /// size, dtypes) and, when the candidate was quantized (a `ckpt.quantize.recipe` in its
    /// metadata, or quantized tensors), its per-tensor error against the reference.
    /// `reference` and `candidate` are the graphs the models ran (Hugging Face names).
    public static func make(report: VerifyReport, referencePath: String, reference: WeightGraph,
                            candidatePath: String, candidate: WeightGraph, command: String? = nil) throws -> VerifyHTMLReport {
        func stored(_ path: String, _ graph: WeightGraph) -> (graph: WeightGraph, format: String, dtypes: [String: DType]) {
            guard let opened = try? Checkpoint.open(path) else { return (graph, "unknown", [:]) }
            var dtypes: [String: DType] = [:]
            if GGUFNaming.isGGUFNamed(opened.graph), let hf = try? GGUFNaming.toHF(opened.graph),
               hf.tensors.count == opened.graph.tensors.count {
                for (a, b) in zip(opened.graph.tensors.values, hf.tensors.keys) { dtypes[b] = a.dtype }
            } else {
                for t in opened.graph.tensors.values { dtypes[t.name] = t.dtype }
            }
            return (opened.graph, opened.format.rawValue, dtypes)
        }
        let r = stored(referencePath, reference), c = stored(candidatePath, candidate)
        let models = [
            ReportModel.describe(role: "reference", path: referencePath, stored: r.graph, format: r.format, summary: report.referenceConfig),
            ReportModel.describe(role: "candidate", path: candidatePath, stored: c.graph, format: c.format, summary: report.candidateConfig),
        ]
        let recipe = c.graph.metadata["ckpt.quantize.recipe"] ?? candidate.metadata["ckpt.quantize.recipe"]
        var quantization: QuantizationSection?
        if recipe != nil || c.dtypes.values.contains(where: \.isQuantized) {
            quantization = try QuantizationSection.measure(reference: reference, candidate: candidate,
                                                           storedDTypes: c.dtypes, recipe: recipe)
        }
        return VerifyHTMLReport(report: report, models: models, quantization: quantization, command: command)
    }

    /// Writes the page atomically (complete or not at all).
    public func write(to path: String) throws {
        var f = try AtomicFile(target: path)
        try f.write(Array(render().utf8))
        try f.commit()
    }

    // MARK: Page

    var isLM: Bool { report.outputKind == .logits }
    var measure: String { isLM ? "KL(reference ‖ candidate)" : "1 − cosine" }

    public func render() -> String {
        var h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        h += "<title>ckpt verify: \(report.passed ? "PASS" : "FAIL") — \(escapeHTML(models.last.map { fileName($0.path) } ?? "candidate"))</title>"
        h += "<style>\(VerifyHTMLReport.css)</style></head><body><main>"
        h += header()
        h += gatesSection()
        h += modelsSection()
        h += summarySection()
        h += driftSection()
        h += positionsSection()
        h += histogramSection()
        if let text = report.text { h += textSection(text) }
        h += sequencesSection()
        if let q = quantization { h += quantizationSection(q) }
        h += "<footer>Written by ckpt \(escapeHTML(CkptInfo.version))"
        if let command { h += " · <code>\(escapeHTML(command))</code>" }
        h += "</footer></main></body></html>\n"
        return h
    }

    func fileName(_ path: String) -> String {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        return URL(fileURLWithPath: trimmed).lastPathComponent
    }

    func header() -> String {
        let verdict = report.gates.isEmpty ? "none" : (report.passed ? "pass" : "fail")
        let word = report.gates.isEmpty ? "No gates set" : (report.passed ? "✓ PASS" : "✗ FAIL")
        let failed = report.gates.filter { !$0.passed }.count
        let detail = report.gates.isEmpty ? "nothing was checked; the measurements are below"
            : report.passed ? "all \(report.gates.count) gate\(report.gates.count == 1 ? "" : "s") passed"
            : "\(failed) of \(report.gates.count) gate\(report.gates.count == 1 ? "" : "s") failed"
        var s = "<header><h1>Verification report</h1>"
        s += "<p class=\"sub\"><span class=\"mono\">\(escapeHTML(models.last.map { fileName($0.path) } ?? "candidate"))</span> against <span class=\"mono\">\(escapeHTML(models.first.map { fileName($0.path) } ?? "reference"))</span></p></header>"
        s += "<section id=\"verdict\" class=\"verdict \(verdict)\"><span class=\"word\">\(word)</span><span class=\"detail\">\(detail)</span></section>"
        return s
    }

    func gatesSection() -> String {
        guard !report.gates.isEmpty else { return "" }
        var s = "<h2>Gates</h2><table class=\"gates\"><thead><tr><th>gate</th><th>measure</th><th class=\"num\">limit</th><th class=\"num\">value</th><th>outcome</th></tr></thead><tbody>"
        let meaning = ["max_kl": "mean KL over positions (nats)", "min_cosine": "worst sequence's output cosine",
                       "min_top1": "top-1 agreement", "max_abs": "largest |difference| of any output"]
        for g in report.gates {
            let rel = g.name.hasPrefix("max") ? "≤" : "≥"
            s += "<tr class=\"\(g.passed ? "ok" : "bad")\"><td class=\"mono\">\(escapeHTML(g.name))</td><td>\(escapeHTML(meaning[g.name] ?? ""))</td>"
            s += "<td class=\"num\">\(rel) \(shortNumber(g.limit, digits: 4))</td><td class=\"num\">\(shortNumber(g.value, digits: 4))</td>"
            s += "<td><span class=\"badge \(g.passed ? "pass" : "fail")\">\(g.passed ? "✓ pass" : "✗ fail")</span></td></tr>"
        }
        return s + "</tbody></table>"
    }

    func modelsSection() -> String {
        var s = "<h2>Models</h2><div class=\"scroll\"><table class=\"models\"><thead><tr><th></th><th>path</th><th>format</th><th class=\"num\">size</th><th class=\"num\">parameters</th><th>dtypes</th></tr></thead><tbody>"
        for m in models {
            s += "<tr><th>\(escapeHTML(m.role))</th><td class=\"mono nowrap\">\(escapeHTML(m.path))</td><td>\(escapeHTML(m.format))</td>"
            s += "<td class=\"num\">\(m.bytes.map(VerifyHTMLReport.bytes) ?? "–")</td><td class=\"num\">\(VerifyHTMLReport.count(m.parameters))</td>"
            s += "<td>\(m.dtypes.map { "\(escapeHTML($0.dtype)) ×\($0.tensors)" }.joined(separator: ", "))</td></tr>"
        }
        s += "</tbody></table></div><ul class=\"configs\">"
        for m in models { s += "<li><b>\(escapeHTML(m.role))</b> <span class=\"mono\">\(escapeHTML(m.summary))</span></li>" }
        if models.count == 2, let a = models[0].bytes, let b = models[1].bytes, a > 0 {
            s += "<li>the candidate is <b>\(String(format: "%.1f", 100 * Double(b) / Double(a)))%</b> of the reference's size on disk</li>"
        }
        return s + "</ul>"
    }

    func summarySection() -> String {
        let o = report.overall
        var cards: [(String, String)] = [("positions", "\(o.positions)")]
        if isLM {
            cards.append(("mean KL (nats)", shortNumber(o.klMean ?? .nan)))
            cards.append(("max KL (nats)", shortNumber(o.klMax ?? .nan)))
            cards.append(("top-1 agreement", o.top1.map { String(format: "%.1f%%", 100 * $0) } ?? "–"))
        }
        cards.append(("worst cosine", o.cosine.isNaN ? "–" : String(format: "%.6f", o.cosine)))
        cards.append(("max |Δ output|", shortNumber(o.maxAbs)))
        if let a = o.perplexityReference, let b = o.perplexityCandidate {
            cards.append(("perplexity ref → cand", "\(shortNumber(a, digits: 4)) → \(shortNumber(b, digits: 4))"))
        }
        return "<h2>Summary</h2><div class=\"cards\">" + cards.map { "<div class=\"card\"><div class=\"k\">\(escapeHTML($0.0))</div><div class=\"v\">\(escapeHTML($0.1))</div></div>" }.joined() + "</div>"
    }

    func driftSection() -> String {
        var s = "<h2>Drift through the layers</h2>"
        guard let drift = report.layerDrift, !drift.isEmpty else {
            let why = report.text?.mode == .windows ? "not measured when scoring text windows (only the outputs are compared)"
                : "not measured: the models have different depths"
            return s + "<p class=\"note\">Per-layer drift: \(why).</p>"
        }
        var plot = SVGPlot(x: PlotAxis(lo: -0.5, hi: Double(drift.count) - 0.5, log: false),
                           y: PlotAxis.fitting(drift, log: false, includeZero: true),
                           xLabel: "block index (input of block i; 0 = the embeddings)", yLabel: "relative RMS drift",
                           width: 1000, height: 300)
        plot.integerX = true
        for (i, d) in drift.enumerated() {
            plot.bar(x0: Double(i) - 0.36, x1: Double(i) + 0.36, value: d, color: Palette.blue,
                     title: "block \(i): \(shortNumber(d, digits: 4))")
        }
        s += "<figure><div class=\"wide\">" + plot.svg(id: "chart-drift", label: "relative RMS drift of each block's input") + "</div>"
        s += "<figcaption>‖h<sub>cand</sub> − h<sub>ref</sub>‖ / ‖h<sub>ref</sub>‖ of each block's input, averaged over the \(report.sequences.count) sequences. Growth along the depth shows where error accumulates; a jump at one block points at that block's weights.</figcaption></figure>"
        return s
    }

    /// Per-position values of each sequence: KL for language models, 1 − cosine otherwise.
    func positionValues(_ m: SequenceMetrics) -> [Double]? {
        if isLM { return m.positionKL }
        return m.positionCosine.map { $0.map { max(0, 1 - $0) } }
    }

    /// First position index of each sequence's values (text windows score their second half).
    var firstPosition: Int {
        if let t = report.text, t.mode == .windows, let c = t.context { return c / 2 }
        return 0
    }

    /// A y axis for values spanning many decades: log10 when positive values span more than
    /// two; zeros then sit on the floor.
    func valueAxis(_ values: [Double], extra: [Double] = []) -> PlotAxis {
        let positive = (values + extra).filter { $0 > 0 && $0.isFinite }
        guard let mn = positive.min(), let mx = positive.max() else { return PlotAxis(lo: 0, hi: 1, log: false) }
        if mx / mn > 100 { return PlotAxis.fitting(positive, log: true) }
        return PlotAxis.fitting(values + extra, log: false, includeZero: true)
    }

    func positionsSection() -> String {
        let series = report.sequences.compactMap(positionValues)
        var s = "<h2>Along each sequence</h2>"
        guard !series.isEmpty, series.contains(where: { !$0.isEmpty }) else {
            return s + "<p class=\"note\">No per-position values in this report.</p>"
        }
        let all = series.flatMap { $0 }
        let y = valueAxis(all)
        let first = firstPosition
        let longest = series.map(\.count).max() ?? 1
        let shown = min(series.count, maxPositionCharts)
        s += "<div id=\"chart-positions\" class=\"multiples\">"
        for (i, values) in series.prefix(shown).enumerated() {
            var plot = SVGPlot(x: PlotAxis(lo: Double(first), hi: Double(first + max(longest - 1, 1)), log: false), y: y,
                               xLabel: report.text?.mode == .windows ? "position in window" : "position",
                               yLabel: isLM ? "KL (nats)" : "1 − cosine", width: 360, height: 200)
            plot.left = 58
            plot.integerX = true
            plot.line(values.enumerated().map { (Double(first + $0.offset), y.log ? max($0.element, y.lo) : $0.element) },
                      color: Palette.blue, width: 1.6, dots: values.count <= 40)
            let m = report.sequences[i]
            let mean = values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
            if isLM, let mk = m.klMean { plot.hrule(y.log ? max(mk, y.lo) : mk, color: Palette.black, label: "mean \(shortNumber(mk, digits: 2))") }
            let title = (report.text?.mode == .windows ? "window \(i)" : "sequence \(i)")
                + " · mean \(shortNumber(mean, digits: 2)), max \(shortNumber(values.max() ?? 0, digits: 2))"
            s += "<figure class=\"small\"><div class=\"ftitle\">\(escapeHTML(title))</div>"
                + plot.svg(id: "chart-position-\(i)", label: title, compact: true) + "</figure>"
        }
        s += "</div><p class=\"legend\"><span><span class=\"swatch\" style=\"background:\(Palette.blue)\"></span>\(escapeHTML(measure)) at each position</span>"
        if isLM { s += "<span><span class=\"swatch dashed\"></span>the sequence's mean</span>" }
        s += "<span>\(y.log ? "log scale" : "linear scale"), shared by every panel</span></p>"
        if series.count > shown { s += "<p class=\"note\">The first \(shown) of \(series.count) sequences are drawn; the histogram below holds every position.</p>" }
        return s
    }

    func histogramSection() -> String {
        let values = report.sequences.compactMap(positionValues).flatMap { $0 }.filter(\.isFinite)
        guard !values.isEmpty else { return "" }
        var s = "<h2>Distribution over positions</h2>"
        let zeros = values.filter { $0 <= 0 }.count
        let positive = values.filter { $0 > 0 }
        let mean = values.reduce(0, +) / Double(values.count)
        let limit = isLM ? report.gates.first { $0.name == "max_kl" }?.limit : report.gates.first { $0.name == "min_cosine" }.map { 1 - $0.limit }
        guard let mn = positive.min(), let mx = positive.max() else {
            return s + "<p class=\"note\">All \(values.count) positions: \(escapeHTML(measure)) = 0 (identical outputs).</p>"
        }
        // log10 bins, five per decade, over at most ten decades below the largest value.
        var lo = Foundation.floor(Foundation.log10(mn)), hi = Foundation.ceil(Foundation.log10(mx))
        for extra in [mean, limit].compactMap({ $0 }) where extra > 0 {
            lo = min(lo, Foundation.floor(Foundation.log10(extra)))
            hi = max(hi, Foundation.ceil(Foundation.log10(extra)))
        }
        if hi <= lo { hi = lo + 1 }
        lo = max(lo, hi - 10)
        let perDecade = 5
        let bins = Int(hi - lo) * perDecade
        var counts = [Int](repeating: 0, count: bins)
        for v in positive {
            let k = Int(Foundation.floor((Foundation.log10(v) - lo) * Double(perDecade)))
            counts[min(max(k, 0), bins - 1)] += 1
        }
        let x = PlotAxis(lo: Foundation.pow(10, lo), hi: Foundation.pow(10, hi), log: true)
        var plot = SVGPlot(x: x, y: PlotAxis.fitting(counts.map(Double.init), log: false, includeZero: true),
                           xLabel: "\(measure) at one position\(isLM ? " (nats)" : "") — log scale", yLabel: "positions",
                           width: 1000, height: 320)
        for (k, c) in counts.enumerated() where c > 0 {
            let a = Foundation.pow(10, lo + Double(k) / Double(perDecade)), b = Foundation.pow(10, lo + Double(k + 1) / Double(perDecade))
            plot.bar(x0: a * 1.02, x1: b / 1.02, value: Double(c), color: Palette.sky,
                     title: "\(shortNumber(a, digits: 2))–\(shortNumber(b, digits: 2)): \(c) positions")
        }
        if mean > 0 { plot.vrule(mean, color: Palette.blue, label: "mean \(shortNumber(mean, digits: 3))") }
        if let limit, limit > 0 {
            let gate = isLM ? "max_kl" : "min_cosine"
            plot.vrule(limit, color: Palette.vermillion, label: "gate \(gate) \(shortNumber(isLM ? limit : 1 - limit, digits: 4))",
                       dash: "2 3", anchorEnd: x.fraction(limit) > 0.7)
        }
        s += "<figure><div class=\"wide\">" + plot.svg(id: "chart-kl-hist", label: "distribution of \(measure) over positions") + "</div>"
        s += "<figcaption>\(values.count) positions in \(bins) log-spaced bins (\(perDecade) per decade)"
        if zeros > 0 { s += "; \(zeros) position\(zeros == 1 ? "" : "s") with exactly 0 not drawn" }
        if limit != nil { s += ". The dotted line is the gate's limit\(isLM ? " (it applies to the mean)" : "")" }
        s += ". A long right tail means a few positions changed a lot.</figcaption></figure>"
        s += "<p class=\"legend\"><span><span class=\"swatch\" style=\"background:\(Palette.sky);height:10px\"></span>positions per bin</span><span><span class=\"swatch\" style=\"background:\(Palette.blue)\"></span>mean</span>"
        if limit != nil { s += "<span><span class=\"swatch\" style=\"background:\(Palette.vermillion)\"></span>gate limit</span>" }
        return s + "</p>"
    }

    func textSection(_ t: TextStats) -> String {
        var s = "<h2>Text statistics</h2>"
        s += "<p>\(t.tokens) tokens of text, " + (t.mode == .windows
            ? "\(t.windows) windows of \(t.context ?? 0) tokens, \(t.scored) positions scored (the second half of each window), reference logits \(escapeHTML(t.referenceSource))."
            : "\(t.windows) lines, each one sequence\((t.truncatedLines ?? 0) > 0 ? " (\(t.truncatedLines!) cut to the model's positions)" : "").") + "</p>"
        guard t.mode == .windows, let kl = t.kl, let dp = t.deltaP else { return s }
        func pm(_ v: Double?, _ u: Double?, _ d: Int = 4) -> String {
            "\(shortNumber(v ?? .nan, digits: d)) <span class=\"pm\">± \(shortNumber(u ?? .nan, digits: 2))</span>"
        }
        var cards: [(String, String)] = [
            ("PPL reference", pm(t.pplReference, t.pplReferenceUncertainty)),
            ("PPL candidate", pm(t.pplCandidate, t.pplCandidateUncertainty)),
            ("PPL ratio cand / ref", pm(t.pplRatio, t.pplRatioUncertainty)),
            ("mean KL (nats)", pm(kl.mean, kl.uncertainty, 3)),
            ("same top token", "\(String(format: "%.2f", 100 * (t.sameTop ?? .nan)))% <span class=\"pm\">± \(String(format: "%.2f", 100 * (t.sameTopUncertainty ?? .nan)))</span>"),
            ("RMS Δp", "\(String(format: "%.3f", 100 * (t.deltaPRMS ?? .nan)))% <span class=\"pm\">± \(String(format: "%.3f", 100 * (t.deltaPRMSUncertainty ?? .nan)))</span>"),
        ]
        if let c = t.pplCorrelation { cards.append(("ln PPL correlation", String(format: "%.2f%%", 100 * c))) }
        if let b = t.klErrorBound { cards.append(("KL below full by ≤", shortNumber(b, digits: 3))) }
        s += "<div class=\"cards\">" + cards.map { "<div class=\"card\"><div class=\"k\">\(escapeHTML($0.0))</div><div class=\"v\">\($0.1)</div></div>" }.joined() + "</div>"
        s += "<table class=\"pct\"><thead><tr><th>percentile</th><th class=\"num\">KL (nats)</th><th class=\"num\">Δp (candidate − reference)</th></tr></thead><tbody>"
        func row(_ label: String, _ a: Double, _ b: Double) -> String {
            "<tr><td>\(label)</td><td class=\"num\">\(shortNumber(a, digits: 4))</td><td class=\"num\">\(String(format: "%.3f", 100 * b).replacingOccurrences(of: "-", with: "−"))%</td></tr>"
        }
        s += row("maximum", kl.max, dp.max)
        for ((f, a), (_, b)) in zip(kl.percentiles, dp.percentiles) where f > 0.5 { s += row(String(format: "%g%%", f * 100), a, b) }
        s += row("median", kl.median, dp.median)
        for ((f, a), (_, b)) in zip(kl.percentiles, dp.percentiles) where f < 0.5 { s += row(String(format: "%g%%", f * 100), a, b) }
        s += row("minimum", kl.min, dp.min)
        s += row("mean", kl.mean, dp.mean)
        return s + "</tbody></table><p class=\"note\">As llama-perplexity reports them: KL of the full next-token distributions; Δp is the change in the probability of the actual next token.</p>"
    }

    func sequencesSection() -> String {
        let label = report.text?.mode == .windows ? "window" : "sequence"
        var s = "<h2>Per \(label)</h2><div class=\"scroll\"><table class=\"seqs\"><thead><tr><th>\(label)</th><th class=\"num\">positions</th><th class=\"num\">max |Δ|</th><th class=\"num\">mean |Δ|</th><th class=\"num\">cosine</th>"
        if isLM { s += "<th class=\"num\">mean KL</th><th class=\"num\">max KL</th><th class=\"num\">top-1</th><th class=\"num\">PPL ref</th><th class=\"num\">PPL cand</th>" }
        s += "</tr></thead><tbody>"
        func row(_ name: String, _ m: SequenceMetrics, _ cls: String = "") -> String {
            var r = "<tr class=\"\(cls)\"><td>\(name)</td><td class=\"num\">\(m.positions)</td><td class=\"num\">\(shortNumber(m.maxAbs))</td><td class=\"num\">\(shortNumber(m.meanAbs))</td><td class=\"num\">\(m.cosine.isNaN ? "–" : String(format: "%.6f", m.cosine))</td>"
            if isLM {
                r += "<td class=\"num\">\(shortNumber(m.klMean ?? .nan))</td><td class=\"num\">\(shortNumber(m.klMax ?? .nan))</td>"
                r += "<td class=\"num\">\(m.top1.map { String(format: "%.3f", $0) } ?? "–")</td>"
                r += "<td class=\"num\">\(shortNumber(m.perplexityReference ?? .nan, digits: 5))</td><td class=\"num\">\(shortNumber(m.perplexityCandidate ?? .nan, digits: 5))</td>"
            }
            return r + "</tr>"
        }
        for (i, m) in report.sequences.enumerated() { s += row("\(i)", m) }
        s += row("all", report.overall, "total")
        return s + "</tbody></table></div>"
    }

    func quantizationSection(_ q: QuantizationSection) -> String {
        var s = "<h2>Quantization error per tensor</h2>"
        if let recipe = q.recipe {
            s += "<p>Recipe recorded by <code>ckpt quantize</code>: \(recipeText(recipe))</p>"
        } else {
            s += "<p>The candidate holds quantized tensors but no <code>ckpt.quantize.recipe</code>: it was quantized by another tool.</p>"
        }
        guard !q.tensors.isEmpty else { return s + "<p class=\"note\">No tensor's stored type differs from the reference's.</p>" }
        let worst = q.tensors.map(\.error.relativeRMSE).filter(\.isFinite).max() ?? 1
        s += "<div class=\"scroll\"><table id=\"chart-quant\" class=\"quant\"><thead><tr><th>tensor</th><th>type</th><th class=\"num\">relative RMSE ▾</th><th class=\"barcol\"></th><th class=\"hide-narrow\">shape</th><th class=\"num hide-narrow\">SQNR (dB)</th><th class=\"num hide-narrow\">max |error|</th></tr></thead><tbody>"
        var schemes: OrderedDictionary<String, Int> = [:]
        for t in q.tensors {
            if schemes[t.storedDType] == nil { schemes[t.storedDType] = schemes.count }
            let color = Palette.series[schemes[t.storedDType]! % Palette.series.count]
            let w = worst > 0 && t.error.relativeRMSE.isFinite ? 100 * t.error.relativeRMSE / worst : 0
            s += "<tr><td class=\"mono name\">\(escapeHTML(t.name))</td>"
            s += "<td class=\"mono nowrap\">\(escapeHTML(t.referenceDType)) → <b>\(escapeHTML(t.storedDType))</b></td>"
            s += "<td class=\"num\">\(String(format: "%.3f%%", 100 * t.error.relativeRMSE))</td>"
            s += "<td class=\"barcol\"><div class=\"bar\" style=\"width:\(String(format: "%.1f", max(w, 0.5)))%;background:\(color)\"></div></td>"
            s += "<td class=\"mono nowrap hide-narrow\">\(t.shape.map(String.init).joined(separator: "×"))</td>"
            s += "<td class=\"num hide-narrow\">\(t.error.sqnrDB.isInfinite ? "∞" : String(format: "%.1f", t.error.sqnrDB))</td><td class=\"num hide-narrow\">\(shortNumber(t.error.maxAbs))</td></tr>"
        }
        s += "</tbody></table></div><p class=\"legend\">"
        for (name, i) in schemes { s += "<span><span class=\"swatch\" style=\"background:\(Palette.series[i % Palette.series.count]);height:10px\"></span>\(escapeHTML(name))</span>" }
        s += "<span>sorted by relative RMSE (‖ŵ − w‖ / ‖w‖), largest first; bars relative to the largest</span></p>"
        return s
    }

    func recipeText(_ json: String) -> String {
        guard let v = try? JSONValue.parse(json) else { return "<code>\(escapeHTML(json))</code>" }
        var parts: [String] = []
        if let s = v["scheme"]?.stringValue { parts.append("scheme <b>\(escapeHTML(s))</b>") }
        if let g = v["group_size"]?.intValue { parts.append("group size \(g)") }
        if let k = v["keep"]?.arrayValue, !k.isEmpty { parts.append("keep " + k.compactMap(\.stringValue).map { "<code>\(escapeHTML($0))</code>" }.joined(separator: ", ")) }
        if let t = v["tensor_types"]?.arrayValue, !t.isEmpty { parts.append("tensor types " + t.compactMap(\.stringValue).map { "<code>\(escapeHTML($0))</code>" }.joined(separator: ", ")) }
        if let f = v["fallback"]?.stringValue { parts.append("fallback \(escapeHTML(f))") }
        return parts.joined(separator: "; ") + "."
    }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var v = Double(n), i = 0
        while v >= 1000, i < units.count - 1 { v /= 1000; i += 1 }
        return i == 0 ? "\(n) B" : String(format: v < 10 ? "%.2f %@" : v < 100 ? "%.1f %@" : "%.0f %@", v, units[i])
    }

    static func count(_ n: Int) -> String {
        if n >= 1_000_000_000 { return String(format: "%.2f B", Double(n) / 1e9) }
        if n >= 1_000_000 { return String(format: "%.2f M", Double(n) / 1e6) }
        if n >= 10_000 { return String(format: "%.1f k", Double(n) / 1e3) }
        return "\(n)"
    }

    static let css = """
        :root{--fg:#1b1f24;--muted:#59636e;--line:#d9dee4;--card:#f4f6f8;--pass:#00795a;--fail:#c0392b}
        *{box-sizing:border-box}
        body{margin:0;color:var(--fg);background:#fff;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif}
        main{max-width:1100px;margin:0 auto;padding:28px 22px 48px}
        h1{font-size:26px;margin:0;letter-spacing:-.01em}
        h2{font-size:18px;margin:34px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
        .sub{margin:2px 0 16px;color:var(--muted)}
        .mono,code{font-family:ui-monospace,"SF Mono","DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.92em}
        .verdict{display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 18px;padding:14px 20px;border-radius:10px;color:#fff}
        .verdict .word{font-size:26px;font-weight:700;letter-spacing:.02em}
        .verdict .detail{font-size:16px;opacity:.95}
        .verdict.pass{background:var(--pass)}.verdict.fail{background:var(--fail)}.verdict.none{background:#59636e}
        table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:14px}
        th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
        thead th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
        .num{text-align:right;white-space:nowrap}
        .path{word-break:break-all}
        .nowrap{white-space:nowrap}
        tr.bad td{background:#fbeceb}
        tr.total td{font-weight:600;border-top:2px solid var(--line)}
        .badge{display:inline-block;padding:1px 10px;border-radius:999px;font-weight:600;font-size:13px;color:#fff}
        .badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
        .configs{margin:8px 0 0;padding-left:18px;color:var(--muted);font-size:14px}
        .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:6px 0 12px}
        .card{background:var(--card);border-radius:8px;padding:10px 14px}
        .card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
        .card .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
        .pm{font-size:13px;font-weight:400;color:var(--muted)}
        figure{margin:0}
        figcaption,.note{color:var(--muted);font-size:13px;margin:6px 0 0}
        svg.chart{display:block;width:100%;height:auto}
        svg .plot-bg{fill:#fff}svg .grid{stroke:#e8ebef;stroke-width:1}svg .axis{stroke:#8a949f;stroke-width:1}
        svg .tick{font-size:11px;fill:#59636e}svg .label{font-size:12.5px;fill:#1b1f24}svg .rule{font-size:11.5px;font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
        svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif}
        .multiples{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:14px 22px}
        .ftitle{font-size:13px;font-weight:600;margin-bottom:2px}
        .legend{display:flex;flex-wrap:wrap;gap:6px 18px;color:var(--muted);font-size:13px;margin:8px 0 0}
        .swatch{display:inline-block;width:16px;height:3px;margin-right:6px;vertical-align:middle}
        .swatch.dashed{background:repeating-linear-gradient(90deg,#000 0 5px,transparent 5px 9px)}
        .scroll{overflow-x:auto}
        .wide{overflow-x:auto}.wide svg.chart{min-width:600px}
        .quant td{padding:4px 10px}
        .barcol{width:28%;min-width:120px}
        .bar{height:11px;border-radius:2px;margin-top:5px}
        footer{margin-top:40px;color:var(--muted);font-size:12.5px;border-top:1px solid var(--line);padding-top:10px}
        @media (max-width:640px){main{padding:16px 12px}h1{font-size:22px}.barcol{min-width:60px}th,td{padding:5px 6px}
          .hide-narrow{display:none}.quant td.name{word-break:break-all}}
        """
}
