// swift-tools-version: 6.0
// ckpt's fuzz targets (issue 19): one libFuzzer executable per parser and structured input.
// Their own package, so the main package and `swift test` never see -sanitize=fuzzer.
// Built and run by `make fuzz` (Fuzz/run.sh); README.md, "Fuzzing", says how and what was found.
import PackageDescription

/// Target name -> the root package's products it needs.
let targets: [(String, [String])] = [
    ("safetensors", ["Formats"]),
    ("sharded-index", ["Formats"]),
    ("gguf", ["Formats"]),
    ("ckz", ["Formats"]),
    ("ckz-index", ["Formats"]),
    ("ckz-chunk", ["Formats"]),
    ("npy", ["Formats"]),
    ("npz", ["Formats"]),
    ("torch", ["Formats"]),
    ("pickle", ["Formats"]),
    ("json", []),
    ("model-config", ["Transformer"]),
    ("pipeline-yaml", ["Pipeline"]),
    ("tokenizer", ["Tokenizer"]),
    ("detect", ["Formats"]),
    ("imatrix", ["Pipeline"]),
]

let package = Package(
    name: "ckpt-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "ckpt", path: "..")],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "CkptCore", package: "ckpt"), .product(name: "Formats", package: "ckpt")]
        ),
    ] + targets.map { name, products in
        // No main: libFuzzer's main calls LLVMFuzzerTestOneInput.
        .executableTarget(
            name: "fuzz-" + name,
            dependencies: ["FuzzSupport", .product(name: "CkptCore", package: "ckpt")]
                + products.map { .product(name: $0, package: "ckpt") },
            path: "Targets/" + name
        )
    },
    swiftLanguageModes: [.v6]
)
