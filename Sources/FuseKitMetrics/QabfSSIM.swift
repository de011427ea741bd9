import Foundation
import FuseKitTensor

/// Q^{AB/F} (Xydeas and Petrovic) as the CDDFuse evaluator computes it.
enum Qabf {
    static let tg = 0.9994, kg = -15.0, dg = 0.5
    static let ta = 0.9879, ka = -22.0, da = 0.8

    /// Sobel responses of the evaluator (true convolution, zero padding, 'same' size):
    /// Sx with [[-1,0,1],[-2,0,2],[-1,0,1]], Sy with [[1,2,1],[0,0,0],[-1,-2,-1]].
    @inline(__always)
    static func strengthAndAngle(_ p: UnsafePointer<Double>, x: Int, y: Int, width: Int, height: Int) -> (g: Double, alpha: Double) {
        @inline(__always) func at(_ xx: Int, _ yy: Int) -> Double {
            (xx < 0 || yy < 0 || xx >= width || yy >= height) ? 0 : p[yy * width + xx]
        }
        let (tl, t, tr) = (at(x - 1, y - 1), at(x, y - 1), at(x + 1, y - 1))
        let (l, r) = (at(x - 1, y), at(x + 1, y))
        let (bl, b, br) = (at(x - 1, y + 1), at(x, y + 1), at(x + 1, y + 1))
        let sx = (tl + 2 * l + bl) - (tr + 2 * r + br)
        let sy = (bl + 2 * b + br) - (tl + 2 * t + tr)
        let g = (sx * sx + sy * sy).squareRoot()
        let alpha = sx == 0 ? Double.pi / 2 : atan(sy / sx)
        return (g, alpha)
    }

    @inline(__always)
    static func preservation(gX: Double, aX: Double, gF: Double, aF: Double) -> Double {
        let strength: Double
        if gX > gF { strength = gF / gX } else if gX < gF { strength = gX / gF } else { strength = gF }
        let orientation = 1 - abs(aX - aF) / (Double.pi / 2)
        let qg = tg / (1 + exp(kg * (strength - dg)))
        let qa = ta / (1 + exp(ka * (orientation - da)))
        return qg * qa
    }

    static func compute(fused f: Plane, _ a: Plane, _ b: Plane) -> Double {
        let (width, height) = (f.width, f.height)
        // Per row: the weighted numerator, the weights, and the unweighted sum of Q (for sources
        // without edges).
        var rowSums = [Double](repeating: 0, count: 3 * height)
        f.values.withUnsafeBufferPointer { fp in
            a.values.withUnsafeBufferPointer { ap in
                b.values.withUnsafeBufferPointer { bp in
                    rowSums.withUnsafeMutableBufferPointer { sums in
                        let target = SharedPointer(sums.baseAddress!)
                        Parallel.forRanges(height, grain: rowGrain(width: width, costPerPixel: 60)) { rows in
                            for y in rows {
                                var numerator = 0.0, denominator = 0.0, unweighted = 0.0
                                for x in 0..<width {
                                    let sf = strengthAndAngle(fp.baseAddress!, x: x, y: y, width: width, height: height)
                                    let sa = strengthAndAngle(ap.baseAddress!, x: x, y: y, width: width, height: height)
                                    let sb = strengthAndAngle(bp.baseAddress!, x: x, y: y, width: width, height: height)
                                    let qaf = preservation(gX: sa.g, aX: sa.alpha, gF: sf.g, aF: sf.alpha)
                                    let qbf = preservation(gX: sb.g, aX: sb.alpha, gF: sf.g, aF: sf.alpha)
                                    numerator += qaf * sa.g + qbf * sb.g
                                    denominator += sa.g + sb.g
                                    unweighted += qaf + qbf
                                }
                                target.base[3 * y] = numerator
                                target.base[3 * y + 1] = denominator
                                target.base[3 * y + 2] = unweighted
                            }
                        }
                    }
                }
            }
        }
        var numerator = 0.0, denominator = 0.0, unweighted = 0.0
        for y in 0..<height {
            numerator += rowSums[3 * y]
            denominator += rowSums[3 * y + 1]
            unweighted += rowSums[3 * y + 2]
        }
        // Sources without a single edge: every weight is 0, and the weighted mean tends to the
        // plain mean as the edges fade uniformly.
        guard denominator > 0 else { return unweighted / Double(2 * width * height) }
        return numerator / denominator
    }
}

/// SSIM with scikit-image's defaults (7x7 uniform window, sample covariance with N = 49,
/// K1 = 0.01, K2 = 0.03), data range 255, averaged where the window fits.
enum SSIM {
    static let window = 7
    static let dataRange = 255.0

    static func pair(_ x: Plane, _ y: Plane) -> Double {
        compute(first: x, others: [y])[0]
    }

    static func sumOverSources(fused: Plane, _ a: Plane, _ b: Plane) -> Double {
        let values = compute(first: fused, others: [a, b])
        return values[0] + values[1]
    }

    /// Mean SSIM of `first` against each of `others`.
    static func compute(first: Plane, others: [Plane]) -> [Double] {
        let (width, height) = (first.width, first.height)
        let pad = (window - 1) / 2
        let innerWidth = width - 2 * pad, innerHeight = height - 2 * pad
        guard innerWidth > 0, innerHeight > 0 else { return [Double](repeating: .nan, count: others.count) }
        let otherCount = others.count
        let area = Double(window * window)
        let covarianceNorm = area / (area - 1)
        let c1 = (0.01 * dataRange) * (0.01 * dataRange)
        let c2 = (0.03 * dataRange) * (0.03 * dataRange)
        let maps = 2 + 3 * otherCount  // x, x^2, then per other: y, y^2, x*y

        var rowSums = [Double](repeating: 0, count: innerHeight * otherCount)
        others.map(\.values).withUnsafeBufferPointers { ys in
            first.values.withUnsafeBufferPointer { xs in
                rowSums.withUnsafeMutableBufferPointer { sums in
                    let target = SharedPointer(sums.baseAddress!)
                    Parallel.forRanges(innerHeight, grain: rowGrain(width: width, costPerPixel: 4 * maps)) { rows in
                        var columns = [Double](repeating: 0, count: maps * width)
                        columns.withUnsafeMutableBufferPointer { columns in
                            let c = columns.baseAddress!
                            for row in rows {
                                let top = row  // window rows top ..< top + 7, centre row + pad
                                for i in 0..<(maps * width) { c[i] = 0 }
                                for t in 0..<window {
                                    let offset = (top + t) * width
                                    let xr = xs.baseAddress! + offset
                                    for i in 0..<width {
                                        let v = xr[i]
                                        c[i] += v
                                        c[width + i] += v * v
                                    }
                                    for o in 0..<otherCount {
                                        let yr = ys[o] + offset
                                        let cy = c + (2 + 3 * o) * width, cyy = cy + width, cxy = cyy + width
                                        for i in 0..<width {
                                            let v = yr[i]
                                            cy[i] += v
                                            cyy[i] += v * v
                                            cxy[i] += v * xr[i]
                                        }
                                    }
                                }
                                var totals = [Double](repeating: 0, count: otherCount)
                                for x in 0..<innerWidth {
                                    var sx = 0.0, sxx = 0.0
                                    for t in 0..<window {
                                        sx += c[x + t]
                                        sxx += c[width + x + t]
                                    }
                                    let ux = sx / area, uxx = sxx / area
                                    let vx = covarianceNorm * (uxx - ux * ux)
                                    for o in 0..<otherCount {
                                        let cy = c + (2 + 3 * o) * width, cyy = cy + width, cxy = cyy + width
                                        var sy = 0.0, syy = 0.0, sxy = 0.0
                                        for t in 0..<window {
                                            sy += cy[x + t]
                                            syy += cyy[x + t]
                                            sxy += cxy[x + t]
                                        }
                                        let uy = sy / area, uyy = syy / area, uxy = sxy / area
                                        let vy = covarianceNorm * (uyy - uy * uy)
                                        let vxy = covarianceNorm * (uxy - ux * uy)
                                        let a1 = 2 * ux * uy + c1, a2 = 2 * vxy + c2
                                        let b1 = ux * ux + uy * uy + c1, b2 = vx + vy + c2
                                        totals[o] += (a1 * a2) / (b1 * b2)
                                    }
                                }
                                for o in 0..<otherCount { target.base[row * otherCount + o] = totals[o] }
                            }
                        }
                    }
                }
            }
        }
        var means = [Double](repeating: 0, count: otherCount)
        for row in 0..<innerHeight {
            for o in 0..<otherCount { means[o] += rowSums[row * otherCount + o] }
        }
        return means.map { $0 / Double(innerWidth * innerHeight) }
    }
}
