import FuseKit
import FuseKitPlugins
import MRFS
import Testing

/// Gradient checks (VJP and JVP against finite differences, and the dot-product identity) of
/// MRFS's own blocks with respect to their parameters and both inputs, and of the registered
/// plugins as `fusekit gradcheck --plugin mrfs` runs them.
@Suite struct MRFSGradientTests {
    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.normal(shape, std: scale, using: &rng)
    }

    /// Checks `module`'s parameters and two inputs together through the scalar Σ_j <out_j, c_j>
    /// with fixed random c_j (GradientCheck draws its own cotangents for vector outputs too; the
    /// scalar keeps both outputs of IGM-Att in one check).
    static func check(_ name: String, _ module: any Module, inputs: (Tensor, Tensor), seed: UInt64, weightScale: Float = 1,
                      options: GradientCheck.Options = GradientCheck.Options(),
                      _ apply: @escaping ((Tensor, Tensor), Scope) -> [Tensor]) -> GradientCheck.Report {
        var state = module.initialState(seed: seed)
        if weightScale != 1 {
            for (key, value) in state.parameters where value.rank == 2 { state.parameters[key] = value * weightScale }
        }
        var values = state.parameters
        values["<x1>"] = inputs.0
        values["<x2>"] = inputs.1
        return GradientCheck.check(name, parameters: values, options: options) { v in
            var parameters = v
            let x1 = parameters.removeValue(forKey: "<x1>")!, x2 = parameters.removeValue(forKey: "<x2>")!
            let outputs = apply((x1, x2), Scope(parameters: parameters, buffers: state.buffers))
            return outputs.enumerated().map { j, y in (y * random(y.shape, seed: 40 + UInt64(j))).sum() }.reduce(Tensor(0), +)
        }
    }

    /// Normal values plus offsets that make every channel's spatial maximum (+6 at pixel c) and
    /// every pixel's channel maximum (+3 on channel pixel mod C, or the +6 channel) unique by a
    /// margin far above the finite-difference step: IGM-Att's max pools are then smooth there.
    static func separatedMaxima(_ shape: [Int], seed: UInt64) -> Tensor {
        let (b, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        precondition(c <= h * w)
        var values = random(shape, seed: seed, scale: 0.3).scalars
        for n in 0..<b {
            for channel in 0..<c {
                for pixel in 0..<(h * w) {
                    let i = ((n * c + channel) * h + 0) * w + pixel
                    if pixel == channel { values[i] += 6 } else if pixel % c == channel { values[i] += 3 }
                }
            }
        }
        return Tensor(shape: shape, scalars: values)
    }

    @Test(arguments: [4, 8])
    func igmAttention(dim: Int) {
        let block = IGMAttention(dim: dim)
        let x1 = Self.separatedMaxima([2, dim, 3, 4], seed: 1), x2 = Self.separatedMaxima([2, dim, 3, 4], seed: 2)
        let report = Self.check("IGM-Att (\(dim) channels)", block, inputs: (x1, x2), seed: 3, weightScale: 5) { x, p in
            let (a, b) = block(x, p)
            return [a, b]
        }
        #expect(report.passed, "\(report)")
    }

    @Test(arguments: [2, 1])
    func pcAttention(reduction: Int) {
        let block = PCAttention(dim: 4, heads: 2, reduction: reduction)
        let x1 = Self.random([2, 4, 4, 5], seed: 4), x2 = Self.random([2, 4, 4, 5], seed: 5)
        // Larger-than-official weights: attention far from uniform, so the check sees it.
        let report = Self.check("PC-Att (reduction \(reduction))", block, inputs: (x1, x2), seed: 6, weightScale: 20) { x, p in
            [block(x, p)]
        }
        #expect(report.passed, "\(report)")
    }

    @Test(arguments: ["mrfs", "mrfs-fusion"])
    func registeredPluginPassesGradcheck(_ name: String) throws {
        let registry = StandardPlugins.registry()
        let report = PluginGradcheck.check(try registry.descriptor(name))
        #expect(report.passed, "\(report)")
    }
}
