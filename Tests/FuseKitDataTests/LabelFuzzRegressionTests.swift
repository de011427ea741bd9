import Foundation
import FuseKitData
import FuseKitImage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Inputs found by the fuzz harnesses (Tests/Fuzz: fuzz-yolo, fuzz-voc) and the defects behind
/// them, kept so that they stay fixed. Each test says what the input did before the fix.
@Suite("Fuzz regressions: label readers")
struct LabelFuzzRegressionTests {
    static func expectLabelError(_ body: () throws(LabelFileError) -> Void, containing words: [String]) {
        do {
            try body()
            Issue.record("the labels were read")
        } catch {
            for word in words { #expect(error.reason.contains(word), "'\(word)' not in: \(error)") }
        }
    }

    /// fuzz-yolo found two defects with one input: a class written as `1e400` (infinite as a
    /// Double) trapped converting to Int, and it was reached because lines were split on the
    /// Character "\n", which "\r\n" is not: the comment on line 1 swallowed line 2. Now line 2
    /// is read (and refused: three fields), and classes out of Int's range are errors.
    @Test func yoloClassOutOfIntegerRangeIsAnError() throws {
        let found = try #require(Data(base64Encoded: "IyBwcmVkaWN0NSwwLjUsMC41LDEsMQ0KMC4gIDAuMiAwLjkxCgoxZTQwMAkwLjcJMC4xCTAuMQkwLjA1Cg=="))
        Self.expectLabelError({ () throws(LabelFileError) in _ = try YOLOLabels.parse(String(decoding: found, as: UTF8.self)) },
                              containing: ["line 2", "expected 'class cx cy w h [score]'"])
        for text in ["1e400 0.5 0.5 0.1 0.1", "1e19 0.5 0.5 0.1 0.1", "inf 0.5 0.5 0.1 0.1", "-1 0.5 0.5 0.1 0.1", "2.5 0.5 0.5 0.1 0.1"] {
            Self.expectLabelError({ () throws(LabelFileError) in _ = try YOLOLabels.parse(text) }, containing: ["line 1", "not a non-negative integer"])
        }
        // Integral floats, as some converters write classes, are still read.
        #expect(try YOLOLabels.parse("3.0 0.5 0.5 0.1 0.1").map(\.box.classIndex) == [3])
    }

    /// Windows line endings: every line is read, a comment stops at its own line break.
    @Test func yoloCRLFLinesAreSeparateLines() throws {
        let text = "# comment\r\n0 0.5 0.5 0.1 0.1\r\n1 0.2 0.3 0.1 0.2 0.9\r\n"
        #expect(try YOLOLabels.parse(text).map(\.box.classIndex) == [0, 1])
        Self.expectLabelError({ () throws(LabelFileError) in _ = try YOLOLabels.parse("0 0.5 0.5 0.1 0.1\r\n0 0.5\r\n") }, containing: ["line 2"])
    }

    /// fuzz-voc: a processing instruction without data (`<?ho?>`, valid XML) made Foundation's
    /// XMLParser dereference NULL (swift-corelibs-foundation). VOC files are now read by
    /// FuseKit's own small XML reader; this input is malformed (text outside the root element).
    @Test func vocProcessingInstructionWithoutDataIsRead() throws {
        let found = try #require(Data(base64Encoded: "PD9obz8+CiNPQwEAIGVjPiBQ"))
        Self.expectLabelError({ () throws(LabelFileError) in _ = try VOCAnnotation.parse(found, classNames: VOCAnnotation.m3fdClasses) },
                              containing: ["malformed XML, line 2: text outside the root element"])
        let valid = Data("<?ho?><annotation><?pi?><size><width>4</width><height>2</height></size></annotation>".utf8)
        #expect(try VOCAnnotation.parse(valid, classNames: ["person"]).imageWidth == 4)
    }

    /// What the XML reader accepts (the constructs of LabelImg and M3FD files) and refuses.
    @Test func vocXMLConstructs() throws {
        let accepted = Data("""
            \u{FEFF}<?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE annotation>
            <!-- written by a tool -->
            <annotation verified='yes'>
              <folder/>
              <size><width>1&#48;0</width><height><![CDATA[50]]></height><depth>3</depth></size>
              <object><name>Car</name><pose>Unspecified</pose><truncated>0</truncated><difficult>1</difficult>
                <bndbox><xmin>10</xmin><ymin>5</ymin><xmax>30</xmax><ymax>25</ymax></bndbox></object>
              <object><name>&#x50;eople</name><bndbox><xmin> 1.5 </xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>
              <note>a &lt; b &amp;&amp; c &gt; d &quot;&apos;</note>
            </annotation>

            """.utf8)
        let parsed = try VOCAnnotation.parse(accepted, classNames: VOCAnnotation.m3fdClasses)
        #expect(parsed.imageWidth == 100 && parsed.imageHeight == 50 && parsed.difficultCount == 1)
        #expect(parsed.boxes.map(\.classIndex) == [1, 0])
        #expect(parsed.boxes[1].minX == 1.5 / 100)

        let refused: [(String, String)] = [
            ("<annotation><size></annotation>", "line 1: </annotation> closes <size>"),
            ("<annotation>\n<size>", "line 2: <size> is not closed"),
            ("<a/><b/>", "a second root element <b>"),
            ("<a>&nbsp;</a>", "unknown entity '&nbsp;'"),
            ("<a>&#0;</a>", "unknown entity '&#0;'"),
            ("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "internal subset"),
            ("<a b=c></a>", "attribute 'b' of <a> is not quoted"),
            ("<a><!-- open </a>", "a comment is not closed"),
            ("   ", "no root element"),
            ("</a>", "</a> closes no element"),
        ]
        for (text, reason) in refused {
            Self.expectLabelError({ () throws(LabelFileError) in _ = try VOCAnnotation.parse(Data(text.utf8), classNames: ["a"], imageSize: (1, 1)) },
                                  containing: [reason])
        }
    }

    /// fuzz-voc: element names that are not UTF-8 made Foundation's XMLParser trap (it
    /// force-unwraps the name as a String). Such bytes are refused before any XML is read.
    @Test func vocBytesThatAreNotUTF8AreAnError() throws {
        let found = try #require(Data(base64Encoded:
            "PGFubjxhb3T/////////////////////////////////////////////////////////////////////////////////////////////////////////////////YXRpbm5vbm8+"))
        Self.expectLabelError({ () throws(LabelFileError) in _ = try VOCAnnotation.parse(found, classNames: VOCAnnotation.m3fdClasses) },
                              containing: ["not UTF-8"])
    }

    /// Found reading the VOC reader for the fuzz harness: a `<size>` of `1e400` trapped
    /// converting to Int (and `640.5` was silently truncated); an infinite `<bndbox>` made an
    /// infinite box.
    @Test func vocSizesAndBoxesMustBeFinite() throws {
        func xml(width: String, xmax: String = "30") -> Data {
            Data("<annotation><size><width>\(width)</width><height>50</height></size><object><name>Car</name><bndbox><xmin>10</xmin><ymin>5</ymin><xmax>\(xmax)</xmax><ymax>25</ymax></bndbox></object></annotation>".utf8)
        }
        for width in ["1e400", "nan", "640.5", "-5", "0"] {
            Self.expectLabelError({ () throws(LabelFileError) in _ = try VOCAnnotation.parse(xml(width: width), classNames: VOCAnnotation.m3fdClasses) },
                                  containing: ["<width> '\(width)' is not a positive integer"])
        }
        Self.expectLabelError({ () throws(LabelFileError) in _ = try VOCAnnotation.parse(xml(width: "100", xmax: "inf"), classNames: VOCAnnotation.m3fdClasses) },
                              containing: ["non-finite <bndbox>"])
        let parsed = try VOCAnnotation.parse(xml(width: "100.0"), classNames: VOCAnnotation.m3fdClasses)
        #expect(parsed.imageWidth == 100 && parsed.boxes.count == 1)
    }

    /// The empty input of every harness: Foundation's `String(contentsOf:)` and
    /// `Data(contentsOf:)` leaked 4 KB per empty file (Swift 6.3.1), and the YOLO label file of
    /// an image without objects is empty. Runs in a child process, whose resident size other
    /// tests do not disturb.
    @Test func readingEmptyLabelFilesDoesNotLeak() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-labels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("empty.txt").path
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        #expect(try YOLOLabels.readBoxes(URL(fileURLWithPath: path)).isEmpty)
        await #expect(processExitsWith: .success) { [path = path as String] in
            func residentBytes() -> Int {
                let fields = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8))?.split(separator: " ") ?? []
                return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
            }
            let url = URL(fileURLWithPath: path)
            for _ in 0..<1000 { _ = try? YOLOLabels.readBoxes(url) }
            let before = residentBytes()
            for _ in 0..<20_000 {
                _ = try? YOLOLabels.readBoxes(url)
                _ = try? VOCAnnotation.read(url, classNames: ["person"])
            }
            // A 4 KB leak per read would add 160 MB.
            exit(residentBytes() - before < 16 << 20 ? 0 : 1)
        }
    }
}
