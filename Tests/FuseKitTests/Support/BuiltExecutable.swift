import Foundation

/// The `fusekit` executable built next to the test bundle (`swift build --build-tests` builds it).
enum BuiltExecutable {
    static var fusekit: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fusekit")
    }
}
