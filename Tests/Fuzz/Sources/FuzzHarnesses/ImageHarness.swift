import Foundation
import FuseKitImage

/// The image readers on one input, as the datasets use them: the header reader
/// (`Image.dimensions`, which decides whether a pair's sizes match), the decoder
/// (`Image(contentsOf:)`) and the label reader (`LabelMap(contentsOf:)`, which keeps palette
/// indices).
///
/// Invariants checked when reading succeeds: the header reader and the decoder agree on the size
/// (a disagreement would let a pair pass validation and then fail, or be mismatched, in a batch);
/// samples are finite and in [0, 1]; a decoded image survives a PNG round trip exactly.
public enum ImageHarness {
    /// Fuzzes one input written to a file named with `fileExtension` (the readers use it only
    /// for messages; the format comes from the content).
    public static func run(_ data: Data, fileExtension: String) {
        let url = Fuzzing.scratchFile("input.\(fileExtension)", data)
        let header = try? Image.dimensions(ofFileAt: url)
        let image = try? Image(contentsOf: url)
        if let image {
            Fuzzing.expect(header != nil, "the decoder reads a \(image.width)x\(image.height) image but the header reader refuses it")
            if let header {
                Fuzzing.expect(header == (image.width, image.height),
                               "the header reader says \(header.width)x\(header.height), the decoder \(image.width)x\(image.height)")
            }
            Fuzzing.expect((1...4).contains(image.channels), "\(image.channels) channels")
            Fuzzing.expect(image.pixels.count == image.width * image.height * image.channels, "sample count")
            Fuzzing.expect(image.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, "a sample outside [0, 1]")
            if image.width * image.height <= 1 << 14 {
                checkRoundTrip(image)
            }
        }
        if let labels = try? LabelMap(contentsOf: url) {
            Fuzzing.expect(labels.values.count == labels.width * labels.height, "label count")
            if let header {
                Fuzzing.expect(header == (labels.width, labels.height), "the label map's size differs from the header's")
            }
        }
    }

    private static func checkRoundTrip(_ image: Image) {
        do {
            let encoded = try image.encoded(as: .png, bitDepth: image.bitDepth)
            let decoded = try Image(encoded: encoded)
            Fuzzing.expect(decoded == image, "a decoded \(image.width)x\(image.height)x\(image.channels) \(image.bitDepth)-bit image changes in a PNG round trip")
        } catch {
            Fuzzing.expect(false, "a decoded image cannot be written and read back as PNG: \(error)")
        }
    }
}
