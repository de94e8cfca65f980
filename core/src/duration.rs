//! Human durations in stack files (`250ms`, `15s`, `5m`, `2h`, `7d`): parsing, printing and their JSON Schema.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a number and a unit: `ms`, `s`, `m`, `h` or `d` (e.g. `15s`, `1.5m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

/// The pattern editors use to validate durations; `parse_span` is the authority.
pub const SPAN_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$";

impl Span {
    pub fn secs(s: u64) -> Span {
        Span(Duration::from_secs(s))
    }
    pub fn millis(ms: u64) -> Span {
        Span(Duration::from_millis(ms))
    }
    pub fn as_secs_f64(&self) -> f64 {
        self.0.as_secs_f64()
    }
    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }
}

/// Parses `250ms`, `15s`, `1.5m`, `2h`, `7d`. The error says what was expected.
pub fn parse_span(text: &str) -> Result<Span, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{t}` has no unit; write e.g. `{t}s` (units: ms, s, m, h, d)"))?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(format!(
            "`{t}` is not a duration; write a number and a unit, e.g. `15s`, `250ms`, `5m`"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a duration; write a number and a unit, e.g. `15s`"))?;
    let millis_per_unit = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{t}`; use ms, s, m, h or d"
            ))
        }
    };
    let millis = value * millis_per_unit;
    // Ten years is far beyond any timeout or bake time; larger values are typos.
    if !millis.is_finite() || millis > 315_360_000_000.0 {
        return Err(format!("`{t}` is too long a duration"));
    }
    Ok(Span(
        Duration::from_micros((millis * 1000.0).round() as u64),
    ))
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (value, unit) = if ms == 0 {
            (0, "s")
        } else if ms % 86_400_000 == 0 {
            (ms / 86_400_000, "d")
        } else if ms % 3_600_000 == 0 {
            (ms / 3_600_000, "h")
        } else if ms % 60_000 == 0 {
            (ms / 60_000, "m")
        } else if ms % 1000 == 0 {
            (ms / 1000, "s")
        } else {
            (ms, "ms")
        };
        write!(f, "{value}{unit}")
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_span(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Span {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": SPAN_PATTERN,
            "description": "A duration: a number and a unit (ms, s, m, h, d), e.g. `15s`, `250ms`, `5m`.",
            "x-statsctl-kind": "duration"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let cases = [
            ("250ms", Some(250), "250ms"),
            ("15s", Some(15_000), "15s"),
            ("1.5m", Some(90_000), "90s"),
            ("2h", Some(7_200_000), "2h"),
            ("7d", Some(604_800_000), "7d"),
            ("0s", Some(0), "0s"),
            ("15", None, ""),
            ("s", None, ""),
            ("1.s", None, ""),
            ("1..5s", None, ""),
            ("15sec", None, ""),
            ("-5s", None, ""),
            ("", None, ""),
            ("99999999999d", None, ""),
        ];
        for (input, millis, printed) in cases {
            let got = parse_span(input);
            match millis {
                Some(ms) => {
                    let span = got.unwrap_or_else(|e| panic!("{input}: {e}"));
                    assert_eq!(span.0.as_millis() as u64, ms, "{input}");
                    assert_eq!(span.to_string(), printed, "{input}");
                }
                None => assert!(got.is_err(), "{input} should not parse"),
            }
        }
    }
}
