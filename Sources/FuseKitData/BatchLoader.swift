import Dispatch
import Foundation
import FuseKitImage
import FuseKitTensor

/// How a ``BatchLoader`` draws and augments batches.
public struct BatchOptions: Sendable, Equatable {
    /// Samples per batch (before modality-swap doubling).
    public var batchSize: Int
    /// Random crop size (width, height), one offset per batch; nil keeps whole images, which must
    /// then all have the same size within a batch.
    public var cropSize: (width: Int, height: Int)?
    /// Random horizontal and vertical flips (each with probability 1/2, per sample).
    public var randomFlips: Bool
    /// Random 90-degree rotations (per sample; only 0 or 180 degrees when the crop is not square).
    public var randomRotations: Bool
    /// Doubles each batch: the second half repeats the samples with infrared and visible swapped
    /// (TDFusion's cat(a, b) and cat(b, a)); labels and boxes are duplicated.
    public var modalitySwap: Bool
    /// Also produce the colour visible images.
    public var includeColorVisible: Bool
    /// Random scales, one drawn per sample and applied before cropping (images bilinear, labels
    /// nearest); each sample then gets its own crop offset, and a scaled image smaller than the
    /// crop is centred in zero padding (labels 255), marked in ``TrainingBatch/validMask``.
    /// Empty: no scaling, one crop offset per batch.
    public var scales: [Double] = []
    /// This rank's part of every batch in a data-parallel run: of each batch of `batchSize`
    /// samples (drawn and augmented as without sharding), the `count`-th part number `index`.
    /// `batchSize` must be a multiple of `count`.
    public var shard: (index: Int, count: Int) = (0, 1)
    /// Shuffle the sample order every epoch.
    public var shuffle: Bool
    /// Drop the last, incomplete batch of an epoch.
    public var dropLast: Bool
    /// Seed of every random choice; the same seed gives the same batches.
    public var seed: UInt64

    /// Options with TDFusion's defaults where they apply (batch 2, 256x256 crops, flips).
    public init(batchSize: Int = 2, cropSize: (width: Int, height: Int)? = (256, 256), randomFlips: Bool = true,
                randomRotations: Bool = false, modalitySwap: Bool = false, includeColorVisible: Bool = false,
                shuffle: Bool = true, dropLast: Bool = true, seed: UInt64 = 0) {
        precondition(batchSize > 0, "BatchOptions: batchSize must be positive")
        if let cropSize { precondition(cropSize.width > 0 && cropSize.height > 0, "BatchOptions: crop size must be positive") }
        self.batchSize = batchSize
        self.cropSize = cropSize
        self.randomFlips = randomFlips
        self.randomRotations = randomRotations
        self.modalitySwap = modalitySwap
        self.includeColorVisible = includeColorVisible
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.seed = seed
    }

    public static func == (lhs: BatchOptions, rhs: BatchOptions) -> Bool {
        lhs.batchSize == rhs.batchSize && lhs.cropSize?.width == rhs.cropSize?.width && lhs.cropSize?.height == rhs.cropSize?.height
            && lhs.randomFlips == rhs.randomFlips && lhs.randomRotations == rhs.randomRotations && lhs.modalitySwap == rhs.modalitySwap
            && lhs.includeColorVisible == rhs.includeColorVisible && lhs.shuffle == rhs.shuffle && lhs.dropLast == rhs.dropLast
            && lhs.seed == rhs.seed && lhs.scales == rhs.scales && lhs.shard == rhs.shard
    }
}

/// The geometric augmentation applied to one sample.
public struct SampleAugmentation: Sendable, Equatable {
    /// Crop rectangle in the source image (x, y, width, height), or nil for none.
    public var crop: (x: Int, y: Int, width: Int, height: Int)?
    /// Mirror left-right (after cropping).
    public var flipHorizontally: Bool
    /// Mirror top-bottom (after the horizontal flip).
    public var flipVertically: Bool
    /// Counterclockwise quarter turns (last).
    public var quarterTurns: Int
    /// The scale applied before the crop (1: none); with a scale, ``crop`` is in scaled pixels
    /// and may extend past the scaled image (padding).
    public var scale: Double = 1

    /// An augmentation from its parts.
    public init(crop: (x: Int, y: Int, width: Int, height: Int)? = nil, flipHorizontally: Bool = false,
                flipVertically: Bool = false, quarterTurns: Int = 0) {
        self.crop = crop
        self.flipHorizontally = flipHorizontally
        self.flipVertically = flipVertically
        self.quarterTurns = quarterTurns
    }

    public static func == (lhs: SampleAugmentation, rhs: SampleAugmentation) -> Bool {
        lhs.crop?.x == rhs.crop?.x && lhs.crop?.y == rhs.crop?.y && lhs.crop?.width == rhs.crop?.width
            && lhs.crop?.height == rhs.crop?.height && lhs.flipHorizontally == rhs.flipHorizontally
            && lhs.flipVertically == rhs.flipVertically && lhs.quarterTurns == rhs.quarterTurns && lhs.scale == rhs.scale
    }

    /// Applies the augmentation to an image.
    public func apply(to image: Image) -> Image {
        var out = image
        if let crop { out = out.cropped(x: crop.x, y: crop.y, width: crop.width, height: crop.height) }
        if flipHorizontally { out = out.flippedHorizontally() }
        if flipVertically { out = out.flippedVertically() }
        if quarterTurns % 4 != 0 { out = out.rotated(quarterTurns: quarterTurns) }
        return out
    }

    /// Applies the augmentation to a mask.
    public func apply(to mask: LabelMap) -> LabelMap {
        var out = mask
        if let crop { out = out.cropped(x: crop.x, y: crop.y, width: crop.width, height: crop.height) }
        if flipHorizontally { out = out.flippedHorizontally() }
        if flipVertically { out = out.flippedVertically() }
        if quarterTurns % 4 != 0 { out = out.rotated(quarterTurns: quarterTurns) }
        return out
    }

    /// Applies the augmentation to normalised boxes of an image of `width` x `height`. After a
    /// crop, boxes are clipped to it and dropped when less than 2 pixels wide or high remain, or
    /// less than 10% of their area.
    public func apply(to boxes: [BoundingBox], imageWidth width: Int, imageHeight height: Int) -> [BoundingBox] {
        var result: [BoundingBox] = []
        for box in boxes {
            var b = box
            if let crop {
                let (x0, y0, x1, y1) = box.pixelCorners(imageWidth: width, imageHeight: height)
                let cx0 = max(x0, Double(crop.x)), cy0 = max(y0, Double(crop.y))
                let cx1 = min(x1, Double(crop.x + crop.width)), cy1 = min(y1, Double(crop.y + crop.height))
                let (visibleWidth, visibleHeight) = (cx1 - cx0, cy1 - cy0)
                let originalArea = max(x1 - x0, 0) * max(y1 - y0, 0)
                guard visibleWidth >= 2, visibleHeight >= 2,
                      originalArea > 0, visibleWidth * visibleHeight >= 0.1 * originalArea else { continue }
                b = BoundingBox(classIndex: box.classIndex,
                                minX: (cx0 - Double(crop.x)) / Double(crop.width), minY: (cy0 - Double(crop.y)) / Double(crop.height),
                                maxX: (cx1 - Double(crop.x)) / Double(crop.width), maxY: (cy1 - Double(crop.y)) / Double(crop.height))
            }
            if flipHorizontally { b.centerX = 1 - b.centerX }
            if flipVertically { b.centerY = 1 - b.centerY }
            switch ((quarterTurns % 4) + 4) % 4 {
            case 1:
                b = BoundingBox(classIndex: b.classIndex, centerX: b.centerY, centerY: 1 - b.centerX, width: b.height, height: b.width)
            case 2:
                b.centerX = 1 - b.centerX
                b.centerY = 1 - b.centerY
            case 3:
                b = BoundingBox(classIndex: b.classIndex, centerX: 1 - b.centerY, centerY: b.centerX, width: b.height, height: b.width)
            default: break
            }
            result.append(b)
        }
        return result
    }
}

/// One training batch as tensors.
public struct TrainingBatch: Sendable {
    /// Pair names, one per batch item.
    public var names: [String]
    /// Infrared sources [B, 1, H, W] in [0, 1] (in the swapped half of a modality-swap batch,
    /// the visible images).
    public var infrared: Tensor
    /// Visible sources [B, 1, H, W] in [0, 1] (the infrared images in the swapped half).
    public var visible: Tensor
    /// Colour visible images [B, 3, H, W], when requested (not swapped).
    public var visibleColor: Tensor?
    /// 1 on image pixels, 0 on padding [B, 1, H, W], when scale augmentation padded a crop.
    public var validMask: Tensor?
    /// Segmentation labels [B, H, W] as Float class indices (255 = ignore), when the samples have masks.
    public var segmentation: Tensor?
    /// Boxes per item (normalised to the batch's H x W).
    public var boxes: [[BoundingBox]]
    /// For each item, whether its modalities are swapped (modality-swap doubling).
    public var isSwapped: [Bool]
    /// The augmentation applied to each item.
    public var augmentations: [SampleAugmentation]
    /// Each item's position in the whole batch (with its swapped half) that the ranks of a
    /// data-parallel run share; 0 ..< count in a single process.
    public var positions: [Int]

    /// Items in the batch.
    public var count: Int { names.count }
}

/// Draws shuffled, cropped and augmented batches from a sample source, deterministically for a
/// seed: batch `index` of epoch `epoch` depends only on the seed, the options and the samples.
public struct BatchLoader: Sendable {
    /// Where samples come from.
    public let source: any PairedSampleSource
    /// How batches are drawn.
    public let options: BatchOptions

    /// A loader over a source.
    public init(source: any PairedSampleSource, options: BatchOptions = BatchOptions()) {
        self.source = source
        self.options = options
    }

    /// Number of batches in one epoch.
    public var batchesPerEpoch: Int {
        options.dropLast ? source.count / options.batchSize : (source.count + options.batchSize - 1) / options.batchSize
    }

    /// The order in which an epoch visits the samples.
    public func sampleOrder(epoch: Int) -> [Int] {
        var order = Array(0..<source.count)
        guard options.shuffle else { return order }
        var random = RandomGenerator(seed: Self.mix(options.seed, UInt64(bitPattern: Int64(epoch)), 0x5348_5546))
        if order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, random.nextInt(below: i + 1))
            }
        }
        return order
    }

    /// Batch `index` (0-based) of epoch `epoch`.
    public func batch(epoch: Int, index: Int) throws -> TrainingBatch {
        precondition(index >= 0 && index < batchesPerEpoch, "BatchLoader.batch: index \(index) of \(batchesPerEpoch) batches")
        let order = sampleOrder(epoch: epoch)
        let indices = Array(order[(index * options.batchSize)..<min((index + 1) * options.batchSize, order.count)])
        return try makeBatch(indices: indices, epoch: epoch, index: index)
    }

    /// Iterates over the batches of one epoch, preparing the next batch on a background thread
    /// while the caller works on the current one.
    public func makeIterator(epoch: Int) -> PrefetchingBatchIterator {
        PrefetchingBatchIterator(loader: self, epoch: epoch)
    }

    static func mix(_ values: UInt64...) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for value in values {
            h ^= value &+ 0x9E37_79B9_7F4A_7C15 &+ (h << 6) &+ (h >> 2)
            h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
            h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
            h ^= h >> 31
        }
        return h
    }

    func makeBatch(indices: [Int], epoch: Int, index: Int) throws -> TrainingBatch {
        // Every rank draws the whole batch's augmentations in the same order; each loads only
        // the samples of its shard.
        let slots = try indices.map { try source.dimensions(at: $0) }
        let (part, parts) = options.shard
        let mine = (slots.count * part / parts)..<(slots.count * (part + 1) / parts)
        func load(_ position: Int) throws -> PairedSample { try source.sample(at: indices[position], includeColor: options.includeColorVisible) }
        var random = RandomGenerator(seed: Self.mix(options.seed, UInt64(bitPattern: Int64(epoch)), UInt64(index), 0x4241_5443))

        if !options.scales.isEmpty, let crop = options.cropSize {
            return try makeScaledBatch(slots, mine: mine, load: load, crop: crop, random: &random)
        }
        // One crop offset for the whole batch.
        var cropRect: (x: Int, y: Int, width: Int, height: Int)?
        if let crop = options.cropSize {
            let minWidth = slots.map(\.width).min()!, minHeight = slots.map(\.height).min()!
            if let small = slots.first(where: { $0.width < crop.width || $0.height < crop.height }) {
                throw DatasetError.batchMismatch("pair '\(small.name)' is \(small.width)x\(small.height), smaller than the \(crop.width)x\(crop.height) crop")
            }
            cropRect = (random.nextInt(below: minWidth - crop.width + 1), random.nextInt(below: minHeight - crop.height + 1),
                        crop.width, crop.height)
        } else if let first = slots.first, let other = slots.first(where: { $0.width != first.width || $0.height != first.height }) {
            throw DatasetError.batchMismatch("pairs '\(first.name)' (\(first.width)x\(first.height)) and '\(other.name)' "
                                             + "(\(other.width)x\(other.height)) differ in size; set a crop size to batch them")
        }
        let outWidth = cropRect?.width ?? slots[0].width, outHeight = cropRect?.height ?? slots[0].height

        var augmented: [PairedSample] = []
        var augmentations: [SampleAugmentation] = []
        for position in slots.indices {
            var augmentation = SampleAugmentation(crop: cropRect)
            if options.randomFlips {
                augmentation.flipHorizontally = random.nextInt(below: 2) == 1
                augmentation.flipVertically = random.nextInt(below: 2) == 1
            }
            if options.randomRotations {
                augmentation.quarterTurns = outWidth == outHeight ? random.nextInt(below: 4) : 2 * random.nextInt(below: 2)
            }
            guard mine.contains(position) else { continue }
            let sample = try load(position)
            augmentations.append(augmentation)
            var out = sample
            out.infrared = augmentation.apply(to: sample.infrared)
            out.visible = augmentation.apply(to: sample.visible)
            out.visibleColor = sample.visibleColor.map { augmentation.apply(to: $0) }
            out.segmentation = sample.segmentation.map { augmentation.apply(to: $0) }
            out.boxes = augmentation.apply(to: sample.boxes, imageWidth: sample.width, imageHeight: sample.height)
            augmented.append(out)
        }

        return try assemble(augmented, augmentations: augmentations, valid: nil, width: outWidth, height: outHeight,
                            positions: mine, of: slots.count)
    }

    /// Batches with scale augmentation: per sample, a random scale, then a random crop offset
    /// (zero padding where the crop is larger than the scaled image), then the flips and turns.
    func makeScaledBatch(_ slots: [(name: String, width: Int, height: Int)], mine: Range<Int>, load: (Int) throws -> PairedSample,
                         crop: (width: Int, height: Int), random: inout RandomGenerator) throws -> TrainingBatch {
        var augmented: [PairedSample] = [], augmentations: [SampleAugmentation] = [], valid: [Image] = []
        for (position, slot) in slots.enumerated() {
            let scale = options.scales[random.nextInt(below: options.scales.count)]
            let w = Swift.max(1, Int((Double(slot.width) * scale).rounded())), h = Swift.max(1, Int((Double(slot.height) * scale).rounded()))
            // A random window where the scaled image is larger than the crop, else the image
            // centred in zero padding (MRFS's TrainPre: pad // 2 before, the rest after).
            let x = w > crop.width ? random.nextInt(below: w - crop.width + 1) : -((crop.width - w) / 2)
            let y = h > crop.height ? random.nextInt(below: h - crop.height + 1) : -((crop.height - h) / 2)
            var augmentation = SampleAugmentation(crop: nil)
            if options.randomFlips {
                augmentation.flipHorizontally = random.nextInt(below: 2) == 1
                augmentation.flipVertically = random.nextInt(below: 2) == 1
            }
            if options.randomRotations {
                augmentation.quarterTurns = crop.width == crop.height ? random.nextInt(below: 4) : 2 * random.nextInt(below: 2)
            }
            guard mine.contains(position) else { continue }
            let sample = try load(position)
            func window(_ image: Image) -> Image {
                image.resized(width: w, height: h).cropped(x: x, y: y, width: crop.width, height: crop.height, padding: 0)
            }
            var out = sample
            out.infrared = window(sample.infrared)
            out.visible = window(sample.visible)
            out.visibleColor = sample.visibleColor.map(window)
            out.segmentation = sample.segmentation.map {
                $0.resized(width: w, height: h).cropped(x: x, y: y, width: crop.width, height: crop.height, padding: 255)
            }
            out.boxes = SampleAugmentation(crop: (x, y, crop.width, crop.height)).apply(to: sample.boxes, imageWidth: w, imageHeight: h)
            var mask = Image(width: w, height: h, channels: 1, repeating: 1).cropped(x: x, y: y, width: crop.width, height: crop.height, padding: 0)
            out.infrared = augmentation.apply(to: out.infrared)
            out.visible = augmentation.apply(to: out.visible)
            out.visibleColor = out.visibleColor.map { augmentation.apply(to: $0) }
            out.segmentation = out.segmentation.map { augmentation.apply(to: $0) }
            out.boxes = augmentation.apply(to: out.boxes, imageWidth: crop.width, imageHeight: crop.height)
            mask = augmentation.apply(to: mask)
            augmentation.crop = (x, y, crop.width, crop.height)
            augmentation.scale = scale
            augmented.append(out)
            augmentations.append(augmentation)
            valid.append(mask)
        }
        return try assemble(augmented, augmentations: augmentations, valid: valid, width: crop.width, height: crop.height,
                            positions: mine, of: slots.count)
    }

    /// The batch tensors of augmented samples (doubled with the modalities swapped when asked);
    /// they are the samples at `positions` of a whole batch of `total`.
    func assemble(_ augmented: [PairedSample], augmentations: [SampleAugmentation], valid: [Image]?,
                  width outWidth: Int, height outHeight: Int, positions: Range<Int>, of total: Int) throws -> TrainingBatch {
        var itemPositions = Array(positions)
        var augmentations = augmentations
        let withMasks = augmented.filter { $0.segmentation != nil }.count
        guard withMasks == 0 || withMasks == augmented.count else {
            let missing = augmented.first { $0.segmentation == nil }!
            throw DatasetError.batchMismatch("pair '\(missing.name)' has no segmentation mask but other pairs of its batch do")
        }

        var valid = valid
        var infrared = augmented.map(\.infrared)
        var visible = augmented.map(\.visible)
        var names = augmented.map(\.name)
        var color = options.includeColorVisible ? augmented.compactMap(\.visibleColor) : []
        var masks = augmented.compactMap(\.segmentation)
        var boxes = augmented.map(\.boxes)
        var swapped = [Bool](repeating: false, count: augmented.count)
        if options.modalitySwap {
            infrared += augmented.map(\.visible)
            visible += augmented.map(\.infrared)
            names += names
            color += color
            masks += masks
            boxes += boxes
            swapped += [Bool](repeating: true, count: augmented.count)
            augmentations += augmentations
            valid = valid.map { $0 + $0 }
            itemPositions += positions.map { $0 + total }
        }

        var labelTensor: Tensor?
        if !masks.isEmpty {
            let plane = outWidth * outHeight
            let tensor = Tensor(uninitializedShape: [masks.count, outHeight, outWidth])
            let pointer = tensor.mutablePointer
            for (item, mask) in masks.enumerated() {
                for i in 0..<plane { pointer[item * plane + i] = Float(mask.values[i]) }
            }
            labelTensor = tensor
        }
        return TrainingBatch(names: names, infrared: Image.batchTensor(infrared), visible: Image.batchTensor(visible),
                             visibleColor: color.isEmpty ? nil : Image.batchTensor(color), validMask: valid.map(Image.batchTensor),
                             segmentation: labelTensor,
                             boxes: boxes, isSwapped: swapped, augmentations: augmentations, positions: itemPositions)
    }
}

/// Batches of one epoch in order, each prepared on a background thread while the previous one
/// is in use. Use it from one thread: `while let batch = try iterator.next() { ... }`.
public final class PrefetchingBatchIterator {
    private let loader: BatchLoader
    private let epoch: Int
    private let order: [Int]
    private var nextIndex = 0
    private var pending: PendingBatch?

    init(loader: BatchLoader, epoch: Int) {
        self.loader = loader
        self.epoch = epoch
        self.order = loader.sampleOrder(epoch: epoch)
    }

    /// Batches in the epoch.
    public var count: Int { loader.batchesPerEpoch }

    /// The next batch, or nil at the end of the epoch. Errors of a batch are thrown when it is reached.
    public func next() throws -> TrainingBatch? {
        guard nextIndex < loader.batchesPerEpoch else { return nil }
        let current = pending ?? start(nextIndex)
        nextIndex += 1
        pending = nextIndex < loader.batchesPerEpoch ? start(nextIndex) : nil
        return try current.wait()
    }

    private func start(_ index: Int) -> PendingBatch {
        let size = loader.options.batchSize
        let indices = Array(order[(index * size)..<min((index + 1) * size, order.count)])
        let loader = self.loader, epoch = self.epoch
        return PendingBatch { try loader.makeBatch(indices: indices, epoch: epoch, index: index) }
    }
}

/// A batch being prepared on a background queue. The result is written once before the
/// semaphore is signalled and read only after waiting on it, so access is ordered.
private final class PendingBatch: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<TrainingBatch, any Error>?

    init(_ work: @escaping @Sendable () throws -> TrainingBatch) {
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = Result { try work() }
            self.done.signal()
        }
    }

    func wait() throws -> TrainingBatch {
        done.wait()
        done.signal()  // later waits return at once
        return try result!.get()
    }
}
