// `ckpt distill` and the pipeline's distill step.

import CkptCore
import Foundation
import Formats
import Train
import Transformer

/// Distils a teacher into a smaller student pruned from its own weights, then verifies the
/// student against the teacher on held-out sequences.
public struct DistillJob: Job, GateLimits {
    public static let name = "distill"
    /// The teacher checkpoint (pipeline key `input`).
    public var teacher = ""
    /// The student output: a file (config.json is written beside it) or a directory.
    public var output = ""
    /// Student config.json of the teacher's family.
    public var student: String?
    /// Number of teacher blocks to keep, evenly spaced (first and last included).
    public var layers: Int?
    /// Teacher blocks to keep.
    public var layerList: [Int] = []
    /// Keep every k-th teacher block.
    public var every: Int?
    /// MLP width, query heads, key/value heads and hidden size of the student.
    public var intermediate, heads, kvHeads, hidden: Int?
    /// Training data: a text file or token ids (default: teacher-sampled).
    public var data: String?
    /// Teacher-sampled training and held-out sequences.
    public var sequences = 512
    public var evalSequences = 64
    /// Tokens per sequence (default: min(64, the model's positions)).
    public var length: Int?
    public var steps = 300
    public var batch = 16
    public var lr: Float = 1e-3
    /// Warmup steps (default: 5 % of the steps).
    public var warmup: Int?
    public var weightDecay: Float = 0.01
    /// Clip the gradient's global norm to this (0: off).
    public var clip: Float = 1
    public var temperature: Float = 2
    /// Weight of hidden-state MSE between mapped layers (0: off).
    public var hiddenWeight: Float = 0
    public var seed: UInt64 = 0
    /// State file for `resume` (default: OUTPUT.distill-state.safetensors).
    public var state: String?
    /// Save the state every N steps (0: only at the end).
    public var saveEvery = 100
    /// Continue from the state file.
    public var resume = false
    /// A progress line every N steps (default: steps/20).
    public var logEvery: Int?
    /// Threads for matrix products (a run is reproducible for a fixed thread count).
    public var threads = 1
    /// Held-out sequences in the final verify report.
    public var verifySequences = 16
    /// Gate preset for the final report, and limits replacing the preset's.
    public var preset: String?
    public var maxKl, minCosine, minTop1, maxAbs: Double?
    /// Write the held-out sequences here (text, one per line).
    public var saveEvalTokens: String?
    /// Output format (default: from the output's extension).
    public var to: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case teacher = "input", output, student, layers, layerList = "layer_list", every, intermediate, heads
        case kvHeads = "kv_heads", hidden, data, sequences, evalSequences = "eval_sequences", length, steps, batch, lr
        case warmup, weightDecay = "weight_decay", clip, temperature, hiddenWeight = "hidden_weight", seed, state
        case saveEvery = "save_every", resume, logEvery = "log_every", threads, verifySequences = "verify_sequences"
        case preset, maxKl = "max_kl", minCosine = "min_cosine", minTop1 = "min_top1", maxAbs = "max_abs"
        case saveEvalTokens = "save_eval_tokens", to
    }
    public static let requiredKeys: [CodingKeys] = [.teacher, .output]
    public static let inputKeys: [CodingKeys] = [.teacher, .student, .data]
    public static let outputKeys: [CodingKeys] = [.output]
    public static let sideFileKeys: [CodingKeys] = [.state, .saveEvalTokens]

    public init() {}
    public init(teacher: String, output: String) {
        (self.teacher, self.output) = (teacher, output)
    }

    public struct Report: JobReport {
        public var initialKL: Double
        public var finalKL: Double
        public var steps: Int
        public var seconds: Double
        public var teacherLayers: [Int]
        /// The student against the teacher on held-out sequences.
        public var verify: VerifyReport

        public var passed: Bool { verify.passed }
        public func json() -> JSONValue {
            .object(["held_out_kl_initial": .double(initialKL), "held_out_kl_final": .double(finalKL),
                     "steps": .int(steps), "teacher_layers": .array(teacherLayers.map { .int($0) }),
                     "passed": .bool(passed), "verify": verify.json()])
        }
        /// The command's closing line.
        public var klLine: String {
            let change = initialKL > 0 ? (finalKL - initialKL) / initialKL * 100 : 0
            return String(format: "held-out KL(teacher ‖ student): %.5f at initialisation -> %.5f distilled (%+.1f %%), %d steps in %.1f s",
                          initialKL, finalKL, change, steps, seconds)
        }
        public var logLines: [String] { [klLine, verify.table()] }
    }

    public func validate() throws {
        guard temperature > 0, lr > 0, steps >= 0, batch >= 1, hiddenWeight >= 0, weightDecay >= 0 else {
            throw JobError(nil, "temperature and lr must be positive, steps, hidden_weight and weight_decay not negative, batch at least 1")
        }
        for (v, k) in [(layers, "layers"), (every, "every"), (length, "length"), (logEvery, "log_every")] { try Self.positive(v, k) }
        try Self.positive(sequences, "sequences")
        try Self.positive(evalSequences, "eval_sequences")
        try Self.positive(threads, "threads")
        if saveEvery < 0 { throw JobError("save_every", "must not be negative") }
        _ = try gates.gates()
    }

    public var gates: GateOptions { GateOptions(preset: preset, maxKl: maxKl, minCosine: minCosine, minTop1: minTop1, maxAbs: maxAbs) }

    /// The state file's path.
    public var statePath: String { state ?? Self.trimmingSlash(output) + ".distill-state.safetensors" }

    static func trimmingSlash(_ s: String) -> String { s.count > 1 && s.hasSuffix("/") ? String(s.dropLast()) : s }

    public func run(progress: JobProgress) throws -> Report {
        try validate()
        let log = progress.log
        Transformers.setThreads(max(1, threads))
        let statePath = self.statePath
        if resume, !FileManager.default.fileExists(atPath: statePath) { throw JobError("resume", ": no state file \(statePath)") }
        let teacherGraph = try Checkpoint.open(teacher).graph
        let t: TrainModel
        do { t = try TrainModel(graph: teacherGraph) } catch { throw FileError(path: teacher, error: error) }

        // The output's directory (and the state file's, beside it) is created when missing.
        let outputDir = URL(fileURLWithPath: Self.trimmingSlash(output)).deletingLastPathComponent().path
        try? FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)

        // Student, data and options (Train.DistillRecipe).
        var r = DistillRecipe()
        (r.layers, r.every, r.intermediate, r.heads, r.kvHeads, r.hidden) = (layers, every, intermediate, heads, kvHeads, hidden)
        r.layerList = layerList.isEmpty ? nil : layerList
        if let student { r.studentConfig = try Checkpoint.readConfig(student) }
        (r.sequences, r.evalSequences, r.length, r.warmup) = (sequences, evalSequences, length, warmup)
        r.options.steps = max(0, steps)
        r.options.batch = max(1, batch)
        r.options.temperature = temperature
        r.options.hiddenWeight = hiddenWeight
        r.options.seed = seed
        r.options.optimizer.learningRate = lr
        r.options.optimizer.weightDecay = weightDecay
        r.options.optimizer.clipNorm = clip > 0 ? clip : nil
        let spec: StudentSpec
        do { spec = try r.studentSpec(teacher: t) } catch { throw JobError(nil, "\(error)") }
        var tokens: [Int]?
        if let data {
            tokens = try TextFiles.tokenInputs(data, model: teacher, length: r.sequenceLength(teacher: t)).flatMap { input -> [Int] in
                if case .tokens(let ids) = input { return ids } else { return [] }
            }
        }
        let tokenData: TokenData
        do { tokenData = try r.data(teacher: t, tokens: tokens) } catch { throw FileError(path: data ?? teacher, error: error) }
        let T = tokenData.sequenceLength
        if let saveEvalTokens {
            var f = try AtomicFile(target: saveEvalTokens)
            try f.write(Array((tokenData.eval.map { $0.map(String.init).joined(separator: ",") }.joined(separator: "\n") + "\n").utf8))
            try f.commit()
        }
        let options = r.resolvedOptions
        let s: TrainModel
        do { s = try Train.Student.make(teacher: t, spec: spec, calibration: tokenData.train) } catch { throw FileError(path: teacher, error: error) }
        let studentConfig = s.config
        let distiller: Distiller
        do { distiller = try Distiller(teacher: t, student: s, spec: spec, data: tokenData, options: options) } catch {
            throw FileError(path: data ?? teacher, error: error)
        }

        let recipe = recipeJSON(spec: spec, options: options, data: tokenData, name: progress.displayPath)
        let recipeText = recipe.serialized()
        if resume {
            let at = try distiller.loadState(from: statePath, recipe: recipeText)
            log("resumed at step \(at) from \(progress.displayPath(statePath))")
        }

        // The baseline: the student as initialised by layer selection, on the held-out set.
        let initialKL: Double
        if resume {
            initialKL = try Distiller(teacher: t, student: Train.Student.make(teacher: t, spec: spec, calibration: tokenData.train), spec: spec,
                                      data: tokenData, options: options).evaluate()
        } else {
            initialKL = distiller.evaluate()
        }
        log(String(format: "student: %d of %d layers %@, %@; %d parameters (teacher %d); %d training / %d held-out sequences of %d tokens",
                   spec.layers.count, t.layerCount, "\(spec.layers)", studentConfig.summary, s.parameterCount, t.parameterCount,
                   tokenData.train.count, tokenData.eval.count, T))
        log(String(format: "held-out KL(teacher ‖ student) at initialisation: %.5f nats", initialKL))

        let every = logEvery ?? max(1, options.steps / 20)
        let start = Date()
        var startStep = distiller.step
        var lastLine = Date()
        while distiller.step < options.steps {
            let r = distiller.trainStep()
            if r.step % every == 0 || r.step == options.steps {
                let ms = Date().timeIntervalSince(lastLine) * 1000 / Double(max(1, r.step - startStep))
                startStep = r.step
                lastLine = Date()
                log(String(format: "step %d/%d  loss %.5f%@  lr %.2e  |g| %.3f  %.1f ms/step", r.step, options.steps, r.loss,
                           options.hiddenWeight > 0 ? String(format: " (kl %.5f, hidden %.5f)", r.kl, r.hidden) : "",
                           r.learningRate, r.gradNorm, ms))
            }
            if saveEvery > 0, r.step % saveEvery == 0, r.step < options.steps {
                try distiller.saveState(to: statePath, recipe: recipeText)
            }
        }
        let seconds = Date().timeIntervalSince(start)
        if options.steps > 0 { try distiller.saveState(to: statePath, recipe: recipeText) }
        let finalKL = distiller.evaluate()

        // The output, with its config and the recipe.
        var recipeOut = recipe.objectValue ?? [:]
        recipeOut["held_out_kl_initial"] = .double(initialKL)
        recipeOut["held_out_kl_final"] = .double(finalKL)
        let graph = try s.weightGraph(config: studentConfig, metadata: [("ckpt_distill", JSONValue.object(recipeOut).serialized())])
        let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: nil)
        try Checkpoint.write(graph, to: output, format: format, directory: directory)
        if !directory {
            let dir = URL(fileURLWithPath: output).deletingLastPathComponent().path
            var f = try AtomicFile(target: dir + "/config.json")
            try f.write(studentConfig.serialized())
            try f.commit()
        }
        // The verify report against the teacher on held-out sequences.
        let inputs = tokenData.eval.prefix(max(1, verifySequences)).map { ModelInput.tokens($0) }
        let report = try Verifier.run(reference: teacherGraph, candidate: graph, inputs: Array(inputs),
                                      gates: try gates.gates())
        return Report(initialKL: initialKL, finalKL: finalKL, steps: options.steps, seconds: seconds,
                      teacherLayers: spec.layers, verify: report)
    }

    /// Everything that determines the run, recorded in the output's metadata and checked on
    /// `resume`.
    func recipeJSON(spec: StudentSpec, options o: DistillOptions, data d: TokenData, name: (String) -> String) -> JSONValue {
        .object([
            "teacher": .string(name(teacher)),
            "teacher_layers": .array(spec.layers.map { .int($0) }),
            "intermediate": spec.intermediate.map { .int($0) } ?? .null,
            "heads": spec.heads.map { .int($0) } ?? .null, "kv_heads": spec.kvHeads.map { .int($0) } ?? .null,
            "hidden": spec.hidden.map { .int($0) } ?? .null,
            "width_selection": .string("activation importance on up to 16 training sequences"),
            "data": .string(data.map(name) ?? "teacher-sampled"),
            "train_sequences": .int(d.train.count), "eval_sequences": .int(d.eval.count), "length": .int(d.sequenceLength),
            "steps": .int(o.steps), "batch": .int(o.batch), "lr": .double(Double(o.optimizer.learningRate)),
            "warmup": .int(o.optimizer.warmupSteps), "schedule": .string("linear warmup, cosine to 0.1·lr"),
            "weight_decay": .double(Double(o.optimizer.weightDecay)),
            "clip": o.optimizer.clipNorm.map { .double(Double($0)) } ?? .null,
            "temperature": .double(Double(o.temperature)), "hidden_weight": .double(Double(o.hiddenWeight)),
            "loss": .string("tau^2 * KL(teacher || student) on logits/tau" + (o.hiddenWeight > 0 ? " + hidden_weight * MSE of mapped block outputs" : "")),
            "seed": .string(String(o.seed)), "threads": .int(max(1, threads)),
        ])
    }
}
