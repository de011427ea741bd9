// swift-tools-version: 6.1
// A package outside FuseKit's repository that depends on it by path (FUSEKIT_PATH), as a user's
// package would: the README's library example, and a plugin with its own `fusekit` command line.
import Foundation
import PackageDescription

let fusekit = ProcessInfo.processInfo.environment["FUSEKIT_PATH"] ?? "../FuseKit"
// SwiftPM names a package dependency by path after its folder (a clone may have any name).
let fusekitPackage = URL(fileURLWithPath: fusekit).standardizedFileURL.lastPathComponent

let package = Package(
    name: "OutsideFuseKit",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: fusekit)],
    targets: [
        .executableTarget(name: "embedding-example", dependencies: [
            .product(name: "FuseKit", package: fusekitPackage), .product(name: "RestormerFusion", package: fusekitPackage)]),
        .target(name: "ToyPlugin", dependencies: [.product(name: "FuseKit", package: fusekitPackage)]),
        .executableTarget(name: "my-fusekit", dependencies: [
            "ToyPlugin", .product(name: "FuseKitCLI", package: fusekitPackage), .product(name: "FuseKitPlugins", package: fusekitPackage)]),
    ]
)
