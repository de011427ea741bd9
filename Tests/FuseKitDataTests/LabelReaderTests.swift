import Foundation
import FuseKitData
import FuseKitImage
import Testing

/// Box label readers on classes out of range and Windows (CRLF) line endings.
@Suite struct LabelReaderTests {
    @Test func aYOLOClassOutOfRangeIsAnErrorNamingTheFileAndLine() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.text("labels/a.txt", "0 0.5 0.5 0.1 0.1\r\n5 0.2 0.2 0.1 0.1\r\n6 0.3 0.3 0.1 0.1\r\n")
        let url = tree.url("labels/a.txt")
        #expect(try YOLOLabels.readBoxes(url).map(\.classIndex) == [0, 5, 6])
        #expect(try YOLOLabels.readBoxes(url, classCount: 7).count == 3)
        #expect(throws: LabelFileError(path: url.path, reason: "line 3: class 6 is out of range for 6 classes (0 to 5)")) {
            _ = try YOLOLabels.readBoxes(url, classCount: 6)
        }
        #expect(throws: LabelFileError(path: url.path, reason: "line 2: class 5 is out of range for 5 classes (0 to 4)")) {
            _ = try YOLOLabels.readDetections(url, classCount: 5)
        }
    }

    /// A dataset told the detector's class count refuses the sample whose label file has a class
    /// beyond it, naming the file and line (before, the detector's loss stopped the process).
    @Test func aDatasetWithTheDetectorsClassCountRefusesALabelOutOfRange() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.image("m3fd/Ir/00000.png")
        try tree.image("m3fd/Vis/00000.png", channels: 3)
        try tree.text("m3fd/labels/00000.txt", "2 0.5 0.5 0.2 0.2\n6 0.5 0.5 0.2 0.2\n")
        var dataset = try PairedDataset(root: tree.url("m3fd"))
        #expect(try dataset.sample(at: 0).boxes.map(\.classIndex) == [2, 6])
        dataset.boxClassCount = 6
        let error = #expect(throws: DatasetError.self) { _ = try dataset.sample(at: 0) }
        let message = error.map { "\($0)" } ?? ""
        #expect(message.contains(tree.url("m3fd/labels/00000.txt").path) && message.contains("line 2: class 6 is out of range for 6 classes"), "\(message)")
    }

    /// VOC XML written with CRLF: values are read without the CR, and errors count lines as LF files do.
    @Test func vocWithCRLFLineEndings() throws {
        let lines = ["<annotation>", "<size><width>16</width><height>8</height></size>",
                     "<object><name>\r\nperson\r\n</name><bndbox><xmin>4</xmin>\r\n<ymin>2</ymin><xmax>8\r\n</xmax><ymax>6</ymax></bndbox></object>",
                     "</annotation>", ""]
        let parsed = try VOCAnnotation.parse(Data(lines.joined(separator: "\r\n").utf8), classNames: ["person"])
        #expect(parsed.imageWidth == 16 && parsed.imageHeight == 8)
        #expect(parsed.boxes == [BoundingBox(classIndex: 0, minX: 0.25, minY: 0.25, maxX: 0.5, maxY: 0.75)])
        let malformed = Data("<annotation>\r\n<size>\r\n<width>16</height>\r\n</annotation>\r\n".utf8)
        #expect(throws: LabelFileError.self) { _ = try VOCAnnotation.parse(malformed, classNames: ["person"], path: "m.xml") }
        do {
            _ = try VOCAnnotation.parse(malformed, classNames: ["person"], path: "m.xml")
        } catch {
            #expect(error.reason.hasPrefix("malformed XML, line 3:"), "\(error)")
        }
    }
}
