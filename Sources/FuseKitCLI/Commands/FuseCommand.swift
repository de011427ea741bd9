import ArgumentParser
import Foundation
import FuseKit

/// `fusekit fuse`: fuse one pair or two folders of pairs with trained weights.
struct FuseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuse",
        abstract: "Fuse infrared-visible pairs with a trained fusion network.",
        discussion: """
        Writes OUT/gray/STEM.png (the fused luma, 8-bit) and, when a source is in colour, OUT/rgb/STEM.png \
        (the visible chroma put back, fused chroma when both are colour). --weights takes the network's own \
        weights by their official names: a PyTorch .pth (an official checkpoint as it is), safetensors, or a \
        FuseKit checkpoint; FILE#PREFIX selects a nested part (see 'fusekit convert --help'). \
        A joint model (one network that fuses and segments, kind 'joint' in 'fusekit plugins') takes the visible \
        image in colour and writes its fused image as it is (RGB when it fuses in colour); with --segment it also \
        writes OUT/segmentation/STEM.png, the class index of every pixel (8-bit gray levels 0..K-1).
        """)

    @Option(help: "Weights: a PyTorch .pth, a safetensors file or a FuseKit checkpoint (FILE#PREFIX selects a nested part).")
    var weights: String?

    @Option(help: "The fusion plugin (default: the registry's default fusion net; see 'fusekit plugins').")
    var model: String?

    @Option(name: .customLong("param"), help: "A plugin parameter as KEY=VALUE (repeatable), e.g. --param dim=16.")
    var parameters: [String] = []

    @Option(help: "An infrared image, or a folder of them.")
    var ir: String

    @Option(help: "The visible image, or a folder of them (paired by file stem).")
    var vis: String

    @Option(help: "Output folder.")
    var out: String

    @Flag(help: "Do not min-max normalise the fused image (the official code does).")
    var noNormalize = false

    @Flag(help: "With a joint model: also write the class map, OUT/segmentation/STEM.png (class indices).")
    var segment = false

    func validate() throws {
        guard weights != nil else {
            throw ValidationError("fuse needs --weights FILE: FuseKit bundles and downloads no weights. Train with 'fusekit train' or pass an official checkpoint (README, 'Fusing with official weights').")
        }
    }

    /// The buffer cache's capacity while fusing.
    static let inferencePoolBytes = 256 << 20

    /// A network's weights from any weights file (of a FuseKit checkpoint: the model `checkpointModel`,
    /// or its only model when nil).
    static func loadWeights(_ path: String, for module: any Module, checkpointModel: String?) throws -> ModelState {
        let weights = try WeightsFile.readModelWeights(WeightsReference(path), checkpointModel: checkpointModel)
        do {
            return try module.loadState(from: weights.tensors, alias: StateDictAliases.convDuplicates)
        } catch let error as StateDictError {
            throw ValidationError("\(path) (\(weights.summary)) does not fit \(type(of: module)): \(error)")
        }
    }

    /// The fusion network's weights from any weights file (a FuseKit checkpoint's fusion model).
    static func loadWeights(_ path: String, for fusion: any FusionNet) throws -> ModelState {
        try loadWeights(path, for: fusion, checkpointModel: ModelRole.fusion.rawValue)
    }

    /// What one pair gives: the fused images, and the class map of a joint model.
    typealias PairFusion = (_ infrared: Image, _ visible: Image) -> (fused: Fuser.Output, classes: LabelMap?)

    /// A joint model's fusion (and class map) of one pair, as evaluation runs it: gray infrared,
    /// the visible image in colour (a gray one replicated) when the model takes colour.
    static func jointFusion(_ joint: any JointModel, state: ModelState, normalizes: Bool, segment: Bool) -> PairFusion {
        let pipeline = EvaluationPipeline.joint(joint, state: state, normalizes: normalizes)
        return { infrared, visible in
            let rgb = visible.removingAlpha()
            let color = rgb.channels >= 3 ? rgb : Image(planes: [rgb.grayscale(), rgb.grayscale(), rgb.grayscale()])
            let sample = PairedSample(name: "", infrared: infrared.grayscale(), visible: visible.grayscale(), visibleColor: color)
            let (fused, prediction) = pipeline.run(sample)
            guard segment, case .segmentation(let maps)? = prediction else { return (fused!, nil) }
            return (fused!, LabelMap(width: visible.width, height: visible.height, values: maps.scalars.map { Int32($0) }))
        }
    }

    func run() throws {
        let registry = CommandContext.registry
        guard let model = model ?? registry.defaults.fusion else { throw ValidationError("fuse needs --model NAME (see 'fusekit plugins')") }
        let pluginParameters = try PluginParameters.parsing(parameters, plugin: model)
        let fusePair: PairFusion
        var minimumSide = 1
        if try registry.descriptor(model).kind == .joint {
            let joint = try registry.makeJoint(model, pluginParameters)
            minimumSide = joint.minimumSide
            let state = try Self.loadWeights(weights!, for: joint, checkpointModel: nil)
            fusePair = Self.jointFusion(joint, state: state, normalizes: !noNormalize, segment: segment)
        } else {
            guard !segment else {
                throw ValidationError("--segment needs a joint model (one network that fuses and segments); '\(model)' is a fusion net")
            }
            let fusion = try registry.makeFusion(model, pluginParameters)
            let fuser = Fuser(fusion: fusion, state: try Self.loadWeights(weights!, for: fusion), normalizes: !noNormalize)
            fusePair = { infrared, visible in (fuser.fuse(infrared: infrared, visible: visible), nil) }
        }
        // One image's inference needs few large buffers at a time (its wide intermediates are
        // tiled); a cache sized for training steps would only raise the peak memory.
        BufferPool.limitCapacity(to: Self.inferencePoolBytes)
        let irURL = URL(fileURLWithPath: ir), visURL = URL(fileURLWithPath: vis)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: ir, isDirectory: &isFolder) else { throw ValidationError("no such file or folder: \(ir)") }
        var pairs: [(name: String, infrared: URL, visible: URL)]
        if isFolder.boolValue {
            let dataset = try PairedDataset(infraredFolder: irURL, visibleFolder: visURL)
            for problem in dataset.problems { FileHandle.standardError.write(Data("warning: \(problem)\n".utf8)) }
            pairs = dataset.pairs.map { ($0.name, $0.infrared, $0.visible) }
        } else {
            guard FileManager.default.fileExists(atPath: vis) else { throw ValidationError("no such file: \(vis)") }
            pairs = [(irURL.deletingPathExtension().lastPathComponent, irURL, visURL)]
        }
        let outURL = URL(fileURLWithPath: out)
        let grayFolder = outURL.appendingPathComponent("gray"), rgbFolder = outURL.appendingPathComponent("rgb")
        let classFolder = outURL.appendingPathComponent("segmentation")
        try FileManager.default.createDirectory(at: grayFolder, withIntermediateDirectories: true)
        let progress = ProgressBar(total: pairs.count, label: "fuse", unit: "img")
        var written = 0
        // The next pair is decoded and the previous one's outputs encoded while this one is fused.
        let sources = Lookahead(count: pairs.count) { [pairs] i in
            (try Image(contentsOf: pairs[i].infrared), try Image(contentsOf: pairs[i].visible))
        }
        let writer = BackgroundJobs()
        for (i, pair) in pairs.enumerated() {
            let (infrared, visible) = try sources.value(at: i)
            guard infrared.width == visible.width && infrared.height == visible.height else {
                let problem = "\(pair.infrared.path) is \(infrared.width)x\(infrared.height) but \(pair.visible.path) is \(visible.width)x\(visible.height)"
                if !isFolder.boolValue { throw ValidationError("cannot fuse: \(problem)") }
                progress.log("skipping \(pair.name): \(problem)")
                continue
            }
            guard Swift.min(infrared.width, infrared.height) >= minimumSide else {
                let problem = "\(pair.name) is \(infrared.width)x\(infrared.height); '\(model)' needs at least \(minimumSide) pixels a side"
                if !isFolder.boolValue { throw ValidationError("cannot fuse: \(problem)") }
                progress.log("skipping \(pair.name): \(problem)")
                continue
            }
            let (output, classes) = fusePair(infrared, visible)
            let (gray, color) = (output.gray, output.color)
            writer.submit {
                try gray.write(to: grayFolder.appendingPathComponent(pair.name + ".png"))
                if let color {
                    try FileManager.default.createDirectory(at: rgbFolder, withIntermediateDirectories: true)
                    try color.write(to: rgbFolder.appendingPathComponent(pair.name + ".png"))
                }
                if let classes {
                    try FileManager.default.createDirectory(at: classFolder, withIntermediateDirectories: true)
                    try classes.write(to: classFolder.appendingPathComponent(pair.name + ".png"))
                }
            }
            written += 1
            progress.update(completed: i + 1, status: pair.name)
        }
        try writer.finish()
        progress.finish()
        print("fused \(written) of \(pairs.count) pairs into \(outURL.path)")
    }
}
