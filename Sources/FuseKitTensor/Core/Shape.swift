/// Shape arithmetic shared by the tensor operations: element counts, strides, broadcasting,
/// axis normalisation, and the error messages that name the offending shapes.
public enum Shape {
    /// Number of elements of a tensor of this shape.
    @inlinable
    public static func count(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape { n *= d }
        return n
    }

    /// Row-major (C order) strides.
    public static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= shape[i]
        }
        return strides
    }

    /// Renders a shape as PyTorch prints it, `[2, 3, 4]`.
    public static func describe(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }

    /// The broadcast shape of two shapes (NumPy rules), or an error naming both.
    public static func broadcast(_ a: [Int], _ b: [Int], op: String) -> Result<[Int], ShapeError> {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            if da == db || db == 1 {
                out[i] = da
            } else if da == 1 {
                out[i] = db
            } else {
                return .failure(ShapeError(
                    "\(op): shapes \(describe(a)) and \(describe(b)) are not broadcast-compatible (dimension \(i): \(da) vs \(db))"))
            }
        }
        return .success(out)
    }

    /// Normalises a possibly negative axis for a tensor of `rank`, or an error naming the shape.
    public static func normalizeAxis(_ axis: Int, rank: Int, shape: [Int], op: String) -> Result<Int, ShapeError> {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else {
            return .failure(ShapeError("\(op): axis \(axis) is out of range for a tensor of shape \(describe(shape)) (rank \(rank))"))
        }
        return .success(a)
    }
}

/// A shape or argument error of a tensor operation; the message names the shapes involved.
public struct ShapeError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, naming the operation and shapes.
    public let message: String
    /// Makes an error with `message`.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Result where Failure == ShapeError {
    /// The value, or a fatal error that prints the message naming the shapes.
    ///
    /// Shape errors are programmer errors (like an out-of-range array index), so the tensor
    /// operations stop with a message rather than throw. `fatalError` is used rather than
    /// `precondition` because the latter drops its message in optimised builds.
    @inlinable
    public func orDie() -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let error): fatalError(error.message)
        }
    }
}

/// Stops with `message` when `condition` is false; the message is kept in optimised builds.
@inlinable
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError(message()) }
}
