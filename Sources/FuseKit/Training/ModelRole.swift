/// The part a model plays in a run (`fusion` F, `loss-generator` G, `task` T, ...): the key of its
/// recipe section, of its weights in checkpoints and of its learning rate in the log.
public struct ModelRole: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ name: String) { self.rawValue = name }

    /// The fusion network F.
    public static let fusion = ModelRole("fusion")
    /// The loss generator G.
    public static let lossGenerator = ModelRole("loss-generator")
    /// The task network T.
    public static let task = ModelRole("task")

    public var description: String { rawValue }
    public static func < (a: ModelRole, b: ModelRole) -> Bool { a.rawValue < b.rawValue }
}
