import ArgumentParser
import CSV
import Foundation
import JSONSchema

/// A one-line progress bar on stderr, redrawn in place.
struct ProgressBar {
    let label: String
    let enabled: Bool
    private var lastDrawn = -1

    init(label: String, enabled: Bool) {
        self.label = label
        self.enabled = enabled
    }

    mutating func update(done: Int, total: Int) {
        guard enabled, total > 0 else { return }
        let percent = min(100, done * 100 / total)
        guard percent != lastDrawn || done == total else { return }
        lastDrawn = percent
        let width = 30
        let filled = width * percent / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(String(format: "%3d", percent))% \(done)/\(total)".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// Shown when stderr is a terminal, or when asked for.
    static func wanted(_ flag: Bool) -> Bool { flag || isatty(STDERR_FILENO) == 1 }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a CSV file of resources into the registry: sent in chunks, applied all at once.",
        discussion: "Columns: see services/registry/README.md. A file with any bad row is rejected whole; errors are listed with their lines."
    )
    @Argument(help: "The CSV file.") var file: String
    @Option(name: .customLong("chunk-rows"), help: "Most rows per message.") var chunkRows = 2000
    @Option(name: .customLong("chunk-bytes"), help: "Most CSV bytes per message; keep it under the gateway's TSUNAGU_MAX_MESSAGE_BYTES.")
    var chunkBytes = 512 * 1024
    @Flag(help: "Show the progress bar even when stderr is not a terminal.") var progress = false
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ValidationError("cannot read \(file) as UTF-8 text")
        }
        let records = try CSVReader.records(text)
        guard let header = records.first else { throw ValidationError("\(file) is empty") }
        let rows = records.dropFirst()
        let session = try Session(connection)
        defer { session.close() }
        let started = try JSONValue.parse(try session.call(service: "registry", operation: "resource.import.begin", payload: Data("{}".utf8)))
        guard let importID = started["import_id"]?.stringValue else { throw ValidationError("the registry gave no import id") }
        var bar = ProgressBar(label: "importing", enabled: ProgressBar.wanted(progress))
        var sent = 0
        var index = rows.startIndex
        let headerLine = CSVReader.line(header.fields)
        while index < rows.endIndex {
            // A chunk ends at chunkRows records or before it would pass chunkBytes (at least one record).
            var csv = headerLine
            var bytes = csv.utf8.count
            let firstLine = rows[index].line
            var count = 0
            while index < rows.endIndex && count < max(1, chunkRows) {
                let line = CSVReader.line(rows[index].fields)
                if count > 0 && bytes + line.utf8.count > chunkBytes { break }
                csv += line
                bytes += line.utf8.count
                count += 1
                index += 1
            }
            let body = JSONValue.object(["import_id": .string(importID), "csv": .string(csv),
                                         "first_line": .integer(Int64(firstLine))])
            _ = try session.call(service: "registry", operation: "resource.import.chunk", payload: body.serialized())
            sent += count
            bar.update(done: sent, total: rows.count)
        }
        bar.finish()
        let result = try session.call(service: "registry", operation: "resource.import.commit",
                                      payload: JSONValue.object(["import_id": .string(importID)]).serialized())
        printJSON(result)
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export the registry's active resources as CSV or HSDS 3.0 JSON.")
    @Option(help: "An area: prefecture or municipality code, or a defined area's id. Default: all.") var area: String?
    @Option(help: "csv or hsds.") var format = "csv"
    @Option(help: "Write here instead of standard output.") var output: String?
    @Option(name: .customLong("page-size")) var pageSize = 2000
    @Flag(help: "Show the progress bar even when stderr is not a terminal.") var progress = false
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        guard format == "csv" || format == "hsds" else { throw ValidationError("--format is csv or hsds") }
    }

    func run() throws {
        let session = try Session(connection)
        defer { session.close() }
        var sink: FileHandle = .standardOutput
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: nil), let handle = FileHandle(forWritingAtPath: output) else {
                throw ValidationError("cannot write \(output)")
            }
            sink = handle
        }
        defer { if output != nil { try? sink.close() } }
        var bar = ProgressBar(label: "exporting", enabled: ProgressBar.wanted(progress))
        var after: String?
        var total = 0
        var done = 0
        var firstService = true
        if format == "hsds" { sink.write(Data("[\n".utf8)) }
        repeat {
            var body: [String: JSONValue] = ["format": .string(format), "limit": .integer(Int64(pageSize))]
            if let area { body["area"] = .string(area) }
            if let after { body["after"] = .string(after) }
            let page = try JSONValue.parse(try session.call(service: "registry", operation: "resource.export",
                                                            payload: JSONValue.object(body).serialized()))
            if case .integer(let t)? = page["total"] { total = Int(t) }
            if case .string(let csv)? = page["csv"] { sink.write(Data(csv.utf8)) }
            if case .array(let services)? = page["services"] {
                for service in services {
                    sink.write(Data((firstService ? "" : ",\n").utf8) + service.serialized())
                    firstService = false
                }
            }
            if case .integer(let count)? = page["count"] { done += Int(count) }
            bar.update(done: done, total: total)
            after = page["next_after"]?.stringValue
        } while after != nil
        if format == "hsds" { sink.write(Data("\n]\n".utf8)) }
        bar.finish()
    }
}
