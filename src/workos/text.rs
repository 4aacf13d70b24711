//! Text the databases cannot store (rule 21): PostgreSQL's `text` refuses NUL (U+0000), so a NUL an
//! identity provider put in a name is removed from the broker's JSON before anything reads it, for
//! webhooks, the Events API and pulls alike. A name never stops an event or a pull.

use std::borrow::Cow;

/// The JSON text with every `\u0000` escape inside its strings removed (JSON carries NUL only as that
/// escape: a raw control character is not valid JSON). An escaped backslash followed by `u0000` is
/// text, not a NUL, and stays. Borrows when there is nothing to remove.
pub fn strip_nul(json: &[u8]) -> Cow<'_, [u8]> {
    if !contains_nul_escape(json) {
        return Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(json.len());
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if is_nul_escape(&json[i..]) {
                i += 6;
                continue;
            }
            // An escape: the backslash and the character it escapes go together.
            let end = (i + 2).min(json.len());
            out.extend_from_slice(&json[i..end]);
            i = end;
            continue;
        }
        out.push(json[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Whether `text` begins with the escape `\u0000` (hex digits in either case).
fn is_nul_escape(text: &[u8]) -> bool {
    text.len() >= 6 && text[0] == b'\\' && text[1] == b'u' && text[2..6].iter().all(|b| *b == b'0')
}

fn contains_nul_escape(json: &[u8]) -> bool {
    json.windows(6).any(is_nul_escape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn stripped(value: &Value) -> Value {
        let text = serde_json::to_vec(value).unwrap();
        serde_json::from_slice(&strip_nul(&text)).unwrap()
    }

    #[test]
    fn a_nul_in_a_name_is_removed_and_the_rest_kept() {
        let user = json!({"first_name": "Ann\u{0}e", "last_name": "\u{0}", "state": "inactive"});
        assert_eq!(
            stripped(&user),
            json!({"first_name": "Anne", "last_name": "", "state": "inactive"})
        );
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_text_and_stays() {
        let text = br#"{"name":"a\\u0000b"}"#;
        assert_eq!(strip_nul(text).as_ref(), text.as_slice());
        let value: Value = serde_json::from_slice(&strip_nul(text)).unwrap();
        assert_eq!(value["name"], "a\\u0000b");
    }

    #[test]
    fn text_without_a_nul_is_borrowed() {
        let text = br#"{"name":"plain \u00e9"}"#;
        assert!(matches!(strip_nul(text), Cow::Borrowed(_)));
    }

    proptest! {
        #![proptest_config(crate::workos::proptest_config(256))]

        /// Whatever the strings hold, the stripped JSON still parses, to the same strings without NUL.
        #[test]
        fn stripping_removes_exactly_the_nuls(
            names in proptest::collection::vec("[a-z\\\\\"\u{0}\u{e9}u0]{0,12}", 1..5)
        ) {
            let value = Value::Array(names.iter().map(|n| json!({ "name": n })).collect());
            let expected = Value::Array(names.iter().map(|n| json!({ "name": n.replace('\0', "") })).collect());
            prop_assert_eq!(stripped(&value), expected);
        }
    }
}
