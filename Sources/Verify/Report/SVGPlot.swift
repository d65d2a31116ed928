// Inline SVG charts for the HTML verify report: axes with ticks and labels, linear or log10
// scales, lines, bars and reference rules. No scripts, no external resources: each chart is
// one <svg> with a viewBox, so it scales with the page width.

import Foundation

/// Okabe & Ito's colour-blind-safe palette (Color Universal Design, 2008).
enum Palette {
    static let blue = "#0072B2", orange = "#E69F00", green = "#009E73", vermillion = "#D55E00"
    static let sky = "#56B4E9", purple = "#CC79A7", yellow = "#F0E442", black = "#000000"
    static let series = [blue, orange, green, purple, sky, vermillion]
}

/// One axis: a data range mapped onto a pixel range, linearly or by log10.
struct PlotAxis {
    var lo: Double
    var hi: Double
    var log: Bool

    /// An axis covering `values` (non-finite values ignored). `log`: nil chooses log10 when
    /// every value is positive and they span more than two decades.
    static func fitting(_ values: [Double], log: Bool? = nil, includeZero: Bool = false) -> PlotAxis {
        let finite = values.filter(\.isFinite)
        let positive = finite.filter { $0 > 0 }
        var useLog = log ?? false
        if log == nil, let mn = positive.min(), let mx = positive.max(), mx / mn > 100, positive.count == finite.count {
            useLog = true
        }
        if useLog {
            guard let mn = positive.min(), let mx = positive.max() else { return PlotAxis(lo: 0, hi: 1, log: false) }
            let lo = Foundation.pow(10, Foundation.floor(Foundation.log10(mn)))
            var hi = Foundation.pow(10, Foundation.ceil(Foundation.log10(mx)))
            if hi <= lo { hi = lo * 10 }
            return PlotAxis(lo: lo, hi: hi, log: true)
        }
        var lo = finite.min() ?? 0, hi = finite.max() ?? 1
        if includeZero { lo = Swift.min(lo, 0); hi = Swift.max(hi, 0) }
        if hi == lo { hi = lo == 0 ? 1 : lo + Swift.abs(lo) * 0.1 }
        let step = PlotAxis.niceStep((hi - lo) / 5)
        return PlotAxis(lo: Foundation.floor(lo / step) * step, hi: Foundation.ceil(hi / step) * step, log: false)
    }

    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let e = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
        let f = raw / e
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e
    }

    /// 0...1 position of `v` along the axis (clamped).
    func fraction(_ v: Double) -> Double {
        let t: Double
        if log {
            let x = Swift.max(v, lo)
            t = (Foundation.log10(x) - Foundation.log10(lo)) / (Foundation.log10(hi) - Foundation.log10(lo))
        } else {
            t = (v - lo) / (hi - lo)
        }
        return Swift.min(1, Swift.max(0, t.isFinite ? t : 0))
    }

    func ticks(integer: Bool = false) -> [Double] {
        if log {
            let a = Int(Foundation.log10(lo).rounded()), b = Int(Foundation.log10(hi).rounded())
            let every = Swift.max(1, (b - a + 5) / 6)
            return stride(from: a, through: b, by: every).map { Foundation.pow(10, Double($0)) }
        }
        var step = PlotAxis.niceStep((hi - lo) / 5)
        if integer { step = Swift.max(1, step.rounded()) }
        var out: [Double] = []
        var v = Foundation.ceil(lo / step) * step
        while v <= hi + step * 1e-9, out.count < 50 {
            out.append(Swift.abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return out
    }
}

/// Compact number text for ticks and tables: 0.012, 3.4×10⁻⁵, 1200, with `digits`
/// significant digits and trailing zeros dropped.
func shortNumber(_ v: Double, digits: Int = 3) -> String {
    if v.isNaN { return "–" }
    if v.isInfinite { return v > 0 ? "∞" : "−∞" }
    if v == 0 { return "0" }
    let a = Swift.abs(v)
    if a >= 1e5 || a < 1e-3 {
        // "%.Ne" rounds the mantissa and carries into the exponent (9.97e-05 -> 1.0e-04).
        let text = String(format: "%.\(Swift.max(0, digits - 1))e", v)
        let parts = text.split(separator: "e")
        guard parts.count == 2, let e = Int(parts[1]) else { return text }
        let m = trimZeros(String(parts[0]))
        return (m == "1" ? "" : m == "-1" ? "−" : m.replacingOccurrences(of: "-", with: "−") + "×") + "10" + superscript(e)
    }
    let decimals = Swift.max(0, digits - 1 - Int(Foundation.floor(Foundation.log10(a))))
    return trimZeros(String(format: "%.\(decimals)f", v)).replacingOccurrences(of: "-", with: "−")
}

func trimZeros(_ s: String) -> String {
    guard s.contains(".") else { return s }
    var t = s
    while t.hasSuffix("0") { t.removeLast() }
    if t.hasSuffix(".") { t.removeLast() }
    return t
}

func superscript(_ n: Int) -> String {
    let map: [Character: Character] = ["0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵", "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹", "-": "⁻"]
    return String(String(n).map { map[$0] ?? $0 })
}

func escapeHTML(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(c)
        }
    }
    return out
}

/// One chart: a plot area inside margins, two axes, and SVG elements appended in data
/// coordinates.
struct SVGPlot {
    var width: Double = 640
    var height: Double = 260
    var left: Double = 64, right: Double = 16, top: Double = 14, bottom: Double = 46
    var x: PlotAxis
    var y: PlotAxis
    var xLabel: String
    var yLabel: String
    var integerX = false
    private var body: [String] = []

    init(x: PlotAxis, y: PlotAxis, xLabel: String, yLabel: String, width: Double = 640, height: Double = 260) {
        self.x = x
        self.y = y
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.width = width
        self.height = height
    }

    func px(_ v: Double) -> Double { left + x.fraction(v) * (width - left - right) }
    func py(_ v: Double) -> Double { height - bottom - y.fraction(v) * (height - top - bottom) }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    mutating func line(_ points: [(Double, Double)], color: String, width w: Double = 1.8, dash: String? = nil, dots: Bool = false) {
        let pts = points.filter { $0.0.isFinite && $0.1.isFinite }
        guard !pts.isEmpty else { return }
        let d = pts.enumerated().map { (i, p) in (i == 0 ? "M" : "L") + SVGPlot.f(px(p.0)) + " " + SVGPlot.f(py(p.1)) }.joined()
        body.append("<path d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(w)\" stroke-linejoin=\"round\"\(dash.map { " stroke-dasharray=\"\($0)\"" } ?? "")/>")
        if dots || pts.count == 1 {
            for p in pts {
                body.append("<circle cx=\"\(SVGPlot.f(px(p.0)))\" cy=\"\(SVGPlot.f(py(p.1)))\" r=\"3\" fill=\"\(color)\"/>")
            }
        }
    }

    /// A bar from y = the axis floor (or 0) up to `value`, spanning [x0, x1] in data units.
    mutating func bar(x0: Double, x1: Double, value: Double, color: String, title: String? = nil) {
        guard value.isFinite else { return }
        let base = y.log ? y.lo : Swift.max(y.lo, Swift.min(0, y.hi))
        let a = px(x0), b = px(x1), top = py(value), bottom = py(base)
        let h = Swift.max(0, bottom - top)
        let t = title.map { "<title>\(escapeHTML($0))</title>" } ?? ""
        body.append("<rect x=\"\(SVGPlot.f(a))\" y=\"\(SVGPlot.f(top))\" width=\"\(SVGPlot.f(Swift.max(1, b - a)))\" height=\"\(SVGPlot.f(h))\" fill=\"\(color)\">\(t)</rect>")
    }

    /// A vertical rule at x (a mean, a limit) with a label at the top.
    mutating func vrule(_ v: Double, color: String, label: String, dash: String = "5 4", anchorEnd: Bool = false) {
        let xp = px(v)
        body.append("<line x1=\"\(SVGPlot.f(xp))\" x2=\"\(SVGPlot.f(xp))\" y1=\"\(SVGPlot.f(top))\" y2=\"\(SVGPlot.f(height - bottom))\" stroke=\"\(color)\" stroke-width=\"1.6\" stroke-dasharray=\"\(dash)\"/>")
        body.append("<text x=\"\(SVGPlot.f(xp + (anchorEnd ? -4 : 4)))\" y=\"\(SVGPlot.f(top + 12))\" text-anchor=\"\(anchorEnd ? "end" : "start")\" class=\"rule\" fill=\"\(color)\">\(escapeHTML(label))</text>")
    }

    /// A horizontal rule at y.
    mutating func hrule(_ v: Double, color: String, label: String) {
        let yp = py(v)
        body.append("<line x1=\"\(SVGPlot.f(left))\" x2=\"\(SVGPlot.f(width - right))\" y1=\"\(SVGPlot.f(yp))\" y2=\"\(SVGPlot.f(yp))\" stroke=\"\(color)\" stroke-width=\"1.4\" stroke-dasharray=\"5 4\"/>")
        body.append("<text x=\"\(SVGPlot.f(width - right - 4))\" y=\"\(SVGPlot.f(yp - 4))\" text-anchor=\"end\" class=\"rule\" fill=\"\(color)\">\(escapeHTML(label))</text>")
    }

    /// A linear axis of very small or large values shows plain tick numbers and puts the
    /// power of ten into its label ("KL (×10⁻⁴ nats)").
    static func tickScale(_ axis: PlotAxis) -> Int {
        guard !axis.log else { return 0 }
        let m = Swift.max(Swift.abs(axis.lo), Swift.abs(axis.hi))
        guard m > 0, m < 1e-2 || m >= 1e5 else { return 0 }
        return Int(Foundation.floor(Foundation.log10(m)))
    }

    static func tickText(_ t: Double, scale: Int) -> String {
        scale == 0 ? shortNumber(t, digits: 2) : shortNumber(t / Foundation.pow(10, Double(scale)), digits: 2)
    }

    static func scaledLabel(_ label: String, _ scale: Int) -> String {
        guard scale != 0 else { return label }
        let factor = "×10" + superscript(scale)
        if let open = label.lastIndex(of: "("), label.hasSuffix(")") {
            return String(label[..<label.index(after: open)]) + factor + " " + String(label[label.index(after: open)...])
        }
        return label + " (" + factor + ")"
    }

    /// The finished chart: grid, ticks, axis labels, then the data on top.
    func svg(id: String, label: String, compact: Bool = false) -> String {
        let ys = SVGPlot.tickScale(y), xs = SVGPlot.tickScale(x)
        var s = "<svg id=\"\(id)\" class=\"chart\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escapeHTML(label))\" preserveAspectRatio=\"xMidYMid meet\">"
        s += "<rect x=\"\(SVGPlot.f(left))\" y=\"\(SVGPlot.f(top))\" width=\"\(SVGPlot.f(width - left - right))\" height=\"\(SVGPlot.f(height - top - bottom))\" class=\"plot-bg\"/>"
        for t in y.ticks() {
            let yp = py(t)
            s += "<line x1=\"\(SVGPlot.f(left))\" x2=\"\(SVGPlot.f(width - right))\" y1=\"\(SVGPlot.f(yp))\" y2=\"\(SVGPlot.f(yp))\" class=\"grid\"/>"
            s += "<text x=\"\(SVGPlot.f(left - 6))\" y=\"\(SVGPlot.f(yp + 4))\" text-anchor=\"end\" class=\"tick\">\(escapeHTML(SVGPlot.tickText(t, scale: ys)))</text>"
        }
        var xt = x.ticks(integer: integerX)
        if compact, xt.count > 5 { xt = stride(from: 0, to: xt.count, by: 2).map { xt[$0] } }
        for t in xt {
            let xp = px(t)
            s += "<line x1=\"\(SVGPlot.f(xp))\" x2=\"\(SVGPlot.f(xp))\" y1=\"\(SVGPlot.f(height - bottom))\" y2=\"\(SVGPlot.f(height - bottom + 4))\" class=\"axis\"/>"
            s += "<text x=\"\(SVGPlot.f(xp))\" y=\"\(SVGPlot.f(height - bottom + 17))\" text-anchor=\"middle\" class=\"tick\">\(escapeHTML(SVGPlot.tickText(t, scale: xs)))</text>"
        }
        s += "<line x1=\"\(SVGPlot.f(left))\" x2=\"\(SVGPlot.f(width - right))\" y1=\"\(SVGPlot.f(height - bottom))\" y2=\"\(SVGPlot.f(height - bottom))\" class=\"axis\"/>"
        s += "<line x1=\"\(SVGPlot.f(left))\" x2=\"\(SVGPlot.f(left))\" y1=\"\(SVGPlot.f(top))\" y2=\"\(SVGPlot.f(height - bottom))\" class=\"axis\"/>"
        s += body.joined()
        s += "<text x=\"\(SVGPlot.f(left + (width - left - right) / 2))\" y=\"\(SVGPlot.f(height - 8))\" text-anchor=\"middle\" class=\"label\">\(escapeHTML(SVGPlot.scaledLabel(xLabel, xs)))</text>"
        s += "<text transform=\"translate(14 \(SVGPlot.f(top + (height - top - bottom) / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"label\">\(escapeHTML(SVGPlot.scaledLabel(yLabel, ys)))</text>"
        return s + "</svg>"
    }
}
