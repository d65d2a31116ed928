/// Receives progress from long operations (conversion, compression); the CLI draws a bar.
/// Called from whichever thread does the work.
public protocol ProgressSink: Sendable {
    func advance(bytes: Int)
}
