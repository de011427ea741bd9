import Foundation
import FuseKitImage
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a TensorBoard event file, so that `tensorboard --logdir DIR` shows scalars, images and
/// text logged from Swift (no TensorFlow or Python involved; see ``TensorBoardEncoding`` for the
/// format).
///
/// ```swift
/// let board = try TensorBoardWriter(directory: runDirectory.appendingPathComponent("tensorboard"))
/// try board.addScalars([("loss/L_f", 0.31), ("lr/fusion", 1e-4)], step: 12)
/// try board.addImage("preview/fused", fusedImage, step: 12)
/// try board.addText("recipe", "    " + recipeText.replacingOccurrences(of: "\n", with: "\n    "), step: 0)
/// ```
///
/// Each writer creates a new file `events.out.tfevents.<seconds>.<host>.<pid>.<n>` in the
/// directory and appends every event to it as it is logged, one write per event, so a running
/// TensorBoard sees it at once and a crash loses nothing already logged. TensorBoard merges
/// the files of one directory into one run. A resumed run passes `purgeFrom:` its first step:
/// TensorBoard then drops what earlier files logged at that step and later, which the resumed
/// run logs again.
///
/// The writer is thread-safe.
public final class TensorBoardWriter: Sendable {
    /// The event file.
    public let file: URL
    private let handle: Mutex<FileHandle?>

    private static let fileCounter = Atomic<Int>(0)

    /// Creates the directory if needed and starts a new event file in it.
    ///
    /// - Parameter purgeFrom: the first step this writer logs, when it continues a run whose
    ///   earlier files went further (a resumed run).
    /// - Throws: ``TensorBoardError/writeFailed(file:reason:)``.
    public init(directory: URL, purgeFrom: Int? = nil) throws {
        let now = Date().timeIntervalSince1970
        let counter = Self.fileCounter.add(1, ordering: .relaxed).newValue
        file = directory.appendingPathComponent("events.out.tfevents.\(Int(now)).\(Self.hostName()).\(getpid()).\(counter)")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TensorBoardError.writeFailed(file: file.path, reason: "cannot create the directory: \(error.localizedDescription)")
        }
        guard FileManager.default.createFile(atPath: file.path, contents: nil), let handle = FileHandle(forWritingAtPath: file.path) else {
            throw TensorBoardError.writeFailed(file: file.path, reason: "cannot create the file")
        }
        self.handle = Mutex(handle)
        try write([TensorBoardEncoding.fileVersionEvent(wallTime: now)])
        if let purgeFrom {
            try write([TensorBoardEncoding.sessionStartEvent(step: purgeFrom, wallTime: now)])
        }
    }

    deinit {
        close()
    }

    /// Logs one scalar.
    public func addScalar(_ tag: String, _ value: Double, step: Int) throws {
        try addScalars([(tag, value)], step: step)
    }

    /// Logs several scalars of one step in one event.
    public func addScalars(_ values: [(tag: String, value: Double)], step: Int) throws {
        guard !values.isEmpty else { return }
        try add(values.map { .scalar(tag: $0.tag, value: Float($0.value)) }, step: step)
    }

    /// Logs an image (8-bit PNG; 1 to 4 channels: gray, gray and alpha, RGB, RGBA).
    public func addImage(_ tag: String, _ image: Image, step: Int) throws {
        let png: Data
        do {
            png = try image.encoded(as: .png)
        } catch {
            throw TensorBoardError.writeFailed(file: file.path, reason: "cannot encode image '\(tag)': \(error)")
        }
        try addImage(tag, png: Array(png), width: image.width, height: image.height, channels: image.channels, step: step)
    }

    /// Logs an image that is already PNG-encoded.
    public func addImage(_ tag: String, png: [UInt8], width: Int, height: Int, channels: Int, step: Int) throws {
        try add([.image(tag: tag, png: png, width: width, height: height, channels: channels)], step: step)
    }

    /// Logs text, shown by TensorBoard's text dashboard as Markdown (indent lines by four
    /// spaces to show them verbatim).
    public func addText(_ tag: String, _ text: String, step: Int) throws {
        try add([.text(tag: tag, text: text)], step: step)
    }

    /// Closes the file (later calls throw).
    public func close() {
        handle.withLock { handle in
            try? handle?.close()
            handle = nil
        }
    }

    // MARK: Writing

    private func add(_ values: [TensorBoardEncoding.Value], step: Int) throws {
        try write([TensorBoardEncoding.summaryEvent(values, step: step, wallTime: Date().timeIntervalSince1970)])
    }

    private func write(_ events: [[UInt8]]) throws {
        let bytes = events.flatMap(TensorBoardEncoding.record)
        try handle.withLock { handle in
            guard let handle else { throw TensorBoardError.writeFailed(file: file.path, reason: "the writer is closed") }
            do {
                try handle.write(contentsOf: bytes)
            } catch {
                throw TensorBoardError.writeFailed(file: file.path, reason: error.localizedDescription)
            }
        }
    }

    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingOccurrences(of: "/", with: "_")
    }
}

/// Why a TensorBoard event could not be written.
public enum TensorBoardError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Creating or appending to the event file failed.
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case .writeFailed(let file, let reason):
            return "cannot write TensorBoard events to '\(file)': \(reason)"
        }
    }
}
