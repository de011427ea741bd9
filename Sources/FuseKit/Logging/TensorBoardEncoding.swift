import FuseKitNN

/// The bytes of TensorBoard event files, encoded by hand: a handful of protobuf messages and the
/// TFRecord framing around them. (swift-protobuf would bring a code generator and its runtime for
/// five small messages whose layout has been fixed for years.)
///
/// The messages, from TensorFlow's `event.proto`, `summary.proto`, `tensor.proto` and
/// `tensor_shape.proto` (field numbers in brackets; only the fields written here):
///
/// ```
/// Event          { double wall_time [1]; int64 step [2]; string file_version [3];
///                  Summary summary [5]; SessionLog session_log [7] }
/// SessionLog     { SessionStatus status [1] }                    // START = 1
/// Summary        { repeated Value value [1] }
/// Summary.Value  { string tag [1]; float simple_value [2]; Image image [4];
///                  TensorProto tensor [8]; SummaryMetadata metadata [9] }
/// Summary.Image  { int32 height [1]; int32 width [2]; int32 colorspace [3];
///                  bytes encoded_image_string [4] }              // colorspace: 1 gray, 3 RGB, 4 RGBA
/// SummaryMetadata { PluginData plugin_data [1] }  PluginData { string plugin_name [1]; bytes content [2] }
/// TensorProto    { DataType dtype [1]; TensorShapeProto tensor_shape [2]; repeated bytes string_val [8] }
///                                                                // DT_STRING = 7; a scalar has no dims
/// ```
///
/// (The numbers were checked against the `tensorboard` package's compiled descriptors.)
/// Scalars are `simple_value`s, images are PNG `Summary.Image`s (the image dashboard reads
/// both directly), and text is a scalar string tensor tagged with the `text` plugin (whose
/// `TextPluginData` content is empty at version 0).
///
/// A TFRecord is `uint64 length, uint32 masked_crc32c(length), data, uint32 masked_crc32c(data)`,
/// all little-endian, where `masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8` over CRC-32C.
enum TensorBoardEncoding {
    /// The version string of the first event of every file.
    static let fileVersion = "brain.Event:2"

    /// One value of a summary.
    enum Value {
        case scalar(tag: String, value: Float)
        case image(tag: String, png: [UInt8], width: Int, height: Int, channels: Int)
        case text(tag: String, text: String)
    }

    /// The first event of a file.
    static func fileVersionEvent(wallTime: Double) -> [UInt8] {
        var event = ProtobufWriter()
        event.double(1, wallTime)
        event.string(3, fileVersion)
        return event.bytes
    }

    /// A `SessionLog` START event at `step`: TensorBoard drops the events of earlier files whose
    /// step is at least `step` (the steps a resumed run does again).
    static func sessionStartEvent(step: Int, wallTime: Double) -> [UInt8] {
        var log = ProtobufWriter()
        log.varint(1, 1)
        var event = ProtobufWriter()
        event.double(1, wallTime)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(7, log)
        return event.bytes
    }

    /// An event holding one summary with the given values.
    static func summaryEvent(_ values: [Value], step: Int, wallTime: Double) -> [UInt8] {
        var summary = ProtobufWriter()
        for value in values { summary.message(1, encode(value)) }
        var event = ProtobufWriter()
        event.double(1, wallTime)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        return event.bytes
    }

    private static func encode(_ value: Value) -> ProtobufWriter {
        var message = ProtobufWriter()
        switch value {
        case .scalar(let tag, let scalar):
            message.string(1, tag)
            message.float(2, scalar)
        case .image(let tag, let png, let width, let height, let channels):
            var image = ProtobufWriter()
            image.varint(1, UInt64(height))
            image.varint(2, UInt64(width))
            image.varint(3, UInt64(channels))
            image.bytes(4, png)
            message.string(1, tag)
            message.message(4, image)
        case .text(let tag, let text):
            var plugin = ProtobufWriter()
            plugin.string(1, "text")
            var metadata = ProtobufWriter()
            metadata.message(1, plugin)
            var tensor = ProtobufWriter()
            tensor.varint(1, 7) // DT_STRING
            tensor.message(2, ProtobufWriter()) // shape []: a scalar
            tensor.bytes(8, Array(text.utf8))
            message.string(1, tag)
            message.message(8, tensor)
            message.message(9, metadata)
        }
        return message
    }

    /// The TFRecord framing of one record.
    static func record(_ data: [UInt8]) -> [UInt8] {
        var framed: [UInt8] = []
        framed.reserveCapacity(data.count + 16)
        let length = littleEndianBytes(UInt64(data.count))
        framed += length
        framed += littleEndianBytes(maskedCRC(length))
        framed += data
        framed += littleEndianBytes(maskedCRC(data))
        return framed
    }

    /// TFRecord's masked CRC-32C.
    static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let crc = CRC32.castagnoli.checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    private static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}

/// Appends protobuf fields (wire types 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func key(_ field: Int, _ wireType: UInt64) {
        rawVarint(UInt64(field) << 3 | wireType)
    }

    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, 0)
        rawVarint(value)
    }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        rawVarint(UInt64(value.count))
        bytes += value
    }

    mutating func string(_ field: Int, _ value: String) {
        bytes(field, Array(value.utf8))
    }

    mutating func message(_ field: Int, _ value: ProtobufWriter) {
        bytes(field, value.bytes)
    }
}
