/// A read-only view of a zip archive whose records are stored uncompressed, as PyTorch's
/// `torch.save` writes them: each record's bytes are a slice of the memory-mapped file, read
/// with no copy.
///
/// Read: the end-of-central-directory record, its ZIP64 form (which PyTorch always writes),
/// the central directory with ZIP64 extra fields, and each record's local header (for the
/// offset of its data; PyTorch pads that extra field so that data is 64-byte aligned, and sets
/// the data-descriptor flag, so sizes and CRCs are taken from the central directory). Every
/// offset is bounds-checked; compressed, encrypted and multi-disk archives are refused.
///
/// (ZIPFoundation reads these files too, but on Linux its manifest leaves a resource
/// undeclared, which warns in every build of FuseKit and of packages embedding it, and it
/// copies every record through `fread`; PyTorch's stored, aligned records need neither.)
struct StoredZipArchive {
    /// One record.
    struct Record {
        /// Its path in the archive.
        let name: String
        /// Offset of its data in the file.
        let dataOffset: Int
        /// Its size in bytes.
        let size: Int
        /// The CRC-32 the archive records for it.
        let crc32: UInt32
    }

    /// The records by path.
    let records: [String: Record]
    private let file: MappedFile

    private enum Signature {
        static let localHeader: UInt32 = 0x0403_4B50
        static let centralHeader: UInt32 = 0x0201_4B50
        static let end: UInt32 = 0x0605_4B50
        static let end64: UInt32 = 0x0606_4B50
        static let end64Locator: UInt32 = 0x0706_4B50
    }

    init(file: MappedFile) throws {
        self.file = file
        let bytes = UnsafeRawBufferPointer(start: file.base, count: file.size)
        func corrupt(_ reason: String) -> TorchCheckpointError {
            .corrupt(file: file.path, reason: reason + " (is the file truncated?)")
        }
        func u16(_ offset: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) }
        func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        func u64(_ offset: Int) throws -> Int {
            let value = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            guard value <= UInt64(bytes.count) else { throw corrupt("a ZIP64 size or offset (\(value)) exceeds the file's \(bytes.count) bytes") }
            return Int(value)
        }
        func has(_ offset: Int, _ count: Int) -> Bool { offset >= 0 && count >= 0 && offset <= bytes.count - count }

        // End of central directory: 22 bytes plus a comment of up to 65535 bytes at the end.
        var end = -1
        var candidate = bytes.count - 22
        while candidate >= max(0, bytes.count - 22 - 65_535) {
            if u32(candidate) == Signature.end, candidate + 22 + u16(candidate + 20) == bytes.count { end = candidate; break }
            candidate -= 1
        }
        guard end >= 0 else { throw corrupt("it has no zip end-of-central-directory record") }
        guard u16(end + 4) == 0, u16(end + 6) == 0 else {
            throw TorchCheckpointError.unsupported(file: file.path, reason: "it is a multi-disk zip archive")
        }
        var entryCount = u16(end + 10)
        var directorySize = Int(u32(end + 12))
        var directoryOffset = Int(u32(end + 16))
        let locator = end - 20
        if locator >= 0, u32(locator) == Signature.end64Locator {
            let record = try u64(locator + 8)
            guard has(record, 56), u32(record) == Signature.end64 else { throw corrupt("its ZIP64 end-of-central-directory record is missing") }
            entryCount = try u64(record + 32)
            directorySize = try u64(record + 40)
            directoryOffset = try u64(record + 48)
        }
        guard has(directoryOffset, directorySize) else {
            throw corrupt("its central directory (\(directorySize) bytes at \(directoryOffset)) lies outside the file's \(bytes.count) bytes")
        }

        var records: [String: Record] = [:]
        var position = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for _ in 0 ..< entryCount {
            guard position + 46 <= directoryEnd, u32(position) == Signature.centralHeader else {
                throw corrupt("its central directory ends before its \(entryCount) entries")
            }
            let flags = u16(position + 8), method = u16(position + 10)
            let crc = u32(position + 16)
            var compressedSize = Int(u32(position + 20)), size = Int(u32(position + 24))
            let nameLength = u16(position + 28), extraLength = u16(position + 30), commentLength = u16(position + 32)
            var localOffset = Int(u32(position + 42))
            let nameStart = position + 46, extraStart = nameStart + nameLength
            position = extraStart + extraLength + commentLength
            guard position <= directoryEnd else { throw corrupt("a central directory entry runs past the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[nameStart ..< extraStart]), as: UTF8.self)

            // ZIP64 extra field: the 64-bit values of the fields stored as 0xFFFFFFFF, in order.
            var extra = extraStart
            while extra + 4 <= extraStart + extraLength {
                let id = u16(extra), length = u16(extra + 2)
                var field = extra + 4
                let fieldEnd = field + length
                guard fieldEnd <= extraStart + extraLength else { throw corrupt("an extra field of record '\(name)' runs past its entry") }
                if id == 0x0001 {
                    func next() throws -> Int {
                        guard field + 8 <= fieldEnd else { throw corrupt("the ZIP64 field of record '\(name)' is too short") }
                        defer { field += 8 }
                        return try u64(field)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressedSize == 0xFFFF_FFFF { compressedSize = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                }
                extra = fieldEnd
            }

            guard flags & 1 == 0 else { throw TorchCheckpointError.unsupported(file: file.path, reason: "record '\(name)' is encrypted") }
            guard method == 0, compressedSize == size else {
                throw TorchCheckpointError.unsupported(
                    file: file.path, reason: "record '\(name)' is compressed (zip method \(method)); torch.save stores records uncompressed, so re-save the file with torch.save")
            }
            guard has(localOffset, 30), u32(localOffset) == Signature.localHeader else {
                throw corrupt("the local header of record '\(name)' is missing")
            }
            let dataOffset = localOffset + 30 + u16(localOffset + 26) + u16(localOffset + 28)
            guard has(dataOffset, size) else {
                throw corrupt("record '\(name)' (\(size) bytes at \(dataOffset)) lies outside the file's \(bytes.count) bytes")
            }
            records[name] = Record(name: name, dataOffset: dataOffset, size: size, crc32: crc)
        }
        self.records = records
    }

    /// The path of the archive file.
    var path: String { file.path }

    /// A record's bytes (a view of the mapping, valid while this archive lives), checked
    /// against its CRC-32.
    func bytes(of record: Record) throws -> UnsafeRawBufferPointer {
        guard let base = file.base, record.size > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let bytes = UnsafeRawBufferPointer(start: base + record.dataOffset, count: record.size)
        guard CRC32.ieee.checksum(bytes) == record.crc32 else {
            throw TorchCheckpointError.corrupt(file: file.path, reason: "record '\(record.name)' fails its CRC-32 check (the data is damaged)")
        }
        return bytes
    }
}
