import ArgumentParser
import Foundation
import FuseKit

/// `fusekit recipe check FILE`.
struct RecipeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recipe", abstract: "Work with recipes.",
                                                    subcommands: [Check.self], defaultSubcommand: Check.self)

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Validate a recipe (keys, types, plugin names and parameters, data) without training.")

        @Argument(help: "The recipe (YAML).")
        var file: String

        @Option(help: "Dataset root, overriding the recipe's data.root.")
        var data: String?

        @Flag(help: "Only check the recipe and plugins, not the dataset on disk.")
        var skipData = false

        func run() throws {
            let recipe = try Recipe.load(from: URL(fileURLWithPath: file))
            let registry = CommandContext.registry
            var summary = ["\(file): ok"]
            if skipData {
                _ = try TrainingSetup.makeModels(recipe: recipe, registry: registry)
            } else {
                let setup = try TrainingSetup.make(recipe: recipe, registry: registry, dataRoot: data)
                summary.append("  data: \(setup.trainSource.count) training pairs, \(setup.testSource.count) test pairs")
            }
            summary.append("  models: " + recipe.models.map { "\($0.role) \($0.plugin)" }.joined(separator: ", "))
            for stage in recipe.stages {
                var line = "  stage \(stage.name): \(stage.strategy.rawValue), \(stage.epochs) epochs, trains "
                    + stage.trained.map(\.role.rawValue).joined(separator: ", ")
                if !stage.frozen.isEmpty { line += "; frozen " + stage.frozen.map(\.rawValue).joined(separator: ", ") }
                switch stage.strategy {
                case .meta:
                    line += stage.fusionLoss.weights == .fixed ? "; fixed weights w = 1/2"
                        : "; \(stage.metaSteps) meta steps per epoch, hypergradient \(stage.hypergradient.rawValue)"
                case .joint, .maskedPretraining:
                    line += "; losses " + stage.losses.map { "\($0.weight) \($0.term)" }.joined(separator: " + ")
                }
                summary.append(line)
            }
            print(summary.joined(separator: "\n"))
        }
    }
}

/// `fusekit plugins`.
struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plugins", abstract: "List the registered plugins and their parameters.")

    func run() {
        for d in CommandContext.registry.all {
            print("\(d.name) (\(d.kind.rawValue)): \(d.summary)")
            if !d.variants.isEmpty {
                print("    variant: one of " + d.variants.map { "\($0.name) (\($0.summary))" }.joined(separator: ", "))
            }
            for p in d.parameters {
                let rule = p.constraint.map { ", \($0)" } ?? ""
                print("    \(p.name): \(p.typeName)\(rule), default \(p.defaultValue) — \(p.help)")
            }
        }
    }
}

/// `fusekit losses`.
struct LossesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "losses", abstract: "List the loss terms recipes may use in their stages, with their parameters.")

    func run() {
        for d in CommandContext.registry.lossTerms.all {
            print("\(d.name) (\(d.kind.rawValue)): \(d.summary)")
            for p in d.parameters {
                let rule = p.constraint.map { ", \($0)" } ?? ""
                print("    \(p.name): \(p.typeName)\(rule), default \(p.defaultValue) — \(p.help)")
            }
        }
    }
}
