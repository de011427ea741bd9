@_exported import FuseKitTensor
@_exported import FuseKitNN
@_exported import FuseKitImage
@_exported import FuseKitMetrics
@_exported import FuseKitData

/// The FuseKit release.
public enum FuseKitVersion {
    /// Semantic version of this build.
    public static let string = "0.1.0"
}
