/// Receives progress from long operations (conversion, compression); the CLI draws a bar.
/// Called from whichever thread does the work.
public protocol ProgressSink: Sendable {
    /// The total number of bytes the operation will report, once it is known.
    func start(total: Int)
    func advance(bytes: Int)
}

extension ProgressSink {
    public func start(total: Int) {}
}
