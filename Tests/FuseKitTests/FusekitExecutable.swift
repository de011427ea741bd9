import Foundation

/// The built `fusekit` executable next to the test bundle, run as a child process.
enum FusekitExecutable {
    static var url: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fusekit")
    }

    static var exists: Bool { FileManager.default.isExecutableFile(atPath: url.path) }

    /// The environment of the children: the test's, with the BLAS kernel check off (the
    /// children of one test need not each restart with a kernel the test already runs on).
    static var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["FUSEKIT_BLAS_CHECK"] = "0"
        return environment
    }

    /// A started child whose standard output and error go to files in `logs` (so that a child
    /// killed or writing much never blocks on a pipe).
    static func start(_ arguments: [String], logs: URL, name: String, workingDirectory: URL? = nil) throws -> (process: Process, stdout: URL, stderr: URL) {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.environment = environment
        if let workingDirectory { process.currentDirectoryURL = workingDirectory }
        let out = logs.appendingPathComponent("\(name).out"), err = logs.appendingPathComponent("\(name).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        return (process, out, err)
    }

    /// Runs `fusekit ARGUMENTS` to the end: the exit status, standard output and error.
    static func run(_ arguments: [String], workingDirectory: URL? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: logs) }
        let (process, out, err) = try start(arguments, logs: logs, name: "run", workingDirectory: workingDirectory)
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }
}
