import Foundation
import FuseKit
import FuseKitData
import FuseKitImage

/// The recipe parser (YAML through Yams, then FuseKit's validation) on one input.
public enum RecipeHarness {
    public static func run(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        do {
            _ = try Recipe.parse(text, file: "fuzz.yaml")
        } catch let error as RecipeError {
            Fuzzing.expect(error.file == "fuzz.yaml", "a recipe error that does not name the file: \(error)")
        } catch {
            Fuzzing.expect(false, "the recipe parser throws something other than a RecipeError: \(error)")
        }
    }
}

/// The YOLO txt label reader on one input. Invariant: what it reads, formatted and read again,
/// gives the same boxes (to the six decimals of the format).
public enum YOLOHarness {
    public static func run(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        guard let detections = try? YOLOLabels.parse(text) else { return }
        let boxes = detections.map(\.box)
        guard let reread = try? YOLOLabels.parse(YOLOLabels.format(boxes)) else {
            Fuzzing.expect(false, "formatted boxes cannot be read back: \(YOLOLabels.format(boxes))")
            return
        }
        Fuzzing.expect(reread.count == boxes.count, "\(boxes.count) boxes read back as \(reread.count)")
        for (a, b) in zip(reread.map(\.box), boxes) {
            Fuzzing.expect(a.classIndex == b.classIndex, "class \(b.classIndex) read back as \(a.classIndex)")
        }
    }
}

/// The Pascal VOC XML reader on one input (with M3FD's classes, and with an image size for files
/// without `<size>`). Invariant: the boxes are finite and the size positive.
public enum VOCHarness {
    public static func run(_ data: Data) {
        for imageSize in [nil, (width: 640, height: 480)] {
            guard let parsed = try? VOCAnnotation.parse(data, classNames: VOCAnnotation.m3fdClasses, imageSize: imageSize) else { continue }
            Fuzzing.expect(parsed.imageWidth > 0 && parsed.imageHeight > 0, "size \(parsed.imageWidth)x\(parsed.imageHeight)")
            for box in parsed.boxes {
                Fuzzing.expect([box.centerX, box.centerY, box.width, box.height].allSatisfy(\.isFinite), "a box that is not finite: \(box)")
                Fuzzing.expect(box.width >= 0 && box.height >= 0, "a box of negative size: \(box)")
            }
        }
    }
}
