import FuseKitImage

/// Renders a map of values in [0, 1] (e.g. the learned weight w_a) as a colour image with a
/// perceptually ordered colour scale (dark purple for 0 through teal to yellow for 1, like
/// matplotlib's viridis), optionally next to a colour bar.
public enum HeatMap {
    /// Control points of the colour scale (viridis sampled at nine points).
    static let stops: [(Float, Float, Float)] = [
        (0.267, 0.005, 0.329), (0.283, 0.141, 0.458), (0.254, 0.265, 0.530), (0.207, 0.372, 0.553),
        (0.164, 0.471, 0.558), (0.128, 0.567, 0.551), (0.135, 0.659, 0.518), (0.267, 0.749, 0.441),
        (0.993, 0.906, 0.144),
    ]

    /// The colour of a value (clamped to [0, 1]).
    public static func color(_ value: Float) -> (Float, Float, Float) {
        let v = value.isNaN ? 0 : Swift.min(Swift.max(value, 0), 1)
        let position = v * Float(stops.count - 1)
        let i = Swift.min(Int(position), stops.count - 2)
        let t = position - Float(i)
        let (a, b) = (stops[i], stops[i + 1])
        return (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, a.2 + (b.2 - a.2) * t)
    }

    /// An RGB image of the values (row-major, `width` x `height`).
    public static func render(_ values: [Float], width: Int, height: Int, colorBar: Bool = true) -> Image {
        precondition(values.count == width * height, "HeatMap.render: \(values.count) values for \(width)x\(height)")
        let barWidth = colorBar ? Swift.max(6, width / 24) : 0
        let gap = colorBar ? Swift.max(2, barWidth / 3) : 0
        let outWidth = width + gap + barWidth
        let plane = outWidth * height
        var pixels = [Float](repeating: 1, count: 3 * plane)
        for y in 0..<height {
            for x in 0..<width {
                let (r, g, b) = color(values[y * width + x])
                let o = y * outWidth + x
                pixels[o] = r; pixels[plane + o] = g; pixels[2 * plane + o] = b
            }
            if colorBar {
                let (r, g, b) = color(1 - Float(y) / Float(Swift.max(height - 1, 1)))
                for x in (width + gap)..<outWidth {
                    let o = y * outWidth + x
                    pixels[o] = r; pixels[plane + o] = g; pixels[2 * plane + o] = b
                }
            }
        }
        return Image(width: outWidth, height: height, channels: 3, pixels: pixels)
    }
}
