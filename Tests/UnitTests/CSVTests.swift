import CSV
import Testing

@Suite struct CSVTests {
    @Test func readsQuotedFieldsAndLineNumbers() throws {
        let text = "\u{FEFF}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\n\"multi\nline\",z\nlast,\"\""
        let records = try CSVReader.records(text)
        #expect(records == [
            CSVRecord(line: 1, fields: ["a", "b"]),
            CSVRecord(line: 2, fields: ["x, y", "say \"hi\""]),
            CSVRecord(line: 4, fields: ["multi\nline", "z"]),
            CSVRecord(line: 6, fields: ["last", ""]),
        ])
    }

    @Test func reportsBrokenQuotingWithTheLine() {
        #expect(throws: CSVError(line: 2, message: "a quoted field is not closed")) { try CSVReader.records("a\n\"open,b\nc") }
        #expect(throws: CSVError(line: 1, message: "a quote inside an unquoted field")) { try CSVReader.records("ab\"c") }
        #expect(throws: CSVError(line: 1, message: "text after a closing quote")) { try CSVReader.records("\"ab\"c") }
    }

    @Test func tableChecksHeaderAndWidth() throws {
        let rows = try CSVReader.table("kind, code\nx,1\n", required: ["kind", "code"])
        #expect(rows.count == 1 && rows[0].line == 2 && rows[0].values["code"] == "1")
        #expect(throws: CSVError.self) { try CSVReader.table("kind\nx\n", required: ["code"]) }
        #expect(throws: CSVError(line: 3, message: "1 fields where the header has 2")) {
            try CSVReader.table("a,b\n1,2\n3\n", required: [])
        }
    }

    @Test func writingRoundTrips() throws {
        let fields = ["plain", "with,comma", "with \"quote\"", "two\nlines", " padded ", "千代田区"]
        #expect(try CSVReader.records(CSVReader.line(fields)) == [CSVRecord(line: 1, fields: fields)])
    }
}
