extension Tensor {
    /// A tensor of `shape` filled with `value`.
    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(count: Shape.count(shape), repeating: value))
    }

    /// Zeros of `shape`.
    public static func zeros(_ shape: [Int]) -> Tensor { full(shape, 0) }

    /// Ones of `shape`.
    public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }

    /// Zeros of the same shape as `other`.
    public static func zeros(like other: Tensor) -> Tensor { zeros(other.shape) }

    /// Ones of the same shape as `other`.
    public static func ones(like other: Tensor) -> Tensor { ones(other.shape) }

    /// `start, start + step, ...` below `end` (rank 1).
    public static func arange(_ start: Float = 0, _ end: Float, step: Float = 1) -> Tensor {
        require(step != 0, "arange: step must not be zero")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor(shape: [n], scalars: (0..<n).map { start + Float($0) * step })
    }

    /// Uniform samples in `[low, high)`.
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, using rng: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        let p = t.mutablePointer
        for i in 0..<t.count { p[i] = low + (high - low) * rng.nextUniform() }
        return t
    }

    /// Normal samples with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, using rng: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        let p = t.mutablePointer
        for i in 0..<t.count { p[i] = mean + std * rng.nextNormal() }
        return t
    }

    /// The `n` x `n` identity matrix.
    public static func eye(_ n: Int) -> Tensor {
        let t = zeros([n, n])
        for i in 0..<n { t.mutablePointer[i * n + i] = 1 }
        return t
    }
}
