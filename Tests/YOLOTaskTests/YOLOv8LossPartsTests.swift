import Foundation
import FuseKit
import Testing
import YOLOTask

/// Unit tests of the loss parts on hand-made boxes, with the expected values worked out in the
/// comments (and confirmed with the PyTorch transcription in `Fixtures/yolov8_reference.py`).
@Suite struct YOLOv8LossPartsTests {
    static func near(_ a: Float, _ b: Float, _ tolerance: Float = 1e-5) -> Bool { Swift.abs(a - b) <= tolerance }

    // MARK: anchors, dist2bbox, bbox2dist

    @Test func anchorsAreCellCentresLevelAfterLevel() {
        // Level 0: 2 rows x 3 columns at stride 8; level 1: 1 x 2 at stride 16.
        let grid = AnchorGrid(levelSizes: [[2, 3], [1, 2]], strides: [8, 16])
        #expect(grid.count == 8)
        #expect(grid.x == [0.5, 1.5, 2.5, 0.5, 1.5, 2.5, 0.5, 1.5])
        #expect(grid.y == [0.5, 0.5, 0.5, 1.5, 1.5, 1.5, 0.5, 0.5])
        #expect(grid.stride == [8, 8, 8, 8, 8, 8, 16, 16])
    }

    @Test func distancesToBoxesAndBack() {
        // Anchor (5.5, 3.5), distances l 1, t 2, r 3, b 4:
        // corners (5.5 - 1, 3.5 - 2, 5.5 + 3, 3.5 + 4) = (4.5, 1.5, 8.5, 7.5);
        // centre ((4.5 + 8.5) / 2, (1.5 + 7.5) / 2) = (6.5, 4.5), size (4, 6).
        let anchors = Tensor(shape: [2, 2], scalars: [5.5, 3.5, 0.5, 0.5])
        let distances = Tensor(shape: [2, 4], scalars: [1, 2, 3, 4, 0, 0, 0.25, 0.75])
        let corners = BoxGeometry.distancesToBoxes(distances, anchors: anchors)
        #expect(corners.scalars == [4.5, 1.5, 8.5, 7.5, 0.5, 0.5, 0.75, 1.25])
        let centerSize = BoxGeometry.distancesToBoxes(distances, anchors: anchors, centerSize: true)
        #expect(centerSize.scalars == [6.5, 4.5, 4, 6, 0.625, 0.875, 0.25, 0.75])
        // bbox2dist inverts it, clamped to [0, 15 - 0.01] (the loss passes regMax - 1 = 15).
        #expect(BoxGeometry.boxesToDistances(corners, anchors: anchors, maximumDistance: 15).scalars == distances.scalars)
        // A box 20 cells to the left: l = 5.5 - (-20) = 25.5 -> 14.99; an anchor right of the box: r = 4 - 5.5 < 0 -> 0.
        let far = Tensor(shape: [1, 4], scalars: [-20, 1.5, 4, 7.5])
        let clamped = BoxGeometry.boxesToDistances(far, anchors: Tensor(shape: [1, 2], scalars: [5.5, 3.5]), maximumDistance: 15).scalars
        #expect(Self.near(clamped[0], 14.99) && clamped[1] == 2 && clamped[2] == 0 && clamped[3] == 4)
    }

    // MARK: CIoU

    @Test func completeIoUOfHandMadeBoxes() {
        // (a) Side by side, same shape: (0,0,2,2) and (1,0,3,2): intersection 1x2 = 2, union 4 + 4 - 2 = 6,
        //     IoU 1/3; centres 1 apart -> ρ² = 1; enclosing 3x2 -> c² = 13; v = 0 (same aspect):
        //     CIoU = 1/3 - 1/13 = 10/39 = 0.2564103.
        // (b) (0,0,4,2) and (0,0,2,2): IoU 4/8 = 0.5; ρ² = 1, c² = 4² + 2² = 20 -> 0.05;
        //     v = 4/π² (atan 1 - atan 2)² = 0.4052847 x 0.1035234 = 0.0419557; α = v / (v - 0.5 + 1) = 0.0774153;
        //     CIoU = 0.5 - 0.05 - 0.0032480 = 0.4467520.
        // (c) Disjoint (0,0,1,1) and (2,0,3,1): IoU 0; ρ² = 4, c² = 3² + 1² = 10: CIoU = -0.4.
        // (d) Identical boxes: 1.
        let first = Tensor(shape: [4, 4], scalars: [0, 0, 2, 2, 0, 0, 4, 2, 0, 0, 1, 1, 0, 0, 2, 2])
        let second = Tensor(shape: [4, 4], scalars: [1, 0, 3, 2, 0, 0, 2, 2, 2, 0, 3, 1, 0, 0, 2, 2])
        let expected: [Float] = [0.2564103, 0.4467520, -0.4, 1]
        let values = BoxGeometry.completeIoU(first, second).scalars
        for i in 0..<4 {
            #expect(Self.near(values[i], expected[i], 2e-6), "case \(i): \(values[i]) vs \(expected[i])")
            let a = first.scalars, b = second.scalars
            let scalar = BoxGeometry.completeIoU((a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]), (b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]))
            #expect(Self.near(scalar, expected[i], 2e-6))
        }
        // Symmetric in its arguments.
        #expect(zip(BoxGeometry.completeIoU(second, first).scalars, values).allSatisfy { Self.near($0, $1, 1e-6) })
    }

    @Test func completeIoUGradientTreatsAlphaAsConstant() {
        // Case (a) above with the second box shifted by s along x: box2 = (1 + s, 0, 3 + s, 2).
        // IoU = 2 (1 - s) / (6 + 2 s), so dIoU/ds at 0 = (-2 x 6 - 2 x 2) / 36 = -0.4444444;
        // ρ²/c² = (1 + s)² / ((3 + s)² + 4), so d/ds at 0 = (2 x 13 - 1 x 6) / 169 = 0.1183432;
        // v = 0 with zero derivative (both aspects stay 1). dCIoU/ds = -0.5627876 = dx1 + dx2.
        let box1 = Tensor(shape: [1, 4], scalars: [0, 0, 2, 2])
        let (_, gradient) = valueWithGradient(at: [Tensor(shape: [1, 4], scalars: [1, 0, 3, 2])]) { x in
            BoxGeometry.completeIoU(box1, x[0]).sum()
        }
        let g = gradient[0].scalars
        #expect(Self.near(g[0] + g[2], -0.5627876, 1e-5), "d/ds \(g[0] + g[2])")
    }

    // MARK: DFL

    @Test func distributionFocalLossOfHandMadeLogits() {
        // Logits (0, ln 3, 0, 0): softmax (1/6, 1/2, 1/6, 1/6).
        // t = 1.25: bins 1 and 2 with weights 0.75 and 0.25: 0.75 ln 2 + 0.25 ln 6 = 0.5198604 + 0.4479399 = 0.9678003.
        // t = 5 is clamped to 4 - 1 - 0.01 = 2.99: 0.01 ln 6 + 0.99 ln 6 = ln 6 = 1.7917595.
        // t = -1 is clamped to 0: bin 0 with weight 1: ln 6.  t = 2: bin 2 with weight 1: ln 6.
        // Uniform logits over 16 bins: ln 16 = 2.7725887 for any target.
        let row: [Float] = [0, Foundation.log(3), 0, 0]
        let losses = DistributionFocalLoss.loss(logits: Tensor(shape: [4, 4], scalars: row + row + row + row), targets: [1.25, 5, -1, 2]).scalars
        let expected: [Float] = [0.9678003, 1.7917595, 1.7917595, 1.7917595]
        for i in 0..<4 { #expect(Self.near(losses[i], expected[i], 2e-6), "target \(i): \(losses[i])") }
        // Ultralytics' DFLoss averages the four sides: (0.9678003 + 3 x 1.7917595) / 4 = 1.5857697.
        #expect(Self.near(losses.reduce(0, +) / 4, 1.5857697, 2e-6))
        let uniform = DistributionFocalLoss.loss(logits: Tensor.zeros([2, 16]), targets: [3.3, 14.99]).scalars
        #expect(uniform.allSatisfy { Self.near($0, 2.7725887, 2e-6) })
    }

    // MARK: TaskAlignedAssigner

    /// Four anchors in a row at (4, 4), (12, 4), (20, 4), (28, 4) px; box A (class 0) = (0, 0, 16, 8)
    /// holds anchors 0 and 1; box B (class 1) = (8, 0, 32, 8) holds anchors 1, 2 and 3.
    /// Predicted boxes: anchor 0 = A exactly, 1 = (8, 0, 24, 8), 2 = B exactly, 3 = (24, 0, 32, 8);
    /// scores (class 0, class 1): (0.81, 0.1), (0.64, 0.36), (0.2, 0.49), (0.05, 0.25).
    ///
    /// CIoUs: A-0 = 1, A-1 = 1/3 - 64/640 = 0.2333333, B-1 = 2/3 - 16/640 - 0.000195 = 0.6414717,
    /// B-2 = 1, B-3 = 1/3 - 0.1 - 0.0100698 = 0.2232635.
    /// Alignments t = s^0.5 u^6: A-0 = 0.9, A-1 = 0.8 x 0.2333333^6 = 0.0001291,
    /// B-1 = 0.6 x 0.6414717^6 = 0.0418038, B-2 = 0.7, B-3 = 0.5 x 0.2232635^6 = 0.0000619.
    static let anchorX: [Float] = [4, 12, 20, 28], anchorY: [Float] = [4, 4, 4, 4]
    static let predictedBoxes: [Float] = [0, 0, 16, 8, 8, 0, 24, 8, 8, 0, 32, 8, 24, 0, 32, 8]
    static let predictedScores: [Float] = [0.81, 0.1, 0.64, 0.36, 0.2, 0.49, 0.05, 0.25]
    static let truth = [LabeledBox(classIndex: 0, x1: 0, y1: 0, x2: 16, y2: 8), LabeledBox(classIndex: 1, x1: 8, y1: 0, x2: 32, y2: 8)]

    @Test func assignerKeepsTheBestOverlapForSharedAnchorsAndNormalisesTargets() {
        // Top-k 10 (more than there are anchors): A's candidates {0, 1}, B's {1, 2, 3}. Anchor 1 is
        // claimed twice and goes to B (CIoU 0.64 > 0.23). Targets: anchor 0 (class 0) = 0.9 x 1 / 0.9 = 1;
        // B's best alignment 0.7 and overlap 1: anchor 1 = 0.0418038 / 0.7 = 0.0597198,
        // anchor 2 = 1, anchor 3 = 0.0000619 / 0.7 = 0.0000885 (all class 1).
        let assigner = TaskAlignedAssigner(topK: 10, classes: 2, alpha: 0.5, beta: 6)
        let result = assigner.assign(scores: Self.predictedScores, boxes: Self.predictedBoxes, anchorX: Self.anchorX, anchorY: Self.anchorY,
                                     groundTruth: Self.truth)
        #expect(result.isForeground == [true, true, true, true])
        #expect(result.groundTruthIndex == [0, 1, 1, 1])
        let expected: [Float] = [1, 0, 0, 0.0597198, 0, 1, 0, 0.0000885]
        for i in 0..<8 { #expect(Self.near(result.targetScores[i], expected[i], 2e-6), "target \(i): \(result.targetScores[i])") }
        #expect(Self.near(result.targetScoreSum(anchor: 1), 0.0597198, 2e-6))
    }

    @Test func assignerTopOneTakesTheBestAlignedAnchorPerBox() {
        // Top-k 1: A keeps anchor 0 (t 0.9), B keeps anchor 2 (t 0.7); anchors 1 and 3 are background
        // (ground-truth index 0, target 0). Each positive's target is t / t x 1 = 1.
        let result = TaskAlignedAssigner(topK: 1, classes: 2, alpha: 0.5, beta: 6).assign(scores: Self.predictedScores, boxes: Self.predictedBoxes,
                                                                     anchorX: Self.anchorX, anchorY: Self.anchorY, groundTruth: Self.truth)
        #expect(result.isForeground == [true, false, true, false])
        #expect(result.groundTruthIndex == [0, 0, 1, 0])
        #expect(result.targetScores == [1, 0, 0, 0, 0, 1, 0, 0])
        #expect(result.foregroundAnchors == [0, 2])
    }

    @Test func assignerWithoutBoxesOrWithAnAnchorOnTheEdge() {
        let assigner = YOLOv8Configuration.with { $0.classes = 2 }.loss.assigner
        let empty = assigner.assign(scores: Self.predictedScores, boxes: Self.predictedBoxes, anchorX: Self.anchorX, anchorY: Self.anchorY, groundTruth: [])
        #expect(empty.isForeground == [false, false, false, false] && empty.targetScores.allSatisfy { $0 == 0 })
        // An anchor exactly on a box edge (x = 12 for a box ending at 12) is not inside (deltas must exceed 1e-9).
        let edge = assigner.assign(scores: Self.predictedScores, boxes: Self.predictedBoxes, anchorX: Self.anchorX, anchorY: Self.anchorY,
                                   groundTruth: [LabeledBox(classIndex: 0, x1: 0, y1: 0, x2: 12, y2: 8)])
        #expect(edge.foregroundAnchors == [0])
    }

    // MARK: NMS

    @Test func classAwareSuppressionKeepsScoreOrder() {
        func detection(_ c: Int, _ box: [Double], _ score: Double) -> Detection {
            Detection(box: BoundingBox(classIndex: c, minX: box[0], minY: box[1], maxX: box[2], maxY: box[3]), score: score)
        }
        let d0 = detection(0, [0, 0, 10, 10], 0.9)
        let d1 = detection(0, [1, 1, 11, 11], 0.8)     // IoU with d0: 81 / 119 = 0.681
        let d2 = detection(1, [0, 0, 10, 10], 0.85)    // same box as d0, other class: never suppressed by it
        let d3 = detection(0, [20, 20, 30, 30], 0.3)
        let d4 = detection(0, [0, 0, 10, 9], 0.2)      // below the confidence threshold 0.25
        let d5 = detection(1, [0.5, 0, 10.5, 10], 0.6) // IoU with d2: 95 / 105 = 0.905
        let d6 = detection(0, [2, 2, 12, 12], 0.7)     // IoU with d0: 64 / 136 = 0.471, with d1: 81 / 119 = 0.681
        let all = [d3, d4, d1, d5, d0, d6, d2]
        // IoU 0.5: d0 kept, suppresses d1 (0.681); d2 kept, suppresses d5; d6 (0.471 with d0) kept: the
        // suppressed d1 does not suppress it; d3 kept; d4 dropped by confidence.
        #expect(NonMaxSuppression(confidenceThreshold: 0.25, iouThreshold: 0.5, maxDetections: 300)(all) == [d0, d2, d6, d3])
        // IoU 0.7: d1 survives (0.681 <= 0.7) and then suppresses nothing (d6 vs d1: 0.681).
        #expect(NonMaxSuppression(confidenceThreshold: 0.25, iouThreshold: 0.7, maxDetections: 300)(all) == [d0, d2, d1, d6, d3])
        #expect(NonMaxSuppression(confidenceThreshold: 0.25, iouThreshold: 0.5, maxDetections: 2)(all) == [d0, d2])
        #expect(NonMaxSuppression(confidenceThreshold: 0.1, iouThreshold: 0.95, maxDetections: 300)(all).count == 7)
    }

    @Test func headDecodingClipsAndNormalisesBoxes() {
        // One 2x2 level at stride 32 on a 64x64 image, regMax 4, two classes. Uniform bin logits give
        // an expected distance of 1.5 cells: anchor 0 at (0.5, 0.5) cells -> corners (-1, -1, 2, 2) cells
        // = (-32, -32, 64, 64) px, clipped to the image: (0, 0, 1, 1) normalised. Anchor 3's bins put all
        // mass on bin 0 (left, top) and bin 1 (right, bottom): (1.5, 1.5, 2.5, 2.5) cells -> (48, 48, 80, 80)
        // px -> clipped (0.75, 0.75, 1, 1). Class logits: anchor 0 (2, -1) -> class 0, sigmoid(2) = 0.8807971;
        // anchor 3 (-3, 1) -> class 1, sigmoid(1) = 0.7310586; anchors 1 and 2 below 0.25.
        let bins = 4, anchors = 4
        var distributions = [Float](repeating: 0, count: 4 * bins * anchors)
        for side in 0..<4 {
            for bin in 0..<bins { distributions[(side * bins + bin) * anchors + 3] = bin == (side < 2 ? 0 : 1) ? 40 : 0 }
        }
        let logits: [Float] = [2, -5, -5, -3, -1, -5, -5, 1]
        let head = YOLOv8HeadOutput(boxDistributions: Tensor(shape: [1, 16, 4], scalars: distributions),
                                    classLogits: Tensor(shape: [1, 2, 4], scalars: logits),
                                    anchors: AnchorGrid(levelSizes: [[2, 2]], strides: [32]), imageHeight: 64, imageWidth: 64)
        let detections = head.detections(YOLOv8Configuration().suppression)[0]
        #expect(detections.count == 2)
        #expect(detections[0].box == BoundingBox(classIndex: 0, minX: 0, minY: 0, maxX: 1, maxY: 1))
        #expect(Swift.abs(detections[0].score - 0.8807971) < 1e-6)
        let second = detections[1].box
        #expect(second.classIndex == 1 && Swift.abs(second.minX - 0.75) < 1e-6 && Swift.abs(second.minY - 0.75) < 1e-6
                && second.maxX == 1 && second.maxY == 1)
        #expect(Swift.abs(detections[1].score - 0.7310586) < 1e-6)
    }

    // MARK: YOLO text

    @Test func predictionsInTheYOLOTextFormat() throws {
        let detections = [Detection(box: BoundingBox(classIndex: 1, centerX: 0.5, centerY: 0.25, width: 0.125, height: 0.2), score: 0.875),
                          Detection(box: BoundingBox(classIndex: 0, centerX: 0.1234567, centerY: 1, width: 0.00001, height: 0.5), score: 0.0012345678)]
        let text = YOLOPredictionFile.text(detections)
        #expect(text == "1 0.5 0.25 0.125 0.2 0.875\n0 0.123457 1 1e-05 0.5 0.00123457\n")
        #expect(YOLOPredictionFile.text([]) == "")
        let parsed = try YOLOLabels.parse(text)
        #expect(parsed.count == 2 && parsed[0] == detections[0] && Swift.abs(parsed[1].score - 0.00123457) < 1e-12)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("yolo-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        try YOLOPredictionFile.write(detections, to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == text)
    }
}
