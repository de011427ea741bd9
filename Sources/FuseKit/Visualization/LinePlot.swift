import Foundation
import FuseKitImage

/// Draws series of (x, y) points as line plots, one panel per series stacked vertically, each
/// with its own y range, axis ticks and labels in a small built-in pixel font.
public enum LinePlot {
    static let palette: [(Float, Float, Float)] = [(0.122, 0.467, 0.706), (0.839, 0.153, 0.157), (0.173, 0.627, 0.173), (0.580, 0.404, 0.741)]

    /// A white canvas with the plots.
    public static func render(_ series: [(name: String, points: [(Double, Double)])], width: Int, height: Int, title: String = "") -> Image {
        var canvas = PlotCanvas(width: width, height: height)
        let panels = series.filter { !$0.points.isEmpty }
        guard !panels.isEmpty else { return canvas.image }
        let panelHeight = height / panels.count
        for (i, s) in panels.enumerated() {
            canvas.plot(s.points, name: s.name, top: i * panelHeight, height: panelHeight, color: palette[i % palette.count])
        }
        return canvas.image
    }
}

extension PlotCanvas {
    /// A tick label: fixed point, or scientific for very small and very large values.
    static func label(_ v: Double) -> String {
        let a = Swift.abs(v)
        if a != 0 && (a < 1e-3 || a >= 1e5) { return String(format: "%.2e", v) }
        return String(format: a < 1 ? "%.4f" : "%.3f", v)
    }

    /// One line-plot panel of `points` in the rows `top..<top + height`, with axes and labels.
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
