// `ckpt verify --html` and a pipeline verify step's `report:`: the page is self-contained
// (nothing fetched), holds every section, and — when Debian's `chromium` is installed (the CI
// installs it through tools/install-deps.sh) — renders with visible charts: the screenshot's
// pixels inside each chart's bounding box must include data marks (the palette's saturated
// colours; axes, grid and text are grey).

import CkptCore
import CZlib
import Foundation
import Testing
import TestSupport

@Suite struct HTMLReportTests {
    static let model = Repo.fixture("tiny-gpt2")

    /// tiny-gpt2 quantized to q4_0 by `ckpt quantize`, and the verify page against it.
    func quantizedReport(_ dir: TempDir, extra: [String] = []) throws -> (ProcessResult, String) {
        let cand = dir.file("q4_0.ckz")
        let q = try CkptBinary.run("quantize", Self.model, cand, "--scheme", "q4_0")
        #expect(q.status == 0, "\(q.stderr)")
        let page = dir.file("report.html")
        let r = try CkptBinary.run(["verify", Self.model, cand, "--html", page, "--random-tokens", "6", "--length", "48"] + extra)
        return (r, page)
    }

    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    /// Nothing in the page makes a browser fetch: no URLs, scripts, external styles or fonts.
    static func selfContained(_ html: String) -> Bool {
        let lower = html.lowercased()
        return !["http://", "https://", "<script", "src=", "<link", "@import", "url(", "@font-face"].contains { lower.contains($0) }
    }

    @Test func quantizedCandidatePageHasEverySection() throws {
        let dir = TempDir()
        let (r, page) = try quantizedReport(dir, extra: ["--preset", "q4_0"])
        #expect(r.status == 0, "\(r.stderr)")
        let html = try Self.read(page)
        #expect(Self.selfContained(html))
        for id in ["verdict", "chart-drift", "chart-positions", "chart-position-0", "chart-position-5", "chart-kl-hist", "chart-quant"] {
            #expect(html.contains("id=\"\(id)\""), "\(id)")
        }
        #expect(!html.contains("chart-position-6"))  // six sequences, six panels
        #expect(html.contains("✓ PASS") && html.contains("max_kl") && html.contains("min_top1"))
        // The recipe from the candidate's metadata, and one row per quantized tensor (every
        // 2-D weight of the fixture: tiny-gpt2 has 2 blocks × 4 matrices + 2 embeddings).
        #expect(html.contains("scheme <b>q4_0</b>"))
        let rows = html.components(separatedBy: "f32 → <b>").count - 1
        #expect(rows == 10, "\(rows) tensor rows")
        #expect(html.contains("KL(reference ‖ candidate)") && html.contains("log scale"))
        // The terminal output stays as it is.
        #expect(r.stdout.contains("gate max_kl") && !r.stdout.contains("<html"))
    }

    @Test func aFailingGateStillWritesThePage() throws {
        let dir = TempDir()
        let (r, page) = try quantizedReport(dir, extra: ["--max-kl", "1e-9"])
        #expect(r.status == 1, "\(r.stderr)")
        let html = try Self.read(page)
        #expect(html.contains("✗ FAIL") && html.contains("class=\"verdict fail\""))
    }

    @Test func textModeShowsTheTextStatistics() throws {
        let dir = TempDir()
        let m = Repo.fixture("tokenizers/gpt2-model")
        let cand = dir.file("bf16.safetensors")
        #expect(try CkptBinary.run("convert", m, cand, "--dtype", "bf16").status == 0)
        let page = dir.file("text.html")
        let r = try CkptBinary.run("verify", m, cand, "--text", Repo.fixture("tokenizers/heldout.txt"), "--context", "64",
                                   "--chunks", "4", "--html", page)
        #expect(r.status == 0, "\(r.stderr)")
        let html = try Self.read(page)
        #expect(Self.selfContained(html))
        for s in ["Text statistics", "PPL reference", "same top token", "RMS Δp", "99.9%", "window 3", "position in window",
                  "chart-kl-hist", "not measured when scoring text windows"] {
            #expect(html.contains(s), "\(s)")
        }
        #expect(!html.contains("chart-quant"))  // bf16 is a cast, not a quantization
    }

    @Test func encoderPageShowsCosine() throws {
        let dir = TempDir()
        let m = Repo.fixture("models/bert-a")
        let cand = dir.file("f16.safetensors")
        #expect(try CkptBinary.run("convert", m, cand, "--dtype", "f16").status == 0)
        let page = dir.file("enc.html")
        let r = try CkptBinary.run("verify", m, cand, "--html", page, "--preset", "f16")
        #expect(r.status == 0, "\(r.stderr)")
        let html = try Self.read(page)
        #expect(html.contains("1 − cosine") && html.contains("chart-drift") && html.contains("chart-position-0"))
        #expect(!html.contains("KL (nats)"))
    }

    @Test func pipelineVerifyStepWritesItsReport() throws {
        let dir = TempDir()
        let yaml = """
            steps:
              - quantize: {input: \(Self.model), output: out/q8.ckz, scheme: q8_0}
              - verify: {reference: \(Self.model), candidate: out/q8.ckz, preset: q8_0, report: reports/q8.html}
            """
        try writeFile(dir.file("p.yaml"), Array(yaml.utf8))
        try FileManager.default.createDirectory(atPath: dir.file("reports"), withIntermediateDirectories: true)
        let r = try CkptBinary.run("run", dir.file("p.yaml"))
        #expect(r.status == 0, "\(r.stderr)")
        let html = try Self.read(dir.file("reports/q8.html"))
        #expect(html.contains("chart-quant") && html.contains("out/q8.ckz") && html.contains("scheme <b>q8_0</b>"))
        // A report key that is not a path is refused before any work.
        try writeFile(dir.file("bad.yaml"), Array("steps:\n  - verify: {reference: \(Self.model), candidate: \(Self.model), report: 3}\n".utf8))
        let bad = try CkptBinary.run("run", dir.file("bad.yaml"))
        #expect(bad.status == 2 && bad.stderr.contains("report"), "\(bad.stderr)")
    }

    // MARK: Rendering in a browser

    static let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    struct Box: Decodable { var id: String; var x: Double; var y: Double; var w: Double; var h: Double }
    struct Layout: Decodable { var height: Double; var width: Double; var boxes: [Box] }

    static func browser(_ args: [String]) throws -> ProcessResult {
        try runProcess(chromium!, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                                   "--no-first-run", "--disable-extensions", "--mute-audio"] + args)
    }

    /// Where the browser laid out each chart: the page plus a script that stores the boxes
    /// in an attribute, printed back by --dump-dom.
    static func layout(of page: String, width: Int, dir: TempDir) throws -> Layout {
        let probe = dir.file("probe-\(width).html")
        let script = """
            <script>document.body.setAttribute('data-layout', JSON.stringify({height: document.documentElement.scrollHeight,
            width: document.documentElement.scrollWidth,
            boxes: [...document.querySelectorAll('[id^="chart-"]')].map(e => { const r = e.getBoundingClientRect();
            return {id: e.id, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height}; })}));</script></body>
            """
        try writeFile(probe, Array(try read(page).replacingOccurrences(of: "</body>", with: script).utf8))
        let r = try browser(["--window-size=\(width),1000", "--dump-dom", "file://" + probe])
        guard let start = r.stdout.range(of: "data-layout=\""), let end = r.stdout[start.upperBound...].firstIndex(of: "\"") else {
            throw SupportError("no layout from chromium: \(r.stderr.suffix(400))")
        }
        let json = String(r.stdout[start.upperBound..<end]).replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
        return try JSONDecoder().decode(Layout.self, from: Data(json.utf8))
    }

    /// Pixels inside `box` drawn in a saturated colour (data marks; the page's chrome is grey).
    static func markPixels(_ png: PNGImage, _ box: Box) -> Int {
        var n = 0
        let x0 = max(0, Int(box.x)), x1 = min(png.width, Int(box.x + box.w)), y0 = max(0, Int(box.y)), y1 = min(png.height, Int(box.y + box.h))
        guard x0 < x1, y0 < y1 else { return 0 }
        for y in y0..<y1 {
            for x in x0..<x1 {
                let (r, g, b) = png.rgb(x, y)
                if Int(max(r, g, b)) - Int(min(r, g, b)) > 60 { n += 1 }
            }
        }
        return n
    }

    @Test(.enabled(if: chromium != nil, "needs Debian's chromium (tools/install-deps.sh installs it)"),
          arguments: [1200, 500])  // 500: headless Chromium's narrowest window
    func chartsAreVisibleInHeadlessChromium(width: Int) throws {
        let dir = TempDir()
        let (r, page) = try quantizedReport(dir, extra: ["--preset", "q4_0"])
        #expect(r.status == 0, "\(r.stderr)")
        let layout = try Self.layout(of: page, width: width, dir: dir)
        let ids = Set(layout.boxes.map(\.id))
        for id in ["chart-drift", "chart-positions", "chart-position-0", "chart-kl-hist", "chart-quant"] {
            #expect(ids.contains(id), "\(id) not laid out")
        }
        #expect(layout.width <= Double(width), "the page is \(layout.width) px wide in a \(width) px window")
        let shot = dir.file("shot-\(width).png")
        let height = min(Int(layout.height.rounded(.up)), 20_000)
        let s = try Self.browser(["--window-size=\(width),\(height)", "--screenshot=\(shot)", "file://" + page])
        let png = try PNGImage(path: shot)
        #expect(png.width == width, "\(s.stderr.suffix(300))")
        for box in layout.boxes {
            // Every chart laid out and drawn with data (charts and tables wider than a narrow
            // window scroll sideways in their own box; the page itself never does).
            #expect(box.w > 50 && box.h > 50 && box.x >= 0, "\(box)")
            let marks = Self.markPixels(png, box)
            #expect(marks >= 150, "\(box.id): \(marks) data pixels in \(Int(box.w))×\(Int(box.h))")
        }
        // The decoder and the criterion can fail: the page's header band (white, grey text)
        // holds no data marks.
        #expect(Self.markPixels(png, Box(id: "header", x: 0, y: 0, w: Double(width), h: 60)) < 20)
    }
}

/// An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium's screenshots are), decoded with
/// zlib: enough to count pixels.
struct PNGImage {
    var width = 0, height = 0, channels = 0
    var pixels: [UInt8] = []

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw SupportError("\(path): no screenshot") }
        let b = [UInt8](data)
        guard b.count > 8, Array(b[0..<8]) == [137, 80, 78, 71, 13, 10, 26, 10] else { throw SupportError("\(path): not a PNG") }
        func u32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        var pos = 8, idat: [UInt8] = []
        while pos + 12 <= b.count {
            let len = u32(pos), type = String(decoding: b[(pos + 4)..<(pos + 8)], as: UTF8.self)
            guard pos + 12 + len <= b.count else { throw SupportError("\(path): truncated chunk") }
            let body = b[(pos + 8)..<(pos + 8 + len)]
            if type == "IHDR" {
                width = u32(pos + 8)
                height = u32(pos + 12)
                let depth = body[body.startIndex + 8], color = body[body.startIndex + 9], interlace = body[body.startIndex + 12]
                guard depth == 8, color == 2 || color == 6, interlace == 0 else {
                    throw SupportError("\(path): PNG depth \(depth) colour \(color) interlace \(interlace) not handled")
                }
                channels = color == 6 ? 4 : 3
            } else if type == "IDAT" {
                idat += body
            }
            pos += 12 + len
        }
        guard width > 0, height > 0, width <= 20_000, height <= 40_000 else { throw SupportError("\(path): bad size") }
        let stride = width * channels
        var raw = [UInt8](repeating: 0, count: height * (stride + 1))
        var rawLen = uLongf(raw.count)
        let rc = raw.withUnsafeMutableBufferPointer { out in
            idat.withUnsafeBufferPointer { inp in uncompress(out.baseAddress, &rawLen, inp.baseAddress, uLong(inp.count)) }
        }
        guard rc == Z_OK, Int(rawLen) == raw.count else { throw SupportError("\(path): inflate failed (\(rc))") }
        pixels = [UInt8](repeating: 0, count: height * stride)
        let bpp = channels
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            let src = y * (stride + 1) + 1, dst = y * stride
            for i in 0..<stride {
                let x = raw[src + i]
                let a = i >= bpp ? Int(pixels[dst + i - bpp]) : 0
                let up = y > 0 ? Int(pixels[dst - stride + i]) : 0
                let c = (i >= bpp && y > 0) ? Int(pixels[dst - stride + i - bpp]) : 0
                let pred: Int
                switch filter {
                case 0: pred = 0
                case 1: pred = a
                case 2: pred = up
                case 3: pred = (a + up) / 2
                case 4:
                    let p = a + up - c, pa = abs(p - a), pb = abs(p - up), pc = abs(p - c)
                    pred = pa <= pb && pa <= pc ? a : (pb <= pc ? up : c)
                default: throw SupportError("\(path): bad PNG filter \(filter)")
                }
                pixels[dst + i] = UInt8(truncatingIfNeeded: Int(x) + pred)
            }
        }
    }

    func rgb(_ x: Int, _ y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * channels
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}
