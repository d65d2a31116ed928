import ArgumentParser
import CkptCore
import Foundation
import Pipeline
import Tokenizer

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Turn text into token ids (or, with --decode, ids into text) with a model's tokenizer.",
        discussion: """
            MODEL is a model directory (tokenizer.json, else a BERT vocab.txt with \
            tokenizer_config.json) or a tokenizer.json. The ids are those of the Hugging Face \
            `tokenizers` library: special tokens are added as the post-processor says unless \
            --no-special; the file's truncation and padding settings are not applied. \
            --text encodes one string; --file encodes each line (without its \\n or \\r\\n); \
            with neither, standard input is read as --file would be. Output: one line of \
            space-separated ids per sequence, or with --json {"ids": [[…], …]}. \
            With --decode the input is ids instead (space- or comma-separated, one sequence \
            per line, or the {"ids": [[…]]} JSON that --json prints) and the output one text \
            per sequence ({"text": […]} with --json); --no-special then leaves special tokens out.
            """
    )

    @Argument(help: "Model directory or tokenizer.json.") var model: String
    @Option(help: "The text to encode (or, with --decode, the ids).") var text: String?
    @Option(help: "A UTF-8 text file: each line is one sequence.") var file: String?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Add no special tokens (with --decode: leave special tokens out).") var noSpecial = false
    @Flag(help: "Decode ids to text.") var decode = false
    @Option(help: "Write the output to this file (atomically) instead of standard output.") var output: String?

    /// The job these flags describe.
    var job: TokenizeJob {
        var job = TokenizeJob(model: model, text: text)
        (job.file, job.noSpecial, job.decode, job.json, job.output) = (file, noSpecial, decode, json, output)
        return job
    }

    func run() throws {
        if text != nil && file != nil { throw ValidationError("give --text or --file, not both") }
        let r = try job.run(progress: .cli(quiet: true))
        if output == nil { FileHandle.standardOutput.write(Data(r.rendered(json: json).utf8)) }
    }
}
