import Foundation
import FuseKitData
import FuseKitImage
import FuseKitTensor
import Testing

@Suite("Batch loader")
struct BatchLoaderTests {
    static let width = 64, height = 48
    /// Class 1 fills rectangle A, class 2 rectangle B; boxes: A as class 0, B as class 1.
    static let rectA = (x: 10, y: 8, width: 20, height: 12)
    static let rectB = (x: 40, y: 25, width: 10, height: 15)

    static func box(_ cls: Int, _ r: (x: Int, y: Int, width: Int, height: Int)) -> BoundingBox {
        let (w, h) = (Double(width), Double(height))
        let minX = Double(r.x) / w, minY = Double(r.y) / h
        let maxX = Double(r.x + r.width) / w, maxY = Double(r.y + r.height) / h
        return BoundingBox(classIndex: cls, minX: minX, minY: minY, maxX: maxX, maxY: maxY)
    }

    /// Samples whose pixel values encode their position, so transforms can be traced.
    static func samples(count: Int) -> InMemorySamples {
        InMemorySamples((0..<count).map { index in
            let n = width * height
            let position = (0..<n).map { Float($0 + index * n) / Float(n * count) }
            var mask = LabelMap(width: width, height: height)
            for (cls, r) in [(Int32(1), rectA), (Int32(2), rectB)] {
                for y in r.y..<(r.y + r.height) { for x in r.x..<(r.x + r.width) { mask[x: x, y: y] = cls } }
            }
            let boxes = [box(0, rectA), box(1, rectB)]
            let image = Image(width: width, height: height, channels: 1, pixels: position)
            return PairedSample(name: "s\(index)", infrared: image, visible: image, segmentation: mask, boxes: boxes)
        })
    }

    static func tensorsEqual(_ a: Tensor?, _ b: Tensor?) -> Bool {
        a?.shape == b?.shape && a?.scalars == b?.scalars
    }

    @Test("the same seed gives the same batches; the iterator prefetches the same ones")
    func determinism() throws {
        let options = BatchOptions(batchSize: 3, cropSize: (32, 32), randomFlips: true, randomRotations: true, seed: 42)
        let first = BatchLoader(source: Self.samples(count: 7), options: options)
        let second = BatchLoader(source: Self.samples(count: 7), options: options)
        #expect(first.batchesPerEpoch == 2)
        for index in 0..<2 {
            let a = try first.batch(epoch: 3, index: index), b = try second.batch(epoch: 3, index: index)
            #expect(a.names == b.names && a.augmentations == b.augmentations && a.boxes == b.boxes)
            #expect(Self.tensorsEqual(a.infrared, b.infrared) && Self.tensorsEqual(a.segmentation, b.segmentation))
        }
        let iterator = first.makeIterator(epoch: 3)
        var index = 0
        while let batch = try iterator.next() {
            let direct = try first.batch(epoch: 3, index: index)
            #expect(batch.names == direct.names && Self.tensorsEqual(batch.visible, direct.visible))
            index += 1
        }
        #expect(index == 2)
        // Another epoch or seed reshuffles.
        #expect(first.sampleOrder(epoch: 3) != first.sampleOrder(epoch: 4))
        var reseeded = options
        reseeded.seed = 43
        #expect(BatchLoader(source: Self.samples(count: 7), options: reseeded).sampleOrder(epoch: 3) != first.sampleOrder(epoch: 3))
        #expect(Set(first.sampleOrder(epoch: 3)) == Set(0..<7))
    }

    @Test("crops, flips and rotations move infrared, visible, masks and boxes together")
    func augmentationConsistency() throws {
        let options = BatchOptions(batchSize: 4, cropSize: (32, 32), randomFlips: true, randomRotations: true, seed: 7)
        let loader = BatchLoader(source: Self.samples(count: 8), options: options)
        var sawRotation = false, sawFlip = false, sawDroppedOrClipped = false
        for epoch in 0..<6 {
            for index in 0..<loader.batchesPerEpoch {
                let batch = try loader.batch(epoch: epoch, index: index)
                #expect(batch.infrared.shape == [4, 1, 32, 32] && batch.segmentation?.shape == [4, 32, 32])
                #expect(batch.infrared.scalars == batch.visible.scalars)
                let crop = try #require(batch.augmentations[0].crop)
                #expect(batch.augmentations.allSatisfy { $0.crop! == crop })  // one offset per batch
                let labels = try #require(batch.segmentation).scalars
                let ir = batch.infrared.scalars
                for item in 0..<4 {
                    let augmentation = batch.augmentations[item]
                    sawRotation = sawRotation || augmentation.quarterTurns % 4 != 0
                    sawFlip = sawFlip || augmentation.flipHorizontally || augmentation.flipVertically
                    // Every output pixel's mask value is the source mask at the position its image value encodes.
                    let sourceIndex = Self.samples(count: 8).samples.firstIndex { $0.name == batch.names[item] }!
                    let source = Self.samples(count: 8).samples[sourceIndex]
                    for p in 0..<(32 * 32) {
                        let position = Int((ir[item * 1024 + p] * Float(Self.width * Self.height * 8)).rounded()) - sourceIndex * Self.width * Self.height
                        #expect(Int32(labels[item * 1024 + p]) == source.segmentation!.values[position])
                    }
                    // Every box matches the pixels of its region; regions without a box are small.
                    for (cls, boxClass) in [(Float(1), 0), (Float(2), 1)] {
                        var minX = Int.max, maxX = -1, minY = Int.max, maxY = -1, area = 0
                        for y in 0..<32 {
                            for x in 0..<32 where labels[item * 1024 + y * 32 + x] == cls {
                                minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y); area += 1
                            }
                        }
                        let box = batch.boxes[item].first { $0.classIndex == boxClass }
                        let full = boxClass == 0 ? Self.rectA.width * Self.rectA.height : Self.rectB.width * Self.rectB.height
                        if let box {
                            let (x0, y0, x1, y1) = box.pixelCorners(imageWidth: 32, imageHeight: 32)
                            #expect(abs(x0 - Double(minX)) < 1e-9 && abs(x1 - Double(maxX + 1)) < 1e-9)
                            #expect(abs(y0 - Double(minY)) < 1e-9 && abs(y1 - Double(maxY + 1)) < 1e-9)
                            if area < full { sawDroppedOrClipped = true }
                        } else {
                            sawDroppedOrClipped = true
                            let tooSmall = area == 0 || maxX - minX + 1 < 2 || maxY - minY + 1 < 2 || Double(area) < 0.1 * Double(full)
                            #expect(tooSmall, "box of class \(boxClass) dropped although \(area) pixels remain")
                        }
                    }
                }
            }
        }
        #expect(sawRotation && sawFlip && sawDroppedOrClipped)
    }

    @Test("modality-swap doubling and whole-image batches")
    func swapAndWholeImages() throws {
        let options = BatchOptions(batchSize: 2, cropSize: nil, randomFlips: false, modalitySwap: true, includeColorVisible: true,
                                   shuffle: false, seed: 1)
        var samples = Self.samples(count: 2)
        samples.samples[0].visible = samples.samples[0].visible.flippedHorizontally()
        let batch = try BatchLoader(source: samples, options: options).batch(epoch: 0, index: 0)
        #expect(batch.count == 4 && batch.isSwapped == [false, false, true, true])
        #expect(batch.infrared.shape == [4, 1, 48, 64] && batch.visibleColor?.shape == [4, 3, 48, 64])
        let plane = 48 * 64
        #expect(Array(batch.infrared.scalars[(2 * plane)..<(3 * plane)]) == Array(batch.visible.scalars[0..<plane]))
        #expect(Array(batch.visible.scalars[(2 * plane)..<(3 * plane)]) == Array(batch.infrared.scalars[0..<plane]))
        #expect(batch.boxes[2] == batch.boxes[0] && batch.names[3] == batch.names[1])
    }

    @Test("mismatched sizes without a crop, or images smaller than the crop, are errors")
    func batchErrors() throws {
        var samples = Self.samples(count: 2)
        let small = Image(width: 20, height: 20, channels: 1)
        samples.samples[1] = PairedSample(name: "small", infrared: small, visible: small)
        let whole = BatchLoader(source: samples, options: BatchOptions(batchSize: 2, cropSize: nil, shuffle: false))
        #expect(throws: DatasetError.self) { try whole.batch(epoch: 0, index: 0) }
        let cropped = BatchLoader(source: samples, options: BatchOptions(batchSize: 2, cropSize: (32, 32), shuffle: false))
        #expect { try cropped.batch(epoch: 0, index: 0) } throws: { "\($0)".contains("small") }
        let iterator = cropped.makeIterator(epoch: 0)
        #expect(throws: DatasetError.self) { try iterator.next() }
    }
}
