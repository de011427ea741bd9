// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "FuseKit",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "FuseKit", targets: ["FuseKit"]),
        .library(name: "RestormerFusion", targets: ["RestormerFusion"]),
        .library(name: "SegFormerTask", targets: ["SegFormerTask"]),
        .library(name: "YOLOTask", targets: ["YOLOTask"]),
        .library(name: "MRFS", targets: ["MRFS"]),
        .library(name: "MAFS", targets: ["MAFS"]),
        .library(name: "FuseKitPlugins", targets: ["FuseKitPlugins"]),
        .library(name: "FuseKitCLI", targets: ["FuseKitCLI"]),
        .library(name: "FuseKitMPI", targets: ["FuseKitMPI"]),
        .executable(name: "fusekit", targets: ["fusekit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libpng-dev, libjpeg62-turbo-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        // MPI (Debian: libopenmpi-dev, openmpi-bin), for data-parallel training with mpirun or srun.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),

        // Core, layered: tensor -> nn -> image/metrics -> framework -> CLI.
        .target(name: "CFuseKitKernels", dependencies: ["CBLAS"]),
        .target(name: "FuseKitTensor", dependencies: ["CBLAS", "CFuseKitKernels"]),
        .target(name: "FuseKitNN", dependencies: ["FuseKitTensor"]),
        .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG"]),
        .target(name: "FuseKitImage", dependencies: ["FuseKitTensor", "CImageCodecs"]),
        .target(name: "FuseKitMetrics", dependencies: ["FuseKitTensor", "FuseKitImage"]),
        .target(name: "FuseKitData", dependencies: ["FuseKitTensor", "FuseKitImage"]),
        .target(
            name: "FuseKit",
            dependencies: ["FuseKitTensor", "FuseKitNN", "FuseKitImage", "FuseKitMetrics", "FuseKitData", .product(name: "Yams", package: "Yams")]),

        // Model plugins: one target each, depending on the core only.
        .target(name: "RestormerFusion", dependencies: ["FuseKit"], path: "Plugins/RestormerFusion"),
        .target(name: "SegFormerTask", dependencies: ["FuseKit"], path: "Plugins/SegFormerTask"),
        .target(name: "YOLOTask", dependencies: ["FuseKit"], path: "Plugins/YOLOTask"),
        .target(name: "MRFS", dependencies: ["FuseKit", "SegFormerTask"], path: "Plugins/MRFS"),
        .target(name: "MAFS", dependencies: ["FuseKit"], path: "Plugins/MAFS"),

        // The command line: its commands as a library (no plugin names), the one file that registers
        // FuseKit's plugins, and the executable that joins them.
        .target(name: "FuseKitCLI", dependencies: ["FuseKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .target(name: "FuseKitPlugins", dependencies: ["FuseKit", "RestormerFusion", "SegFormerTask", "YOLOTask", "MRFS", "MAFS"]),
        // MPI's collectives for data-parallel training (used by the executable, not by the library).
        .target(name: "CFuseKitMPI", dependencies: ["CMPI"]),
        .target(name: "FuseKitMPI", dependencies: ["FuseKitTensor", "CFuseKitMPI"]),
        .executableTarget(name: "fusekit", dependencies: ["FuseKitCLI", "FuseKitPlugins", "FuseKitMPI"]),

        // What the plugins' parity tests share (whole-tensor comparisons, deterministic weights).
        .target(name: "ParityTestSupport", dependencies: ["FuseKitNN"], path: "Tests/ParityTestSupport"),
        .testTarget(name: "FuseKitTensorTests", dependencies: ["FuseKitTensor"]),
        .testTarget(name: "FuseKitTests", dependencies: ["FuseKit", "FuseKitPlugins", "RestormerFusion", "SegFormerTask", "YOLOTask"]),
        .testTarget(name: "FuseKitNNTests", dependencies: ["FuseKitNN"], exclude: ["Fixtures"]),
        .testTarget(name: "RestormerFusionTests", dependencies: ["RestormerFusion", "FuseKit"], exclude: ["Fixtures"]),
        .testTarget(name: "SegFormerTaskTests", dependencies: ["SegFormerTask", "FuseKit", "ParityTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MAFSTests", dependencies: ["MAFS", "FuseKit", "FuseKitPlugins", "ParityTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "YOLOTaskTests", dependencies: ["YOLOTask", "FuseKit", "ParityTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MRFSTests", dependencies: ["MRFS", "SegFormerTask", "FuseKit", "FuseKitPlugins", "ParityTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "FuseKitImageTests", dependencies: ["FuseKitImage"]),
        .testTarget(name: "FuseKitMetricsTests", dependencies: ["FuseKitMetrics", "FuseKitImage"]),
        .testTarget(name: "FuseKitDataTests", dependencies: ["FuseKitData", "FuseKitImage"]),
    ]
)
