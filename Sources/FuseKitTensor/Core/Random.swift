/// A small, fast, seedable random generator (xoshiro256**) whose whole state can be saved in a
/// checkpoint and restored, so that training resumes with the same random stream.
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable, Codable {
    /// The four state words.
    public var state: [UInt64]

    /// A generator seeded through SplitMix64, as the xoshiro authors recommend.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [splitMix(), splitMix(), splitMix(), splitMix()]
    }

    /// Restores a saved state.
    public init(state: [UInt64]) {
        require(state.count == 4 && state.contains(where: { $0 != 0 }), "RandomGenerator: a state is four words, not all zero")
        self.state = state
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = Self.rotl(state[3], 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Standard normal (Box-Muller).
    public mutating func nextNormal() -> Float {
        var u1 = nextUniform()
        while u1 <= Float.leastNormalMagnitude { u1 = nextUniform() }
        let u2 = nextUniform()
        return (-2 * _logf(u1)).squareRoot() * _cosf(2 * .pi * u2)
    }

    /// A uniform integer in `0..<bound`.
    public mutating func nextInt(below bound: Int) -> Int {
        require(bound > 0, "RandomGenerator.nextInt: bound must be positive, got \(bound)")
        return Int(next(upperBound: UInt64(bound)))
    }

    /// An independent generator for a sub-stream (e.g. one per worker), advancing this one.
    public mutating func split() -> RandomGenerator {
        RandomGenerator(seed: next())
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@inline(__always) private func _logf(_ x: Float) -> Float { logf(x) }
@inline(__always) private func _cosf(_ x: Float) -> Float { cosf(x) }
