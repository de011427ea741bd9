import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Progress reporting on standard error, so that standard output stays clean for `--json`.
///
/// On a terminal it redraws one line with a bar, the count, the rate and the remaining time;
/// when standard error is not a terminal (or `CI=true`, or `TERM=dumb`) it prints a plain line
/// every 10% (and at least every 15 seconds). Safe to update from several threads.
///
/// ```swift
/// let progress = ProgressBar(total: pairs.count, label: "eval")
/// for (i, pair) in pairs.enumerated() {
///     ...
///     progress.update(completed: i + 1, status: pair.name)
/// }
/// progress.finish()
/// ```
final class ProgressBar: @unchecked Sendable {
    /// How the bar is drawn.
    enum Style: Sendable {
        /// One line redrawn in place (terminals).
        case interactive
        /// Separate lines now and then (logs, CI).
        case plain
        /// Nothing at all.
        case silent
    }

    private(set) var total: Int
    let label: String
    let style: Style
    let unit: String

    private let lock = NSLock()
    private var completed = 0
    private var status = ""
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastPlainLine = Date()
    private var lastPlainFraction = 0.0
    private var finished = false

    /// A progress bar over `total` items (0 when unknown); `unit` names the items in the rate
    /// ("it" by default, e.g. "img" or "batch").
    init(total: Int, label: String, unit: String = "it", style: Style? = nil) {
        self.total = max(total, 0)
        self.label = label
        self.unit = unit
        self.style = style ?? Self.defaultStyle()
    }

    /// Interactive on a terminal, plain otherwise (or when `CI=true` or `TERM=dumb`).
    static func defaultStyle() -> Style {
        let environment = ProcessInfo.processInfo.environment
        if environment["CI"]?.lowercased() == "true" || environment["TERM"] == "dumb" { return .plain }
        return isatty(STDERR_FILENO) == 1 ? .interactive : .plain
    }

    /// Sets the number of items done and an optional short status (e.g. the current file).
    func update(completed: Int, status: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        self.completed = completed
        if let status { self.status = status }
        render(force: false)
    }

    /// Sets the number of items done out of `total` (for work whose size is known only once it runs).
    func update(completed: Int, total: Int, status: String? = nil) {
        lock.lock()
        self.total = Swift.max(total, 0)
        lock.unlock()
        update(completed: completed, status: status)
    }

    /// Adds `count` items done.
    func advance(by count: Int = 1, status: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        completed += count
        if let status { self.status = status }
        render(force: false)
    }

    /// Prints a message line (a warning, say) without garbling the bar.
    func log(_ message: String) {
        lock.lock()
        defer { lock.unlock() }
        switch style {
        case .interactive:
            write("\r\u{1B}[2K" + message + "\n")
            if !finished { render(force: true) }
        case .plain, .silent:
            write(message + "\n")
        }
    }

    /// Draws the final state and ends the line; later updates are ignored.
    func finish(status: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        if let status { self.status = status }
        finished = true
        let elapsed = Date().timeIntervalSince(start)
        switch style {
        case .interactive:
            write("\r\u{1B}[2K" + line(width: terminalWidth(), elapsed: elapsed, done: true) + "\n")
        case .plain:
            let rate = elapsed > 0 ? Double(completed) / elapsed : 0
            write("\(label): done \(countText()) in \(Self.duration(elapsed)) (\(Self.rateText(rate, unit: unit)))"
                  + (self.status.isEmpty ? "" : " \(self.status)") + "\n")
        case .silent:
            break
        }
    }

    // MARK: Rendering (called with the lock held)

    private func render(force: Bool) {
        let now = Date()
        switch style {
        case .silent:
            return
        case .interactive:
            guard force || now.timeIntervalSince(lastDraw) >= 0.1 || (total > 0 && completed >= total) else { return }
            lastDraw = now
            write("\r\u{1B}[2K" + line(width: terminalWidth(), elapsed: now.timeIntervalSince(start), done: false))
        case .plain:
            let fraction = total > 0 ? Double(completed) / Double(total) : 0
            let stepReached = total > 0 && fraction - lastPlainFraction >= 0.1
            // The last step is reported by finish().
            guard force || total == 0 || completed < total else { return }
            guard force || stepReached || now.timeIntervalSince(lastPlainLine) >= 15 else { return }
            if stepReached { lastPlainFraction = (fraction * 10).rounded(.down) / 10 }
            lastPlainLine = now
            let elapsed = now.timeIntervalSince(start)
            let rate = elapsed > 0 ? Double(completed) / elapsed : 0
            var text = "\(label): \(countText())"
            if total > 0 { text += String(format: " (%.0f%%)", fraction * 100) }
            text += ", \(Self.rateText(rate, unit: unit))"
            if let eta = eta(rate: rate) { text += ", ETA \(Self.duration(eta))" }
            if !status.isEmpty { text += " \(status)" }
            write(text + "\n")
        }
    }

    private func countText() -> String { total > 0 ? "\(completed)/\(total)" : "\(completed)" }

    private func eta(rate: Double) -> Double? {
        guard total > 0, rate > 0, completed < total else { return nil }
        return Double(total - completed) / rate
    }

    private func line(width: Int, elapsed: Double, done: Bool) -> String {
        let rate = elapsed > 0 ? Double(completed) / elapsed : 0
        let fraction = total > 0 ? min(1, Double(completed) / Double(total)) : 0
        var right = total > 0 ? String(format: " %3.0f%%", fraction * 100) : ""
        right += " \(countText()) \(Self.rateText(rate, unit: unit))"
        if done {
            right += " \(Self.duration(elapsed))"
        } else if let eta = eta(rate: rate) {
            right += " ETA \(Self.duration(eta))"
        }
        let statusText = status.isEmpty ? "" : " " + String(status.prefix(24))
        var bar = ""
        if total > 0 {
            let barWidth = max(10, min(30, width - 1 - label.count - 3 - right.count - statusText.count))
            let filled = Int((fraction * Double(barWidth)).rounded(.down))
            bar = " [" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "]"
        }
        var text = "\(label)\(bar)\(right)\(statusText)"
        if text.count > width - 1 { text = String(text.prefix(max(0, width - 1))) }
        return text
    }

    private func terminalWidth() -> Int {
        var size = winsize()
        let status = withUnsafeMutablePointer(to: &size) { ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), $0) }
        if status == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 { return columns }
        return 80
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func rateText(_ rate: Double, unit: String) -> String {
        if rate >= 1 || rate == 0 { return String(format: "%.1f", rate) + " \(unit)/s" }
        return String(format: "%.1f", 1 / rate) + " s/\(unit)"
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if seconds < 10 { return String(format: "%.1fs", seconds) }
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60)
        return h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
    }
}
