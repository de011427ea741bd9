/// A problem in a recipe file, located by file and line.
public struct RecipeError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The recipe file.
    public var file: String
    /// 1-based line, when known.
    public var line: Int?
    /// What is wrong, naming the key.
    public var message: String

    public init(file: String, line: Int?, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(message)"
    }
}
