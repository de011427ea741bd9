import FuseKitTensor

/// The element types a safetensors file may hold that FuseKit reads (all converted to Float32).
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    /// IEEE double precision (`F64`).
    case float64 = "F64"
    /// IEEE single precision (`F32`), the type FuseKit writes.
    case float32 = "F32"
    /// IEEE half precision (`F16`).
    case float16 = "F16"
    /// bfloat16, the upper half of a Float32 (`BF16`).
    case bfloat16 = "BF16"
    /// Signed 64-bit integer (`I64`), e.g. `num_batches_tracked`.
    case int64 = "I64"
    /// Signed 32-bit integer (`I32`).
    case int32 = "I32"
    /// Signed 16-bit integer (`I16`).
    case int16 = "I16"
    /// Signed 8-bit integer (`I8`).
    case int8 = "I8"
    /// Unsigned 64-bit integer (`U64`).
    case uint64 = "U64"
    /// Unsigned 32-bit integer (`U32`).
    case uint32 = "U32"
    /// Unsigned 16-bit integer (`U16`).
    case uint16 = "U16"
    /// Unsigned 8-bit integer (`U8`).
    case uint8 = "U8"
    /// Boolean stored as one byte (`BOOL`), read as 0 or 1.
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float64, .int64, .uint64: return 8
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// The dtype names this reader accepts, for error messages.
    static let supportedNames = allCases.map(\.rawValue).joined(separator: ", ")

    /// Converts `count` little-endian elements at `source` (any alignment) to Float32 at
    /// `destination`, over all cores for large tensors.
    func convert(_ source: UnsafeRawPointer, to destination: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        #if _endian(little)
        if self == .float32 {
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
            return
        }
        #endif
        let input = SafeTensorsRawPointer(source)
        let output = SafeTensorsFloatPointer(destination)
        let dtype = self
        Parallel.forRanges(count, grain: 65_536) { range in
            dtype.convertRange(range, input.base, output.base)
        }
    }

    private func convertRange(_ range: Range<Int>, _ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>) {
        switch self {
        case .float64:
            for i in range { destination[i] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
        case .float32:
            for i in range { destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .float16:
            for i in range { destination[i] = HalfPrecision.float(fromHalfBits: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bfloat16:
            for i in range { destination[i] = HalfPrecision.float(fromBFloat16Bits: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .int64:
            for i in range { destination[i] = Float(Int64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
        case .int32:
            for i in range { destination[i] = Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        case .int16:
            for i in range { destination[i] = Float(Int16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
        case .int8:
            for i in range { destination[i] = Float(source.load(fromByteOffset: i, as: Int8.self)) }
        case .uint64:
            for i in range { destination[i] = Float(UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
        case .uint32:
            for i in range { destination[i] = Float(UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .uint16:
            for i in range { destination[i] = Float(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .uint8:
            for i in range { destination[i] = Float(source.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool:
            for i in range { destination[i] = source.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        }
    }
}

/// Conversions from the 16-bit float formats to Float32 (exact: every half and bfloat16 value,
/// including subnormals, infinities and NaN payloads, is a Float32 value).
public enum HalfPrecision {
    /// The Float32 value of IEEE 754 binary16 bits.
    @inlinable
    public static func float(fromHalfBits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x03FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa * 2^-24, exact in Float32.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        }
        if exponent == 0x1F {
            // Infinity or NaN (payload kept).
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// The Float32 value of bfloat16 bits (the top half of a Float32).
    @inlinable
    public static func float(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}

/// Raw pointers handed to the parallel conversion workers, each of which reads and writes a
/// disjoint index range.
struct SafeTensorsRawPointer: @unchecked Sendable {
    let base: UnsafeRawPointer
    init(_ base: UnsafeRawPointer) { self.base = base }
}

struct SafeTensorsFloatPointer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    init(_ base: UnsafeMutablePointer<Float>) { self.base = base }
}
