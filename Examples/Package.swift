// swift-tools-version: 6.0
// An app using ckpt as a library: Examples/ depends on the repository root by path, as an app
// depends on a release by URL. `make example` builds and runs it (CI does too).
import PackageDescription

let package = Package(
    name: "CkptExamples",
    platforms: [.macOS(.v13)],
    dependencies: [
        // Named, so the product reference below does not depend on the checkout's directory name.
        .package(name: "ckpt", path: ".."),
    ],
    targets: [
        // Loads a checkpoint, quantizes it in memory, verifies it against the original, writes it.
        .executableTarget(
            name: "QuantizeAndVerify",
            dependencies: [.product(name: "CkptKit", package: "ckpt")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
