// swift-tools-version: 6.1
// A package outside FuseKit's repository that depends on it by path (FUSEKIT_PATH), as a user's
// package would: the README's library example, and a plugin with its own `fusekit` command line.
import Foundation
import PackageDescription

let fusekit = ProcessInfo.processInfo.environment["FUSEKIT_PATH"] ?? "../FuseKit"

let package = Package(
    name: "OutsideFuseKit",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: fusekit)],
    targets: [
        .executableTarget(name: "embedding-example", dependencies: [
            .product(name: "FuseKit", package: "FuseKit"), .product(name: "RestormerFusion", package: "FuseKit")]),
        .target(name: "ToyPlugin", dependencies: [.product(name: "FuseKit", package: "FuseKit")]),
        .executableTarget(name: "my-fusekit", dependencies: [
            "ToyPlugin", .product(name: "FuseKitCLI", package: "FuseKit"), .product(name: "FuseKitPlugins", package: "FuseKit")]),
    ]
)
