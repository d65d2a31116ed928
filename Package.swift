// swift-tools-version: 6.0
// ckpt: convert, shrink and verify Transformer checkpoints.
//
// Data flows one way: readers -> weight graph -> transforms -> writers.
//   CkptCore  format-neutral core: DType, Tensor, WeightGraph, ModelConfig, JSON
//   Formats   one folder per file format (reader, writer, error type) + safe I/O
//   Quantize  numerics of dtype casts and (later) quantization schemes, no file I/O
//   ckpt      the command-line tool, one file per subcommand
import PackageDescription

let package = Package(
    name: "ckpt",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ckpt", targets: ["ckpt"]),
        .library(name: "CkptCore", targets: ["CkptCore"]),
        .library(name: "Formats", targets: ["Formats"]),
        .library(name: "Quantize", targets: ["Quantize"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        // SHA-256 of source files for .ckz provenance (BoringSSL-backed on Linux).
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
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
        .target(
            name: "CkptCore",
            dependencies: [.product(name: "OrderedCollections", package: "swift-collections")],
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        .target(
            name: "Formats",
            dependencies: [
                "CkptCore", "CHDF5", "CDeflate",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(name: "Quantize", dependencies: ["CkptCore"]),
        .executableTarget(
            name: "ckpt",
            dependencies: [
                "CkptCore", "Formats", "Quantize",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["CkptCore"], path: "Tests/TestSupport"),
        .testTarget(name: "CkptCoreTests", dependencies: ["CkptCore", "Quantize", "TestSupport"]),
        .testTarget(name: "FormatsTests", dependencies: ["CkptCore", "Formats", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["ckpt", "CkptCore", "Formats", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
