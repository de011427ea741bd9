import Foundation
import FuseKitTensor

/// Pixel-domain multiscale VIF (Sheikh and Bovik), as the CDDFuse evaluator computes it.
///
/// The evaluator's 2-D Gaussian windows are outer products of 1-D ones (no entry falls below
/// the machine-epsilon cut for N = 17, 9, 5, 3), so every 'valid' convolution here runs as two
/// 1-D passes, and the decimating filter of scales 2 to 4 only evaluates the kept positions.
enum VIF {
    static let sigmaNSq = 2.0
    static let eps = 1e-10

    /// The normalised 1-D Gaussian of size `n`, sigma `n / 5`.
    static func window(_ n: Int) -> [Double] {
        let sd = Double(n) / 5
        let m = Double(n - 1) / 2
        let g = (0..<n).map { i -> Double in
            let x = Double(i) - m
            return exp(-(x * x) / (2 * sd * sd))
        }
        let sum = g.reduce(0, +)
        return g.map { $0 / sum }
    }

    static func pair(reference: Plane, distorted: Plane) -> Double {
        let terms = multiscaleTerms(references: [reference], distorted: distorted)
        return ratio(terms[0])
    }

    static func sumOverSources(fused: Plane, _ a: Plane, _ b: Plane) -> Double {
        let terms = multiscaleTerms(references: [a, b], distorted: fused)
        return ratio(terms[0]) + ratio(terms[1])
    }

    private static func ratio(_ t: (num: Double, den: Double)) -> Double {
        let v = t.num / t.den
        return v.isNaN ? 1 : v
    }

    /// Numerator and denominator sums over the four scales, for each reference against one
    /// distorted image.
    static func multiscaleTerms(references: [Plane], distorted: Plane) -> [(num: Double, den: Double)] {
        var refs = references
        var dist = distorted
        var totals = [(num: Double, den: Double)](repeating: (0, 0), count: refs.count)
        for scale in 1...4 {
            let n = (1 << (5 - scale)) + 1
            let kernel = window(n)
            if scale > 1 {
                refs = refs.map { filterValidDecimate($0, kernel: kernel) }
                dist = filterValidDecimate(dist, kernel: kernel)
            }
            let terms = scaleTerms(references: refs, distorted: dist, kernel: kernel)
            for r in 0..<refs.count {
                totals[r].num += terms[r].num
                totals[r].den += terms[r].den
            }
        }
        return totals
    }

    /// 'valid' filtering with a separable kernel, keeping every second row and column from 0.
    static func filterValidDecimate(_ p: Plane, kernel: [Double]) -> Plane {
        let n = kernel.count
        let validWidth = p.width - n + 1, validHeight = p.height - n + 1
        guard validWidth > 0, validHeight > 0 else { return Plane(width: 0, height: 0, values: []) }
        let outWidth = (validWidth + 1) / 2, outHeight = (validHeight + 1) / 2
        var out = [Double](repeating: 0, count: outWidth * outHeight)
        let width = p.width
        p.values.withUnsafeBufferPointer { source in
            kernel.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { destination in
                    let target = SharedPointer(destination.baseAddress!)
                    Parallel.forRanges(outHeight, grain: rowGrain(width: width, costPerPixel: n)) { rows in
                        var column = [Double](repeating: 0, count: width)
                        column.withUnsafeMutableBufferPointer { column in
                            for oy in rows {
                                let top = 2 * oy
                                for x in 0..<width { column[x] = 0 }
                                for t in 0..<n {
                                    let row = source.baseAddress! + (top + t) * width
                                    let w = k[t]
                                    for x in 0..<width { column[x] += w * row[x] }
                                }
                                for ox in 0..<outWidth {
                                    var sum = 0.0
                                    for t in 0..<n { sum += k[t] * column[2 * ox + t] }
                                    target.base[oy * outWidth + ox] = sum
                                }
                            }
                        }
                    }
                }
            }
        }
        return Plane(width: outWidth, height: outHeight, values: out)
    }

    /// One scale's sums of `log10(1 + g^2 s1 / (sv + 2))` and `log10(1 + s1 / 2)` per reference.
    static func scaleTerms(references: [Plane], distorted: Plane, kernel: [Double]) -> [(num: Double, den: Double)] {
        let n = kernel.count
        let width = distorted.width, height = distorted.height
        let outWidth = width - n + 1, outHeight = height - n + 1
        let refCount = references.count
        guard outWidth > 0, outHeight > 0 else { return [(num: Double, den: Double)](repeating: (0, 0), count: refCount) }

        // Per output row and reference: (num, den), summed in a fixed order afterwards so the
        // result does not depend on how rows were split over threads.
        var rowSums = [Double](repeating: 0, count: outHeight * refCount * 2)
        let refPointers = references.map { $0.values }
        let maps = 2 + 3 * refCount  // dist, dist^2, then per reference: ref, ref^2, ref*dist
        refPointers.withUnsafeBufferPointers { refs in
            distorted.values.withUnsafeBufferPointer { dist in
                kernel.withUnsafeBufferPointer { k in
                    rowSums.withUnsafeMutableBufferPointer { sums in
                        let target = SharedPointer(sums.baseAddress!)
                        Parallel.forRanges(outHeight, grain: rowGrain(width: width, costPerPixel: n * maps)) { rows in
                            var columns = [Double](repeating: 0, count: maps * width)
                            columns.withUnsafeMutableBufferPointer { columns in
                                let c = columns.baseAddress!
                                for y in rows {
                                    for i in 0..<(maps * width) { c[i] = 0 }
                                    // Vertical pass of the five moment maps.
                                    for t in 0..<n {
                                        let w = k[t]
                                        let offset = (y + t) * width
                                        let d = dist.baseAddress! + offset
                                        let cd = c, cdd = c + width
                                        for x in 0..<width {
                                            let v = d[x]
                                            cd[x] += w * v
                                            cdd[x] += w * v * v
                                        }
                                        for r in 0..<refCount {
                                            let s = refs[r] + offset
                                            let cr = c + (2 + 3 * r) * width, crr = cr + width, crd = crr + width
                                            for x in 0..<width {
                                                let v = s[x]
                                                cr[x] += w * v
                                                crr[x] += w * v * v
                                                crd[x] += w * v * d[x]
                                            }
                                        }
                                    }
                                    // Horizontal pass and the per-pixel VIF terms.
                                    var num = [Double](repeating: 0, count: refCount)
                                    var den = [Double](repeating: 0, count: refCount)
                                    for x in 0..<outWidth {
                                        var mu2 = 0.0, e22 = 0.0
                                        for t in 0..<n {
                                            mu2 += k[t] * c[x + t]
                                            e22 += k[t] * c[width + x + t]
                                        }
                                        var sigma2Sq = e22 - mu2 * mu2
                                        if sigma2Sq < 0 { sigma2Sq = 0 }
                                        for r in 0..<refCount {
                                            let cr = c + (2 + 3 * r) * width, crr = cr + width, crd = crr + width
                                            var mu1 = 0.0, e11 = 0.0, e12 = 0.0
                                            for t in 0..<n {
                                                let w = k[t]
                                                mu1 += w * cr[x + t]
                                                e11 += w * crr[x + t]
                                                e12 += w * crd[x + t]
                                            }
                                            var sigma1Sq = e11 - mu1 * mu1
                                            let sigma12 = e12 - mu1 * mu2
                                            if sigma1Sq < 0 { sigma1Sq = 0 }
                                            var g = sigma12 / (sigma1Sq + eps)
                                            var svSq = sigma2Sq - g * sigma12
                                            if sigma1Sq < eps {
                                                g = 0
                                                svSq = sigma2Sq
                                                sigma1Sq = 0
                                            }
                                            if sigma2Sq < eps {
                                                g = 0
                                                svSq = 0
                                            }
                                            if g < 0 {
                                                svSq = sigma2Sq
                                                g = 0
                                            }
                                            if svSq <= eps { svSq = eps }
                                            num[r] += log10(1 + g * g * sigma1Sq / (svSq + sigmaNSq))
                                            den[r] += log10(1 + sigma1Sq / sigmaNSq)
                                        }
                                    }
                                    for r in 0..<refCount {
                                        target.base[(y * refCount + r) * 2] = num[r]
                                        target.base[(y * refCount + r) * 2 + 1] = den[r]
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var totals = [(num: Double, den: Double)](repeating: (0, 0), count: refCount)
        for y in 0..<outHeight {
            for r in 0..<refCount {
                totals[r].num += rowSums[(y * refCount + r) * 2]
                totals[r].den += rowSums[(y * refCount + r) * 2 + 1]
            }
        }
        return totals
    }
}

extension Array where Element == [Double] {
    /// Calls `body` with base pointers of every inner array, valid for the duration of the call.
    func withUnsafeBufferPointers<R>(_ body: ([UnsafePointer<Double>]) -> R) -> R {
        func recurse(_ index: Int, _ collected: [UnsafePointer<Double>]) -> R {
            if index == count { return body(collected) }
            return self[index].withUnsafeBufferPointer { recurse(index + 1, collected + [$0.baseAddress!]) }
        }
        return recurse(0, [])
    }
}
