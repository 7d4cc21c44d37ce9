import Foundation

/// The one normalisation rule for Japanese search text, shared by stored columns (see
/// seed/make_seed_sql.py) and queries: NFKC folds half-width kana and full-width letters and digits;
/// hiragana becomes katakana so ちよだ finds チヨダ.
enum SearchText {
    static func normalise(_ text: String) -> String {
        // NFKD then NFC equals NFKC; Foundation's own NFKC leaves half-width ﾀﾞ as タ + U+3099.
        let folded = text.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
        var scalars = String.UnicodeScalarView()
        for scalar in folded.unicodeScalars {
            if (0x3041...0x3096).contains(scalar.value), let katakana = Unicode.Scalar(scalar.value + 0x60) {
                scalars.append(katakana)
            } else {
                scalars.append(scalar)
            }
        }
        return String(scalars)
    }

    /// A LIKE pattern matching text that starts with `text` (used with `ESCAPE '\'`).
    static func likePrefix(_ text: String) -> String { escapeLike(text) + "%" }

    /// A LIKE pattern matching text that contains `text`.
    static func likeContains(_ text: String) -> String { "%" + escapeLike(text) + "%" }

    /// Escapes LIKE's wildcards so user text matches literally.
    private static func escapeLike(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if character == "\\" || character == "%" || character == "_" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
