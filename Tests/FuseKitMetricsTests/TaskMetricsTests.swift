import FuseKitImage
import FuseKitMetrics
import Testing

@Suite("Segmentation metrics")
struct SegmentationMetricsTests {
    @Test("a tiny confusion case worked by hand")
    func tinyCase() {
        var matrix = ConfusionMatrix(classCount: 4)
        // Pixels: (label, prediction) = (0,0) (0,1) (1,1) (1,1) (2,0), and one ignored pixel.
        matrix.add(prediction: [0, 1, 1, 1, 0, 2], label: [0, 0, 1, 1, 2, 255])
        let report = matrix.report()
        #expect(report.intersection == [1, 2, 0, 0])
        #expect(report.union == [3, 3, 1, 0])
        #expect(report.labelArea == [2, 2, 1, 0])
        #expect(report.classIoU[0]! == 1.0 / 3 && report.classIoU[1]! == 2.0 / 3 && report.classIoU[2]! == 0)
        #expect(report.classIoU[3] == nil && report.classAccuracy[3] == nil)  // absent class: skipped
        #expect(report.classAccuracy[0]! == 0.5 && report.classAccuracy[1]! == 1 && report.classAccuracy[2]! == 0)
        #expect(abs(report.meanIoU! - 1.0 / 3) < 1e-12)
        #expect(report.meanAccuracy! == 0.5)
        #expect(report.overallAccuracy! == 0.6)
        #expect(SegmentationReport.percent(report.meanIoU) == 33.33)
    }

    @Test("accumulates over images; a class only predicted has IoU 0 and no accuracy")
    func accumulation() {
        var matrix = ConfusionMatrix(classCount: 3)
        matrix.add(prediction: LabelMap(width: 2, height: 1, values: [0, 0]), label: LabelMap(width: 2, height: 1, values: [0, 0]))
        matrix.add(prediction: LabelMap(width: 2, height: 1, values: [2, 1]), label: LabelMap(width: 2, height: 1, values: [1, 1]))
        let report = matrix.report()
        #expect(report.classIoU[2] == 0)
        #expect(report.classAccuracy[2] == nil)
        #expect(report.classIoU[1]! == 0.5 && report.classAccuracy[1]! == 0.5)
        #expect(abs(report.meanIoU! - (1 + 0.5 + 0) / 3) < 1e-12)
        #expect(report.meanAccuracy! == 0.75)  // classes 0 and 1 only
        var other = ConfusionMatrix(classCount: 3)
        other.add(prediction: [1], label: [1])
        matrix.merge(other)
        #expect(matrix.report().intersection == [2, 2, 0])
    }
}

@Suite("Detection metrics")
struct DetectionMetricsTests {
    static func box(_ cls: Int, _ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) -> BoundingBox {
        BoundingBox(classIndex: cls, minX: x0, minY: y0, maxX: x1, maxY: y1)
    }

    /// Class 0: three ground-truth boxes over two images, five detections.
    /// Sorted by score: D5 0.95 TP, D1 0.90 TP, D3 0.85 FP, D2 0.80 (IoU 0.784: TP up to 0.75), D4 0.60 FP.
    static func evaluator() -> DetectionEvaluator {
        var evaluator = DetectionEvaluator()
        evaluator.add(detections: [Detection(box: box(0, 0.1, 0.1, 0.3, 0.3), score: 0.9),      // D1 = G1
                                   Detection(box: box(0, 0.6, 0.6, 0.8, 0.855), score: 0.8),    // D2 ~ G2 (IoU 0.04 / 0.051)
                                   Detection(box: box(0, 0.4, 0.4, 0.5, 0.5), score: 0.85),     // D3 on nothing
                                   Detection(box: box(2, 0.4, 0.4, 0.5, 0.5), score: 0.5)],     // class without ground truth
                      groundTruth: [box(0, 0.1, 0.1, 0.3, 0.3), box(0, 0.6, 0.6, 0.8, 0.8), box(1, 0, 0, 0.1, 0.1)])
        evaluator.add(detections: [Detection(box: box(0, 0.2, 0.2, 0.4, 0.5), score: 0.6),      // D4: G3 already taken
                                   Detection(box: box(0, 0.2, 0.2, 0.4, 0.4), score: 0.95)],    // D5 = G3
                      groundTruth: [box(0, 0.2, 0.2, 0.4, 0.4)])
        return evaluator
    }

    @Test("a hand-worked AP: 101-point interpolation")
    func handWorked() throws {
        let evaluator = Self.evaluator()
        // IoU <= 0.75: TP TP FP TP FP -> recall 1/3 2/3 2/3 1 1, precision 1 1 2/3 3/4 3/5, made monotone
        // 1 1 3/4 3/4 3/5. Recall points 0...0.33 (34) and 0.34...0.66 (33) take 1, 0.67...1 (34) take 3/4.
        let ap50 = try #require(evaluator.averagePrecision(classIndex: 0, iouThreshold: 0.5))
        #expect(abs(ap50 - 92.5 / 101) < 1e-12)
        // IoU >= 0.8: D2 is a false positive: recall reaches 2/3 only -> 67 points of precision 1.
        let ap85 = try #require(evaluator.averagePrecision(classIndex: 0, iouThreshold: 0.85))
        #expect(abs(ap85 - 67.0 / 101) < 1e-12)

        let report = evaluator.report()
        #expect(report.classes.map(\.classIndex) == [0, 1])  // class 2 has no ground truth
        let class0 = report.classes[0]
        #expect(abs(class0.ap50 - 92.5 / 101) < 1e-12)
        #expect(abs(class0.ap75 - 92.5 / 101) < 1e-12)
        // Thresholds .50 ... .75 (six) give 92.5/101, .80 ... .95 (four) give 67/101.
        #expect(abs(class0.ap50to95 - (6 * 92.5 + 4 * 67) / 1010) < 1e-12)
        #expect(report.classes[1].ap50 == 0)  // ground truth, no detections
        #expect(abs(report.mAP50! - 92.5 / 101 / 2) < 1e-12)
        #expect(abs(report.mAP50to95! - (6 * 92.5 + 4 * 67) / 1010 / 2) < 1e-12)
        #expect(evaluator.averagePrecision(classIndex: 2, iouThreshold: 0.5) == nil)
    }

    @Test("greedy matching takes the highest-IoU unmatched box; per-image cap on detections")
    func matchingAndCap() throws {
        var evaluator = DetectionEvaluator(maxDetectionsPerImage: 1)
        evaluator.add(detections: [Detection(box: Self.box(0, 0, 0, 0.2, 0.2), score: 0.9),
                                   Detection(box: Self.box(0, 0.5, 0.5, 0.7, 0.7), score: 0.8)],
                      groundTruth: [Self.box(0, 0, 0, 0.2, 0.2), Self.box(0, 0.5, 0.5, 0.7, 0.7)])
        // Only the first detection counts: recall 1/2 with precision 1 -> 51 of 101 points.
        #expect(abs(try #require(evaluator.averagePrecision(classIndex: 0, iouThreshold: 0.5)) - 51.0 / 101) < 1e-12)

        var overlap = DetectionEvaluator()
        // One detection overlapping two boxes: it must take the better one (IoU 0.5 vs 1).
        overlap.add(detections: [Detection(box: Self.box(0, 0, 0, 0.2, 0.2), score: 0.9),
                                 Detection(box: Self.box(0, 0.1, 0, 0.3, 0.2), score: 0.8)],
                    groundTruth: [Self.box(0, 0.1, 0, 0.3, 0.2), Self.box(0, 0, 0, 0.2, 0.2)])
        #expect(try #require(overlap.averagePrecision(classIndex: 0, iouThreshold: 0.5)) == 1)
    }

    @Test("COCO threshold and recall grids match numpy's linspace")
    func grids() {
        #expect(DetectionEvaluator.cocoThresholds.count == 10)
        #expect(DetectionEvaluator.cocoThresholds.first == 0.5 && DetectionEvaluator.cocoThresholds.last == 0.95)
        #expect(DetectionEvaluator.recallPoints.count == 101 && DetectionEvaluator.recallPoints[67] == 0.67)
    }
}
