import Foundation
import FuseKitImage

/// One loaded training or evaluation sample: both sources and their labels.
public struct PairedSample: Sendable, Equatable {
    /// The pair's name (file stem).
    public var name: String
    /// Infrared image, one channel, the rounded gray levels / 255.
    public var infrared: Image
    /// Visible image, one channel, the rounded gray levels / 255.
    public var visible: Image
    /// Visible image in colour (3 channels), when requested.
    public var visibleColor: Image?
    /// Segmentation mask (class indices, 255 = ignore), if the dataset has one.
    public var segmentation: LabelMap?
    /// Object boxes (normalised), if the dataset has them.
    public var boxes: [BoundingBox]

    /// A sample from its parts; the images (and mask) must share one size.
    public init(name: String, infrared: Image, visible: Image, visibleColor: Image? = nil,
                segmentation: LabelMap? = nil, boxes: [BoundingBox] = []) {
        precondition(infrared.width == visible.width && infrared.height == visible.height,
                     "PairedSample \(name): infrared \(infrared.width)x\(infrared.height) vs visible \(visible.width)x\(visible.height)")
        self.name = name
        self.infrared = infrared
        self.visible = visible
        self.visibleColor = visibleColor
        self.segmentation = segmentation
        self.boxes = boxes
    }

    /// Width in pixels.
    public var width: Int { infrared.width }
    /// Height in pixels.
    public var height: Int { infrared.height }
}

/// A source of samples that the ``BatchLoader`` draws from: a ``PairedDataset`` on disk or
/// samples held in memory (``InMemorySamples``, e.g. synthetic scenes).
public protocol PairedSampleSource: Sendable {
    /// Number of samples.
    var count: Int { get }
    /// Loads sample `index`; `includeColor` asks for the colour visible image too.
    func sample(at index: Int, includeColor: Bool) throws -> PairedSample
    /// The name and size of sample `index`, without decoding it where the source can (a data-
    /// parallel rank draws a whole batch's crops but decodes only its own samples).
    func dimensions(at index: Int) throws -> (name: String, width: Int, height: Int)
}

extension PairedSampleSource {
    public func dimensions(at index: Int) throws -> (name: String, width: Int, height: Int) {
        let sample = try sample(at: index, includeColor: false)
        return (sample.name, sample.width, sample.height)
    }
}

/// Samples held in memory.
public struct InMemorySamples: PairedSampleSource {
    /// The samples.
    public var samples: [PairedSample]

    /// Wraps samples.
    public init(_ samples: [PairedSample]) { self.samples = samples }

    /// Number of samples.
    public var count: Int { samples.count }

    public func dimensions(at index: Int) throws -> (name: String, width: Int, height: Int) {
        (samples[index].name, samples[index].width, samples[index].height)
    }

    /// Sample `index`; with `includeColor`, a gray visible image is repeated into three channels
    /// when the sample has no colour image.
    public func sample(at index: Int, includeColor: Bool) throws -> PairedSample {
        var sample = samples[index]
        if includeColor, sample.visibleColor == nil {
            sample.visibleColor = Image(planes: [sample.visible, sample.visible, sample.visible])
        }
        if !includeColor { sample.visibleColor = nil }
        return sample
    }
}

extension PairedDataset: PairedSampleSource {
    /// The pair's name and size from the infrared image's header.
    public func dimensions(at index: Int) throws -> (name: String, width: Int, height: Int) {
        let pair = pairs[index]
        do {
            let size = try Image.dimensions(ofFileAt: pair.infrared)
            return (pair.name, size.width, size.height)
        } catch {
            throw DatasetError.sampleFailed(name: pair.name, message: error.description)
        }
    }

    /// Loads pair `index`: gray sources, optional colour visible image, mask and boxes.
    ///
    /// - Throws: ``DatasetError/sampleFailed(name:message:)`` naming the files for an unreadable
    ///   file or a size mismatch between the images or with the mask.
    public func sample(at index: Int, includeColor: Bool = false) throws -> PairedSample {
        let pair = pairs[index]
        do {
            let infraredImage = try Image(contentsOf: pair.infrared)
            let visibleImage = try Image(contentsOf: pair.visible)
            guard infraredImage.width == visibleImage.width, infraredImage.height == visibleImage.height else {
                throw DatasetError.sampleFailed(name: pair.name, message: DatasetProblem.sizeMismatch(
                    name: pair.name, infrared: pair.infrared, infraredSize: "\(infraredImage.width)x\(infraredImage.height)",
                    visible: pair.visible, visibleSize: "\(visibleImage.width)x\(visibleImage.height)").description)
            }
            var mask: LabelMap?
            if let url = pair.segmentation {
                let loaded = try LabelMap(contentsOf: url)
                guard loaded.width == infraredImage.width, loaded.height == infraredImage.height else {
                    throw DatasetError.sampleFailed(name: pair.name, message: DatasetProblem.labelSizeMismatch(
                        name: pair.name, label: url, labelSize: "\(loaded.width)x\(loaded.height)",
                        image: pair.infrared, imageSize: "\(infraredImage.width)x\(infraredImage.height)").description)
                }
                if let classes = segmentationClassCount,
                   let i = loaded.values.firstIndex(where: { $0 != LabelMap.ignoreIndex && ($0 < 0 || $0 >= Int32(classes)) }) {
                    throw LabelFileError(path: url.path, reason: "label \(loaded.values[i]) at pixel (x \(i % loaded.width), y \(i / loaded.width)) "
                                         + "is not a class of the \(classes)-class segmenter (0 to \(classes - 1), or \(LabelMap.ignoreIndex) to ignore)")
                }
                mask = loaded
            }
            var boxes: [BoundingBox] = []
            if let url = pair.boxes {
                switch boxFormat ?? (url.pathExtension.lowercased() == "xml" ? .voc : .yolo) {
                case .yolo: boxes = try YOLOLabels.readBoxes(url, classCount: boxClassCount)
                case .voc:
                    boxes = try VOCAnnotation.read(url, classNames: vocClassNames,
                                                   imageSize: (infraredImage.width, infraredImage.height)).boxes
                    if let boxClassCount, let box = boxes.first(where: { $0.classIndex >= boxClassCount }) {
                        throw LabelFileError(path: url.path, reason: "class '\(vocClassNames[box.classIndex])' (index \(box.classIndex)) is out of range for \(boxClassCount) classes")
                    }
                }
            }
            var color: Image?
            if includeColor {
                let rgb = visibleImage.removingAlpha()
                color = rgb.channels == 3 ? rgb : Image(planes: [rgb, rgb, rgb])
            }
            return PairedSample(name: pair.name, infrared: infraredImage.grayscale(), visible: visibleImage.grayscale(),
                                visibleColor: color, segmentation: mask, boxes: boxes)
        } catch let error as DatasetError {
            throw error
        } catch {
            throw DatasetError.sampleFailed(name: pair.name, message: "\(error)")
        }
    }
}
