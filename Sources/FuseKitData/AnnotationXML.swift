/// A small, strict XML reader for annotation files (Pascal VOC): elements, attributes (read and
/// ignored), text with the predefined and numeric character references, CDATA sections,
/// comments, processing instructions and a DOCTYPE without an internal subset.
///
/// It replaces Foundation's `XMLParser`, which on Linux (swift-corelibs-foundation, Swift 6.3.1)
/// crashes on valid XML (a processing instruction without data, `<?x?>`, dereferences NULL) and
/// on element names that are not UTF-8, and leaks on every malformed document. Entity
/// declarations are refused, so no document expands beyond its own size.
enum AnnotationXML {
    /// Why a document is not well-formed, with its 1-based line.
    struct Failure: Error {
        var line: Int
        var reason: String
    }

    /// What the reader reports, in document order.
    enum Event {
        case start(String)
        case text(String)
        case end(String)
    }

    /// Reads a UTF-8 document, calling `handle` for each element start, run of text and element end.
    static func read(_ bytes: [UInt8], _ handle: (Event) -> Void) throws(Failure) {
        var reader = Reader(bytes: bytes)
        try reader.document(handle)
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        init(bytes: [UInt8]) {
            self.bytes = bytes
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }  // byte order mark
        }

        func failure(_ reason: String, at offset: Int? = nil) -> Failure {
            let end = min(offset ?? position, bytes.count)
            return Failure(line: 1 + bytes[..<end].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }, reason: reason)
        }

        func starts(with text: String) -> Bool {
            bytes[position...].starts(with: text.utf8)
        }

        /// Moves past the next `terminator`, or fails naming `what` was left open.
        mutating func skip(pastNext terminator: String, _ what: String) throws(Failure) -> Range<Int> {
            let pattern = Array(terminator.utf8)
            var index = position
            while index + pattern.count <= bytes.count {
                if bytes[index] == pattern[0], bytes[index..<(index + pattern.count)].elementsEqual(pattern) {
                    defer { position = index + pattern.count }
                    return position..<index
                }
                index += 1
            }
            throw failure("\(what) is not closed")
        }

        static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

        static func isNameByte(_ byte: UInt8) -> Bool {
            !isSpace(byte) && !"<>/=\"'&!?".utf8.contains(byte)
        }

        mutating func skipSpace() {
            while position < bytes.count, Self.isSpace(bytes[position]) { position += 1 }
        }

        mutating func name() throws(Failure) -> String {
            let start = position
            while position < bytes.count, Self.isNameByte(bytes[position]) { position += 1 }
            guard position > start else { throw failure("expected a name") }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        mutating func document(_ handle: (Event) -> Void) throws(Failure) {
            var open: [String] = []
            var rootSeen = false
            while position < bytes.count {
                if bytes[position] != UInt8(ascii: "<") {
                    let text = try characterData()
                    if open.isEmpty {
                        guard text.utf8.allSatisfy(Self.isSpace) else { throw failure("text outside the root element") }
                    } else {
                        handle(.text(text))
                    }
                } else if starts(with: "<?") {
                    position += 2
                    _ = try skip(pastNext: "?>", "a processing instruction")
                } else if starts(with: "<!--") {
                    position += 4
                    _ = try skip(pastNext: "-->", "a comment")
                } else if starts(with: "<![CDATA[") {
                    guard !open.isEmpty else { throw failure("CDATA outside the root element") }
                    position += 9
                    let range = try skip(pastNext: "]]>", "a CDATA section")
                    handle(.text(String(decoding: bytes[range], as: UTF8.self)))
                } else if starts(with: "<!DOCTYPE") {
                    guard !rootSeen, open.isEmpty else { throw failure("a DOCTYPE after the root element") }
                    let start = position
                    let range = try skip(pastNext: ">", "the DOCTYPE")
                    if bytes[range].contains(UInt8(ascii: "[")) {
                        throw failure("DOCTYPEs with an internal subset (entity declarations) are not supported", at: start)
                    }
                } else if starts(with: "</") {
                    position += 2
                    let name = try name()
                    skipSpace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ">") else { throw failure("expected '>' after </\(name)") }
                    position += 1
                    guard let innermost = open.popLast() else { throw failure("</\(name)> closes no element") }
                    guard innermost == name else { throw failure("</\(name)> closes <\(innermost)>") }
                    handle(.end(name))
                } else {
                    position += 1
                    let name = try name()
                    guard open.isEmpty ? !rootSeen : true else { throw failure("a second root element <\(name)>") }
                    rootSeen = true
                    let selfClosing = try attributes(of: name)
                    handle(.start(name))
                    if selfClosing { handle(.end(name)) } else { open.append(name) }
                }
            }
            if let innermost = open.last { throw failure("<\(innermost)> is not closed") }
            guard rootSeen else { throw failure("no root element") }
        }

        /// Reads (and drops) the attributes up to the end of a start tag; whether it was `/>`.
        mutating func attributes(of element: String) throws(Failure) -> Bool {
            while true {
                skipSpace()
                guard position < bytes.count else { throw failure("<\(element) is not closed") }
                if bytes[position] == UInt8(ascii: ">") {
                    position += 1
                    return false
                }
                if starts(with: "/>") {
                    position += 2
                    return true
                }
                let attribute = try name()
                skipSpace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "=") else {
                    throw failure("attribute '\(attribute)' of <\(element)> has no value")
                }
                position += 1
                skipSpace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") || bytes[position] == UInt8(ascii: "'") else {
                    throw failure("attribute '\(attribute)' of <\(element)> is not quoted")
                }
                let quote = bytes[position]
                position += 1
                let value = try skip(pastNext: String(UnicodeScalar(quote)), "attribute '\(attribute)' of <\(element)>")
                guard !bytes[value].contains(UInt8(ascii: "<")) else { throw failure("'<' in attribute '\(attribute)' of <\(element)>") }
            }
        }

        /// Text up to the next '<', with character references replaced.
        mutating func characterData() throws(Failure) -> String {
            var result: [UInt8] = []
            while position < bytes.count, bytes[position] != UInt8(ascii: "<") {
                if bytes[position] == UInt8(ascii: "&") {
                    let start = position
                    position += 1
                    let reference = try skip(pastNext: ";", "a character reference")
                    guard reference.count <= 10 else { throw failure("a character reference is not closed", at: start) }
                    let name = String(decoding: bytes[reference], as: UTF8.self)
                    guard let scalar = Self.scalar(ofReference: name) else {
                        throw failure("unknown entity '&\(name);' (only the predefined ones and &#...; are supported)", at: start)
                    }
                    result.append(contentsOf: String(scalar).utf8)
                } else {
                    result.append(bytes[position])
                    position += 1
                }
            }
            return String(decoding: result, as: UTF8.self)
        }

        static func scalar(ofReference name: String) -> Unicode.Scalar? {
            switch name {
            case "lt": return "<"
            case "gt": return ">"
            case "amp": return "&"
            case "quot": return "\""
            case "apos": return "'"
            default:
                let value: UInt32?
                if name.hasPrefix("#x") {
                    value = UInt32(name.dropFirst(2), radix: 16)
                } else if name.hasPrefix("#") {
                    value = UInt32(name.dropFirst(), radix: 10)
                } else {
                    value = nil
                }
                // Digits only (UInt32 would also take a sign) and no NUL, as XML requires.
                guard let value, value != 0, name.dropFirst(name.hasPrefix("#x") ? 2 : 1).allSatisfy(\.isHexDigit) else { return nil }
                return Unicode.Scalar(value)
            }
        }
    }
}
