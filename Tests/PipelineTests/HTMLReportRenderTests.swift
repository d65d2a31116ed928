// The HTML report's pieces that need no browser: number formatting on axes and in tables,
// escaping of names and paths, and per-position values kept for the charts.

import CkptCore
import Foundation
@testable import Pipeline
@testable import Verify
import Testing

@Suite struct HTMLReportRenderTests {
    @Test(arguments: [
        (9.97e-5, 2, "10⁻⁴"),        // the mantissa rounds up into the exponent
        (9.66e-5, 3, "9.66×10⁻⁵"),
        (200.0, 2, "200"),          // no "2e+02" on a count axis
        (0.0591, 3, "0.0591"),
        (95.89, 4, "95.89"),
        (0.1, 3, "0.1"),
        (-0.012, 2, "−0.012"),
        (1.5e6, 2, "1.5×10⁶"),
        (0.0, 3, "0"),
    ])
    func numbersReadAsPeopleWriteThem(_ v: Double, _ digits: Int, _ expected: String) {
        #expect(shortNumber(v, digits: digits) == expected)
    }

    @Test func namesAndPathsAreEscaped() {
        #expect(escapeHTML("<a href=\"x\">&'") == "&lt;a href=&quot;x&quot;&gt;&amp;&#39;")
    }

    @Test func smallValuesOnALinearAxisMoveTheirPowerIntoTheLabel() {
        let axis = PlotAxis.fitting([0, 2.1e-4], log: false, includeZero: true)
        #expect(SVGPlot.tickScale(axis) == -4)
        #expect(SVGPlot.scaledLabel("KL (nats)", -4) == "KL (×10⁻⁴ nats)")
        #expect(SVGPlot.tickText(1.5e-4, scale: -4) == "1.5")
        let log = PlotAxis.fitting([1e-6, 3e-2])
        #expect(log.log && log.lo == 1e-6 && log.hi == 0.1)
    }

    @Test func perPositionValuesAreKeptForTheCharts() throws {
        // Two positions, three logits: identical first row, different second.
        let a: [Float] = [1, 2, 3, 1, 2, 3], b: [Float] = [1, 2, 3, 3, 2, 1]
        let m = Metrics.compare(reference: a, candidate: b, rows: 2, cols: 3, logits: true)
        let kl = try #require(m.positionKL)
        #expect(kl.count == 2 && kl[0] == 0 && kl[1] > 0)
        #expect(abs((kl[0] + kl[1]) / 2 - m.klMean!) < 1e-12 && kl.max() == m.klMax)
        let h = Metrics.compare(reference: a, candidate: b, rows: 2, cols: 3, logits: false)
        let cos = try #require(h.positionCosine)
        #expect(cos[0] == 1 && abs(cos[1] - 10.0 / 14.0) < 1e-12)
    }
}
