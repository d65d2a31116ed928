import ArgumentParser
import CkptCore
import Formats
import Foundation
import Pipeline
import Train
import Transformer

struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Distil a teacher (GPT-2, LLaMA, Mistral, Qwen2, ...) into a smaller student pruned from its own weights.",
        discussion: """
            The student keeps --layers N of the teacher's blocks (evenly spaced, first and last \
            included), or --layer-list/--every, and optionally fewer MLP neurons \
            (--intermediate), heads (--heads, --kv-heads) and hidden channels (--hidden), each \
            chosen by activation importance on training sequences (Minitron), or takes its sizes \
            from --student config.json. --steps 0 writes the initialised, untrained student. It is trained with AdamW (warmup + cosine decay, global-norm \
            clipping) on τ²·KL(teacher ‖ student) of temperature-scaled logits, plus optional \
            hidden-state MSE (--hidden-weight). Data: --data tokens (.npy or text, one sequence \
            per line; cut into windows, the last 10 % held out) or sequences the teacher samples \
            from seeded random prompts. Deterministic for a seed and thread count; --resume \
            continues from the state file. Prints the held-out KL before and after and a \
            `ckpt verify` report against the teacher. Exit status: 0 ok (1 when --preset/gates \
            fail), 2 bad input.
            """
    )

    @Argument(help: "The teacher checkpoint (GPT-2 or LLaMA-style, file or model directory).") var teacher: String
    @Argument(help: "The student output: a file (config.json is written beside it) or a directory.") var output: String
    @Option(help: "Student config.json of the teacher's family: its layer count (or ckpt_teacher_layers [list]), hidden, heads, key/value heads, intermediate.") var student: String?
    @Option(help: "Number of teacher blocks to keep, evenly spaced (first and last included).") var layers: Int?
    @Option(help: "Teacher blocks to keep, comma-separated (e.g. 0,3).") var layerList: String?
    @Option(help: "Keep every k-th teacher block (0, k, 2k, ...).") var every: Int?
    @Option(help: "MLP width of the student (keeps the most important neurons).") var intermediate: Int?
    @Option(help: "Query heads per block of the student (keeps the most important).") var heads: Int?
    @Option(help: "Key/value heads per block (default: the teacher's ratio to --heads).") var kvHeads: Int?
    @Option(help: "Hidden size of the student (keeps the most important channels everywhere).") var hidden: Int?
    @Option(help: "Training data: a text file (tokenized with the teacher's tokenizer), or token ids (a 2-D integer .npy or lines of ids) (default: teacher-sampled).") var data: String?
    @Option(help: "Teacher-sampled training sequences (when no --data).") var sequences: Int = 512
    @Option(help: "Held-out sequences (teacher-sampled; with --data the last 10 % of windows).") var evalSequences: Int = 64
    @Option(help: "Tokens per sequence (default: min(64, the model's positions)).") var length: Int?
    @Option(help: "Optimisation steps.") var steps: Int = 300
    @Option(help: "Sequences per step.") var batch: Int = 16
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Warmup steps (default: 5 % of --steps).") var warmup: Int?
    @Option(help: "AdamW weight decay (matrices and embeddings only).") var weightDecay: Float = 0.01
    @Option(help: "Clip the gradient's global norm to this (0: off).") var clip: Float = 1
    @Option(help: "Temperature τ of the KL loss.") var temperature: Float = 2
    @Option(help: "Weight α of hidden-state MSE between mapped layers (0: off).") var hiddenWeight: Float = 0
    @Option(help: "Seed of data sampling and batch order.") var seed: UInt64 = 0
    @Option(help: "State file for --resume (default: OUTPUT.distill-state.safetensors).") var state: String?
    @Option(help: "Save the state every N steps (0: only at the end).") var saveEvery: Int = 100
    @Flag(help: "Continue from the state file.") var resume = false
    @Option(help: "Print a progress line every N steps (default: steps/20).") var logEvery: Int?
    @Option(help: "Threads for matrix products (default 1; a run is reproducible for a fixed thread count).") var threads: Int = 1
    @Option(help: "Held-out sequences in the final verify report.") var verifySequences: Int = 16
    @Option(help: "Gate preset for the final report (e.g. distill); exit 1 when a gate fails.") var preset: String?
    @OptionGroup(title: "Gates for the final report") var gates: GateFlags
    @Option(help: "Write the held-out sequences here (text, one per line) for `ckpt verify --tokens`.") var saveEvalTokens: String?
    @Option(help: "Output format (default: from OUTPUT's extension).") var to: String?
    @Flag(help: "No progress lines.") var quiet = false

    /// The job these flags describe.
    var job: DistillJob {
        get throws {
            var job = DistillJob(teacher: teacher, output: output)
            (job.student, job.layers, job.every, job.intermediate, job.heads, job.kvHeads, job.hidden) = (student, layers, every, intermediate, heads, kvHeads, hidden)
            if let layerList {
                let parts = layerList.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { throw CLIError("--layer-list must be comma-separated integers, e.g. 0,3") }
                job.layerList = parts.map { $0! }
            }
            (job.data, job.sequences, job.evalSequences, job.length, job.steps, job.batch, job.lr) = (data, sequences, evalSequences, length, steps, batch, lr)
            (job.warmup, job.weightDecay, job.clip, job.temperature, job.hiddenWeight, job.seed) = (warmup, weightDecay, clip, temperature, hiddenWeight, seed)
            (job.state, job.saveEvery, job.resume, job.logEvery, job.threads) = (state, saveEvery, resume, logEvery, threads)
            (job.verifySequences, job.preset, job.saveEvalTokens, job.to) = (verifySequences, preset, saveEvalTokens, to)
            gates.apply(to: &job)
            return job
        }
    }

    func run() throws {
        let r = try job.run(progress: .cli(quiet: quiet))
        print(r.klLine)
        print(r.verify.table())
        if !r.passed { throw ExitCode(1) }
    }
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) && count > s.count ? String(dropLast(s.count)) : self }
}
