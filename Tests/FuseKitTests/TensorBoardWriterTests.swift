import Foundation
import FuseKit
import Testing

/// TensorBoard event files, read back with a decoder written here from the format's
/// specification (TFRecord framing with masked CRC-32C computed bit by bit, protobuf wire
/// format), independent of the writer's encoder.
@Suite struct TensorBoardWriterTests {
    @Test func scalarsImagesAndTextReadBackWithValidRecords() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-tb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let writer = try TensorBoardWriter(directory: directory.appendingPathComponent("run"))
        let image = Image(width: 5, height: 3, channels: 3, pixels: (0 ..< 45).map { Float($0) / 44 })
        try writer.addScalars([("loss/L_f", 0.25), ("lr/fusion", 1e-4), ("hypergradient_norm", .nan)], step: 3)
        try writer.addScalar("loss/L_f", -1.5, step: 4)
        try writer.addImage("preview/fused", image, step: 4)
        try writer.addText("recipe", "    seed: 7\n    ✓ done", step: 0)
        writer.close()
        #expect(throws: TensorBoardError.self) { try writer.addScalar("late", 1, step: 5) }

        #expect(writer.file.deletingLastPathComponent().lastPathComponent == "run")
        #expect(writer.file.lastPathComponent.hasPrefix("events.out.tfevents."))
        let events = try EventFile.read(writer.file)
        #expect(events.count == 5)

        // The first event names the file version.
        #expect(events[0].string(3) == "brain.Event:2")
        #expect((events[0].double(1) ?? 0) > 1_600_000_000)

        // Scalars: one event with three values at step 3, one with one at step 4.
        #expect(events[1].int(2) == 3)
        let values = events[1].message(5)?.messages(1) ?? []
        #expect(values.map { $0.string(1) } == ["loss/L_f", "lr/fusion", "hypergradient_norm"])
        #expect(values[0].float(2) == 0.25 && values[1].float(2) == Float(1e-4) && values[2].float(2)?.isNaN == true)
        #expect(events[2].int(2) == 4 && events[2].message(5)?.messages(1).first?.float(2) == -1.5)

        // The image: size, colour space and PNG bytes that decode to the logged image.
        let imageValue = try #require(events[3].message(5)?.messages(1).first)
        #expect(imageValue.string(1) == "preview/fused")
        let summaryImage = try #require(imageValue.message(4))
        #expect(summaryImage.int(1) == 3 && summaryImage.int(2) == 5 && summaryImage.int(3) == 3)
        let png = try #require(summaryImage.bytes(4))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        let decoded = try Image(encoded: Data(png))
        #expect(decoded.width == 5 && decoded.height == 3 && decoded.channels == 3)
        #expect(zip(decoded.pixels, image.pixels).allSatisfy { Swift.abs($0 - $1) <= 0.5 / 255 + 1e-6 })

        // Text: a scalar DT_STRING tensor for the text plugin.
        let textValue = try #require(events[4].message(5)?.messages(1).first)
        #expect(textValue.string(1) == "recipe" && events[4].int(2) == 0)
        #expect(textValue.message(9)?.message(1)?.string(1) == "text")
        let tensor = try #require(textValue.message(8))
        #expect(tensor.int(1) == 7)
        #expect(tensor.message(2)?.fields.isEmpty == true)
        #expect(tensor.bytes(8).map { String(decoding: $0, as: UTF8.self) } == "    seed: 7\n    ✓ done")
    }

    @Test func aResumedRunAsksTensorBoardToDropTheStepsItRepeats() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-tb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try TensorBoardWriter(directory: directory)
        let second = try TensorBoardWriter(directory: directory, purgeFrom: 12)
        #expect(first.file != second.file)
        let events = try EventFile.read(second.file)
        #expect(events.count == 2)
        #expect(events[1].int(2) == 12 && events[1].message(7)?.int(1) == 1) // SessionLog START (field 7)
    }

    @Test func theDecoderCatchesDamagedRecords() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-tb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let writer = try TensorBoardWriter(directory: directory)
        try writer.addScalar("x", 1, step: 1)
        writer.close()
        var bytes = try Data(contentsOf: writer.file)
        bytes[bytes.count - 6] ^= 1 // inside the last record's data
        try bytes.write(to: writer.file)
        #expect(throws: EventFile.Problem.self) { try EventFile.read(writer.file) }
    }
}

/// A reader of TFRecord files of protobuf `Event` messages.
enum EventFile {
    struct Problem: Error, CustomStringConvertible { let description: String }

    /// The records of a file, each checked against its masked CRC-32C.
    static func read(_ url: URL) throws -> [Message] {
        let bytes = [UInt8](try Data(contentsOf: url))
        var position = 0
        var records: [Message] = []
        func little<T: FixedWidthInteger>(_ type: T.Type, _ at: Int) -> T {
            (0 ..< MemoryLayout<T>.size).reduce(T(0)) { $0 | T(bytes[at + $1]) << (8 * $1) }
        }
        while position < bytes.count {
            guard position + 12 <= bytes.count else { throw Problem(description: "a record header is cut at \(position)") }
            let length = Int(little(UInt64.self, position))
            guard masked(Array(bytes[position ..< position + 8])) == little(UInt32.self, position + 8) else {
                throw Problem(description: "bad length CRC at \(position)")
            }
            let start = position + 12
            guard start + length + 4 <= bytes.count else { throw Problem(description: "a record is cut at \(position)") }
            let data = Array(bytes[start ..< start + length])
            guard masked(data) == little(UInt32.self, start + length) else { throw Problem(description: "bad data CRC at \(position)") }
            records.append(try Message(data))
            position = start + length + 4
        }
        return records
    }

    /// CRC-32C, one bit at a time, then TFRecord's mask.
    static func masked(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0 ..< 8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0x82F6_3B78 : 0) }
        }
        crc = ~crc
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    /// The fields of one protobuf message.
    struct Message {
        enum Value { case varint(UInt64), fixed64(UInt64), fixed32(UInt32), bytes([UInt8]) }
        var fields: [(number: Int, value: Value)] = []

        init(_ bytes: [UInt8]) throws {
            var i = 0
            func varint() throws -> UInt64 {
                var result: UInt64 = 0, shift: UInt64 = 0
                while true {
                    guard i < bytes.count, shift < 64 else { throw Problem(description: "bad varint") }
                    let byte = bytes[i]
                    i += 1
                    result |= UInt64(byte & 0x7F) << shift
                    if byte < 0x80 { return result }
                    shift += 7
                }
            }
            func fixed(_ count: Int) throws -> UInt64 {
                guard i + count <= bytes.count else { throw Problem(description: "cut fixed field") }
                defer { i += count }
                return (0 ..< count).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * UInt64($1)) }
            }
            while i < bytes.count {
                let key = try varint()
                let number = Int(key >> 3)
                switch key & 7 {
                case 0: fields.append((number, .varint(try varint())))
                case 1: fields.append((number, .fixed64(try fixed(8))))
                case 5: fields.append((number, .fixed32(UInt32(try fixed(4)))))
                case 2:
                    let length = Int(try varint())
                    guard i + length <= bytes.count else { throw Problem(description: "cut length-delimited field") }
                    fields.append((number, .bytes(Array(bytes[i ..< i + length]))))
                    i += length
                default: throw Problem(description: "wire type \(key & 7)")
                }
            }
        }

        func bytes(_ number: Int) -> [UInt8]? {
            for field in fields where field.number == number { if case .bytes(let b) = field.value { return b } }
            return nil
        }
        func string(_ number: Int) -> String? { bytes(number).map { String(decoding: $0, as: UTF8.self) } }
        func message(_ number: Int) -> Message? { bytes(number).flatMap { try? Message($0) } }
        func messages(_ number: Int) -> [Message] {
            fields.compactMap { field in
                guard field.number == number, case .bytes(let b) = field.value else { return nil }
                return try? Message(b)
            }
        }
        func int(_ number: Int) -> Int? {
            for field in fields where field.number == number { if case .varint(let v) = field.value { return Int(Int64(bitPattern: v)) } }
            return nil
        }
        func double(_ number: Int) -> Double? {
            for field in fields where field.number == number { if case .fixed64(let v) = field.value { return Double(bitPattern: v) } }
            return nil
        }
        func float(_ number: Int) -> Float? {
            for field in fields where field.number == number { if case .fixed32(let v) = field.value { return Float(bitPattern: v) } }
            return nil
        }
    }
}
