/// Table-driven CRC-32 checksums (reflected, initial value and final XOR all ones), processing
/// eight bytes per step ("slicing by 8").
///
/// - ``ieee``: the zip and PNG checksum (polynomial 0x04C11DB7);
/// - ``castagnoli``: CRC-32C (polynomial 0x1EDC6F41), used by TFRecord files.
public struct CRC32: Sendable {
    /// The zip and PNG CRC-32.
    public static let ieee = CRC32(reflectedPolynomial: 0xEDB8_8320)
    /// CRC-32C (Castagnoli).
    public static let castagnoli = CRC32(reflectedPolynomial: 0x82F6_3B78)

    /// `tables[k][b]`: the CRC of byte `b` followed by `k` zero bytes.
    private let tables: [[UInt32]]

    /// A CRC for a bit-reversed generator polynomial.
    public init(reflectedPolynomial: UInt32) {
        var first = [UInt32](repeating: 0, count: 256)
        for byte in 0 ..< 256 {
            var crc = UInt32(byte)
            for _ in 0 ..< 8 { crc = crc & 1 != 0 ? (crc >> 1) ^ reflectedPolynomial : crc >> 1 }
            first[byte] = crc
        }
        var tables = [first]
        for k in 1 ..< 8 {
            tables.append((0 ..< 256).map { tables[k - 1][$0] >> 8 ^ first[Int(tables[k - 1][$0] & 0xFF)] })
        }
        self.tables = tables
    }

    /// The checksum of `bytes`, or of the bytes that produced `previous` followed by `bytes`.
    public func checksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        var crc = ~previous
        var i = 0
        let count = bytes.count
        tables.withUnsafeBufferPointer { t in
            let (t0, t1, t2, t3, t4, t5, t6, t7) = (t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7])
            while i + 8 <= count {
                let low = crc ^ UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                let high = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                crc = t7[Int(low & 0xFF)] ^ t6[Int(low >> 8 & 0xFF)] ^ t5[Int(low >> 16 & 0xFF)] ^ t4[Int(low >> 24)]
                    ^ t3[Int(high & 0xFF)] ^ t2[Int(high >> 8 & 0xFF)] ^ t1[Int(high >> 16 & 0xFF)] ^ t0[Int(high >> 24)]
                i += 8
            }
            while i < count {
                crc = t0[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ crc >> 8
                i += 1
            }
        }
        return ~crc
    }

    /// The checksum of a byte array.
    public func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
