//! What counts as a secret, and masking it: the one rule validation uses to refuse plain secret values in a
//! stack file, and the one masking every output goes through (plan diffs, JSON, text, error snippets). Pure.
//!
//! The rule, for keys (environment variable names, map keys), case-insensitive, the key split into parts at
//! `_`, `.` and camelCase humps (`dbPassword` is `DB PASSWORD`, `apiToken` is `API TOKEN`):
//! - `PASSWORD`, `PASSWD` or `PASSPHRASE` anywhere in the key (`DB_PASSWORD`, `PGPASSWORD`);
//! - or a part that is `SECRET`, `SECRETS`, `TOKEN`, `TOKENS`, `CREDENTIAL`, `CREDENTIALS`, `APIKEY`, or two
//!   parts `API KEY`, `PRIVATE KEY`, `ACCESS KEY` (`API_TOKEN`, `CLIENT_SECRET`, `STRIPE_API_KEY`,
//!   `AWS_SECRET_ACCESS_KEY`);
//! - or a last part `PASS` or `PWD` after another part (`DB_PASS`, `DB_PWD`; alone, `PWD` is the shell's working
//!   directory and `pass` a count in a report); a part merely containing them is not (`PASSENGER`, `BYPASS`,
//!   `PASS_THROUGH`);
//! - or a last part `KEY` after `SIGNING`, `ENCRYPTION`, `SESSION`, `SECRET`, `MASTER` (`SIGNING_KEY`,
//!   `SESSION_KEY`); `KEY` elsewhere names a lookup key (`CACHE_KEY_PREFIX`, `KEYSPACE`, `SESSION_KEY_PREFIX`);
//! - except keys that say *where* a secret is rather than hold it: the last part is `ARN`, `NAME`, `ENV`,
//!   `FILE`, `PATH` or `URL` (`DB_PASSWORD_SECRET_ARN`, `password_env`), or the key ends in `SECRET_KEY` after
//!   another secret word (`DB_PASSWORD_SECRET_KEY`: the JSON key deploy passes next to `…_SECRET_ARN`);
//! - and keys with `-` or spaces: those name things (functions, alarms, resources such as
//!   `token-refresher`), and no environment variable may contain them.
//!
//! And for values, whatever the key: a URL with a password in it (`postgres://user:pw@host/db`) and a PEM
//! private key. Nothing is guessed from how random a value looks: that would refuse ordinary ids.

use serde_json::Value;

/// What a masked value shows instead.
pub const MASK: &str = "(sensitive)";
/// A masked value that differs from the masked value it replaces (plan diffs).
pub const MASK_CHANGED: &str = "(sensitive, changed)";

const ANYWHERE: &[&str] = &["PASSWORD", "PASSWD", "PASSPHRASE"];
const WORDS: &[&str] = &[
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "CREDENTIAL",
    "CREDENTIALS",
    "APIKEY",
];
const PAIRS: &[(&str, &str)] = &[("API", "KEY"), ("PRIVATE", "KEY"), ("ACCESS", "KEY")];
/// Parts that make a final `KEY` key material (beyond [`PAIRS`], which count anywhere; `SECRET_KEY` is a
/// [`WORDS`] match, with its `…_PASSWORD_SECRET_KEY` exception).
const KEY_QUALIFIERS: &[&str] = &["SIGNING", "ENCRYPTION", "SESSION", "MASTER"];
const REFERENCE_SUFFIXES: &[&str] = &["ARN", "NAME", "ENV", "FILE", "PATH", "URL"];

/// Stack-file fields whose value names a secret (never holds one): not masked in the resolved stack.
const REFERENCE_FIELDS: &[&str] = &["credentials_secret", "password_env", "secret"];

/// Whether a key (an environment variable name, a map key) holds a secret value. See the module doc.
pub fn is_secret_key(key: &str) -> bool {
    if key.contains(|c: char| c == '-' || c.is_whitespace()) {
        return false;
    }
    let upper = split_humps(key).to_ascii_uppercase();
    let parts: Vec<&str> = upper.split(['_', '.']).filter(|p| !p.is_empty()).collect();
    let Some(&last) = parts.last() else {
        return false;
    };
    if REFERENCE_SUFFIXES.contains(&last) {
        return false;
    }
    let n = parts.len();
    // Alone they mean something else: `PWD` the working directory, `pass` a count in a report.
    if (last == "PASS" || last == "PWD") && n > 1 {
        return true;
    }
    if last == "KEY" && n > 1 && KEY_QUALIFIERS.contains(&parts[n - 2]) {
        return true;
    }
    let word_at = |i: usize| {
        ANYWHERE.iter().any(|w| parts[i].contains(w))
            || WORDS.contains(&parts[i])
            || (i + 1 < parts.len() && PAIRS.contains(&(parts[i], parts[i + 1])))
    };
    // `X_PASSWORD_SECRET_KEY`: the JSON key inside the secret `X_PASSWORD_SECRET_ARN` names.
    if n >= 3 && parts[n - 2] == "SECRET" && parts[n - 1] == "KEY" && (0..n - 2).any(word_at) {
        return false;
    }
    (0..n).any(word_at)
}

/// `key` with a `_` at each camelCase hump: before an upper-case letter that follows a lower-case one
/// (`apiToken`), or that starts a word after an acronym (`APIToken`). Keys with no lower-case letter stay as
/// they are, so `PGPASSWORD` is one part.
fn split_humps(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::with_capacity(key.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.push(c);
    }
    out
}

/// Whether a value is a secret whatever its key says: a URL carrying a password, or a PEM private key.
pub fn looks_like_secret_value(value: &str) -> bool {
    url_password_span(value).is_some() || is_pem_private_key(value)
}

fn is_pem_private_key(value: &str) -> bool {
    value.contains("-----BEGIN") && value.contains("PRIVATE KEY")
}

/// The byte range of the password in the first `scheme://user:password@host` of `text`.
fn url_password_span(text: &str) -> Option<(usize, usize)> {
    url_password_span_from(text, 0)
}

/// The same, for URLs starting at or after byte `from`.
fn url_password_span_from(text: &str, mut from: usize) -> Option<(usize, usize)> {
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        // The authority ends at the first `/`, `?`, `#` or whitespace; userinfo is before its last `@`.
        let rest = &text[start..];
        let end = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                if colon + 1 < at {
                    return Some((start + colon + 1, start + at));
                }
            }
        }
        from = start;
    }
    None
}

/// `text` with the password of every URL in it replaced by `***` (the rest of the URL stays readable).
pub fn mask_url_passwords(text: &str) -> String {
    let mut out = text.to_string();
    let mut from = 0;
    // Each round masks one password and moves past it, so the loop ends.
    while let Some((a, b)) = url_password_span_from(&out, from) {
        out.replace_range(a..b, "***");
        from = a + 3;
    }
    out
}

/// A value as it may be shown, given its key: `(sensitive)` for a secret key or a PEM key, the URL with its
/// password masked, or the value itself.
pub fn mask_value(key: &str, value: &str) -> String {
    if is_reference(value) {
        value.to_string()
    } else if is_secret_key(key) || is_pem_private_key(value) {
        MASK.to_string()
    } else if url_password_span(value).is_some() {
        mask_url_passwords(value)
    } else {
        value.to_string()
    }
}

/// Values that point at a secret rather than hold one, under whatever key: an ARN (an ECS `valueFrom`), or what
/// a plan shows before the ARN is known.
fn is_reference(value: &str) -> bool {
    value.starts_with("arn:")
        || value == crate::inventory::KNOWN_AFTER_APPLY
        || crate::desired::missing_secret_in(value).is_some()
}

/// An attribute's old and new values as a plan may show them. Maps (environment variables, secrets) are masked
/// entry by entry; a masked entry that changed shows as `(sensitive, changed)`, so the diff still says which
/// variable changed without showing either value.
pub fn mask_change(old: Option<&str>, new: Option<&str>) -> (Option<String>, Option<String>) {
    let as_map = |v: Option<&str>| {
        v.map(|v| serde_json::from_str::<std::collections::BTreeMap<String, String>>(v).ok())
    };
    match (as_map(old), as_map(new)) {
        (Some(Some(o)), Some(Some(n))) => {
            let mut mo = std::collections::BTreeMap::new();
            let mut mn = std::collections::BTreeMap::new();
            for (k, v) in &o {
                mo.insert(k.clone(), mask_value(k, v));
            }
            for (k, v) in &n {
                let shown = mask_value(k, v);
                let shown = match (o.get(k), mo.get(k)) {
                    (Some(before), Some(before_shown)) if before != v && *before_shown == shown => {
                        MASK_CHANGED.to_string()
                    }
                    _ => shown,
                };
                mn.insert(k.clone(), shown);
            }
            (Some(json_map(&mo)), Some(json_map(&mn)))
        }
        _ => (old.map(mask_scalar_or_map), new.map(mask_scalar_or_map)),
    }
}

fn json_map(m: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

/// One value with no counterpart: a map masked entry by entry, anything else by value.
fn mask_scalar_or_map(v: &str) -> String {
    match serde_json::from_str::<std::collections::BTreeMap<String, String>>(v) {
        Ok(m) => json_map(
            &m.iter()
                .map(|(k, v)| (k.clone(), mask_value(k, v)))
                .collect(),
        ),
        Err(_) => mask_value("", v),
    }
}

/// Masks a JSON document in place: string values under secret keys, URL passwords and PEM keys anywhere, and
/// maps serialised inside strings (a plan's `environment` attribute). What `--output json` goes through.
pub fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let scalar = match child {
                    Value::String(s) => !is_reference(s),
                    Value::Number(_) => true,
                    _ => false,
                };
                if scalar && is_secret_key(k) && !REFERENCE_FIELDS.contains(&k.as_str()) {
                    *child = Value::String(MASK.into());
                } else {
                    redact_json(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::String(s) => {
            if s.starts_with('{') {
                if let Ok(mut inner @ Value::Object(_)) = serde_json::from_str::<Value>(s) {
                    let before = inner.clone();
                    redact_json(&mut inner);
                    if inner != before {
                        *s = inner.to_string();
                    }
                    return;
                }
            }
            if is_pem_private_key(s) {
                *s = MASK.into();
            } else if url_password_span(s).is_some() {
                *s = mask_url_passwords(s);
            }
        }
        _ => {}
    }
}

/// One line of text (YAML, an error snippet, a report line) as it may be shown: the value after a secret key
/// (`KEY: value`, also inside `{ a: 1, KEY: value }`) masked, and URL passwords masked.
pub fn redact_line(line: &str) -> String {
    if line.contains("-----BEGIN") || line.contains("PRIVATE KEY-----") {
        return MASK.to_string();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    // Each `key: value` pair: a key is the text since the last `{`, `,` or the line start (list dashes, quotes
    // and spaces trimmed); a value opening a flow map `{` is scanned for pairs of its own; in a flow map a value
    // runs to the next `,` or `}`, elsewhere to the end of the line.
    let mut in_flow = false;
    loop {
        let colon = rest
            .find(": ")
            .or_else(|| rest.strip_suffix(':').map(str::len));
        let Some(colon) = colon else {
            out.push_str(rest);
            break;
        };
        let (head, tail) = rest.split_at(colon);
        in_flow |= head.contains('{');
        let key_start = head.rfind(['{', ',']).map(|i| i + 1).unwrap_or(0);
        let key = head[key_start..]
            .trim()
            .trim_start_matches("- ")
            .trim_matches(|c| c == '"' || c == '\'');
        out.push_str(head);
        out.push(':');
        let tail = &tail[1..];
        if tail.trim_start().starts_with('{') {
            in_flow = true;
            rest = tail;
            continue;
        }
        let value_end = if in_flow {
            tail.find([',', '}']).unwrap_or(tail.len())
        } else {
            tail.len()
        };
        let (value, after) = tail.split_at(value_end);
        let trimmed = value.trim();
        let keep = REFERENCE_FIELDS.contains(&key)
            || trimmed.is_empty()
            || trimmed == MASK
            // Already masked by the stack-file error snippet (`diagnostics::mask_secret_value`).
            || trimmed == "********"
            || is_reference(trimmed);
        if is_secret_key(key) && !keep {
            out.push(' ');
            out.push_str(MASK);
            if value.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push_str(value);
        }
        if after.is_empty() {
            break;
        }
        rest = after;
    }
    mask_url_passwords(&out)
}

/// Text as it may be shown: every line through [`redact_line`].
pub fn redact_text(text: &str) -> String {
    let mut out: String = text
        .split_inclusive('\n')
        .map(|l| match l.strip_suffix('\n') {
            Some(body) => redact_line(body) + "\n",
            None => redact_line(l),
        })
        .collect();
    if text.is_empty() {
        out.clear();
    }
    out
}

/// When `url` carries credentials (`http://user:password@host/…`), the URL with everything before the `@` masked
/// (`http://***@host/…`), to name it in an error without echoing a password; `None` when it carries none. Any `@`
/// before the query counts, so a password with a `/` in it is caught too (a literal `@` in a path is `%40`).
pub fn url_credentials(url: &str) -> Option<String> {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    let at = rest[..before_query].rfind('@')?;
    Some(format!("{scheme}***{}", &rest[at..]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_urls_are_found_and_masked() {
        for (url, want) in [
            ("http://user:pw@host/x", Some("http://***@host/x")),
            ("https://user@host:8080/", Some("https://***@host:8080/")),
            ("http://u:p/w@host/", Some("http://***@host/")),
            ("user:pw@host/x", Some("***@host/x")),
            ("http://host:80/matches/1/stats", None),
            ("http://host/x?mail=a@b", None),
            ("http://host/x#a@b", None),
        ] {
            assert_eq!(url_credentials(url).as_deref(), want, "{url}");
        }
    }

    use super::*;

    #[test]
    fn secret_keys() {
        for (key, secret) in [
            ("DB_PASSWORD", true),
            ("db_password", true),
            ("PGPASSWORD", true),
            ("MYSQL_PASSWD", true),
            ("SSH_PASSPHRASE", true),
            ("API_TOKEN", true),
            ("GITHUB_TOKENS", true),
            ("CLIENT_SECRET", true),
            ("JWT_SECRET", true),
            ("SECRET", true),
            ("AWS_SECRET_ACCESS_KEY", true),
            ("AWS_SECRET_KEY", true),
            ("AWS_ACCESS_KEY_ID", true),
            ("STRIPE_API_KEY", true),
            ("stripe_api_key", true),
            ("APIKEY", true),
            ("TLS_PRIVATE_KEY", true),
            ("GOOGLE_CREDENTIALS", true),
            ("oauth.token", true),
            // Says where a secret is, not what it is.
            ("DB_PASSWORD_SECRET_ARN", false),
            ("DB_PASSWORD_SECRET_KEY", false),
            ("password_env", false),
            ("TOKEN_URL", false),
            ("CREDENTIALS_FILE", false),
            ("SECRET_NAME", false),
            // Not secrets.
            ("DB_HOST", false),
            ("LOG_LEVEL", false),
            ("TOKENIZER", false),
            ("KEYBOARD", false),
            ("MONKEY", false),
            ("API_URL", false),
            ("CACHE_KEY_PREFIX", false),
            ("PWD", false),
            // Short forms, camelCase, and key material named by what it does.
            ("DB_PASS", true),
            ("SMTP_PASS", true),
            ("PASS", false),
            ("pass", false),
            ("DB_PWD", true),
            ("db.pwd", true),
            ("apiToken", true),
            ("dbPassword", true),
            ("APIToken", true),
            ("clientSecret", true),
            ("awsAccessKeyId", true),
            ("SIGNING_KEY", true),
            ("JWT_SIGNING_KEY", true),
            ("ENCRYPTION_KEY", true),
            ("SESSION_KEY", true),
            ("MASTER_KEY", true),
            ("signingKey", true),
            ("SECRET_KEY", true),
            // ... and what only looks like them.
            ("PASSENGER", false),
            ("PASSENGER_COUNT", false),
            ("BYPASS", false),
            ("BYPASS_CACHE", false),
            ("PASS_THROUGH", false),
            ("OLDPWD", false),
            ("KEYSPACE", false),
            ("SESSION_KEY_PREFIX", false),
            ("SIGNING_KEY_ARN", false),
            ("ENCRYPTION_KEY_FILE", false),
            ("dbPasswordArn", false),
            ("PRIMARY_KEY", false),
            ("SORT_KEY", false),
            ("cacheKeyPrefix", false),
            ("tokenizerModel", false),
            ("logLevel", false),
            ("DB_HOST", false),
            ("DB_PASSWORD_SECRET_KEY", false),
            ("token-refresher", false),
            ("password-rotator", false),
            ("the password", false),
            ("", false),
            ("_", false),
        ] {
            assert_eq!(is_secret_key(key), secret, "{key}");
        }
    }

    #[test]
    fn secret_values() {
        for (value, secret) in [
            ("postgres://app:Hunter2@db.example.com:5432/stats", true),
            ("redis://:pw@cache:6379", true),
            ("see https://u:p@h/x in the docs", true),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIB", true),
            ("postgres://app@db.example.com/stats", false),
            ("http://127.0.0.1:28080/matches/1/stats", false),
            ("https://stats.example.com", false),
            ("arn:aws:secretsmanager:us-east-1:1:secret:x", false),
            ("info", false),
            ("user:pw@host", false),
            ("", false),
        ] {
            assert_eq!(looks_like_secret_value(value), secret, "{value}");
        }
        assert_eq!(
            mask_url_passwords("postgres://app:Hunter2@db/stats and mysql://a:b@c"),
            "postgres://app:***@db/stats and mysql://a:***@c"
        );
    }

    #[test]
    fn plan_values_are_masked_entry_by_entry() {
        let (o, n) = mask_change(
            Some(r#"{"A":"1","DB_PASSWORD":"Hunter2","URL":"postgres://u:pw@h/d"}"#),
            Some(r#"{"A":"2","DB_PASSWORD":"Hunter3"}"#),
        );
        assert_eq!(
            o.unwrap(),
            r#"{"A":"1","DB_PASSWORD":"(sensitive)","URL":"postgres://u:***@h/d"}"#
        );
        assert_eq!(
            n.unwrap(),
            r#"{"A":"2","DB_PASSWORD":"(sensitive, changed)"}"#
        );
        // Unchanged secrets stay equal, so they do not show as a change.
        let (o, n) = mask_change(Some(r#"{"T_TOKEN":"x"}"#), Some(r#"{"T_TOKEN":"x"}"#));
        assert_eq!(o, n);
        assert_eq!(
            mask_change(Some(r#"{"API_TOKEN":"x"}"#), None).0.unwrap(),
            r#"{"API_TOKEN":"(sensitive)"}"#
        );
        assert_eq!(mask_change(None, Some("256")).1.unwrap(), "256");
        // ECS `secrets` point at a secret: the reference is shown, never a value.
        let refs = r#"{"API_TOKEN":"arn:aws:secretsmanager:us-east-1:1:secret:t-AbCdEf:token::","DB_PASSWORD":"(known after apply)"}"#;
        assert_eq!(mask_change(None, Some(refs)).1.unwrap(), refs);
    }

    #[test]
    fn json_documents_are_redacted() {
        let mut v = serde_json::json!({
            "stack": {"credentials_secret": "live-stats/db", "functions": {"f": {"environment": {
                "API_TOKEN": "abc", "REF": {"secret": "live-stats/api", "key": "token"}, "N": 3}}}},
            "changes": [{"attr": "environment", "old": "{\"DB_PASSWORD\":\"Hunter2\"}"}],
            "target": "http://u:pw@h/x",
        });
        redact_json(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("abc") && !text.contains("Hunter2") && !text.contains(":pw@"),
            "{text}"
        );
        assert!(
            text.contains("live-stats/db") && text.contains("live-stats/api"),
            "{text}"
        );
        assert_eq!(
            v["stack"]["functions"]["f"]["environment"]["REF"]["key"],
            "token"
        );
    }

    #[test]
    fn odd_text_never_panics_and_ends() {
        let long = "a: b, ".repeat(2000) + &"x://u:p@".repeat(500);
        for text in [
            ":",
            ": ",
            "::",
            "{: ,}",
            "é: ü, ö: {",
            "TOKEN: é://ü:ö@ä",
            "://:@",
            "x://u:@h",
            "x://:p@",
            "{{{{: : : }}}}",
            "- - - TOKEN:",
            "\u{1F600}: \u{1F600}://\u{1F600}:\u{1F600}@x",
            long.as_str(),
        ] {
            let _ = redact_text(text);
            let _ = mask_url_passwords(text);
            let _ = is_secret_key(text);
            let mut v = serde_json::json!({ text: text });
            redact_json(&mut v);
            let _ = mask_change(Some(text), Some(text));
        }
        assert!(!redact_text(&long).contains(":p@"));
    }

    #[test]
    fn lines_are_redacted() {
        for (line, shown) in [
            ("    DB_PASSWORD: Hunter2", "    DB_PASSWORD: (sensitive)"),
            ("  - API_TOKEN: \"x y\"", "  - API_TOKEN: (sensitive)"),
            (
                "    f: { environment: { CLIENT_SECRET: abc, LOG: info } }",
                "    f: { environment: { CLIENT_SECRET: (sensitive), LOG: info } }",
            ),
            (
                "  DATABASE_URL: postgres://u:pw@h/d",
                "  DATABASE_URL: postgres://u:***@h/d",
            ),
            (
                "  credentials_secret: live-stats/db",
                "  credentials_secret: live-stats/db",
            ),
            (
                "    API_TOKEN: { secret: live-stats/api, key: token }",
                "    API_TOKEN: { secret: live-stats/api, key: token }",
            ),
            ("    DB_PASSWORD:", "    DB_PASSWORD:"),
            ("  memory_mb: 256", "  memory_mb: 256"),
            ("error: unknown field `x`", "error: unknown field `x`"),
            ("no colon here", "no colon here"),
            ("", ""),
        ] {
            assert_eq!(redact_line(line), shown, "{line}");
        }
        assert_eq!(
            redact_text("a: 1\nTOKEN: t\n"),
            "a: 1\nTOKEN: (sensitive)\n"
        );
    }
}
