import Foundation
import FuseKit
import Testing

/// End to end through the built `fusekit` executable: it restarts itself once with the best
/// kernel that passes its probe, and never overrides the user's OPENBLAS_CORETYPE.
///
/// OpenBLAS detects the CPU of the machines this runs on correctly, so the misdetection is
/// simulated: FUSEKIT_BLAS_TREAT_CORETYPE_AS_DETECTED=1 makes FuseKit take OPENBLAS_CORETYPE=Prescott
/// for OpenBLAS's own choice. The probes, the restart and the kernel OpenBLAS then loads are real.
@Suite struct BLASKernelRestartTests {
    static var executable: URL { BuiltExecutable.fusekit }

    static func run(_ arguments: [String], environment: [String: String]) throws -> String {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for name in ["OPENBLAS_CORETYPE", BLASKernel.replacedVariable, "FUSEKIT_BLAS_TREAT_CORETYPE_AS_DETECTED", "FUSEKIT_BLAS_CHECK"] { env[name] = nil }
        env.merge(environment) { $1 }
        process.environment = env
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "fusekit \(arguments) exited with \(process.terminationStatus)")
        return String(decoding: data, as: UTF8.self)
    }

    @Test func restartsWithTheBestKernelThatPasses() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable.path), "build the fusekit product first (swift build --build-tests builds it)")
        let cpu = CPUFeatures.current
        guard BLASKernel.isDynamicArch, OpenBLASCore.zen.runs(on: cpu) || OpenBLASCore.sandybridge.runs(on: cpu) else {
            print("restart test: no kernel newer than Prescott runs here (\(cpu)); nothing to restart into")
            return
        }
        let simulated = ["OPENBLAS_CORETYPE": "Prescott", "FUSEKIT_BLAS_TREAT_CORETYPE_AS_DETECTED": "1"]
        let report = try Self.run(["doctor"], environment: simulated)
        print(report)
        let chosen = try Self.run(["doctor", "--coretype"], environment: simulated).trimmingCharacters(in: .whitespacesAndNewlines)
        let expected = BLASKernel.select(OpenBLASCore.candidates(for: cpu).filter { $0 != .prescott }) { BLASKernel.probe($0) }.chosen
        #expect(chosen == expected?.name)
        #expect(report.contains("BLAS kernel: \(chosen) (OPENBLAS_CORETYPE=\(chosen) set by fusekit; OpenBLAS had chosen Prescott)"))

        // The user's own setting stays, and the check can be turned off.
        let user = try Self.run(["doctor", "--coretype"], environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(user.trimmingCharacters(in: .whitespacesAndNewlines) == "Prescott")
        let off = try Self.run(["doctor", "--coretype"], environment: simulated.merging(["FUSEKIT_BLAS_CHECK": "0"]) { $1 })
        #expect(off.trimmingCharacters(in: .whitespacesAndNewlines) == "Prescott")
    }
}
