import Foundation
import FuseKitData
import FuseKitImage
import Testing

/// A temporary folder tree for dataset tests.
struct TemporaryTree {
    let root: URL

    init(_ name: String = #function) throws {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        root = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-data-\(safe)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: root) }

    func url(_ path: String) -> URL { root.appendingPathComponent(path) }

    /// Writes a small image (gray, or RGB for `.jpg`/colour) at `path`, creating folders.
    func image(_ path: String, width: Int = 8, height: Int = 6, channels: Int = 1) throws {
        let url = url(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let pixels = (0..<(width * height * channels)).map { Float($0 % 256) / 255 }
        try Image(width: width, height: height, channels: channels, pixels: pixels).write(to: url)
    }

    func mask(_ path: String, width: Int = 8, height: Int = 6, value: Int32 = 1) throws {
        let url = url(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try LabelMap(width: width, height: height, repeating: value).write(to: url)
    }

    func text(_ path: String, _ content: String) throws {
        let url = url(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.write(to: url, atomically: true, encoding: .utf8)
    }
}

@Suite("Dataset layouts")
struct DatasetLayoutTests {
    @Test("TDFusion {ir, vi, label} with YOLO boxes")
    func tdfusion() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        for name in ["1", "2", "10"] {
            try tree.image("ir/\(name).png")
            try tree.image("vi/\(name).png", channels: 3)
            try tree.mask("label/\(name).png")
            try tree.text("boxes/\(name).txt", "0 0.5 0.5 0.25 0.5\n1 0.2 0.3 0.1 0.1\n")
        }
        let dataset = try PairedDataset(root: tree.root)
        #expect(dataset.layout == .tdfusion)
        #expect(dataset.pairs.map(\.name) == ["1", "2", "10"])  // natural order
        #expect(dataset.boxFormat == .yolo && dataset.problems.isEmpty)
        let sample = try dataset.sample(at: 2, includeColor: true)
        #expect(sample.infrared.channels == 1 && sample.visible.channels == 1 && sample.visibleColor?.channels == 3)
        #expect(sample.segmentation?.values.allSatisfy { $0 == 1 } == true)
        #expect(sample.boxes == [BoundingBox(classIndex: 0, centerX: 0.5, centerY: 0.5, width: 0.25, height: 0.5),
                                 BoundingBox(classIndex: 1, centerX: 0.2, centerY: 0.3, width: 0.1, height: 0.1)])
        #expect(try dataset.validatedForTraining().count == 3)
    }

    @Test("MSRS {train,test}/{ir,vi,Segmentation_labels} needs a split")
    func msrs() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        for split in ["train", "test"] {
            for name in ["00001D", "00002N"] {
                try tree.image("\(split)/ir/\(name).png")
                try tree.image("\(split)/vi/\(name).png", channels: 3)
                try tree.mask("\(split)/Segmentation_labels/\(name).png")
            }
        }
        #expect(throws: DatasetError.splitRequired(root: tree.root.path, available: ["test", "train"])) {
            try PairedDataset(root: tree.root)
        }
        let dataset = try PairedDataset(root: tree.root, split: "test")
        #expect(dataset.layout == .msrs && dataset.split == "test" && dataset.count == 2)
        #expect(dataset.segmentationFolder?.lastPathComponent == "Segmentation_labels")
        #expect(throws: DatasetError.self) { try PairedDataset(root: tree.root, split: "val") }
        // The split folder itself can be given as the root.
        #expect(try PairedDataset(root: tree.url("train")).layout == .msrs)
    }

    @Test("FMB {Infrared, Visible, Label} under a single split")
    func fmb() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.image("train/Infrared/a.png")
        try tree.image("train/Visible/a.png", channels: 3)
        try tree.mask("train/Label/a.png")
        let dataset = try PairedDataset(root: tree.root)
        #expect(dataset.layout == .fmb && dataset.split == "train" && dataset.pairs[0].segmentation != nil)
    }

    @Test("M3FD {Ir, Vis} with YOLO labels, and LLVIP with VOC XML")
    func detectionLayouts() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.image("m3fd/Ir/00000.png")
        try tree.image("m3fd/Vis/00000.png", channels: 3)
        try tree.text("m3fd/labels/00000.txt", "2 0.5 0.5 0.2 0.2\n")
        let m3fd = try PairedDataset(root: tree.url("m3fd"))
        #expect(m3fd.layout == .m3fd && m3fd.boxFormat == .yolo)
        #expect(try m3fd.sample(at: 0).boxes.map(\.classIndex) == [2])

        for split in ["train", "test"] {
            try tree.image("llvip/infrared/\(split)/190001.jpg", width: 16, height: 8)
            try tree.image("llvip/visible/\(split)/190001.jpg", width: 16, height: 8, channels: 3)
        }
        try tree.text("llvip/Annotations/190001.xml", """
            <annotation><filename>190001.jpg</filename>
            <size><width>16</width><height>8</height><depth>3</depth></size>
            <object><name>person</name><difficult>0</difficult>
            <bndbox><xmin>4</xmin><ymin>2</ymin><xmax>8</xmax><ymax>6</ymax></bndbox></object>
            </annotation>
            """)
        #expect(throws: DatasetError.self) { try PairedDataset(root: tree.url("llvip")) }
        let llvip = try PairedDataset(root: tree.url("llvip"), split: "train")
        #expect(llvip.layout == .llvip && llvip.boxFormat == .voc)
        #expect(llvip.infraredFolder.path.hasSuffix("infrared/train"))
        let boxes = try llvip.sample(at: 0).boxes
        #expect(boxes == [BoundingBox(classIndex: 0, minX: 0.25, minY: 0.25, maxX: 0.5, maxY: 0.75)])
    }

    @Test("TNO-style pairs, named layouts and unknown layouts")
    func pairsAndNames() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.image("tno/ir/01.png")
        try tree.image("tno/vi/01.png")
        #expect(try PairedDataset(root: tree.url("tno")).layout == .pairs)
        #expect(try PairedDataset(root: tree.url("tno"), layout: DatasetLayout(name: "TNO")).layout == .pairs)
        #expect {
            try PairedDataset(root: tree.url("tno"), layout: .fmb)
        } throws: { error in
            guard case .missingFolder(_, let expected)? = error as? DatasetError else { return false }
            return expected.hasSuffix("infrared")
        }
        try tree.image("odd/foo/01.png")
        #expect {
            try PairedDataset(root: tree.url("odd"))
        } throws: { error in
            guard case .layoutNotRecognised? = error as? DatasetError else { return false }
            return "\(error)".contains("foo")
        }
        #expect(throws: DatasetError.folderNotFound(tree.url("nothing").path)) { try PairedDataset(root: tree.url("nothing")) }
    }

    @Test("missing partners and size mismatches are reported with both paths")
    func problems() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.image("ir/a.png")
        try tree.image("vi/a.png")
        try tree.image("ir/only-ir.png")
        try tree.image("vi/only-vis.jpg")
        try tree.image("ir/wrong.png", width: 8, height: 6)
        try tree.image("vi/wrong.png", width: 10, height: 6)
        let dataset = try PairedDataset(root: tree.root)
        #expect(dataset.pairs.map(\.name) == ["a", "wrong"])
        let descriptions = dataset.problems.map(\.description)
        #expect(descriptions.contains { $0.contains(tree.url("ir/only-ir.png").path) && $0.contains(tree.url("vi").path) })
        #expect(descriptions.contains { $0.contains(tree.url("vi/only-vis.jpg").path) && $0.contains(tree.url("ir").path) })

        let found = dataset.checkConsistency()
        let mismatch = try #require(found.first { if case .sizeMismatch = $0 { return true } else { return false } })
        #expect(mismatch.description.contains(tree.url("ir/wrong.png").path) && mismatch.description.contains(tree.url("vi/wrong.png").path))
        #expect(mismatch.description.contains("8x6") && mismatch.description.contains("10x6"))

        #expect {
            try dataset.validatedForTraining()
        } throws: { error in
            guard case .inconsistent(let problems)? = error as? DatasetError else { return false }
            return problems.count == 3
        }
        let (usable, skipped) = dataset.droppingInconsistentPairs()
        #expect(usable.pairs.map(\.name) == ["a"] && skipped.count == 3)
        #expect(throws: DatasetError.self) { try dataset.sample(at: 1) }  // 'wrong' cannot be loaded
    }

    @Test("a mask folder with a missing mask is a problem")
    func missingMask() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        for name in ["a", "b"] {
            try tree.image("ir/\(name).png")
            try tree.image("vi/\(name).png")
        }
        try tree.mask("label/a.png")
        let dataset = try PairedDataset(root: tree.root)
        #expect(dataset.problems.count == 1 && dataset.problems[0].description.contains(tree.url("label").path))
    }
}

@Suite("Label files")
struct LabelFileTests {
    @Test("YOLO text with and without scores; errors name the file and line")
    func yolo() throws {
        let detections = try YOLOLabels.parse("0 0.5 0.5 0.2 0.2\n\n# comment\n3 0.1 0.2 0.3 0.4 0.75\n")
        #expect(detections.count == 2 && detections[0].score == 1 && detections[1].score == 0.75 && detections[1].box.classIndex == 3)
        #expect(YOLOLabels.format([detections[0].box]) == "0 0.500000 0.500000 0.200000 0.200000\n")
        #expect {
            try YOLOLabels.parse("0 0.5 0.5\n", path: "/x/y.txt")
        } throws: { error in
            "\(error)".contains("/x/y.txt") && "\(error)".contains("line 1")
        }
        #expect(throws: LabelFileError.self) { try YOLOLabels.parse("a 0.5 0.5 0.1 0.1") }
    }

    @Test("VOC XML: unknown classes and malformed files are errors")
    func voc() throws {
        let xml = Data("<annotation><size><width>100</width><height>50</height></size><object><name>Car</name><bndbox><xmin>10</xmin><ymin>5</ymin><xmax>30</xmax><ymax>25</ymax></bndbox></object></annotation>".utf8)
        let parsed = try VOCAnnotation.parse(xml, classNames: VOCAnnotation.m3fdClasses)
        #expect(parsed.imageWidth == 100 && parsed.boxes == [BoundingBox(classIndex: 1, minX: 0.1, minY: 0.1, maxX: 0.3, maxY: 0.5)])
        #expect(throws: LabelFileError.self) { try VOCAnnotation.parse(xml, classNames: ["person"]) }
        #expect(throws: LabelFileError.self) { try VOCAnnotation.parse(Data("<annotation><size>".utf8), classNames: ["person"]) }
    }
}
