// swift-tools-version: 6.0
// ckpt: convert, shrink and verify Transformer checkpoints.
//
// Data flows one way: readers -> weight graph -> transforms -> writers.
//   CkptCore  format-neutral core: DType, Tensor, WeightGraph, ModelConfig, JSON
//   Formats   one folder per file format (reader, writer, error type) + safe I/O
//   Quantize  numerics of dtype casts and (later) quantization schemes, no file I/O
//   Transformer  the reference forward pass (GPT-2, BERT, LLaMA, the seed encoder), BLAS-backed
//   Prune     unstructured, N:M and structured pruning into a smaller config
//   Verify    model comparison: metrics and gates, token and text verification, the HTML report
//   Pipeline  one job type per operation (convert, quantize, prune, distill, verify, tokenize),
//             checkpoint diff, `ckpt run` pipelines (YAML)
//   Tokenizer Hugging Face tokenizers (tokenizer.json, BERT vocab.txt): text <-> token ids
//   Train     training on CPU: GPT-2 backward pass, AdamW, student configs, distillation
//   CkptKit   umbrella: re-exports every library above (Examples/ uses it)
//   ckpt      the command-line tool, one file per subcommand
import PackageDescription

let package = Package(
    name: "ckpt",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ckpt", targets: ["ckpt"]),
        // Every stage is a library an app can link without the CLI (Examples/ shows one).
        .library(name: "CkptCore", targets: ["CkptCore"]),
        .library(name: "Formats", targets: ["Formats"]),
        .library(name: "Quantize", targets: ["Quantize"]),
        .library(name: "Transformer", targets: ["Transformer"]),  // the forward pass
        .library(name: "Tokenizer", targets: ["Tokenizer"]),
        .library(name: "Prune", targets: ["Prune"]),
        .library(name: "Train", targets: ["Train"]),  // distillation
        // Verification (Verifier, TextVerifier, gates, the HTML report), without YAML.
        .library(name: "Verify", targets: ["Verify"]),
        // The jobs (one type per operation, shared by the CLI and pipelines), checkpoint diff,
        // pipelines (also used by the fuzz targets in Fuzz/, their own package).
        .library(name: "Pipeline", targets: ["Pipeline"]),
        // All of the above behind one `import CkptKit`.
        .library(name: "CkptKit", targets: ["CkptKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // libhdf5 from Debian's libhdf5-dev, plus inline getters for the macros Swift cannot import.
        .systemLibrary(
            name: "CHDF5",
            pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev"])]
        ),
        // libdeflate (Debian libdeflate-dev): whole-buffer DEFLATE and CRC32 for .ckz chunks.
        .systemLibrary(
            name: "CDeflate",
            pkgConfig: "libdeflate",
            providers: [.apt(["libdeflate-dev"])]
        ),
        // zlib from Debian's zlib1g-dev: deflated .npz members and zip CRC-32s.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Hot loops in C with AVX2 paths picked at run time and scalar fallbacks giving the same
        // bytes: the .ckz plane filter and histogram, HDF5 shuffle, float casts, GGUF 32-value
        // quantizers. No library does these exact byte layouts; the kernels are ~500 lines.
        .target(name: "CKernels"),
        .target(
            name: "CkptCore",
            dependencies: [.product(name: "OrderedCollections", package: "swift-collections")],
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        .target(
            name: "Formats",
            dependencies: [
                // Transformer: GGUF names and keys come from the architecture description.
                // Tokenizer: a model's tokenizer becomes GGUF's tokenizer.ggml.* keys.
                "CkptCore", "CHDF5", "CDeflate", "CZlib", "Quantize", "CKernels", "Transformer", "Tokenizer",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // OpenBLAS: GPTQ's Hessian factorisation (LAPACK) and lazy batch updates (BLAS).
        .target(name: "Quantize", dependencies: ["CkptCore", "CKernels", "COpenBLAS"]),
        // OpenBLAS from Debian's libopenblas-dev, for the forward pass's matrix products.
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // CKernels: the integer Q8_0 products (dot.c).
        .target(name: "Transformer", dependencies: ["CkptCore", "Quantize", "COpenBLAS", "CKernels"]),
        // Oniguruma from Debian's libonig-dev: the regex engine of Hugging Face `tokenizers`
        // itself (via the `onig` crate), so pre-tokenizer patterns (GPT-2's and Llama-3's
        // lookahead, \p{L}/\p{N}, (?i:…)) match exactly as in the reference, and on UTF-8 bytes.
        // Swift Regex (on Unicode scalars) finds the same pieces but was 8-11x slower on 1 MB of
        // text with GPT-2's and Llama-3's patterns (bench/regex_bench.swift; README, "Tokenizers").
        .systemLibrary(
            name: "COniguruma",
            pkgConfig: "oniguruma",
            providers: [.apt(["libonig-dev"])]
        ),
        // Tokenizers: tokenizer.json / vocab.txt, encode and decode as the `tokenizers` library.
        .target(
            name: "Tokenizer",
            dependencies: ["CkptCore", "COniguruma", .product(name: "HeapModule", package: "swift-collections")]
        ),
        // Unstructured, N:M and structured pruning (heads, neurons, layers) of a weight graph.
        .target(name: "Prune", dependencies: ["CkptCore", "Quantize", "Transformer"]),
        // Comparing two models: metrics, gates, token and text verification, the HTML report.
        // No YAML: an app can verify without the pipeline machinery.
        .target(
            name: "Verify",
            dependencies: [
                "CkptCore", "Formats", "Quantize", "Transformer", "Tokenizer",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        // The jobs (convert, quantize, prune, distill, verify, tokenize), two checkpoints (diff),
        // and build pipelines (run).
        .target(
            name: "Pipeline",
            dependencies: [
                "CkptCore", "Formats", "Quantize", "Transformer", "Prune", "Train", "Tokenizer", "Verify",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Training on CPU (issues 9, 22): a forward that keeps activations and the backward pass,
        // both from Transformer's architecture description; AdamW, students, the distillation loop.
        .target(name: "Train", dependencies: ["CkptCore", "Formats", "Quantize", "COpenBLAS", "Transformer",
                                              .product(name: "OrderedCollections", package: "swift-collections")]),
        // The umbrella module: re-exports every library target.
        .target(name: "CkptKit", dependencies: ["CkptCore", "Formats", "Quantize", "Transformer", "Tokenizer", "Prune", "Train", "Verify", "Pipeline"]),
        .executableTarget(
            name: "ckpt",
            dependencies: [
                "CkptCore", "Formats", "Quantize", "Transformer", "Verify", "Pipeline", "Prune", "Train", "Tokenizer", "COpenBLAS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["CkptCore", "CKernels"], path: "Tests/TestSupport"),
        .testTarget(name: "CkptCoreTests", dependencies: ["CkptCore", "Quantize", "TestSupport"]),
        .testTarget(name: "FormatsTests", dependencies: ["CkptCore", "Formats", "CKernels", "TestSupport"]),
        .testTarget(name: "QuantizeTests", dependencies: ["CkptCore", "Formats", "Quantize", "CKernels", "TestSupport"]),
        .testTarget(name: "TransformerTests", dependencies: ["CkptCore", "Formats", "Quantize", "Transformer", "TestSupport"]),
        .testTarget(name: "PruneTests", dependencies: ["CkptCore", "Formats", "Transformer", "Prune", "Verify", "Pipeline", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["CkptCore", "Formats", "Transformer", "Verify", "Pipeline", "Tokenizer", "TestSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["CkptCore", "Tokenizer", "TestSupport"]),
        .testTarget(name: "TrainTests", dependencies: ["CkptCore", "Formats", "Transformer", "Train", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["ckpt", "CkptCore", "Formats", "Pipeline", "TestSupport", "CZlib"]),
    ],
    swiftLanguageModes: [.v6]
)
