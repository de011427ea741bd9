import Foundation
import FuseKit

/// Ultralytics' `non_max_suppression` for detection (single label per box, class-aware): keep
/// boxes whose best class probability exceeds the confidence threshold, at most `maxCandidates`
/// of the highest; visit them by decreasing score (stable on ties) and drop every box of the
/// same class whose IoU with a kept one exceeds the IoU threshold (torchvision's `nms` on
/// class-offset boxes); keep at most `maxDetections`.
public struct NonMaxSuppression: Sendable, Equatable {
    /// Minimum best-class probability (strictly greater is kept); Ultralytics predicts with 0.25
    /// and validates (mAP) with 0.001.
    public var confidenceThreshold: Double
    /// IoU above which a lower-scored box of the same class is suppressed.
    public var iouThreshold: Double
    /// Detections kept per image.
    public var maxDetections: Int
    /// Candidates passed to the suppression, highest scores first (Ultralytics: 30000).
    public var maxCandidates: Int

    /// A suppression (``YOLOv8Configuration/suppression`` has Ultralytics' prediction settings).
    public init(confidenceThreshold: Double, iouThreshold: Double, maxDetections: Int, maxCandidates: Int = 30_000) {
        self.confidenceThreshold = confidenceThreshold
        self.iouThreshold = iouThreshold
        self.maxDetections = maxDetections
        self.maxCandidates = maxCandidates
    }

    /// The kept detections of one image, by decreasing score. Scores at or below the confidence
    /// threshold are dropped first. Boxes may be in any coordinates (IoU does not depend on the
    /// scale of either axis).
    public func callAsFunction(_ detections: [Detection]) -> [Detection] {
        guard maxDetections > 0 else { return [] }
        var order = detections.indices.filter { detections[$0].score > confidenceThreshold }
        order.sort { detections[$0].score > detections[$1].score || (detections[$0].score == detections[$1].score && $0 < $1) }
        if order.count > maxCandidates { order.removeLast(order.count - maxCandidates) }
        let corners = order.map { i -> (Float, Float, Float, Float) in
            let b = detections[i].box
            return (Float(b.minX), Float(b.minY), Float(b.maxX), Float(b.maxY))
        }
        let threshold = Float(iouThreshold)
        var suppressed = [Bool](repeating: false, count: order.count)
        var kept: [Detection] = []
        for i in order.indices where !suppressed[i] {
            let detection = detections[order[i]]
            kept.append(detection)
            if kept.count == maxDetections { break }
            for j in (i + 1)..<order.count where !suppressed[j] && detections[order[j]].box.classIndex == detection.box.classIndex {
                if BoxGeometry.intersectionOverUnion(corners[i], corners[j]) > threshold { suppressed[j] = true }
            }
        }
        return kept
    }
}

extension YOLOv8HeadOutput {
    /// Detections of every image (Ultralytics' inference decoding, NMS and box clipping):
    /// each anchor's best class, its probability as the score, its box from the expected side
    /// distances; candidates above the confidence threshold go through `suppression`; kept
    /// boxes are clipped to the image and normalised to it.
    public func detections(_ suppression: NonMaxSuppression) -> [[Detection]] {
        let count = anchors.count, nc = classes, bins = regMax
        let width = Double(imageWidth), height = Double(imageHeight)
        // sigmoid(x) > c  <=>  x > log(c / (1 - c)): test logits before decoding.
        let c = suppression.confidenceThreshold
        let logitThreshold: Float = c <= 0 ? -.infinity : (c >= 1 ? .infinity : Float(Foundation.log(c / (1 - c))))
        return (0..<batchSize).map { b in
            let logits = classLogits.pointer + b * nc * count
            let distributions = boxDistributions.pointer + b * 4 * bins * count
            var candidates: [Detection] = []
            for a in 0..<count {
                var best = 0, bestLogit = logits[a]
                for k in 1..<Swift.max(nc, 1) where logits[k * count + a] > bestLogit {
                    best = k
                    bestLogit = logits[k * count + a]
                }
                guard bestLogit >= logitThreshold else { continue }
                let score = 1 / (1 + Foundation.exp(-bestLogit))
                let side = Self.expectedDistances(distributions, anchor: a, anchors: count, bins: bins)
                let s = anchors.stride[a]
                let x1 = (anchors.x[a] - side.0) * s, y1 = (anchors.y[a] - side.1) * s
                let x2 = (anchors.x[a] + side.2) * s, y2 = (anchors.y[a] + side.3) * s
                // Ultralytics decodes to centre and size (pixels), then back to corners for NMS.
                let cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, w = x2 - x1, h = y2 - y1
                candidates.append(Detection(box: BoundingBox(classIndex: best, centerX: Double(cx), centerY: Double(cy),
                                                             width: Double(w), height: Double(h)),
                                            score: Double(score)))
            }
            return suppression(candidates).map { d in
                let x1 = Swift.min(Swift.max(d.box.minX, 0), width) / width, x2 = Swift.min(Swift.max(d.box.maxX, 0), width) / width
                let y1 = Swift.min(Swift.max(d.box.minY, 0), height) / height, y2 = Swift.min(Swift.max(d.box.maxY, 0), height) / height
                return Detection(box: BoundingBox(classIndex: d.box.classIndex, minX: x1, minY: y1, maxX: x2, maxY: y2), score: d.score)
            }
        }
    }
}

/// Prediction files in the YOLO text format: one line per detection, `class cx cy w h conf`
/// normalised, numbers printed with `%g` as Ultralytics' `save_txt` does.
public enum YOLOPredictionFile {
    /// The text of one image's detections.
    public static func text(_ detections: [Detection]) -> String {
        detections.map { d in
            let b = d.box
            return "\(b.classIndex) " + [b.centerX, b.centerY, b.width, b.height, d.score].map { String(format: "%g", $0) }.joined(separator: " ")
        }.joined(separator: "\n") + (detections.isEmpty ? "" : "\n")
    }

    /// Writes one image's detections to `url` (an empty file when there are none).
    public static func write(_ detections: [Detection], to url: URL) throws {
        try text(detections).write(to: url, atomically: true, encoding: .utf8)
    }
}
