// CkptKit: every ckpt library behind one import, for apps that use several stages.
//
//   import CkptKit
//   let model = try Checkpoint.openModel("model/")                  // Formats
//   let forward = try Transformers.load(model)                      // Transformer
//   let report = try Verifier.run(reference: model, candidate: ...) // Verify
//   let result = try QuantizeJob(input: "model/", output: "q.gguf", scheme: "q8_0")
//       .run(progress: JobProgress())                               // Pipeline (jobs)
//
// Apps that need one stage can depend on its own product (Formats, Quantize, Transformer,
// Tokenizer, Prune, Train, Verify, Pipeline) instead.

@_exported import CkptCore
@_exported import Formats
@_exported import Pipeline
@_exported import Prune
@_exported import Quantize
@_exported import Tokenizer
@_exported import Train
@_exported import Verify
@_exported import Transformer
