import FuseKitNN

/// The models of a stage sorted by what they are: the joint model, or the fusion net with the
/// task net it feeds; the frozen teachers; a loss generator.
struct StageModels {
    var joint: (role: ModelRole, model: any JointModel)?
    var fusion: (role: ModelRole, model: any FusionNet)?
    /// The task net trained here (a student, or a teacher in its own stage).
    var task: (role: ModelRole, model: any TaskNet)?
    var lossGenerator: (role: ModelRole, model: any LossGenerator)?
    /// Frozen task nets, by role.
    var teachers: [ModelRole: any TaskNet] = [:]

    init(stage: StageSettings, models: [ModelRole: any Module]) throws {
        func problem(_ message: String) -> TrainingError { .data("stage '\(stage.name)': \(message)") }
        for role in stage.roles {
            guard let module = models[role] else { throw problem("no model '\(role)'") }
            let trained = stage.trains(role)
            switch module {
            case let m as any JointModel:
                guard joint == nil else { throw problem("two joint models, '\(joint!.role)' and '\(role)'") }
                joint = (role, m)
            case let m as any FusionNet:
                guard fusion == nil else { throw problem("two fusion nets, '\(fusion!.role)' and '\(role)'") }
                fusion = (role, m)
            case let m as any LossGenerator:
                lossGenerator = (role, m)
            case let m as any TaskNet:
                if trained {
                    guard task == nil else { throw problem("two trained task nets, '\(task!.role)' and '\(role)'") }
                    task = (role, m)
                } else {
                    teachers[role] = m
                }
            default:
                throw problem("'\(role)' (\(type(of: module))) is not a fusion net, loss generator, task net or joint model")
            }
        }
        if joint != nil, fusion != nil { throw problem("a joint model and a fusion net in one stage") }
    }

    /// What the stage gives its loss terms.
    func provides(visibleIsRGB: Bool) throws -> Set<LossRequirement> {
        var provided: Set<LossRequirement> = [.labels]
        if let joint {
            provided.formUnion([.fused, .output("logits")])
            provided.formUnion(joint.model.auxiliaryOutputNames.map { .output($0) })
            if joint.model.fusedChannels == 3 && visibleIsRGB { provided.insert(.rgbFused) }
            if joint.model is any MaskedReconstruction { provided.insert(.reconstruction) }
        }
        if fusion != nil {
            provided.insert(.fused)
            provided.insert(.reconstruction)
            if task != nil { provided.insert(.taskNet) }
        }
        if let task, task.model is any SegmentationLogits { provided.insert(.output("logits")) }
        for (role, teacher) in teachers where teacher is any SegmentationLogits { provided.insert(.teacher(role)) }
        if lossGenerator != nil { provided.insert(.lossGenerator) }
        return provided
    }

    /// What reconstructs masked sources in masked pretraining: a joint model that can, else the
    /// fusion net followed by the stage's own reconstruction head.
    var reconstructor: Reconstructor? {
        if let joint, joint.model is any MaskedReconstruction { return .joint(joint.role) }
        if let fusion { return .fusionWithHead(fusion.role) }
        return nil
    }

    enum Reconstructor { case joint(ModelRole), fusionWithHead(ModelRole) }

    /// The roles whose parameters a step differentiates, in a fixed order.
    static func trainedRoles(_ stage: StageSettings) -> [ModelRole] { stage.trained.map(\.role) }
}

/// The reconstruction head of masked pretraining with a fusion net: F's fused image to both
/// sources (3x3 conv to 16 channels, GELU, 3x3 conv to 2, sigmoid). It belongs to the stage
/// (role `reconstruction-head`) and is dropped afterwards.
public struct ReconstructionHead: UnaryModule {
    public static let role = ModelRole("reconstruction-head")
    let hidden: Child<Conv2d>
    let out: Child<Conv2d>

    public init(width: Int = 16) {
        hidden = Child("hidden", Conv2d(1, width, kernelSize: 3))
        out = Child("out", Conv2d(width, 2, kernelSize: 3))
    }

    /// [B, 1, H, W] -> [B, 2, H, W] (infrared, visible).
    public func callAsFunction(_ fused: Tensor, _ p: Scope) -> Tensor { out(hidden(fused, p).gelu(), p).sigmoid() }
}
