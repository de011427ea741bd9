@_exported import FuseKitTensor
@_exported import FuseKitNN

/// The FuseKit release.
public enum FuseKitVersion {
    /// Semantic version of this build.
    public static let string = "0.1.0"
}
