import Postgres
import ServiceRuntime
import Wire

/// Who sees the text of a closed (非公開) meeting: its minutes, agenda titles and notes, decisions
/// and action items may name individuals, so only principals of the owning tenant and of the
/// national tenant read them; anyone else sees the structure (dates, classification, counts) with
/// `null` for the text. An open meeting (傍聴可) is read by everyone.
enum Visibility {
    /// SQL that is true when `principal` may read text of rows owned by the tenant in `ownerColumn`.
    static func revealed(to principal: Principal?, ownerColumn: StaticString) -> PostgresQuery {
        let national = principal?.tenant == TenancyPolicy.nationalTenant
        return "(\(national) OR \(unsafeRaw: ownerColumn) = \(principal?.tenant))"
    }

    /// SQL that is true when `principal` may read the text of meeting `meetingAlias` (open, or revealed).
    static func meetingText(_ principal: Principal?, meeting visibility: StaticString, owner: StaticString) -> PostgresQuery {
        "(\(unsafeRaw: visibility) = 'open' OR \(revealed(to: principal, ownerColumn: owner)))"
    }

    /// A fiscal year (April–March, Japan's time zone) of a timestamptz column, as SQL.
    static func fiscalYear(of column: StaticString) -> PostgresQuery {
        "extract(year FROM (\(unsafeRaw: column) AT TIME ZONE 'Asia/Tokyo') - interval '3 months')::int"
    }
}
