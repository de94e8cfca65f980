//! The one duration grammar of statsctl, for stack files and command-line flags alike (`500ms`, `90s`, `1m30s`,
//! `2h`, `7d`): parsing with checked arithmetic and an upper bound, printing, and the JSON Schema editors use.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration: one or more `<number><unit>` parts, units `d`, `h`, `m`, `s`, `ms` (e.g. `15s`, `1m30s`, `1.5m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

/// The pattern editors use to validate durations; `parse_span` is the authority (it also enforces that only the
/// last part has a fraction and the upper bound, which a pattern cannot say).
pub const SPAN_PATTERN: &str = r"^(?=[0-9])([0-9]+(\.[0-9]+)?d)?([0-9]+(\.[0-9]+)?h)?([0-9]+(\.[0-9]+)?m)?([0-9]+(\.[0-9]+)?s)?([0-9]+(\.[0-9]+)?ms)?$";

/// The longest duration accepted anywhere: far beyond any timeout, bake time or retention statsctl sets, so
/// anything longer is a typo — and the bound keeps every later addition or conversion from overflowing.
pub const MAX_SPAN: Span = Span(Duration::from_secs(365 * 86_400));

/// What every duration error suggests.
const HINT: &str =
    "write a number and a unit, e.g. `500ms`, `90s`, `1m30s`, `2h`, `7d` (units d, h, m, s, ms, largest first)";

/// Why a duration did not parse, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    pub message: String,
    pub hint: String,
}

impl DurationError {
    fn new(message: String) -> Self {
        DurationError {
            message,
            hint: HINT.to_string(),
        }
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DurationError {}

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

/// The units, largest first, with their length in nanoseconds.
const UNITS: [(&str, u128); 5] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
];

/// Digits after the decimal point: nanoseconds are the finest a `Duration` holds.
const MAX_FRACTION_DIGITS: usize = 9;

/// Parses `500ms`, `90s`, `1m30s`, `1.5m`, `2h`, `7d`: one or more parts `<digits>[.<digits>]<unit>`, each unit
/// at most once and largest first, a fraction only on the last part; at most `MAX_SPAN`. Integer arithmetic
/// throughout, every step checked: no input panics or wraps. A bare number is an error (no place documents a
/// default unit).
pub fn parse_span(text: &str) -> Result<Span, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DurationError::new("empty duration".into()));
    }
    // What errors quote: the input, cut short when it is long (a flag's value has no length limit).
    let q = shorten(t);
    let too_long = || {
        DurationError::new(format!(
            "`{q}` is longer than {MAX_SPAN}, the longest duration statsctl accepts"
        ))
    };
    let mut rest = t;
    let mut total: u128 = 0;
    // The index in UNITS of the previous part's unit: the next must come after it.
    let mut previous: Option<usize> = None;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let has_point = after.starts_with('.');
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => f.split_at(f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len())),
            None => ("", after),
        };
        if int.is_empty() || (has_point && frac.is_empty()) {
            return Err(DurationError::new(format!(
                "`{q}` is not a duration: each part is a number and a unit"
            )));
        }
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::new(if after.is_empty() {
                format!("`{q}` has no unit; write e.g. `{q}s`")
            } else {
                format!("`{q}` is not a duration: each part is a number and a unit")
            }));
        }
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(DurationError::new(format!(
                "unknown unit `{}` in `{q}`; use d, h, m, s or ms",
                shorten(unit)
            )));
        };
        if previous.is_some_and(|p| index <= p) {
            return Err(DurationError::new(format!(
                "`{q}`: `{unit}` comes after a smaller or the same unit; write each unit once, largest first"
            )));
        }
        if !frac.is_empty() && !after.is_empty() {
            return Err(DurationError::new(format!(
                "`{q}`: only the last part may have a fraction"
            )));
        }
        if frac.len() > MAX_FRACTION_DIGITS {
            return Err(DurationError::new(format!(
                "`{q}` has more than {MAX_FRACTION_DIGITS} digits after the point"
            )));
        }
        let per_unit = UNITS[index].1;
        // Digits past what u128 holds are too long anyway: `parse` fails on overflow, checked ops after it.
        let whole = int
            .parse::<u128>()
            .ok()
            .and_then(|n| n.checked_mul(per_unit))
            .ok_or_else(too_long)?;
        let part = if frac.is_empty() {
            whole
        } else {
            // `frac` has at most 9 digits: it and 10^len fit easily, and per_unit × frac stays below 2^100.
            let digits = frac.parse::<u128>().map_err(|_| too_long())?;
            let scale = 10u128.pow(frac.len() as u32);
            whole
                .checked_add(per_unit * digits / scale)
                .ok_or_else(too_long)?
        };
        total = total.checked_add(part).ok_or_else(too_long)?;
        previous = Some(index);
        rest = after;
    }
    if total > MAX_SPAN.0.as_nanos() {
        return Err(too_long());
    }
    // total ≤ 365 d in nanoseconds, which fits u64 many times over.
    let nanos = u64::try_from(total).map_err(|_| too_long())?;
    Ok(Span(Duration::from_nanos(nanos)))
}

/// `text`, or its first 40 characters and `…` when it is longer than 48.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 48 {
        text.to_string()
    } else {
        text.chars().take(40).chain(['…']).collect()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (value, unit) = if ms == 0 {
            (0, "s")
        } else if ms.is_multiple_of(86_400_000) {
            (ms / 86_400_000, "d")
        } else if ms.is_multiple_of(3_600_000) {
            (ms / 3_600_000, "h")
        } else if ms.is_multiple_of(60_000) {
            (ms / 60_000, "m")
        } else if ms.is_multiple_of(1000) {
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
            "description": "A duration: numbers with units (d, h, m, s, ms; each once, largest first), e.g. `250ms`, `15s`, `1m30s`, `7d`; at most 365d.",
            "x-statsctl-kind": "duration"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_durations_parse_and_print() {
        // (input, nanoseconds, printed back)
        let cases: &[(&str, u64, &str)] = &[
            ("250ms", 250_000_000, "250ms"),
            ("500ms", 500_000_000, "500ms"),
            ("15s", 15_000_000_000, "15s"),
            ("90s", 90_000_000_000, "90s"),
            ("1m30s", 90_000_000_000, "90s"),
            ("1.5m", 90_000_000_000, "90s"),
            ("1500ms", 1_500_000_000, "1500ms"),
            ("1.5s", 1_500_000_000, "1500ms"),
            ("2h", 7_200_000_000_000, "2h"),
            ("2d", 172_800_000_000_000, "2d"),
            ("7d", 604_800_000_000_000, "7d"),
            ("1d2h3m4s5ms", 93_784_005_000_000, "93784005ms"),
            ("1h0m", 3_600_000_000_000, "1h"),
            ("0s", 0, "0s"),
            ("  30m ", 1_800_000_000_000, "30m"),
            ("1m0.5s", 60_500_000_000, "60500ms"),
            ("0.000000001s", 1, "0s"),
            ("365d", 31_536_000_000_000_000, "365d"),
            (
                "364d23h59m59s999ms",
                31_535_999_999_000_000,
                "31535999999ms",
            ),
        ];
        for (input, nanos, printed) in cases {
            let span = parse_span(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(span.0, Duration::from_nanos(*nanos), "{input}");
            assert_eq!(span.to_string(), *printed, "{input}");
            // What is printed parses back to the same length, to the millisecond it prints.
            if nanos % 1_000_000 == 0 {
                assert_eq!(parse_span(printed).ok(), Some(span), "{input}");
            }
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong_and_never_panic() {
        // (input, part of the message)
        let cases: &[(&str, &str)] = &[
            ("", "empty duration"),
            ("   ", "empty duration"),
            ("15", "`15` has no unit; write e.g. `15s`"),
            ("0", "has no unit"),
            ("1h30", "has no unit"),
            ("s", "each part is a number and a unit"),
            ("ms", "each part is a number and a unit"),
            ("1.s", "each part is a number and a unit"),
            (".5s", "each part is a number and a unit"),
            ("1..5s", "each part is a number and a unit"),
            ("-5s", "each part is a number and a unit"),
            ("+5s", "each part is a number and a unit"),
            ("5 s", "each part is a number and a unit"),
            ("1m 30s", "each part is a number and a unit"),
            ("15sec", "unknown unit `sec`"),
            ("15S", "unknown unit `S`"),
            ("2w", "unknown unit `w`"),
            ("5µs", "each part is a number and a unit"),
            ("30s1m", "`m` comes after a smaller or the same unit"),
            ("1m1m", "`m` comes after a smaller or the same unit"),
            ("1s1s", "`s` comes after a smaller or the same unit"),
            ("5ms1s", "`s` comes after a smaller or the same unit"),
            ("1.5m30s", "only the last part may have a fraction"),
            ("1.0000000001s", "more than 9 digits after the point"),
            ("366d", "longer than 365d"),
            ("365d1ms", "longer than 365d"),
            ("8761h", "longer than 365d"),
            ("99999999999d", "longer than 365d"),
            ("99999999999999999999h", "longer than 365d"),
            (
                "340282366920938463463374607431768211456s",
                "longer than 365d",
            ),
            (
                "99999999999999999999999999999999999999999999999999ms",
                "longer than 365d",
            ),
            ("9999999999999999999999999999999.5d", "longer than 365d"),
            // Long input is quoted cut short.
            (
                &"9".repeat(10_000),
                "`9999999999999999999999999999999999999999…` has no unit",
            ),
            (
                &format!("1{}", "x".repeat(10_000)),
                "unknown unit `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…` in `1xxx",
            ),
        ];
        for (input, want) in cases {
            match parse_span(input) {
                Ok(s) => panic!("{input:?} parsed as {s}"),
                Err(e) => {
                    assert!(e.message.contains(want), "{input:?}: {e}");
                    assert!(e.hint.contains("1m30s"), "{input:?}: {}", e.hint);
                }
            }
        }
    }

    #[test]
    fn the_stack_file_deserializes_through_the_same_grammar() {
        let ok: Span = serde_json::from_value(serde_json::json!("1m30s")).unwrap();
        assert_eq!(ok, Span::secs(90));
        let err = serde_json::from_value::<Span>(serde_json::json!("30s1m")).unwrap_err();
        assert!(err.to_string().contains("largest first"), "{err}");
    }
}
