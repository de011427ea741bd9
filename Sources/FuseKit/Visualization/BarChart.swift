import Foundation
import FuseKitImage

/// Bar charts of one score per method: the bar is the mean over runs, the whisker ± one standard
/// deviation, and each run's own value a dot, so three seeds show as three dots, not as a bar
/// that hides them. Bars start at zero (a cut axis would exaggerate small differences).
public enum BarChart {
    /// One bar.
    public struct Bar: Sendable {
        public var label: String
        /// Each run's value (the bar is their mean, the whisker their standard deviation).
        public var values: [Double]

        public init(label: String, values: [Double]) {
            self.label = label
            self.values = values
        }
    }

    static let colors: [(Float, Float, Float)] = [(0.122, 0.467, 0.706), (0.839, 0.153, 0.157), (0.173, 0.627, 0.173),
                                                  (0.580, 0.404, 0.741), (1.0, 0.498, 0.055), (0.549, 0.337, 0.294)]

    /// A white image with the title on top, the y axis with ticks, and the bars.
    public static func render(title: String, bars: [Bar], width: Int = 480, height: Int = 300) -> Image {
        var canvas = PlotCanvas(width: width, height: height)
        canvas.text(title, x: 8, y: 6)
        let finite = bars.map { $0.values.filter(\.isFinite) }
        let summaries = finite.map(SampleSummary.init)
        let top = finite.flatMap { $0 }.max() ?? 0
        let whiskers = summaries.map { $0.mean + ($0.standardDeviation ?? 0) }.filter(\.isFinite).max() ?? 0
        let bottom = Swift.min(finite.flatMap { $0 }.min() ?? 0, 0)
        let (step, decimals) = niceStep((Swift.max(top, whiskers) - bottom) / 4)
        let ymax = bottom + Double(Swift.max(1, Int(((Swift.max(top, whiskers) - bottom) / step).rounded(.up)))) * step
        let left = 90, right = width - 10, upper = 30, lower = height - 30
        guard right > left + 10, lower > upper + 10, !bars.isEmpty else { return canvas.image }
        func py(_ y: Double) -> Int { lower - Int(((y - bottom) / (ymax - bottom) * Double(lower - upper)).rounded()) }
        let axis: (Float, Float, Float) = (0.55, 0.55, 0.55)
        for k in 0...Int(((ymax - bottom) / step).rounded()) {
            let value = bottom + Double(k) * step
            let y = py(value)
            for gx in stride(from: left + 1, to: right, by: 6) { canvas.set(gx, y, (0.88, 0.88, 0.88)) }
            canvas.line(left - 4, y, left, y, axis)
            canvas.text(String(format: "%.\(decimals)f", value), x: 4, y: y - 5)
        }
        canvas.line(left, upper, left, lower, axis)
        canvas.line(left, py(0), right, py(0), axis)
        let slot = (right - left) / bars.count
        let barWidth = Swift.max(4, slot * 3 / 5)
        for (i, bar) in bars.enumerated() {
            let color = colors[i % colors.count], summary = summaries[i]
            let x0 = left + i * slot + (slot - barWidth) / 2, center = x0 + barWidth / 2
            if summary.mean.isFinite {
                let (a, b) = (py(0), py(summary.mean))
                let light = (0.55 + 0.45 * color.0, 0.55 + 0.45 * color.1, 0.55 + 0.45 * color.2)
                canvas.fill(x: x0, y: Swift.min(a, b), width: barWidth, height: Swift.abs(a - b) + 1, light)
                canvas.line(x0, b, x0 + barWidth - 1, b, color)
                if let sd = summary.standardDeviation, sd > 0 {
                    let (hi, lo) = (py(summary.mean + sd), py(summary.mean - sd))
                    canvas.line(center, hi, center, lo, (0.15, 0.15, 0.15))
                    canvas.line(center - 5, hi, center + 5, hi, (0.15, 0.15, 0.15))
                    canvas.line(center - 5, lo, center + 5, lo, (0.15, 0.15, 0.15))
                }
            }
            for (k, value) in finite[i].enumerated() {
                let dx = (k - finite[i].count / 2) * 4 + center
                canvas.fill(x: dx - 1, y: py(value) - 1, width: 3, height: 3, color)
            }
            let scale = PlotCanvas.textWidth(bar.label) <= slot - 4 ? 2 : 1
            let label = String(bar.label.prefix(Swift.max(1, (slot - 2) / (4 * scale))))
            canvas.text(label, x: left + i * slot + (slot - PlotCanvas.textWidth(label, scale: scale)) / 2, y: lower + 8, scale: scale, color: color)
        }
        return canvas.image
    }

    /// A tick step of 1, 2 or 5 times a power of ten near `raw`, and the decimals its labels need.
    static func niceStep(_ raw: Double) -> (step: Double, decimals: Int) {
        guard raw.isFinite, raw > 0 else { return (1, 0) }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let normalized = raw / magnitude
        let step = (normalized <= 1 ? 1 : normalized <= 2 ? 2 : normalized <= 5 ? 5 : 10) * magnitude
        return (step, Swift.max(0, Int((-log10(step) - 1e-9).rounded(.up))))
    }
}
