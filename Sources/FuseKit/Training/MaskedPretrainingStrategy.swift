import FuseKitData
import FuseKitNN
import FuseKitTensor

/// The masks of masked pretraining (MAFS, `Create_dataset2.py`): per sample, a keep probability
/// p = 0.1 + U/1.12; over a grid of cells, keep masks A (visible) and B (infrared) each the product
/// of two Bernoulli(p) draws, and where both are 0, A += C and B += 1 - C with C a third such
/// product, so that every cell is kept in at least one modality; (m_vi, m_ir) = (A, B), or (B, A)
/// with probability 1/2. Masked pixels are replaced by U(0, 1) noise (each channel its own draw).
public struct MaskGenerator: Sendable {
    /// Cells per side.
    public var grid: Int

    public init(grid: Int = 8) { self.grid = grid }

    /// One sample's keep masks over the grid (row-major, 1 kept) from its uniform draws: `p` and
    /// `swap` in [0, 1), and six grid-sized arrays (A's two factors, B's two, C's two); a cell's
    /// factor is 1 when its draw is below p. (The draw layout is FuseKit's; MAFS's release draws
    /// the same distribution in another order.)
    public func cellMasks(p u: Float, swap: Float, draws: [[Float]]) -> (infrared: [Float], visible: [Float]) {
        precondition(draws.count == 6 && draws.allSatisfy { $0.count == grid * grid }, "MaskGenerator: six draws of \(grid * grid) cells")
        let p = 0.1 + u / 1.12
        func bernoulliProduct(_ a: [Float], _ b: [Float]) -> [Float] { zip(a, b).map { ($0 < p ? 1 : 0) * ($1 < p ? 1 : 0) } }
        var a = bernoulliProduct(draws[0], draws[1]), b = bernoulliProduct(draws[2], draws[3])
        let c = bernoulliProduct(draws[4], draws[5])
        for i in a.indices where a[i] == 0 && b[i] == 0 {
            a[i] += c[i]
            b[i] += 1 - c[i]
        }
        return swap < 0.5 ? (infrared: b, visible: a) : (infrared: a, visible: b)
    }

    /// Keep masks [B, 1, H, W] of both modalities for a batch, and the noise for masked pixels
    /// ([B, infraredChannels, H, W] and [B, visibleChannels, H, W]), drawn from `rng`. H and W must
    /// be multiples of the grid.
    public func masks(batch: Int, height: Int, width: Int, infraredChannels: Int = 1, visibleChannels: Int = 1,
                      using rng: inout RandomGenerator) -> (infrared: Tensor, visible: Tensor, noise: (infrared: Tensor, visible: Tensor)) {
        precondition(height % grid == 0 && width % grid == 0, "MaskGenerator: \(height)x\(width) is not a multiple of the \(grid)x\(grid) grid")
        var ir: [Float] = [], vis: [Float] = []
        let (ch, cw) = (height / grid, width / grid)
        for _ in 0..<batch {
            let p = rng.nextUniform(), swap = rng.nextUniform()
            let draws = (0..<6).map { _ in (0..<(grid * grid)).map { _ in rng.nextUniform() } }
            let cells = cellMasks(p: p, swap: swap, draws: draws)
            for (cellsOf, out) in [(cells.infrared, 0), (cells.visible, 1)] {
                var plane = [Float](repeating: 0, count: height * width)
                for y in 0..<height { for x in 0..<width { plane[y * width + x] = cellsOf[(y / ch) * grid + x / cw] } }
                if out == 0 { ir += plane } else { vis += plane }
            }
        }
        let shape = [batch, 1, height, width]
        return (Tensor(shape: shape, scalars: ir), Tensor(shape: shape, scalars: vis),
                (Tensor.uniform([batch, infraredChannels, height, width], using: &rng),
                 Tensor.uniform([batch, visibleChannels, height, width], using: &rng)))
    }
}

/// Masked-autoencoder pretraining: both sources masked cell by cell (every cell visible in at
/// least one modality, noise in the masked cells), reconstructed by the model, scored by the
/// stage's reconstruction terms on the masked cells. The model is a joint network that
/// reconstructs (``MaskedReconstruction``), or a fusion net with the stage's own
/// ``ReconstructionHead`` mapping its fused image back to both sources.
struct MaskedPretrainingStrategy: TrainingStrategy {
    let stage: StageSettings
    let reconstructor: StageModels.Reconstructor
    let trained: [(role: ModelRole, model: TrainedModel)]
    let terms: [(settings: LossTermSettings, term: any LossTerm)]
    let batches: BatchLoader
    let setup: TrainingSetup
    let masks: MaskGenerator

    init(stage: StageSettings, setup: TrainingSetup, batches: BatchLoader) throws {
        self.stage = stage
        self.setup = setup
        self.batches = batches
        masks = MaskGenerator(grid: stage.masking.grid)
        let models = try StageModels(stage: stage, models: setup.models)
        guard let reconstructor = models.reconstructor else { throw TrainingError.data("stage '\(stage.name)': no model reconstructs") }
        self.reconstructor = reconstructor
        var trained = stage.trained.map { entry in (entry.role, TrainedModel(setup.models[entry.role]!, entry.optimization)) }
        if case .fusionWithHead = reconstructor {
            let optimization = stage.trained.first?.optimization ?? Optimization()
            trained.append((ReconstructionHead.role, TrainedModel(ReconstructionHead(), optimization)))
        }
        self.trained = trained
        terms = try stage.losses.map { ($0, try setup.lossTerms.descriptor($0.term)!.makeTerm($0.parameters)) }
    }

    var ownModels: [ModelRole: any Module] {
        Dictionary(uniqueKeysWithValues: trained.filter { setup.models[$0.role] == nil }.map { ($0.role, $0.model.module) })
    }

    func plan(epoch: Int) -> [TrainingStep] {
        (0..<Swift.min(batches.batchesPerEpoch, stage.stepsPerEpoch ?? Int.max)).map { TrainingStep(.pretraining, $0) }
    }

    func run(_ step: TrainingStep, _ state: inout TrainingState, _ env: StepEnvironment) throws -> StepRecord {
        let started = Profiler.now()
        let batch = try batches.batch(epoch: env.position.epoch, index: step.index)
        let visible = JointStrategy.visible(of: batch)
        let (b, h, w) = (batch.infrared.shape[0], batch.infrared.shape[2], batch.infrared.shape[3])
        guard h % masks.grid == 0 && w % masks.grid == 0 else {
            throw TrainingError.data("stage '\(stage.name)': crops of \(h)x\(w) are not a multiple of the \(masks.grid)x\(masks.grid) mask grid")
        }
        // The masks of the whole batch the ranks share, of which this rank keeps its items'.
        var rng = RandomStream.masks.generator(env.seed, step: env.position.globalStep)
        let global = masks.masks(batch: b * env.parallel.ranks, height: h, width: w, visibleChannels: visible.shape[1], using: &rng)
        func mine(_ whole: Tensor) -> Tensor { env.parallel.items(of: whole, at: batch.positions) }
        let keep = (infrared: mine(global.infrared), visible: mine(global.visible),
                    noise: (infrared: mine(global.noise.infrared), visible: mine(global.noise.visible)))
        let maskedInfrared = batch.infrared * keep.infrared + keep.noise.infrared * (1 - keep.infrared)
        let maskedVisible = visible * keep.visible + keep.noise.visible * (1 - keep.visible)
        let rates = trained.map { env.learningRate($0.model) }
        let contexts = trained.map { env.context(for: $0.role) }
        let parameters = RoleParameters.merge(trained.map { ($0.role, state.models[$0.role]!.parameters) })
        let frozen = state
        let (_, gradient, values) = valueWithGradient(at: parameters) { p in
            let split = RoleParameters.split(p)
            func scope(_ role: ModelRole) -> Scope {
                let i = trained.firstIndex { $0.role == role }!
                return Scope(parameters: split[role]!, buffers: frozen.models[role]!.buffers, context: contexts[i])
            }
            var lossBatch = LossBatch(infrared: batch.infrared, visible: visible,
                                      targets: FusionTargets(infrared: batch.infrared, visible: visible), labels: batch.segmentation)
            switch reconstructor {
            case .joint(let role):
                let model = setup.models[role] as! any MaskedReconstruction & JointModel
                let input = JointInput(infrared: maskedInfrared, visible: FusionTargets.withChannels(maskedVisible, model.visibleChannels))
                lossBatch.reconstruction = model.reconstruct(input, scope(role))
            case .fusionWithHead(let role):
                let fusion = setup.models[role] as! any FusionNet
                let fused = fusion.fuse(Tensor.concat([maskedInfrared, FusionTargets.withChannels(maskedVisible, 1)], axis: 1), scope(role))
                let head = trained.last!.model.module as! ReconstructionHead
                let both = head(fused, scope(ReconstructionHead.role)).chunked(2, axis: 1)
                lossBatch.reconstruction = (both[0], both[1])
            }
            lossBatch.keepMasks = (keep.infrared, keep.visible)
            var total = Tensor(0)
            var values: [String: Double] = [:]
            for (settings, term) in terms {
                let value = term(lossBatch)
                values[settings.term, default: 0] += Double(value.item)
                total = total + value * Float(settings.weight)
            }
            values["group:reconstruction"] = Double(total.item)
            return (total, auxiliary: values)
        }
        let meanValues = try env.agreed(values, step) { "the loss term '\($0)'" }
        let split = RoleParameters.split(gradient)
        for (i, entry) in trained.enumerated() {
            env.update(entry.role, entry.model, &state, gradient: env.averaged(split[entry.role]!, of: entry.model), learningRate: rates[i])
            state.models[entry.role]!.absorb(contexts[i])
        }
        return StepRecord(phase: .pretraining, epoch: env.position.epoch, step: step.index, globalStep: env.position.globalStep + 1,
                          fusionLoss: nil, innerTaskLoss: nil, outerTaskLoss: nil, hypergradientNorm: nil,
                          learningRates: Dictionary(uniqueKeysWithValues: zip(trained.map(\.role.rawValue), rates.map(Double.init))),
                          seconds: Profiler.now() - started, losses: meanValues, taskWeights: nil)
    }
}
