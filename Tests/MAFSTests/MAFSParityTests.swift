import Foundation
import FuseKit
import ParityTestSupport
import Testing
import MAFS

/// Parity of the minimal MAFS network with the float64 PyTorch transcription
/// (Fixtures/mafs_reference.py, fixtures by make_mafs_fixtures.py; README.md section 8): the
/// stage-II outputs, every loss term through FuseKit's standard loss terms, α-fair + DWA, and the
/// gradients of the total, in eval mode and in training mode; the blocks on their own; stage I.
@Suite(.serialized) struct MAFSParityTests {
    // MARK: - Weights and comparisons

    /// The fixtures' deterministic weights (quadratic phase 0) with the Glow LU exception: the
    /// permutations are reversals and sign_s is ±1 (README section 7).
    static func state(for module: any Module, prefix: String = "") -> ModelState {
        var state = ModelState()
        for (name, spec) in module.namedSpecs() {
            let full = prefix + name
            var values = DeterministicWeights.values(name: full, shape: spec.shape)
            if full.hasSuffix(".invconv.p") {
                let c = spec.shape[0]
                values = (0..<(c * c)).map { $0 / c == c - 1 - $0 % c ? 1 : 0 }
            } else if full.hasSuffix(".invconv.sign_s") {
                values = values.map { $0 >= 0 ? 1 : -1 }
            }
            let tensor = Tensor(shape: spec.shape, scalars: values)
            if spec.isBuffer { state.buffers[name] = tensor } else { state.parameters[name] = tensor }
        }
        return state
    }

    /// Elementwise: |a - e| <= max(absolute · max|e|, 10 · PyTorch's float32 max-relative error · max|e|).
    static func expectClose(_ actual: Tensor, _ expected: Tensor, _ what: String, absolute: Float, float32: Float = 0) {
        let tolerance = TensorTolerance(relative: 0, absolute: Swift.max(absolute, 10 * float32))
        let (problem, _, _) = tolerance.mismatch(actual, expected, float32Error: 0)
        #expect(problem == nil, "\(what): \(problem ?? "")")
    }

    /// Per tensor: |g - g_ref| <= max(relative · |g_ref|, 10 · |g32 - g_ref|) (L2 norms; the
    /// second is PyTorch's own float32 error on that tensor, README section 8).
    static func expectGradient(_ actual: Tensor?, _ expected: Tensor, _ what: String, relative: Double, float32: Double = 0) {
        let a = actual?.scalars ?? [Float](repeating: 0, count: expected.count)
        guard a.count == expected.count else {
            Issue.record("\(what): \(a.count) elements, expected \(expected.count)")
            return
        }
        let e = expected.scalars
        let difference = zip(a, e).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
        let norm = e.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let allowed = Swift.max(relative * norm, 10 * float32, 1e-9)
        #expect(difference <= allowed, "\(what): |g - g_ref| = \(difference), |g_ref| = \(norm), allowed \(allowed)")
    }

    // MARK: - The stage-II pass

    struct Pass {
        var outputs: [String: Tensor] = [:]
        var losses: [String: Tensor] = [:]
        var gradient: [String: Tensor] = [:]
        var buffers: [String: Tensor] = [:]
    }

    static func lossTerm(_ name: String, _ values: [String: ParameterValue] = [:]) throws -> any LossTerm {
        try LossTermRegistry.standard.descriptor(name)!.makeTerm(PluginParameters(values))
    }

    /// The outputs, every loss term and the gradients of the total, as a recipe's MAFS stage II
    /// computes them (the same terms and weighting).
    static func stageTwo(training: Bool) throws -> Pass {
        let f = try MAFSFixture.tensors()
        let net = try MAFSFixture.network("minimal")
        let state = Self.state(for: net)
        let (vi, ir, labels, teacher) = (f["input.vi"]!, f["input.ir"]!, f["input.label"]!, f["input.teacher_logits"]!)
        let ohem: [String: ParameterValue] = ["threshold": .double(0.75), "min-kept": .int(512)]
        let terms: [(String, any LossTerm)] = [
            ("intensity", try lossTerm("intensity-max")),
            ("gradient", try lossTerm("sobel-max", ["form": .string("absolute"), "combine": .string("sum")])),
            ("seg", try lossTerm("ohem-cross-entropy", ohem)),
            ("kd", try lossTerm("distillation", ["temperature": .double(4)])),
            ("aux_binary1", try lossTerm("binary", ["output": .string("out1"), "class-weights": .list([.double(1.5121), .double(10.2388)])])),
            ("aux_binary3", try lossTerm("binary", ["output": .string("out3"), "class-weights": .list([.double(1.5121), .double(10.2388)])])),
            ("aux_boundary5", try lossTerm("boundary", ["output": .string("out5")])),
            ("aux_seg2", try lossTerm("ohem-cross-entropy", ohem.merging(["output": .string("out2")]) { $1 })),
            ("aux_seg4", try lossTerm("ohem-cross-entropy", ohem.merging(["output": .string("out4")]) { $1 })),
            ("aux_seg6", try lossTerm("ohem-cross-entropy", ohem.merging(["output": .string("out6")]) { $1 })),
        ]
        let weighting = TaskWeighting(method: .dynamicWeightAverage(temperature: 500), alphaFair: 0.8)
        let history: [[String: Double]] = [["fusion": 0.8, "task": 3.0], ["fusion": 0.6, "task": 2.7]]
        let context = ForwardContext(training: training)
        var inputs = state.parameters
        inputs["input.teacher_logits"] = teacher
        var pass = Pass()
        let (_, gradient, captured) = valueWithGradient(at: inputs) { p -> (value: Tensor, auxiliary: Pass) in
            var parameters = p
            let teacherLogits = parameters.removeValue(forKey: "input.teacher_logits")!
            let out = net.forward(JointInput(infrared: ir, visible: vi), Scope(parameters: parameters, buffers: state.buffers, context: context))
            var batch = LossBatch(infrared: ir, visible: vi, targets: FusionTargets(infrared: ir, visible: vi), labels: labels)
            batch.fused = out.fused
            batch.logits = out.logits
            batch.auxiliary = out.auxiliary
            batch.teacherLogits = { _, _ in teacherLogits }
            var result = Pass()
            result.outputs = out.auxiliary.merging(["logits": out.logits, "fused": out.fused, "fused_rgb": MAFSColor.rgb(luma: out.fused, chromaOf: vi)]) { a, _ in a }
            for (name, term) in terms { result.losses[name] = term(batch) }
            let l = result.losses
            result.losses["fusion"] = l["intensity"]! + l["gradient"]!
            result.losses["aux"] = ["aux_binary1", "aux_binary3", "aux_boundary5", "aux_seg2", "aux_seg4", "aux_seg6"].map { l[$0]! }.reduce(Tensor(0), +)
            result.losses["segmentation"] = l["seg"]! + l["kd"]! + result.losses["aux"]!
            result.losses["fair_fusion"] = weighting.transform(result.losses["fusion"]!)
            result.losses["fair_segmentation"] = weighting.transform(result.losses["segmentation"]!)
            let (total, _) = weighting.combine(["fusion": result.losses["fusion"]!, "task": result.losses["segmentation"]!], history: history)
            result.losses["total"] = total
            return (total, result)
        }
        pass = captured
        pass.gradient = gradient
        pass.buffers = state.buffers.merging(context.bufferUpdates) { $1 }
        return pass
    }

    /// Eval pass: outputs to 1e-5 of their largest value, losses to 5e-6 relative, every gradient
    /// tensor to 1e-3 relative (L2) or 10x PyTorch's own float32 error on it.
    /// Training pass: outputs within 10x PyTorch's float32 error; gradients per tensor within 3e-2
    /// relative or 10x PyTorch's float32 error: README section 8 measured that perturbing the inputs
    /// by 1e-7 in float64 moves the training-mode gradients by 3e-2 (BatchNorms of batch 2 after
    /// global pooling, and the |Sobel| L1 terms whose signs flip), so no float32 computation can be
    /// held closer there; how many tensors are within the eval bound is printed.
    static func check(_ pass: Pass, mode: String) throws {
        let f = try MAFSFixture.tensors()
        let outputs = ["logits", "out1", "out2", "out3", "out4", "out5", "out6", "fused", "fused_rgb"]
        var worstOutput: Float = 0, worstLoss: Float = 0
        for name in outputs {
            let deviation = f["\(mode).float32_deviation.output.\(name)"]!.item
            let (a, e) = (pass.outputs[name]!, f["\(mode).output.\(name)"]!)
            worstOutput = Swift.max(worstOutput, (a - e).abs().max().item / e.abs().max().item)
            expectClose(a, e, "\(mode) output \(name)", absolute: 1e-5, float32: deviation)
        }
        for (name, value) in pass.losses {
            let expected = f["\(mode).loss.\(name)"]!
            worstLoss = Swift.max(worstLoss, Swift.abs(value.item - expected.item) / Swift.abs(expected.item))
            expectClose(value, expected, "\(mode) loss \(name)", absolute: mode == "eval" ? 5e-6 : 3e-5)
        }
        #expect(Set(pass.losses.keys) == Set(f.keys.filter { $0.hasPrefix("\(mode).loss.") }.map { String($0.dropFirst("\(mode).loss.".count)) }))
        var compared = 0, withinEvalBound = 0, worst = 0.0, worstName = ""
        var squaredError = 0.0, squaredNorm = 0.0, squaredFloat32 = 0.0
        for (key, expected) in f where key.hasPrefix("\(mode).grad.") {
            let name = String(key.dropFirst("\(mode).grad.".count))
            let deviation = Double(f["\(mode).float32_deviation.grad.\(name)"]!.item)
            let a = pass.gradient[name]?.scalars ?? [Float](repeating: 0, count: expected.count)
            let difference = zip(a, expected.scalars).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let norm = expected.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }
            squaredError += difference
            squaredFloat32 += deviation * deviation
            squaredNorm += norm
            if difference.squareRoot() <= Swift.max(1e-3 * norm.squareRoot(), 10 * deviation, 1e-9) { withinEvalBound += 1 }
            if norm > 0, difference.squareRoot() / norm.squareRoot() > worst { (worst, worstName) = (difference.squareRoot() / norm.squareRoot(), name) }
            expectGradient(pass.gradient[name], expected, "\(mode) gradient \(name)", relative: mode == "eval" ? 1e-3 : 3e-2, float32: deviation)
            compared += 1
        }
        #expect(compared == 769)  // every parameter tensor (75 unused ones have zero gradients)
        let overall = (squaredError / squaredNorm).squareRoot(), pytorch = (squaredFloat32 / squaredNorm).squareRoot()
        print("MAFS parity, \(mode): outputs max-relative \(worstOutput), losses relative \(worstLoss); gradients all parameters |dg|/|g| \(overall) (PyTorch float32 \(pytorch)), "
              + "per tensor worst \(worst) (\(worstName)), \(withinEvalBound) of \(compared) tensors within max(1e-3 relative, 10x PyTorch float32 error)")
        if mode == "eval" { #expect(withinEvalBound == compared) }
        // Over all parameters: within twice PyTorch's own float32 error (2.7e-2 in training, README section 8).
        #expect(overall <= Swift.max(1e-5, 2 * pytorch))
    }

    @Test func evalPassMatches() throws {
        let pass = try Self.stageTwo(training: false)
        try Self.check(pass, mode: "eval")
        let f = try MAFSFixture.tensors()
        Self.expectGradient(pass.gradient["input.teacher_logits"], f["eval.grad_input.teacher_logits"]!, "d total / d teacher logits", relative: 1e-4)
    }

    @Test func trainingPassMatches() throws {
        let pass = try Self.stageTwo(training: true)
        try Self.check(pass, mode: "train")
        let f = try MAFSFixture.tensors()
        // Every buffer after the training forward (the shared ASPP BatchNorm updated four times).
        for (key, expected) in f where key.hasPrefix("train.buffer.") {
            let name = String(key.dropFirst("train.buffer.".count))
            guard let actual = pass.buffers[name] else {
                Issue.record("no buffer \(name)")
                continue
            }
            Self.expectClose(actual, expected, "buffer \(name)", absolute: 1e-4)
        }
    }

    @Test func derivedLabelsAndVisibleLuma() throws {
        let f = try MAFSFixture.tensors()
        let labels = f["input.label"]!
        Self.expectClose(DerivedLabels.foreground(labels), f["derived.bi"]!, "binary labels", absolute: 0)
        Self.expectClose(DerivedLabels.boundary(labels), f["derived.bd"]!, "boundary labels", absolute: 0)
        Self.expectClose(Color.luma(f["input.vi"]!), f["derived.vi_y"]!, "visible Y", absolute: 1e-6)
        let lambdas = TaskWeighting(method: .dynamicWeightAverage(temperature: 500), alphaFair: 0.8)
            .dynamicWeights(groups: ["fusion", "task"], history: [["fusion": 0.8, "task": 3.0], ["fusion": 0.6, "task": 2.7]])
        Self.expectClose(Tensor(shape: [2], scalars: [Float(lambdas["fusion"]!), Float(lambdas["task"]!)]), f["dwa.lambdas"]!, "DWA weights", absolute: 1e-7)
    }

    /// Both OHEM branches (threshold and top-n_min) through the ohem-cross-entropy term.
    @Test(arguments: ["threshold", "top_n_min"]) func ohemBranches(_ branch: String) throws {
        let f = try MAFSFixture.tensors()
        let prefix = "loss_case.ohem_\(branch)"
        let n = Int(f["\(prefix).n_min"]!.item)
        let term = try Self.lossTerm("ohem-cross-entropy", ["threshold": .double(0.75), "min-kept": .int(n)])
        let logits = f["\(prefix).logits"]!, labels = f["\(prefix).labels"]!
        let (value, grads) = valueWithGradient(at: [logits]) { x in
            var batch = LossBatch(infrared: Tensor.zeros([2, 1, 8, 8]), visible: Tensor.zeros([2, 1, 8, 8]),
                                  targets: FusionTargets(infrared: Tensor.zeros([2, 1, 8, 8]), visible: Tensor.zeros([2, 1, 8, 8])), labels: labels)
            batch.logits = x[0]
            return term(batch)
        }
        Self.expectClose(value, f["\(prefix).value"]!, "\(branch) value", absolute: 1e-6)
        Self.expectClose(grads[0], f["\(prefix).grad_logits"]!, "\(branch) gradient", absolute: 1e-5)
    }

    // MARK: - Blocks

    struct BlockCase {
        let fixture: String
        let prefix: String
        let module: any Module
        let run: ([Tensor], Scope) -> Tensor
    }

    static func blockCases() throws -> [String: BlockCase] {
        let c = try MAFSFixture.network("minimal").configuration
        func eaef(_ gate: EAEFGate) -> EAEF { EAEF(c.stageChannels[0], mlpRatio: c.eaefMlpRatio, attentionReduction: c.eaefAttentionReduction, gate: gate) }
        let perSample = eaef(.perSample), released = eaef(.released)
        let cam = CAM(c.stageChannels[1], c.camChannels)
        let sdfm = SDFM(c.sfmChannels, c.phfChannels, reduction: c.fusionModuleReduction)
        let sim = SIM(c.phfChannels, label: c.camChannels, hidden: c.simHidden)
        let inv = InvBlock(channels: c.recChannels, split: c.innSplit, width: c.innDenseWidth, clamp: Float(c.innClamp))
        let mdta = TransposedAttention(dim: c.segChannels, heads: c.invptHeads[1], bias: false)
        let leff = LeFF(dim: c.segChannels, hidden: c.leffHidden)
        let cases = [
            BlockCase(fixture: "eaef_per_sample", prefix: "encoder.EAEF3.", module: perSample) { x, p in perSample(x[0], p) },
            BlockCase(fixture: "eaef_released", prefix: "encoder.EAEF3.", module: released) { x, p in released(x[0], p) },
            BlockCase(fixture: "cam", prefix: "encoder.high_fuse4.", module: cam) { x, p in cam((x[0], x[1]), p) },
            BlockCase(fixture: "sdfm", prefix: "encoder.low_fuse2.", module: sdfm) { x, p in sdfm((x[0], x[1]), p) },
            BlockCase(fixture: "sim", prefix: "encoder.SIM1.", module: sim) { x, p in sim((x[0], x[1]), p) },
            BlockCase(fixture: "invblock", prefix: "fuse_decoder.fuse_decoder.operations.0.", module: inv) { x, p in inv(x[0], p) },
            BlockCase(fixture: "mdta", prefix: "seg_decoder.invpt.invpt_stages.1.blocks.0.attn.", module: mdta) { x, p in mdta(x[0], p) },
            BlockCase(fixture: "leff", prefix: "seg_decoder.invpt.invpt_stages.1.blocks.0.ffn.", module: leff) { x, p in leff(x[0], p) },
        ]
        return Dictionary(uniqueKeysWithValues: cases.map { ($0.fixture, $0) })
    }

    @Test(arguments: ["eaef_per_sample", "eaef_released", "cam", "sdfm", "sim", "invblock", "mdta", "leff"])
    func blockMatches(_ name: String) throws {
        let f = try MAFSFixture.tensors()
        let block = try Self.blockCases()[name]!
        let state = Self.state(for: block.module, prefix: block.prefix)
        let key = "block.\(name)"
        let inputs = (0..<2).compactMap { f["\(key).input.\($0)"] }
        var leaves = state.parameters
        for (i, x) in inputs.enumerated() { leaves["input.\(i)"] = x }
        let cotangent = f["\(key).cotangent"]!
        var output = Tensor(0)
        let (_, gradient) = valueWithGradient(at: leaves) { p in
            var parameters = p
            let xs = inputs.indices.map { parameters.removeValue(forKey: "input.\($0)")! }
            output = block.run(xs, Scope(parameters: parameters, buffers: state.buffers))
            return (output * cotangent).sum()
        }
        Self.expectClose(output, f["\(key).output"]!, "\(name) output", absolute: 1e-5)
        for i in inputs.indices {
            Self.expectGradient(gradient["input.\(i)"], f["\(key).grad_input.\(i)"]!, "\(name) input gradient \(i)", relative: 1e-4)
        }
        for (fixtureKey, expected) in f where fixtureKey.hasPrefix("\(key).grad.") {
            let param = String(fixtureKey.dropFirst("\(key).grad.".count))
            // InstanceNorm of near-constant maps inside the INN: float32 PyTorch itself is off by 2e-3 there.
            Self.expectGradient(gradient[param], expected, "\(name) gradient \(param)", relative: param.hasSuffix("norm.weight") || param.hasSuffix("norm.bias") ? 1e-2 : 1e-3)
        }
        #expect(f.keys.filter { $0.hasPrefix("\(key).grad.") }.count == state.parameters.count)
    }

    /// The InvBlock's inverse against the fixture (inverse(forward(x)) = x; the inverse on its own).
    @Test func invBlockInverseMatches() throws {
        let f = try MAFSFixture.tensors()
        let block = try Self.blockCases()["invblock"]!
        let inv = block.module as! InvBlock
        let scope = Scope(Self.state(for: inv, prefix: block.prefix))
        let x = f["block.invblock.input.0"]!
        Self.expectClose(inv.inverse(inv(x, scope), scope), f["block.invblock.inverse_of_output"]!, "inverse(forward(x))", absolute: 1e-5)
        Self.expectClose(inv.inverse(f["block.invblock_inverse.input.0"]!, scope), f["block.invblock_inverse.output"]!, "inverse(y)", absolute: 1e-5)
    }

    // MARK: - Stage I

    /// The masks from the fixture's uniform draws, the masked inputs, both reconstructions (the
    /// second FusionDecoder, and the rec-decoder head) and the reconstruction terms.
    @Test(arguments: ["inn", "rec-decoder"]) func stageOneMatches(_ head: String) throws {
        let f = try MAFSFixture.tensors()
        let (vi, ir) = (f["input.vi"]!, f["input.ir"]!)
        let (b, h, w) = (vi.shape[0], vi.shape[2], vi.shape[3])
        let generator = MaskGenerator(grid: 8)
        let p = f["stage1.draws.p"]!.scalars, swap = f["stage1.draws.swap"]!.scalars, cells = f["stage1.draws.cells"]!.scalars
        var keepIR: [Float] = [], keepVI: [Float] = []
        for n in 0..<b {
            let draws = (0..<6).map { k in Array(cells[((n * 6 + k) * 64)..<((n * 6 + k + 1) * 64)]) }
            let m = generator.cellMasks(p: p[n], swap: swap[n], draws: draws)
            for (grid, out) in [(m.infrared, 0), (m.visible, 1)] {
                let plane = (0..<(h * w)).map { grid[($0 / w) / (h / 8) * 8 + ($0 % w) / (w / 8)] }
                if out == 0 { keepIR += plane } else { keepVI += plane }
            }
        }
        let mIR = Tensor(shape: [b, 1, h, w], scalars: keepIR), mVI = Tensor(shape: [b, 1, h, w], scalars: keepVI)
        Self.expectClose(mVI, f["stage1.mask.vi"]!, "visible keep mask", absolute: 0)
        Self.expectClose(mIR, f["stage1.mask.ir"]!, "infrared keep mask", absolute: 0)
        let maskedVI = vi * mVI + f["stage1.draws.noise_vi"]! * (1 - mVI)
        let maskedIR = ir * mIR + f["stage1.draws.noise_ir"]! * (1 - mIR)
        Self.expectClose(maskedVI, f["stage1.input.vi"]!, "masked visible", absolute: 1e-6)
        Self.expectClose(maskedIR, f["stage1.input.ir"]!, "masked infrared", absolute: 1e-6)

        // The transcription decodes the visible source with fuse_decoder (visible-head: fusion-decoder).
        let net = try MAFSFixture.network("minimal", ["ir-head": .string(head), "visible-head": .string("fusion-decoder")])
        let scope = Scope(Self.state(for: net))
        let rec = net.reconstruct(JointInput(infrared: maskedIR, visible: maskedVI), scope)
        let prefix = head == "inn" ? "stage1" : "stage1_rec_decoder"
        Self.expectClose(rec.visible, f["stage1.output.rec_vi"]!, "rec_vi", absolute: 1e-5)
        Self.expectClose(rec.infrared, f["\(prefix).output.rec_ir"]!, "rec_ir (\(head))", absolute: 1e-5)

        var batch = LossBatch(infrared: ir, visible: vi, targets: FusionTargets(infrared: ir, visible: vi))
        batch.reconstruction = rec
        batch.keepMasks = (mIR, mVI)
        let l1Term = try Self.lossTerm("masked-l1"), gradientTerm = try Self.lossTerm("masked-gradient-l1")
        let l1 = l1Term(batch), gradientL1 = gradientTerm(batch)
        Self.expectClose(l1, f["\(prefix).loss.vi_intensity"]! + f["\(prefix).loss.ir_intensity"]!, "masked L1", absolute: 1e-6)
        Self.expectClose(gradientL1, f["\(prefix).loss.vi_gradient"]! + f["\(prefix).loss.ir_gradient"]!, "masked gradient L1", absolute: 1e-6)
        Self.expectClose(l1 * 5 + gradientL1 * 5, f["\(prefix).loss.total"]!, "stage I total", absolute: 1e-6)
    }
}
