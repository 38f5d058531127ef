//! The JSON Canonicalization Scheme (RFC 8785): one byte sequence per JSON value, so a
//! signature over it can be checked by anyone who re-serializes the same value, in any
//! language. Object members sorted by their names' UTF-16 code units, no whitespace,
//! strings escaped as ECMAScript's `JSON.stringify` does, numbers in ECMAScript's shortest
//! form.

use serde_json::Value;

/// The canonical serialization of `value`.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(name, out);
                out.push(':');
                write(member, out);
            }
            out.push('}');
        }
    }
}

/// `JSON.stringify` escaping: `"` and `\`, the two-character escapes for \b \f \n \r \t,
/// `\u00xx` (lower-case hex) for the other control characters, everything else as is.
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// ECMAScript's Number::toString for the value: integers as integers (up to 1e21),
/// otherwise the shortest round-trip digits, with an exponent outside [1e-6, 1e21).
fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() < (1u64 << 53) {
            return i.to_string();
        }
    }
    if let Some(u) = n.as_u64() {
        if u < (1u64 << 53) {
            return u.to_string();
        }
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    ecmascript(f)
}

fn ecmascript(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if !f.is_finite() {
        // Not representable in JSON; serde_json never produces it.
        return "null".into();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    let a = f.abs();
    // Shortest round-trip digits and decimal exponent, from Rust's own shortest formatting.
    let sci = format!("{a:e}"); // e.g. "1.2345e-7"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp + 1; // the position of the decimal point relative to the digits
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e = if e >= 0 {
            format!("+{e}")
        } else {
            e.to_string()
        };
        if k == 1 {
            format!("{digits}e{e}")
        } else {
            format!("{}.{}e{e}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_sorted_by_utf16_code_units_and_whitespace_is_dropped() {
        // RFC 8785 section 3.2.3's example: U+FB33 sorts after U+1F600 (surrogates 0xD83D
        // 0xDE00) in UTF-16 code units, though before it in UTF-8 bytes or code points.
        let v: Value = serde_json::from_str(
            r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew", "1": "One", "\ud83d\ude00": "Emoji", "\u0080": "Control", "\u00f6": "o"}"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"o\",\"\u{20ac}\":\"Euro Sign\",\"\u{1F600}\":\"Emoji\",\"\u{fb33}\":\"Hebrew\"}"
        );
        assert_eq!(
            canonical(&json!({"b": [1, {"d": 1, "c": 2}], "a": null})),
            r#"{"a":null,"b":[1,{"c":2,"d":1}]}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_json_stringify_does() {
        assert_eq!(
            canonical(&json!("a\"b\\c\n\u{1}\u{7f}/é")),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}/é\""
        );
    }

    #[test]
    fn numbers_take_ecmascripts_shortest_form() {
        // RFC 8785 appendix B examples.
        for (input, expected) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (4.50, "4.5"),
            (2e-3, "0.002"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (333_333_333.333_333_3, "333333333.3333333"),
            (1e23, "1e+23"),
            (9007199254740992.0, "9007199254740992"),
            (-1.5e-9, "-1.5e-9"),
        ] {
            assert_eq!(ecmascript(input), expected, "{input}");
        }
        assert_eq!(canonical(&json!(42)), "42");
        assert_eq!(canonical(&json!(-7)), "-7");
        assert_eq!(canonical(&json!(u64::MAX)), "18446744073709552000");
    }
}
