import Foundation

extension ComparisonReport {
    /// The report as one HTML page that opens from disk: styles inline, no scripts, no server and
    /// no external assets; the charts and pictures are the PNG files beside it. It is well-formed
    /// XML too (every element closed, text escaped), which the tests check.
    public var html: String {
        var body: [String] = []
        body.append("<h1>FuseKit comparison</h1>")
        let runCounts = methods.map { "\(Self.escape($0)) (\(runs(of: $0).count) run\(runs(of: $0).count == 1 ? "" : "s"))" }
        body.append("<p>Methods: \(runCounts.joined(separator: ", ")). Every run is scored on the same test split: \(Self.escape(outcome.testSplit)), "
                    + "\(outcome.testPairs) pairs. Figures are the mean ± standard deviation over the runs; <span class=\"best\">best</span>, "
                    + "<span class=\"second\">second</span>.</p>")
        body.append("<p class=\"machine\">Machine: \(Self.escape(machine))</p>")
        body.append("<h2>Fusion metrics</h2>")
        body.append(htmlTable(header: ["Method"] + metrics.map { "\($0) ↑" }, scores: metrics))
        if let task {
            body.append("<h2>Task: \(Self.escape(task.kind)) (%)</h2>")
            body.append(htmlTable(header: ["Method"] + task.tableColumns, scores: task.tableColumns))
            body.append("<h3>Per-class \(task.classScoreName) (%)</h3>")
            let names = (0..<task.classes).map { $0 < outcome.classNames.count ? outcome.classNames[$0] : "class \($0)" }
            var rows = ["<tr><th>Method</th>" + names.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr>"]
            for m in methods { rows.append("<tr><th>\(Self.escape(m))</th>" + classSummaries(m).map { "<td>\(Self.escape(Self.cell($0)))</td>" }.joined() + "</tr>") }
            body.append("<table>" + rows.joined(separator: "\n") + "</table>")
        }
        body.append("<h2>Which differences exceed the seed-to-seed noise</h2>")
        body.append("<p>\(Self.escape(testDescription))</p>")
        var rows = ["<tr><th>Pair</th><th>Score</th><th>Δ (first − second)</th><th>95% bootstrap interval</th><th>Paired t-test over seeds</th></tr>"]
        for t in pairTests {
            let mark = t.exceedsSeedNoise ? " class=\"significant\"" : ""
            rows.append("<tr\(mark)><td>\(Self.escape(t.first)) vs \(Self.escape(t.second))</td><td>\(Self.escape(t.score))</td>"
                        + "<td>\(Self.signed(t.bootstrap?.difference ?? .nan))</td><td>\(Self.interval(t.bootstrap))</td><td>\(Self.escape(Self.verdict(t)))</td></tr>")
        }
        body.append("<table>" + rows.joined(separator: "\n") + "</table>")
        body.append("<h2>Charts</h2>")
        body.append("<div class=\"charts\">" + chartFiles.map { "<img src=\"\(Self.escape($0.path))\" alt=\"\(Self.escape($0.score)) per method\"/>" }.joined() + "</div>")
        body.append("<h2>The same test pairs fused by every method</h2>")
        let grid = outcome.pictures
        let prefix = grid.folder.lastPathComponent
        if let first = grid.pairs.first {
            let titles = grid.columns(of: first).map(\.title)
            var rows = ["<tr><th>pair</th>" + titles.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr>"]
            for pair in grid.pairs {
                rows.append("<tr><th>\(Self.escape(pair))</th>" + grid.columns(of: pair).map {
                    "<td><img src=\"\(Self.escape(prefix + "/" + $0.path))\" alt=\"\(Self.escape($0.title))\"/></td>"
                }.joined() + "</tr>")
            }
            body.append("<div class=\"scroll\"><table class=\"pictures\">" + rows.joined(separator: "\n") + "</table></div>")
        }
        return """
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8"/>
        <title>FuseKit comparison</title>
        <style>
        body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
        table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
        th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
        th:first-child, td:first-child { text-align: left; }
        .best { color: #c00; font-weight: bold; }
        .second { color: #00c; }
        tr.significant td { background: #eef7ee; }
        .machine { color: #666; font-size: 0.9em; }
        .charts img { margin: 0.3em; border: 1px solid #ddd; }
        table.pictures img { height: 128px; image-rendering: pixelated; }
        table.pictures td { padding: 2px; }
        .scroll { overflow-x: auto; }
        </style>
        </head>
        <body>
        \(body.joined(separator: "\n"))
        </body>
        </html>

        """
    }

    func htmlTable(header: [String], scores: [String]) -> String {
        var rows = ["<tr>" + header.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr>"]
        let rank = Dictionary(uniqueKeysWithValues: scores.map { ($0, ranks($0)) })
        for m in methods {
            let cells = scores.map { score -> String in
                let style = [0: " class=\"best\"", 1: " class=\"second\""][rank[score]?[m] ?? -1] ?? ""
                return "<td\(style)>\(Self.escape(Self.cell(summary(m, score))))</td>"
            }
            rows.append("<tr><th>\(Self.escape(m))</th>" + cells.joined() + "</tr>")
        }
        return "<table>" + rows.joined(separator: "\n") + "</table>"
    }

    /// Text with &, <, > and quotes escaped.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
