import FuseKit

// MAFS's dense INN fusion decoder (INN_block.py; Glow's LU-decomposed 1x1 convolution from
// util/modules.py). Every convolution inside FeatureExtract starts xavier-normal (gain 1, bias 0),
// as the official `initialize()` overrides the DenseBlocks' own init.

/// conv3x3 -> InstanceNorm(affine) on the first half of the channels -> LReLU 0.1 -> conv3x3 ->
/// LReLU 0.1, plus a 1x1 `identity` of the input.
struct UNetConvBlock: UnaryModule {
    let identity: Child<Conv>
    let conv1: Child<Conv>
    let conv2: Child<Conv>
    let norm: Child<InstanceNorm2d>

    init(_ inChannels: Int, _ outChannels: Int) {
        identity = Child("identity", Conv(inChannels, outChannels, 1, initialization: .xavierNormal))
        conv1 = Child("conv_1", Conv(inChannels, outChannels, 3, initialization: .xavierNormal))
        conv2 = Child("conv_2", Conv(outChannels, outChannels, 3, initialization: .xavierNormal))
        norm = Child("norm", InstanceNorm2d(outChannels / 2, affine: true))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let out = conv1(x, p)
        let half = out.shape[1] / 2
        let normalized = Tensor.concat([norm(out.sliced(axis: 1, 0..<half), p), out.sliced(axis: 1, half..<out.shape[1])], axis: 1)
        return conv2(normalized.leakyRelu(slope: 0.1), p).leakyRelu(slope: 0.1) + identity(x, p)
    }
}

/// Two UNetConvBlocks, each followed by LeakyReLU 0.2 (F, G and H of an InvBlock).
struct DenseBlock: UnaryModule {
    let conv1: Child<UNetConvBlock>
    let conv2: Child<UNetConvBlock>

    init(_ inChannels: Int, _ outChannels: Int, width: Int) {
        conv1 = Child("conv1", UNetConvBlock(inChannels, width))
        conv2 = Child("conv2", UNetConvBlock(width, outChannels))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        conv2(conv1(x, p).leakyRelu(slope: 0.2), p).leakyRelu(slope: 0.2)
    }
}

/// Glow's LU-decomposed invertible 1x1 convolution: W = P (L + I) (U + diag(sign_s exp(log_s)))
/// with L (`lower`) masked strictly lower- and U (`upper`) strictly upper-triangular; P (`p`) and
/// `sign_s` are buffers. From scratch W starts as the identity (P = I, L = U = 0, log_s = 0,
/// sign_s = 1); the official code starts from the LU factors of a random orthogonal matrix, which
/// FuseKit's per-tensor initialisers cannot express (a deviation for training from scratch only;
/// loaded weights are used as given).
public struct InvertibleConv1x1: UnaryModule {
    /// Channels C (W is C x C).
    public let channels: Int
    let permutation: ParameterSpec
    let signS: ParameterSpec
    let lower: ParameterSpec
    let logS: ParameterSpec
    let upper: ParameterSpec

    public init(_ channels: Int) {
        self.channels = channels
        permutation = .buffer("p", [channels, channels], .identity)
        signS = .buffer("sign_s", [channels], .constant(1))
        lower = ParameterSpec("lower", [channels, channels], .constant(0))
        logS = ParameterSpec("log_s", [channels], .constant(0), decays: false)
        upper = ParameterSpec("upper", [channels, channels], .constant(0))
    }

    /// The factors (L + I, U + diag(sign_s exp(log_s))) and P.
    func factors(_ p: Scope) -> (p: Tensor, l: Tensor, u: Tensor) {
        let c = channels
        let strictlyLower = Tensor(shape: [c, c], scalars: (0..<(c * c)).map { $0 / c > $0 % c ? 1 : 0 })
        let eye = Tensor.eye(c)
        let l = p[lower] * strictlyLower + eye
        let u = p[upper] * strictlyLower.transposed() + eye * (p.buffer(signS) * p[logS].exp()).reshaped([1, c])
        return (p.buffer(permutation), l, u)
    }

    /// W [C, C].
    public func weight(_ p: Scope) -> Tensor {
        let f = factors(p)
        return Tensor.matmul(f.p, Tensor.matmul(f.l, f.u))
    }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        Tensor.conv2d(x, weight(p).reshaped([channels, channels, 1, 1]))
    }

    /// W⁻¹ x (for the inverse of an InvBlock), W⁻¹ computed in Double from the factors (not
    /// differentiated).
    public func inverse(_ z: Tensor, _ p: Scope) -> Tensor {
        let w = withoutGradient { weight(p).detached() }
        let inverse = Tensor(shape: [channels, channels], scalars: InvertibleConv1x1.inverted(w.scalars.map(Double.init), channels).map(Float.init))
        return Tensor.conv2d(z, inverse.reshaped([channels, channels, 1, 1]))
    }

    /// The inverse of an n x n row-major matrix by Gauss-Jordan elimination with partial pivoting.
    static func inverted(_ matrix: [Double], _ n: Int) -> [Double] {
        var a = matrix, inv = (0..<(n * n)).map { $0 / n == $0 % n ? 1.0 : 0.0 }
        for col in 0..<n {
            let pivot = (col..<n).max { Swift.abs(a[$0 * n + col]) < Swift.abs(a[$1 * n + col]) }!
            if pivot != col {
                for k in 0..<n { a.swapAt(pivot * n + k, col * n + k); inv.swapAt(pivot * n + k, col * n + k) }
            }
            let d = a[col * n + col]
            for k in 0..<n { a[col * n + k] /= d; inv[col * n + k] /= d }
            for row in 0..<n where row != col {
                let f = a[row * n + col]
                if f == 0 { continue }
                for k in 0..<n { a[row * n + k] -= f * a[col * n + k]; inv[row * n + k] -= f * inv[col * n + k] }
            }
        }
        return inv
    }
}

/// The affine coupling block: x = W x; y1 = x1 + F(x2); e = clamp (2 sigmoid(H(y1)) - 1);
/// y2 = x2 exp(e) + G(y1); out = [y1; y2]. ``inverse(_:_:)`` undoes it (not in the release).
public struct InvBlock: UnaryModule {
    let split: Int
    let clamp: Float
    let f: Child<DenseBlock>
    let g: Child<DenseBlock>
    let h: Child<DenseBlock>
    /// The 1x1 convolution (`invconv`).
    public let invconv: Child<InvertibleConv1x1>

    public init(channels: Int, split: Int, width: Int, clamp: Float) {
        self.split = split
        self.clamp = clamp
        f = Child("F", DenseBlock(channels - split, split, width: width))
        g = Child("G", DenseBlock(split, channels - split, width: width))
        h = Child("H", DenseBlock(split, channels - split, width: width))
        invconv = Child("invconv", InvertibleConv1x1(channels))
    }

    func scale(_ y1: Tensor, _ p: Scope) -> Tensor { (h(y1, p).sigmoid() * 2 - 1) * clamp }

    public func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        let mixed = invconv(x, p)
        let c = mixed.shape[1]
        let x1 = mixed.sliced(axis: 1, 0..<split), x2 = mixed.sliced(axis: 1, split..<c)
        let y1 = x1 + f(x2, p)
        let y2 = x2 * scale(y1, p).exp() + g(y1, p)
        return Tensor.concat([y1, y2], axis: 1)
    }

    /// x from y = forward(x): x2 = (y2 - G(y1)) exp(-e(y1)), x1 = y1 - F(x2), x = W⁻¹ [x1; x2].
    public func inverse(_ y: Tensor, _ p: Scope) -> Tensor {
        let c = y.shape[1]
        let y1 = y.sliced(axis: 1, 0..<split), y2 = y.sliced(axis: 1, split..<c)
        let x2 = (y2 - g(y1, p)) * (scale(y1, p) * -1).exp()
        let x1 = y1 - f(x2, p)
        return invconv.run(in: p) { conv, scope in conv.inverse(Tensor.concat([x1, x2], axis: 1), scope) }
    }
}

/// The dense INN (`FeatureExtract`): InvBlocks in sequence; the input and the outputs of blocks
/// 2, 3, ... (0-based) are concatenated and fused by a 1x1 conv.
struct FeatureExtract: UnaryModule {
    let operations: Child<ModuleList<InvBlock>>
    let fuse: Child<Conv>

    init(channels: Int, split: Int, blocks: Int, width: Int, clamp: Float) {
        operations = Child("operations", ModuleList((0..<blocks).map { _ in InvBlock(channels: channels, split: split, width: width, clamp: clamp) }))
        fuse = Child("fuse", Conv((blocks - 1) * channels, channels, 1, initialization: .xavierNormal))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        var out = x, collected = [x]
        for (i, block) in operations.items().enumerated() {
            out = block(out, p)
            if i > 1 { collected.append(out) }
        }
        return fuse(Tensor.concat(collected, axis: 1), p)
    }
}

/// The fusion decoder: Y = (tanh(conv3x3(FeatureExtract(rec_f))) + 1) / 2 in [0, 1].
struct FusionDecoder: UnaryModule {
    let featureExtract: Child<FeatureExtract>
    let conv: Child<Conv>

    init(_ c: MAFSConfiguration) {
        featureExtract = Child("fuse_decoder", FeatureExtract(channels: c.recChannels, split: c.innSplit, blocks: c.innBlocks,
                                                              width: c.innDenseWidth, clamp: Float(c.innClamp)))
        conv = Child("conv_block.0", Conv(c.recChannels, 1, 3))
    }

    func callAsFunction(_ x: Tensor, _ p: Scope) -> Tensor {
        (conv(featureExtract(x, p), p).tanh() + 1) * 0.5
    }
}
