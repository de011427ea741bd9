import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file atomically: the bytes go to a temporary file in the destination's directory,
/// which is flushed to disk and then renamed over the destination. Readers (and a crash at any
/// point) see either the old file or the complete new one, never a partial file; on failure the
/// temporary file is removed.
enum AtomicFile {
    /// Sequential writer handed to the body of ``write(to:_:)``.
    struct Sink {
        fileprivate let descriptor: Int32
        fileprivate let destination: String

        /// Appends bytes, retrying short and interrupted writes.
        func append(_ bytes: UnsafeRawBufferPointer) throws {
            guard var cursor = bytes.baseAddress else { return }
            var remaining = bytes.count
            while remaining > 0 {
                let written = posixWrite(descriptor, cursor, min(remaining, 1 << 30))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SafeTensorsError.writeFailed(file: destination, reason: "write error: \(AtomicFile.errorText())")
                }
                if written == 0 {
                    throw SafeTensorsError.writeFailed(file: destination, reason: "write made no progress")
                }
                cursor += written
                remaining -= written
            }
        }

        /// Appends the bytes of `data`.
        func append(_ data: [UInt8]) throws {
            try data.withUnsafeBytes { try append($0) }
        }
    }

    /// Runs `body` to produce the file's bytes, then atomically replaces `url` with them.
    /// `beforeReplacing` runs once the new file is complete and flushed, just before the rename
    /// (a failure there leaves `url` as it was).
    static func write(to url: URL, beforeReplacing: () throws -> Void = {}, _ body: (Sink) throws -> Void) throws {
        let destination = url.path
        let directory = url.deletingLastPathComponent().path
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0 ... .max)).tmp").path

        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw SafeTensorsError.writeFailed(
                file: destination, reason: "cannot create a temporary file in '\(directory)': \(errorText())")
        }
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { close(descriptor) }
            if !renamed { unlink(temporary) }
        }
        try body(Sink(descriptor: descriptor, destination: destination))
        guard fsync(descriptor) == 0 else {
            throw SafeTensorsError.writeFailed(file: destination, reason: "cannot flush to disk: \(errorText())")
        }
        isOpen = false
        guard close(descriptor) == 0 else {
            throw SafeTensorsError.writeFailed(file: destination, reason: "cannot close the temporary file: \(errorText())")
        }
        try beforeReplacing()
        guard rename(temporary, destination) == 0 else {
            throw SafeTensorsError.writeFailed(
                file: destination, reason: "cannot move the temporary file into place: \(errorText())")
        }
        renamed = true
        // Make the rename itself durable (best effort: not every file system allows it).
        let directoryDescriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// The message of the current `errno`.
    static func errorText() -> String {
        String(cString: strerror(errno))
    }
}

/// The POSIX `write`, under a name that does not clash with the methods above.
@inline(__always)
private func posixWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
