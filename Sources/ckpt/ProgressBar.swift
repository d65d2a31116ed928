import CkptCore
import Foundation

/// A byte-count progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar: ProgressSink, @unchecked Sendable {
    private var total = 0
    private let label: String
    private let lock = NSLock()
    private var done = 0
    private var lastDraw = Date.distantPast
    private let start = Date()

    /// nil when progress should not be shown (quiet, or stderr is not a terminal).
    static func make(label: String, quiet: Bool) -> ProgressBar? {
        guard !quiet, isatty(2) == 1 else { return nil }
        return ProgressBar(label: label)
    }

    private init(label: String) {
        self.label = label
    }

    func start(total: Int) { lock.withLock { self.total = total } }

    func advance(bytes: Int) {
        lock.withLock {
            guard total > 0 else { return }
            done += bytes
            let now = Date()
            guard now.timeIntervalSince(lastDraw) > 0.1 || done >= total else { return }
            lastDraw = now
            draw(now)
        }
    }

    private func draw(_ now: Date) {
        let fraction = min(1, Double(done) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let elapsed = max(now.timeIntervalSince(start), 1e-6)
        let rate = Double(done) / elapsed / 1e6
        let line = String(format: "\r%@ %@ %5.1f%%  %@ / %@  %.0f MB/s ", label, bar, fraction * 100,
                          formatBytes(done), formatBytes(total), rate)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        lock.withLock { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// "1.23 GB" style sizes (decimal units, as file managers and Hugging Face show them).
func formatBytes(_ n: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(n)
    var i = 0
    while v >= 1000 && i < units.count - 1 {
        v /= 1000
        i += 1
    }
    return i == 0 ? "\(n) B" : String(format: "%.2f %@", v, units[i])
}
