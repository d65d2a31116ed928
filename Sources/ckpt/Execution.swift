import ArgumentParser
import Transformer

extension Execution: ExpressibleByArgument {}

/// `--execution` and `--max-memory`, shared by the commands that run forward passes.
struct ExecutionFlags: ParsableArguments {
    @Option(help: """
        How the model runs: streamed (one block's weights in memory at a time), in-memory \
        (every weight widened to f32 once), or auto: in memory when the estimate fits under \
        --max-memory, streamed otherwise. (values: auto, streamed, in-memory)
        """)
    var execution: Execution = .auto

    @Option(help: """
        Memory cap for the forward passes' estimate, e.g. 8G or 512M (default: half of \
        physical memory or of the cgroup limit). A run whose estimate exceeds it is refused.
        """)
    var maxMemory: String?

    func options() throws -> ExecutionOptions {
        guard let maxMemory else { return ExecutionOptions(execution: execution) }
        guard let bytes = Memory.parse(maxMemory) else { throw CLIError("--max-memory \(maxMemory): expected a size such as 8G, 512M or 1073741824") }
        return ExecutionOptions(execution: execution, maxMemory: bytes)
    }
}
