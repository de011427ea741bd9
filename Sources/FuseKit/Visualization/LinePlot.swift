import Foundation
import FuseKitImage

/// Draws series of (x, y) points as line plots, one panel per series stacked vertically, each
/// with its own y range, axis ticks and labels in a small built-in pixel font.
public enum LinePlot {
    static let palette: [(Float, Float, Float)] = [(0.122, 0.467, 0.706), (0.839, 0.153, 0.157), (0.173, 0.627, 0.173), (0.580, 0.404, 0.741)]

    /// A white canvas with the plots.
    public static func render(_ series: [(name: String, points: [(Double, Double)])], width: Int, height: Int, title: String = "") -> Image {
        var canvas = Canvas(width: width, height: height)
        let panels = series.filter { !$0.points.isEmpty }
        guard !panels.isEmpty else { return canvas.image }
        let panelHeight = height / panels.count
        for (i, s) in panels.enumerated() {
            canvas.plot(s.points, name: s.name, top: i * panelHeight, height: panelHeight, color: palette[i % palette.count])
        }
        return canvas.image
    }

    struct Canvas {
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

        static func label(_ v: Double) -> String {
            let a = Swift.abs(v)
            if a != 0 && (a < 1e-3 || a >= 1e5) { return String(format: "%.2e", v) }
            return String(format: a < 1 ? "%.4f" : "%.3f", v)
        }

        mutating func plot(_ points: [(Double, Double)], name: String, top: Int, height h: Int, color: (Float, Float, Float)) {
            let finite = points.filter { $0.1.isFinite }
            guard let first = finite.first else { return }
            let left = 90, right = width - 12, upper = top + 24, lower = top + h - 26
            guard right > left + 10, lower > upper + 10 else { return }
            var (xmin, xmax, ymin, ymax) = (first.0, first.0, first.1, first.1)
            for (x, y) in finite { xmin = Swift.min(xmin, x); xmax = Swift.max(xmax, x); ymin = Swift.min(ymin, y); ymax = Swift.max(ymax, y) }
            if xmax == xmin { xmax = xmin + 1 }
            if ymax == ymin { ymax = ymin + Swift.max(Swift.abs(ymin) * 0.1, 1e-6) }
            let axis: (Float, Float, Float) = (0.55, 0.55, 0.55)
            line(left, upper, left, lower, axis)
            line(left, lower, right, lower, axis)
            for k in 0...4 {
                let yv = ymin + (ymax - ymin) * Double(k) / 4
                let py = lower - Int(Double(lower - upper) * Double(k) / 4)
                line(left - 4, py, left, py, axis)
                for gx in stride(from: left + 1, to: right, by: 6) { set(gx, py, (0.9, 0.9, 0.9)) }
                text(Self.label(yv), x: 4, y: py - 5)
            }
            func xLabel(_ v: Double) -> String { v == v.rounded() && Swift.abs(v) < 1e9 ? String(Int(v)) : Self.label(v) }
            text(xLabel(xmin), x: left, y: lower + 6)
            let maxLabel = xLabel(xmax)
            text(maxLabel, x: right - maxLabel.count * 8, y: lower + 6)
            text(name, x: left + 8, y: top + 6, color: color)
            func px(_ x: Double) -> Int { left + Int((x - xmin) / (xmax - xmin) * Double(right - left)) }
            func py(_ y: Double) -> Int { lower - Int((y - ymin) / (ymax - ymin) * Double(lower - upper)) }
            var previous: (Int, Int)?
            for (x, y) in finite {
                let p = (px(x), py(y))
                if let q = previous { line(q.0, q.1, p.0, p.1, color) } else { set(p.0, p.1, color) }
                previous = p
            }
        }
    }
}

/// A 3x5 pixel font for plot labels (digits, signs and the letters the plots use).
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
    ]
}
