//! The standard PostgreSQL password file (what libpq reads from `PGPASSFILE` or `~/.pgpass`): one
//! `host:port:database:user:password` line per entry, `*` in any of the first four fields matching anything,
//! `\:` and `\\` escaping, `#` comments; the first matching line wins. `statsctl local up` writes one for the
//! local PostgreSQL and PgBouncer; preflight reads one when `database.sql` names no password variable.

use crate::model::SqlEndpoint;

/// One line of a password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub host: String,
    pub port: String,
    pub database: String,
    pub user: String,
    pub password: String,
}

impl Entry {
    /// Whether this line is for a connection to `host:port/database` as `user` (`*` matches anything).
    pub fn matches(&self, host: &str, port: u16, database: &str, user: &str) -> bool {
        let field = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        field(&self.host, host)
            && field(&self.port, &port.to_string())
            && field(&self.database, database)
            && field(&self.user, user)
    }

    /// The line as written to a file, with `:` and `\` escaped.
    pub fn line(&self) -> String {
        [
            &self.host,
            &self.port,
            &self.database,
            &self.user,
            &self.password,
        ]
        .iter()
        .map(|f| escape(f))
        .collect::<Vec<_>>()
        .join(":")
    }
}

fn escape(field: &str) -> String {
    field.replace('\\', "\\\\").replace(':', "\\:")
}

/// The entries of a password file; blank lines, comments and lines with fewer than five fields are skipped, as
/// libpq skips them. Everything after the fourth unescaped `:` is the password.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields: Vec<String> = vec![String::new()];
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            let last = fields.len() - 1;
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        fields[last].push(next);
                    }
                }
                ':' if fields.len() < 5 => fields.push(String::new()),
                c => fields[last].push(c),
            }
        }
        let Ok([host, port, database, user, password]) = <[String; 5]>::try_from(fields) else {
            continue;
        };
        out.push(Entry {
            host,
            port,
            database,
            user,
            password,
        });
    }
    out
}

/// The password for a connection, from the first matching line of a password file's text.
pub fn lookup(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    parse(text)
        .into_iter()
        .find(|e| e.matches(host, port, database, user))
        .map(|e| e.password)
}

/// Where the password for a `database.sql` connection comes from: the variable `password_env` names when it is
/// set, else a password file — `passfile`, else `PGPASSFILE`. Pure: `env` reads variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The password itself, from `password_env`.
    Given(String),
    /// A password file to look the connection up in.
    File(String),
    None,
}

pub fn password_source(sql: &SqlEndpoint, env: &dyn Fn(&str) -> Option<String>) -> PasswordSource {
    if let Some(p) = sql.password_env.as_deref().and_then(env) {
        return PasswordSource::Given(p);
    }
    match sql.passfile.clone().or_else(|| env("PGPASSFILE")) {
        Some(f) if !f.is_empty() => PasswordSource::File(f),
        _ => PasswordSource::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# statsctl local
127.0.0.1:25432:*:postgres:adminpw
127.0.0.1:26432:stats:stats_service:bouncerpw
*:*:*:a\\:b:colon\\:in\\\\pw
127.0.0.1:25432:*:stats_service:direct:pw:with:colons
localhost:*:*:*:catchall

broken:line
";

    /// (case, host, port, database, user, expected password)
    type LookupCase = (
        &'static str,
        &'static str,
        u16,
        &'static str,
        &'static str,
        Option<&'static str>,
    );

    #[test]
    fn lookup_takes_the_first_matching_line() {
        let cases: &[LookupCase] = &[
            (
                "exact with database wildcard",
                "127.0.0.1",
                25432,
                "postgres",
                "postgres",
                Some("adminpw"),
            ),
            (
                "another port is another line",
                "127.0.0.1",
                26432,
                "stats",
                "stats_service",
                Some("bouncerpw"),
            ),
            (
                "database must match",
                "127.0.0.1",
                26432,
                "postgres",
                "stats_service",
                None,
            ),
            (
                "escaped colon in user and password",
                "db",
                1,
                "x",
                "a:b",
                Some("colon:in\\pw"),
            ),
            (
                "unescaped colons after the fourth belong to the password",
                "127.0.0.1",
                25432,
                "stats",
                "stats_service",
                Some("direct:pw:with:colons"),
            ),
            (
                "wildcard user",
                "localhost",
                5432,
                "d",
                "anyone",
                Some("catchall"),
            ),
            (
                "no line for this host",
                "10.0.0.1",
                25432,
                "postgres",
                "postgres",
                None,
            ),
            (
                "no line for this user",
                "127.0.0.1",
                25432,
                "postgres",
                "nobody",
                None,
            ),
        ];
        for (case, host, port, db, user, want) in cases {
            assert_eq!(
                lookup(FILE, host, *port, db, user).as_deref(),
                *want,
                "{case}"
            );
        }
    }

    #[test]
    fn written_lines_read_back() {
        let e = Entry {
            host: "127.0.0.1".into(),
            port: "5432".into(),
            database: "*".into(),
            user: "we:ird\\".into(),
            password: "p:a\\ss".into(),
        };
        assert_eq!(e.line(), "127.0.0.1:5432:*:we\\:ird\\\\:p\\:a\\\\ss");
        assert_eq!(parse(&e.line()), vec![e]);
    }

    #[test]
    fn odd_input_is_skipped_not_a_panic() {
        for text in [
            "",
            "\\",
            ":::",
            "a:b:c:d",
            "\\\\\\",
            "::::",
            "#:::::",
            "a:b:c:d:\\",
        ] {
            let _ = parse(text);
            let _ = lookup(text, "a", 1, "c", "d");
        }
        assert_eq!(lookup("a:1:c:d:\\", "a", 1, "c", "d").as_deref(), Some(""));
    }

    #[test]
    fn password_source_prefers_the_variable_then_passfile_then_pgpassfile() {
        let sql = |password_env: Option<&str>, passfile: Option<&str>| SqlEndpoint {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            dbname: None,
            password_env: password_env.map(str::to_string),
            passfile: passfile.map(str::to_string),
        };
        let env = |name: &str| match name {
            "DB_PW" => Some("secret".to_string()),
            "PGPASSFILE" => Some("/env/pgpass".to_string()),
            _ => None,
        };
        let cases = [
            (
                "variable set",
                sql(Some("DB_PW"), Some("/f")),
                PasswordSource::Given("secret".into()),
            ),
            (
                "variable unset: the file",
                sql(Some("UNSET"), Some("/f")),
                PasswordSource::File("/f".into()),
            ),
            (
                "no file: PGPASSFILE",
                sql(None, None),
                PasswordSource::File("/env/pgpass".into()),
            ),
        ];
        for (case, sql, want) in cases {
            assert_eq!(password_source(&sql, &env), want, "{case}");
        }
        assert_eq!(
            password_source(&sql(None, None), &|_| None),
            PasswordSource::None
        );
    }
}
