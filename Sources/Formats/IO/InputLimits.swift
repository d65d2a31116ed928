// Bounds on what a file may claim that its bytes do not already bound, shared by the readers.

enum InputLimits {
    /// An empty tensor ([0, 2^40]) takes no bytes, so nothing in the file bounds its other
    /// dimensions, yet code that walks them (reordering q/k rows, transposing Conv1D
    /// weights, computing chunk or row sizes) could loop or allocate by them. Each dimension
    /// of an empty tensor may be at most the file's size or 2^24, whichever is larger:
    /// generous for real empty tensors ([0, 4096]), and a few hundred bytes cannot claim
    /// 2^40 rows.
    static func emptyTensorFits(_ shape: [Int], fileSize: Int) -> Bool {
        guard shape.contains(0) else { return true }
        let cap = max(fileSize, 1 << 24)
        return shape.allSatisfy { $0 <= cap }
    }
}
