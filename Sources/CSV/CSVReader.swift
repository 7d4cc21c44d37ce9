/// RFC 4180 CSV: comma-separated, fields optionally in double quotes (a quote inside doubled),
/// records ended by LF or CRLF, a UTF-8 byte-order mark ignored. Each record keeps the line it
/// starts on, so errors can name the line a person sees in their spreadsheet.
public struct CSVRecord: Sendable, Equatable {
    public let line: Int
    public let fields: [String]

    public init(line: Int, fields: [String]) {
        self.line = line
        self.fields = fields
    }
}

public struct CSVError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

public enum CSVReader {
    /// Reads every record. Blank lines are skipped.
    public static func records(_ text: String) throws(CSVError) -> [CSVRecord] {
        var records: [CSVRecord] = []
        var fields: [String] = []
        var field = ""
        var inQuotes = false
        var fieldWasQuoted = false
        var line = 1
        var recordLine = 1
        var scalars = text.unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }

        func endRecord() {
            fields.append(field)
            if !(fields.count == 1 && fields[0].isEmpty && !fieldWasQuoted) {
                records.append(CSVRecord(line: recordLine, fields: fields))
            }
            fields = []
            field = ""
            fieldWasQuoted = false
        }

        var iterator = scalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        while let scalar = pending ?? iterator.next() {
            pending = nil
            if inQuotes {
                if scalar == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { field.unicodeScalars.append("\"") } else {
                            inQuotes = false
                            pending = next
                        }
                    } else {
                        inQuotes = false
                    }
                } else {
                    if scalar == "\n" { line += 1 }
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case ",":
                fields.append(field)
                field = ""
                fieldWasQuoted = false
            case "\"":
                guard field.isEmpty && !fieldWasQuoted else {
                    throw CSVError(line: line, message: "a quote inside an unquoted field")
                }
                inQuotes = true
                fieldWasQuoted = true
            case "\r":
                if let next = iterator.next(), next != "\n" { pending = next }
                endRecord()
                line += 1
                recordLine = line
            case "\n":
                endRecord()
                line += 1
                recordLine = line
            default:
                if fieldWasQuoted { throw CSVError(line: line, message: "text after a closing quote") }
                field.unicodeScalars.append(scalar)
            }
        }
        if inQuotes { throw CSVError(line: recordLine, message: "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty || fieldWasQuoted { endRecord() }
        return records
    }

    /// Reads a file whose first record names the columns; returns rows as dictionaries.
    /// Every `required` column must be present; every row must have as many fields as the header.
    public static func table(_ text: String, required: [String]) throws(CSVError) -> [(line: Int, values: [String: String])] {
        let all = try records(text)
        guard let header = all.first else { throw CSVError(line: 1, message: "the file is empty") }
        let names = header.fields.map { $0.trimmingCharacters(in: " ") }
        for column in required where !names.contains(column) {
            throw CSVError(line: header.line, message: "the header has no column \(column)")
        }
        return try all.dropFirst().map { record throws(CSVError) in
            guard record.fields.count == names.count else {
                throw CSVError(line: record.line, message: "\(record.fields.count) fields where the header has \(names.count)")
            }
            var values: [String: String] = [:]
            for (name, value) in zip(names, record.fields) { values[name] = value.trimmingCharacters(in: " ") }
            return (record.line, values)
        }
    }

    /// Quotes a field when it needs it (comma, quote, line break, leading/trailing space).
    public static func escape(_ field: String) -> String {
        let needsQuotes = field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
            || field.first == " " || field.last == " "
        guard needsQuotes else { return field }
        var quoted = "\""
        for character in field {
            if character == "\"" { quoted += "\"\"" } else { quoted.append(character) }
        }
        return quoted + "\""
    }

    /// One record as a line of CSV, ended by CRLF (RFC 4180).
    public static func line(_ fields: [String]) -> String {
        fields.map(escape).joined(separator: ",") + "\r\n"
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var slice = self[...]
        while slice.first == character { slice = slice.dropFirst() }
        while slice.last == character { slice = slice.dropLast() }
        return String(slice)
    }
}
