//! The broker's timestamps come in three formats over the years; all are read as UTC.

use chrono::{DateTime, NaiveDateTime};

/// A UTC instant without a zone, the form Rollcall stores on both backends.
pub type Timestamp = NaiveDateTime;

/// Parses `2021-06-25T19:07:33.155Z`, `2021-07-31T05:10:19+0000` and `2023-04-28 20:05:31.093`.
pub fn parse(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.naive_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.naive_utc());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t);
        }
    }
    None
}

/// RFC 3339 in UTC with every stored digit, so [`parse`] gives back the same instant.
pub fn format(at: Timestamp) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// An RFC 3339 time in UTC to the millisecond, as API bodies and the audit log show times.
pub fn time_json(t: &Timestamp) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The current time as Rollcall stores it.
pub fn now() -> Timestamp {
    chrono::Utc::now().naive_utc()
}

/// A time in a broker object, read once where the object is read (from any format the broker has used) and
/// written back in the broker's format; a text that is no time makes the object unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerTime(pub Timestamp);

impl serde::Serialize for BrokerTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time_json(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for BrokerTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        parse(&text)
            .map(BrokerTime)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a timestamp")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_broker_time_is_read_once_from_any_format_and_written_in_the_brokers() {
        for text in [
            "2021-06-25T19:07:33.155Z",
            "2021-06-25T19:07:33.155+0000",
            "2021-06-25 19:07:33.155",
        ] {
            let read: BrokerTime = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(read.0, parse("2021-06-25T19:07:33.155Z").unwrap(), "{text}");
            assert_eq!(
                serde_json::to_value(read).unwrap(),
                "2021-06-25T19:07:33.155Z"
            );
        }
        let refused = serde_json::from_value::<BrokerTime>(serde_json::json!("later")).unwrap_err();
        assert!(
            refused.to_string().contains("\"later\" is not a timestamp"),
            "{refused}"
        );
    }

    use super::*;

    fn utc(s: &str) -> Timestamp {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn formatted_instants_parse_back_to_themselves() {
        for text in [
            "2021-06-25 19:07:33.155123",
            "2021-06-25 19:07:33",
            "2021-06-25 19:07:33.1",
        ] {
            assert_eq!(parse(&format(utc(text))), Some(utc(text)));
        }
    }

    #[test]
    fn reads_the_three_formats_of_the_broker() {
        assert_eq!(
            parse("2021-06-25T19:07:33.155Z"),
            Some(utc("2021-06-25 19:07:33.155"))
        );
        assert_eq!(
            parse("2021-07-31T05:10:19+0000"),
            Some(utc("2021-07-31 05:10:19"))
        );
        assert_eq!(
            parse("2023-04-28 20:05:31.093"),
            Some(utc("2023-04-28 20:05:31.093"))
        );
    }

    #[test]
    fn converts_offsets_to_utc() {
        assert_eq!(
            parse("2021-07-31T07:10:19+0200"),
            Some(utc("2021-07-31 05:10:19"))
        );
        assert_eq!(
            parse("2021-07-31T07:10:19+02:00"),
            Some(utc("2021-07-31 05:10:19"))
        );
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2021-13-45T00:00:00Z"), None);
    }
}
