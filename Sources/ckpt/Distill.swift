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
    @Option(help: "Write the held-out sequences here (text, one per line) for `ckpt verify --tokens`.") var saveEvalTokens: String?
    @Option(help: "Output format (default: from OUTPUT's extension).") var to: String?
    @Flag(help: "No progress lines.") var quiet = false

    func run() throws {
        guard temperature > 0, lr > 0, steps >= 0, batch >= 1, hiddenWeight >= 0, weightDecay >= 0 else {
            throw CLIError("--temperature and --lr must be positive, --steps, --hidden-weight and --weight-decay not negative, --batch at least 1")
        }
        Transformers.setThreads(max(1, threads))
        let statePath = state ?? output.trimmingSuffix("/") + ".distill-state.safetensors"
        if resume, !FileManager.default.fileExists(atPath: statePath) { throw CLIError("--resume: no state file \(statePath)") }
        let teacherGraph = try Checkpoint.open(teacher).graph
        let t: TrainModel
        do { t = try TrainModel(graph: teacherGraph) } catch { throw FileError(path: teacher, error: error) }

        // The output's directory (and the state file's, beside it) is created when missing.
        let outputDir = URL(fileURLWithPath: output.trimmingSuffix("/")).deletingLastPathComponent().path
        try? FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)

        // Student, data and options: the set-up `ckpt run` shares (Train.DistillRecipe).
        var r = DistillRecipe()
        (r.layers, r.every, r.intermediate, r.heads, r.kvHeads, r.hidden) = (layers, every, intermediate, heads, kvHeads, hidden)
        if let layerList {
            let parts = layerList.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { throw CLIError("--layer-list must be comma-separated integers, e.g. 0,3") }
            r.layerList = parts.map { $0! }
        }
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
        do { spec = try r.studentSpec(teacher: t) } catch { throw CLIError("\(error)") }
        var tokens: [Int]?
        if let data {
            tokens = try TextFiles.tokenInputs(data, model: teacher, length: r.sequenceLength(teacher: t)).flatMap { input -> [Int] in
                if case .tokens(let ids) = input { return ids } else { return [] }
            }
        }
        let tokenData: TokenData
        do { tokenData = try r.data(teacher: t, tokens: tokens) } catch { throw FileError(path: data ?? teacher, error: error) }
        let T = tokenData.T
        if let saveEvalTokens {
            try writeText(tokenData.eval.map { $0.map(String.init).joined(separator: ",") }.joined(separator: "\n") + "\n", to: saveEvalTokens)
        }
        let options = r.resolvedOptions
        let s: TrainModel
        do { s = try Train.Student.make(teacher: t, spec: spec, calibration: tokenData.train) } catch { throw FileError(path: teacher, error: error) }
        let studentConfig = s.config
        let distiller: Distiller
        do { distiller = try Distiller(teacher: t, student: s, spec: spec, data: tokenData, options: options) } catch {
            throw FileError(path: data ?? teacher, error: error)
        }

        let recipe = recipeJSON(spec: spec, options: options, data: tokenData)
        let recipeText = recipe.serialized()
        if resume {
            let at = try distiller.loadState(from: statePath, recipe: recipeText)
            log("resumed at step \(at) from \(statePath)")
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
                   spec.layers.count, t.shape.L, "\(spec.layers)", studentConfig.summary, s.parameterCount, t.parameterCount,
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

        let change = initialKL > 0 ? (finalKL - initialKL) / initialKL * 100 : 0
        print(String(format: "held-out KL(teacher ‖ student): %.5f at initialisation -> %.5f distilled (%+.1f %%), %d steps in %.1f s",
                     initialKL, finalKL, change, options.steps, seconds))
        // The verify report against the teacher on held-out sequences.
        var gates = Gates()
        if let preset {
            guard let g = Gates.preset(preset) else { throw CLIError("unknown --preset \(preset)") }
            gates = g
        }
        let inputs = tokenData.eval.prefix(max(1, verifySequences)).map { ModelInput.tokens($0) }
        let report = try Verifier.run(reference: teacherGraph, candidate: graph, inputs: Array(inputs), gates: gates)
        print(report.table())
        if !report.passed { throw ExitCode(1) }
    }

    /// Everything that determines the run, recorded in the output's metadata and checked on
    /// --resume.
    func recipeJSON(spec: StudentSpec, options o: DistillOptions, data d: TokenData) -> JSONValue {
        .object([
            "teacher": .string(teacher),
            "teacher_layers": .array(spec.layers.map { .int($0) }),
            "intermediate": spec.intermediate.map { .int($0) } ?? .null,
            "heads": spec.heads.map { .int($0) } ?? .null, "kv_heads": spec.kvHeads.map { .int($0) } ?? .null,
            "hidden": spec.hidden.map { .int($0) } ?? .null,
            "width_selection": .string("activation importance on up to 16 training sequences"),
            "data": .string(data ?? "teacher-sampled"),
            "train_sequences": .int(d.train.count), "eval_sequences": .int(d.eval.count), "length": .int(d.T),
            "steps": .int(o.steps), "batch": .int(o.batch), "lr": .double(Double(o.optimizer.learningRate)),
            "warmup": .int(o.optimizer.warmupSteps), "schedule": .string("linear warmup, cosine to 0.1·lr"),
            "weight_decay": .double(Double(o.optimizer.weightDecay)),
            "clip": o.optimizer.clipNorm.map { .double(Double($0)) } ?? .null,
            "temperature": .double(Double(o.temperature)), "hidden_weight": .double(Double(o.hiddenWeight)),
            "loss": .string("tau^2 * KL(teacher || student) on logits/tau" + (o.hiddenWeight > 0 ? " + hidden_weight * MSE of mapped block outputs" : "")),
            "seed": .string(String(o.seed)), "threads": .int(max(1, threads)),
        ])
    }

    func log(_ line: String) {
        if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) && count > s.count ? String(dropLast(s.count)) : self }
}
