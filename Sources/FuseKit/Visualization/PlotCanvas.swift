import FuseKitImage

/// An RGB drawing surface for FuseKit's plots and charts (white background, pixel font).
struct PlotCanvas {
    let width: Int, height: Int
    var pixels: [Float]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [Float](repeating: 1, count: 3 * width * height)
    }

    var image: Image { Image(width: width, height: height, channels: 3, pixels: pixels) }

    mutating func set(_ x: Int, _ y: Int, _ c: (Float, Float, Float)) {
        guard x >= 0, x < width, y >= 0, y < height else { return }
        let plane = width * height, o = y * width + x
        pixels[o] = c.0; pixels[plane + o] = c.1; pixels[2 * plane + o] = c.2
    }

    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (Float, Float, Float)) {
        let steps = Swift.max(Swift.abs(x1 - x0), Swift.abs(y1 - y0), 1)
        for s in 0...steps {
            let t = Double(s) / Double(steps)
            set(Int((Double(x0) + t * Double(x1 - x0)).rounded()), Int((Double(y0) + t * Double(y1 - y0)).rounded()), c)
        }
    }

    mutating func text(_ string: String, x: Int, y: Int, scale: Int = 2, color: (Float, Float, Float) = (0.2, 0.2, 0.2)) {
        var cx = x
        for ch in string {
            if let rows = PixelFont.glyphs[ch] {
                for (r, row) in rows.enumerated() {
                    for col in 0..<3 where row & (1 << (2 - col)) != 0 {
                        for dy in 0..<scale { for dx in 0..<scale { set(cx + col * scale + dx, y + r * scale + dy, color) } }
                    }
                }
            }
            cx += 4 * scale
        }
    }

    /// Fills the rectangle `x..<x + w`, `y..<y + h` (clipped to the canvas).
    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ c: (Float, Float, Float)) {
        for yy in Swift.max(y, 0)..<Swift.max(Swift.min(y + h, height), Swift.max(y, 0)) {
            for xx in Swift.max(x, 0)..<Swift.max(Swift.min(x + w, width), Swift.max(x, 0)) { set(xx, yy, c) }
        }
    }

    /// Copies an RGB image with its top left corner at (x, y) (clipped to the canvas).
    mutating func draw(_ image: Image, x: Int, y: Int) {
        let plane = image.width * image.height, source = image.pixels
        for yy in 0..<image.height {
            for xx in 0..<image.width {
                let o = yy * image.width + xx
                set(x + xx, y + yy, (source[o], source[plane + o], source[2 * plane + o]))
            }
        }
    }

    /// The width in pixels of `string` in the pixel font at `scale`.
    static func textWidth(_ string: String, scale: Int = 2) -> Int { string.count * 4 * scale }
}

/// A 3x5 pixel font for plot labels: digits, both cases of the Latin letters and common signs
/// (each row a 3-bit mask, the high bit the left column).
enum PixelFont {
    static let glyphs: [Character: [UInt8]] = [
        "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
        "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 1, 1], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
        ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0], "+": [0, 2, 7, 2, 0], "_": [0, 0, 0, 0, 7], " ": [0, 0, 0, 0, 0],
        "e": [0, 7, 7, 4, 7], "L": [4, 4, 4, 4, 7], "f": [3, 2, 7, 2, 2], "t": [2, 7, 2, 2, 3], "s": [3, 4, 2, 1, 6],
        "p": [7, 5, 7, 4, 4], "a": [0, 6, 3, 5, 7], "w": [0, 5, 5, 7, 5], "m": [0, 7, 7, 5, 5], "I": [7, 2, 2, 2, 7],
        "o": [0, 7, 5, 5, 7], "U": [5, 5, 5, 5, 7], "A": [2, 5, 7, 5, 5], "P": [7, 5, 7, 4, 4], "r": [0, 6, 5, 4, 4],
        "l": [6, 2, 2, 2, 7], "i": [2, 0, 2, 2, 2], "n": [0, 6, 5, 5, 5], "g": [7, 5, 7, 1, 7], "h": [4, 4, 7, 5, 5],
        "d": [1, 1, 7, 5, 7], "c": [0, 7, 4, 4, 7], "y": [5, 5, 7, 1, 7], "%": [5, 1, 2, 4, 5], "(": [1, 2, 2, 2, 1],
        ")": [4, 2, 2, 2, 4], ":": [0, 2, 0, 2, 0], "/": [1, 1, 2, 4, 4], "=": [0, 7, 0, 7, 0],
        "B": [6, 5, 6, 5, 6], "C": [7, 4, 4, 4, 7], "D": [6, 5, 5, 5, 6], "E": [7, 4, 6, 4, 7], "F": [7, 4, 6, 4, 4],
        "G": [7, 4, 5, 5, 7], "H": [5, 5, 7, 5, 5], "J": [1, 1, 1, 5, 7], "K": [5, 5, 6, 5, 5], "M": [5, 7, 7, 5, 5],
        "N": [7, 5, 5, 5, 5], "O": [7, 5, 5, 5, 7], "Q": [7, 5, 5, 7, 1], "R": [6, 5, 6, 5, 5], "S": [7, 4, 7, 1, 7],
        "T": [7, 2, 2, 2, 2], "V": [5, 5, 5, 5, 2], "W": [5, 5, 7, 7, 5], "X": [5, 5, 2, 5, 5], "Y": [5, 5, 2, 2, 2],
        "Z": [7, 1, 2, 4, 7], "b": [4, 4, 7, 5, 7], "j": [1, 0, 1, 5, 7], "k": [4, 5, 6, 5, 5], "q": [7, 5, 7, 1, 1],
        "u": [0, 5, 5, 5, 7], "v": [0, 5, 5, 5, 2], "x": [0, 5, 2, 5, 5], "z": [0, 7, 2, 4, 7], ",": [0, 0, 0, 2, 4],
        "±": [2, 7, 2, 0, 7], "[": [3, 2, 2, 2, 3], "]": [6, 2, 2, 2, 6], "'": [2, 2, 0, 0, 0], "×": [0, 5, 2, 5, 0],
        "<": [1, 2, 4, 2, 1], ">": [4, 2, 1, 2, 4], "*": [0, 5, 2, 5, 0], "#": [5, 7, 5, 7, 5], "λ": [4, 2, 3, 5, 5],
    ]
}
