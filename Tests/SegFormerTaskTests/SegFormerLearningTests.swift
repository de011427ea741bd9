import Foundation
import FuseKit
import SegFormerTask
import Testing

/// Learning checks on the synthetic scene generator: a task net trained from scratch for 300
/// steps (batches of 4 random-flipped 64x64 scenes from 96 generated with seed 1, Adam with a
/// cosine-decayed rate, 6 classes) must segment 24 held-out scenes (seed 2) far better than
/// predicting the training set's majority class everywhere. Both scores are printed.
///
/// Reproduce (release mode): `swift build -c release --build-tests` then
/// `swift test -c release --skip-build --filter SegFormerLearningTests`.
@Suite struct SegFormerLearningTests {
    /// Training and held-out scenes, with the network input: the mean of the gray infrared and
    /// visible images, a stand-in for a fused image.
    struct SceneData {
        let loader: BatchLoader
        let heldOutImages: Tensor
        let heldOutLabels: [[Int32]]
        let majorityClass: Int32

        init(size: Int, trainingScenes: Int, heldOutScenes: Int, batchSize: Int) {
            let generator = SyntheticSceneGenerator(width: size, height: size)
            let training = generator.samples(count: trainingScenes, seed: 1)
            loader = BatchLoader(source: training, options: BatchOptions(batchSize: batchSize, cropSize: nil, randomFlips: true, seed: 3))
            let heldOut = generator.scenes(count: heldOutScenes, seed: 2)
            heldOutImages = (Image.batchTensor(heldOut.map(\.infraredGray)) + Image.batchTensor(heldOut.map(\.visibleGray))) * 0.5
            heldOutLabels = heldOut.map { $0.segmentation.values }
            var counts = [Int](repeating: 0, count: SceneClass.allCases.count)
            for sample in training.samples { for v in sample.segmentation!.values { counts[Int(v)] += 1 } }
            majorityClass = Int32(counts.indices.max { counts[$0] < counts[$1] }!)
        }

        /// The scores of class maps [B, H, W] on the held-out scenes.
        func report(_ classMaps: Tensor) -> SegmentationReport {
            var matrix = ConfusionMatrix(classCount: SceneClass.allCases.count)
            let pixels = classMaps.count / heldOutLabels.count
            let values = classMaps.scalars
            for (i, labels) in heldOutLabels.enumerated() {
                matrix.add(prediction: values[(i * pixels)..<((i + 1) * pixels)].map { Int32($0) }, label: labels)
            }
            return matrix.report()
        }

        /// The scores of predicting the training set's majority class everywhere.
        var majorityReport: SegmentationReport {
            var matrix = ConfusionMatrix(classCount: SceneClass.allCases.count)
            for labels in heldOutLabels { matrix.add(prediction: [Int32](repeating: majorityClass, count: labels.count), label: labels) }
            return matrix.report()
        }
    }

    /// Trains `net` with Adam for `steps` steps; returns the trained state.
    static func train(_ net: any TaskNet, data: SceneData, steps: Int, learningRate: Float, seed: UInt64) throws -> ModelState {
        var state = net.initialState(seed: seed)
        let optimizer = Adam()
        var optimizerState = OptimizerState()
        let perEpoch = data.loader.batchesPerEpoch
        let schedule = LearningRateSchedule(.cosine(tMax: steps, etaMin: 0))
        for step in 0..<steps {
            let batch = try data.loader.batch(epoch: step / perEpoch, index: step % perEpoch)
            let images = (batch.infrared + batch.visible) * 0.5
            let targets = TaskTargets(segmentation: batch.segmentation)
            let context = ForwardContext(training: true, rng: RandomGenerator(seed: seed &+ UInt64(step)))
            let buffers = state.buffers
            let (_, gradient) = valueWithGradient(at: state.parameters) { parameters in
                net.loss(images, targets: targets, Scope(parameters: parameters, buffers: buffers, context: context))
            }
            state.parameters = optimizer.update(state.parameters, gradients: gradient, state: &optimizerState,
                                                learningRate: schedule.learningRate(base: learningRate, at: step))
            state.absorb(context)
        }
        return state
    }

    /// Trains `net` on 64x64 scenes and returns the held-out and majority-class scores.
    static func learn(_ name: String, _ net: any TaskNet, steps: Int, batchSize: Int, learningRate: Float)
        throws -> (trained: SegmentationReport, majority: SegmentationReport) {
        let start = Date()
        let data = SceneData(size: 64, trainingScenes: 96, heldOutScenes: 24, batchSize: batchSize)
        let state = try train(net, data: data, steps: steps, learningRate: learningRate, seed: 11)
        guard case .segmentation(let maps) = net.predict(data.heldOutImages, Scope(state)) else {
            fatalError("\(name) did not return class maps")
        }
        let trained = data.report(maps), majority = data.majorityReport
        let perClass = trained.classIoU.map { String(format: "%.2f", $0 ?? .nan) }.joined(separator: " ")
        print(String(format: "%@ learning check: 64x64 scenes, %d steps of %d: held-out mIoU %.3f, mAcc %.3f (IoU per class: %@); majority class: mIoU %.3f; %.1f s",
                     name, steps, batchSize, trained.meanIoU ?? 0, trained.meanAccuracy ?? 0, perClass, majority.meanIoU ?? 0, Date().timeIntervalSince(start)))
        return (trained, majority)
    }

    @Test func segformerB0LearnsSyntheticScenes() throws {
        let net = SegFormer(.with { $0.classes = SceneClass.allCases.count })
        let (trained, majority) = try Self.learn("segformer-b0", net, steps: 300, batchSize: 4, learningRate: 2e-3)
        #expect((trained.meanIoU ?? 0) >= 0.45)
        #expect((trained.meanIoU ?? 0) >= 4 * (majority.meanIoU ?? 1))
    }

    @Test func tinyConvSegmenterLearnsSyntheticScenes() throws {
        let net = TinyConvSegmenter(.with { $0.classes = SceneClass.allCases.count })
        let (trained, majority) = try Self.learn("tiny-conv-seg", net, steps: 300, batchSize: 4, learningRate: 3e-2)
        #expect((trained.meanIoU ?? 0) >= 0.18)
        #expect((trained.meanIoU ?? 0) >= 1.8 * (majority.meanIoU ?? 1))
    }
}
