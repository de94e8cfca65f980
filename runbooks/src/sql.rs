//! Putting found values into a runbook's SQL. References are resolved as text, so a value (a `--param`, a user
//! name an earlier step read from the database) must not be able to change the statement: only characters that
//! cannot end a quoted literal, open a call or a comment, or start another statement are let through. The
//! statement also runs in a read-only transaction, but that alone does not stop a function call such as
//! `pg_terminate_backend`.

use statsctl_core::runbook::{references, resolve, Found, Reference};

/// Whether a value may be put into SQL text: letters, digits, spaces and `_ . : - + @ /`, with no `--`.
pub fn safe_value(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_alphanumeric() || " _.:-+@/".contains(c))
        && !v.contains("--")
}

/// The step's SQL with its references replaced; an error names a reference whose value is unsafe.
pub fn resolve_sql(text: &str, found: &Found) -> Result<String, String> {
    for r in references(text).into_iter().flatten() {
        let (name, value) = match &r {
            Reference::Param(p) => (format!("params.{p}"), found.params.get(p)),
            Reference::Step { id, field } => (
                format!("steps.{id}.{field}"),
                found.steps.get(id).and_then(|f| f.get(field)),
            ),
        };
        if let Some(v) = value {
            if !safe_value(v) {
                return Err(format!(
                    "`{{{{{name}}}}}` is `{v}`, which cannot go into SQL: only letters, digits, spaces and \
                     `_ . : - + @ /` can"
                ));
            }
        }
    }
    resolve(text, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_sql() {
        let mut found = Found::default();
        let sql = "select * from pg_stat_activity where usename = '{{params.user}}'";
        let cases: &[(&str, Result<&str, &str>)] = &[
            (
                "stats_api",
                Ok("select * from pg_stat_activity where usename = 'stats_api'"),
            ),
            (
                "5 minutes",
                Ok("select * from pg_stat_activity where usename = '5 minutes'"),
            ),
            ("x' or '1'='1", Err("cannot go into SQL")),
            (
                "a'; select pg_terminate_backend(1); --",
                Err("cannot go into SQL"),
            ),
            (
                "0 or pg_terminate_backend(7) is null",
                Err("cannot go into SQL"),
            ),
            ("a -- comment", Err("cannot go into SQL")),
            ("back\\slash", Err("cannot go into SQL")),
        ];
        for (value, want) in cases {
            found.params.insert("user".into(), value.to_string());
            match (resolve_sql(sql, &found), want) {
                (Ok(got), Ok(w)) => assert_eq!(&got, w),
                (Err(e), Err(w)) => assert!(e.contains(w), "{value}: {e}"),
                (got, w) => panic!("{value}: got {got:?}, want {w:?}"),
            }
        }
        found.params.clear();
        assert!(resolve_sql(sql, &found)
            .unwrap_err()
            .contains("has no value"));
    }
}
