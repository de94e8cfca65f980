//! Canonical string forms: how desired and observed attributes are written so that comparing them is plain
//! equality (sorted lists, JSON maps, numbers as CloudWatch echoes them) and the markers for values not known yet.
//! A leaf module: everything that renders or compares attributes uses it, and it uses nothing of the crate but the
//! model's comparison names.

use std::collections::BTreeMap;

/// Marks a desired value that only exists once something else has been created (an endpoint, an id).
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// Managed attributes in canonical string form.
pub type Attrs = BTreeMap<String, String>;

/// Items sorted, once each: the order canonical lists use.
pub fn sorted_unique<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().map(Into::into).collect();
    v.sort();
    v.dedup();
    v
}

/// A list in canonical form: sorted, comma-separated.
pub fn join_sorted<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> String {
    sorted_unique(items).join(",")
}

/// The items of a canonical (comma-separated) list; an empty list has none.
pub fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|s| !s.is_empty())
}

/// A map in canonical form (sorted JSON object), e.g. environment variables.
pub fn canonical_map(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_default()
}

/// Stands in for the ARN of a referenced secret that does not exist: the plan blocks the resource using it.
pub fn missing_secret(name: &str) -> String {
    format!("(secret `{name}` does not exist)")
}

/// The secret a value names as missing (see [`missing_secret`]), if any.
pub fn missing_secret_in(value: &str) -> Option<&str> {
    let start = value.find("(secret `")? + "(secret `".len();
    let len = value[start..].find("` does not exist)")?;
    Some(&value[start..start + len])
}

/// CloudWatch's name for a comparison.
pub fn comparison_name(c: crate::model::Comparison) -> &'static str {
    use crate::model::Comparison::*;
    match c {
        Greater => "GreaterThanThreshold",
        GreaterOrEqual => "GreaterThanOrEqualToThreshold",
        Less => "LessThanThreshold",
        LessOrEqual => "LessThanOrEqualToThreshold",
    }
}

/// Numbers as CloudWatch echoes them back: `90` not `90.0`.
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}
