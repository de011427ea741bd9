/// CRC-32C (Castagnoli, the checksum of iSCSI, ext4 metadata and Google's storage), computed
/// eight bytes at a time ("slicing by 8").
///
/// ```swift
/// var crc = CRC32C()
/// crc.update(bytes)
/// let value = crc.value  // CRC32C of "123456789" is 0xE3069283
/// ```
public struct CRC32C: Sendable, Equatable {
    /// The running state (the CRC before its final inversion).
    private var state: UInt32 = 0xFFFF_FFFF

    /// A checksum of no bytes yet.
    public init() {}

    /// The CRC-32C of the bytes given so far.
    public var value: UInt32 { ~state }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    /// Continues the checksum over `bytes`.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var crc = state
        var offset = 0
        let count = bytes.count
        Self.tables.withUnsafeBufferPointer { t in
            while count - offset >= 8 {
                let low = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) ^ crc
                let high = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                offset += 8
            }
            while offset < count {
                crc = t[Int((crc ^ UInt32(base.load(fromByteOffset: offset, as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
                offset += 1
            }
        }
        state = crc
    }

    /// Continues the checksum over the bytes of `array`.
    public mutating func update(_ array: [UInt8]) {
        array.withUnsafeBytes { update($0) }
    }

    /// Table `k` (entries `256 k ..< 256 (k + 1)`) advances a byte followed by `k` zero bytes.
    private static let tables: [UInt32] = {
        let polynomial: UInt32 = 0x82F6_3B78  // 0x1EDC6F41 reflected
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ polynomial : crc >> 1 }
            tables[byte] = crc
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(k - 1) * 256 + byte]
                tables[k * 256 + byte] = tables[Int(previous & 0xFF)] ^ (previous >> 8)
            }
        }
        return tables
    }()
}
