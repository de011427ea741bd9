import CFuzzDriver
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs libFuzzer over one harness and the files it needs.
///
/// A harness gets each input as `Data`; expected failures of the code under test (thrown errors)
/// are fine, a crash, a sanitizer report or a failed ``Fuzzing/expect(_:_:)`` is a finding.
public enum Fuzzing {
    nonisolated(unsafe) private static var harness: ((Data) -> Void)?

    /// Hands the process to libFuzzer, which calls `body` once per input.
    public static func run(_ body: @escaping (Data) -> Void) -> Never {
        harness = body
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            let input = size == 0 || data == nil ? Data() : Data(bytes: data!, count: size)
            Fuzzing.harness?(input)
            return 0
        }
        exit(status)
    }

    /// Stops the process with a message when an invariant of the code under test does not hold
    /// (libFuzzer then saves the input as a crash).
    public static func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
        guard !condition else { return }
        FileHandle.standardError.write(Data("fuzz oracle failed: \(message())\n".utf8))
        abort()
    }

    /// A scratch folder of this process (in /dev/shm when it exists, so that the file-based
    /// readers are fuzzed without disk writes).
    public static let scratchFolder: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let folder = URL(fileURLWithPath: base).appendingPathComponent("fusekit-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Fuzzing.scratchFolder) }
        return folder
    }()

    /// A file named `name` in the scratch folder holding `data`.
    public static func scratchFile(_ name: String, _ data: Data) -> URL {
        let url = scratchFolder.appendingPathComponent(name)
        do {
            try data.write(to: url)
        } catch {
            expect(false, "cannot write the scratch file \(url.path): \(error)")
        }
        return url
    }
}
