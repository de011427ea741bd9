import ArgumentParser
import Foundation
import FuseKit

/// `fusekit gradcheck`: gradient checks of the registered plugins and of the hypergradient.
struct GradcheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check the gradients of every registered plugin (or one) and of a tiny meta step against finite differences.",
        discussion: "Prints the worst relative errors and how many units crossed a kink within a finite-difference step (their kinks are held on the check point's side); exits with status 1 when a check fails. Plugin authors run this on new targets.")

    @Option(help: "Check only this plugin.")
    var plugin: String?

    @Option(help: "Task plugin of the hypergradient check (default: the registry's small task net).")
    var task: String?

    @Option(help: "Seed of the plugin checks' random directions and cotangents (default: \(PluginGradcheck.defaultDirectionSeed)).")
    var seed: UInt64 = PluginGradcheck.defaultDirectionSeed

    func validate() throws {
        let registry = CommandContext.registry
        if let plugin, !registry.all.contains(where: { $0.name == plugin }) {
            let hint = closestMatch(to: plugin, in: registry.all.map(\.name)).map { "; did you mean '\($0)'?" } ?? ""
            throw ValidationError("no plugin '\(plugin)'\(hint)")
        }
        if let task, (try? registry.descriptor(task, kind: .task)) == nil {
            let names = registry.names(of: .task)
            let hint = closestMatch(to: task, in: names).map { "; did you mean '\($0)'?" } ?? ""
            throw ValidationError("--task '\(task)' is not a task plugin\(hint); task plugins: \(names.joined(separator: ", "))")
        }
    }

    func run() throws {
        let registry = CommandContext.registry
        var descriptors = registry.all
        if let plugin { descriptors = descriptors.filter { $0.name == plugin } }
        var failed = false
        for d in descriptors {
            let started = Date()
            let report = PluginGradcheck.check(d, directionSeed: seed)
            failed = failed || !report.passed
            print(String(format: "%@ %-18@ %-15@ worst relative error %.2e (vjp %.2e, jvp %.2e, identity %.2e; %d kink crossings held)  %.1fs",
                         report.passed ? "ok  " : "FAIL", d.name as NSString, d.kind.rawValue as NSString, report.worstError,
                         report.vjpError, report.jvpError, report.identityError, report.kinkCrossings, Date().timeIntervalSince(started)))
            for f in report.failures { print("      " + f) }
        }
        // The hypergradient of a tiny meta step, with the checked plugin in its role and the
        // registry's defaults in the others.
        let defaults = registry.defaults
        let fusions = descriptors.filter { $0.kind == .fusion }, generators = descriptors.filter { $0.kind == .lossGenerator }
        // A task plugin enters the hypergradient only through its input gradient, which its own
        // check covers; the meta step is checked with the small task net unless --task says otherwise.
        let runsHypergradient = plugin == nil || !fusions.isEmpty || !generators.isEmpty
        // Without --plugin, the registry's defaults (not whichever plugin sorts first).
        if runsHypergradient, let fusion = plugin == nil ? defaults.fusion : fusions.first?.name ?? defaults.fusion,
           let generator = plugin == nil ? defaults.lossGenerator : generators.first?.name ?? defaults.lossGenerator,
           let task = task ?? defaults.smallTask {
            let started = Date()
            let report = try PluginGradcheck.checkHypergradient(fusion: fusion, lossGenerator: generator, task: task, in: registry)
            failed = failed || !report.passed
            print(String(format: "%@ hypergradient (%@, %@, %@): worst relative error %.2e  %.1fs", report.passed ? "ok  " : "FAIL",
                         fusion as NSString, generator as NSString, task as NSString, report.worst, Date().timeIntervalSince(started)))
            if !report.passed { print("      \(report)") }
        }
        if failed { throw ExitCode(1) }
    }
}
