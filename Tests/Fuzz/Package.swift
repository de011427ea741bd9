// swift-tools-version: 6.1
// libFuzzer harnesses for FuseKit's file readers. Not part of the FuseKit package (its test
// targets are listed by name and do not include this folder); built and run by `run.sh` with
// `-sanitize=fuzzer,address` (see that script for why this is a separate package).
import PackageDescription

let harnesses = ["fuzz-png", "fuzz-jpeg", "fuzz-bmp", "fuzz-safetensors", "fuzz-recipe", "fuzz-yolo", "fuzz-voc", "fuzz-pth"]

let package = Package(
    name: "FuseKitFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "FuseKit", path: "../..")],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzHarnesses", dependencies: ["CFuzzDriver", .product(name: "FuseKit", package: "FuseKit")]),
    ] + harnesses.map { name in
        .executableTarget(name: name, dependencies: ["FuzzHarnesses"])
    }
)
