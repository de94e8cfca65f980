//! Numbers from AWS documentation that statsctl's decisions rest on, each kept with its source so a reader can
//! check it and an output can say where a limit came from.

use serde::Serialize;

/// A number and the document it comes from.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Fact<T: 'static> {
    pub value: T,
    pub source: &'static str,
}

const AURORA_PG_LIMITS: &str =
    "Amazon Aurora User Guide, \"Maximum connections to an Aurora PostgreSQL DB instance\" (default max_connections)";
const AURORA_SLV2: &str =
    "Amazon Aurora User Guide, \"Maximum connections for Aurora Serverless v2\" (default max_connections by max ACU)";
const LAMBDA_QUOTAS: &str =
    "AWS Lambda Developer Guide, \"Lambda quotas\" (concurrent executions default 1,000)";
const PROXY_POOL: &str =
    "Amazon RDS User Guide, \"RDS Proxy connection pool settings\" (ModifyDBProxyTargetGroup ConnectionPoolConfig)";

/// Default account concurrency quota when `GetAccountSettings` cannot be read.
pub const LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY: Fact<u32> = Fact {
    value: 1000,
    source: LAMBDA_QUOTAS,
};

/// Unreserved concurrency AWS always keeps back: reserved concurrency can never leave less than this.
pub const LAMBDA_MIN_UNRESERVED: Fact<u32> = Fact {
    value: 100,
    source: LAMBDA_QUOTAS,
};

/// PostgreSQL `superuser_reserved_connections` default; AWS asks to leave ≥ 3 for its automation.
pub const PG_SUPERUSER_RESERVED: Fact<u32> = Fact {
    value: 3,
    source: "PostgreSQL documentation, superuser_reserved_connections (default 3)",
};

/// RDS Proxy MaxConnectionsPercent default.
pub const PROXY_MAX_CONNECTIONS_PERCENT_DEFAULT: Fact<u32> = Fact {
    value: 100,
    source: PROXY_POOL,
};

/// PostgreSQL proxies always listen on this port.
pub const PROXY_POSTGRES_PORT: Fact<u16> = Fact {
    value: 5432,
    source:
        "Amazon RDS User Guide, \"Connecting to a database through RDS Proxy\" (PostgreSQL 5432)",
};

/// Aurora PostgreSQL default `max_connections` by provisioned instance class.
pub const AURORA_PG_MAX_CONNECTIONS: &[(&str, u32)] = &[
    ("db.t3.medium", 420),
    ("db.t4g.medium", 405),
    ("db.t3.large", 844),
    ("db.t4g.large", 844),
    ("db.r5.large", 1600),
    ("db.r5.xlarge", 3300),
    ("db.r6g.large", 1722),
    ("db.r6g.xlarge", 3479),
];

/// Classes of 2xlarge and larger hit the formula's cap: `LEAST({DBInstanceClassMemory/9531392}, 5000)`.
pub const AURORA_PG_MAX_CONNECTIONS_CAP: u32 = 5000;

/// Aurora Serverless v2 default `max_connections` by maximum ACU (static until reboot).
pub const AURORA_SLV2_MAX_CONNECTIONS: &[(f64, u32)] = &[
    (1.0, 189),
    (4.0, 823),
    (8.0, 1669),
    (16.0, 3360),
    (32.0, 5000),
];

/// With a minimum of 0.5 ACU, Serverless v2 caps max_connections at this.
pub const AURORA_SLV2_HALF_ACU_CAP: u32 = 2000;

/// Where a database connection limit came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableLimit {
    pub max_connections: u32,
    pub source: String,
}

/// The default max_connections of an Aurora PostgreSQL writer by class, from AWS's table.
pub fn aurora_max_connections_for_class(class: &str) -> Option<TableLimit> {
    if let Some((_, n)) = AURORA_PG_MAX_CONNECTIONS.iter().find(|(c, _)| *c == class) {
        return Some(TableLimit {
            max_connections: *n,
            source: format!("{AURORA_PG_LIMITS}, {class}"),
        });
    }
    // 2xlarge and larger (memory ≥ 64 GiB) reach the 5000 cap.
    let size = class.rsplit('.').next().unwrap_or("");
    let multiple: Option<u32> = size.strip_suffix("xlarge").and_then(|m| m.parse().ok());
    if class.starts_with("db.r") && matches!(multiple, Some(m) if m >= 2) {
        return Some(TableLimit {
            max_connections: AURORA_PG_MAX_CONNECTIONS_CAP,
            source: format!("{AURORA_PG_LIMITS}, {class} (2xlarge and larger: cap 5000)"),
        });
    }
    None
}

/// The default max_connections of Aurora Serverless v2 for a capacity range, from AWS's table (conservative:
/// the highest table row not above `max_acu`).
pub fn aurora_serverless_max_connections(min_acu: f64, max_acu: f64) -> Option<TableLimit> {
    let (row_acu, n) = AURORA_SLV2_MAX_CONNECTIONS
        .iter()
        .rev()
        .find(|(acu, _)| *acu <= max_acu)?;
    let mut value = *n;
    let mut note = format!("max {max_acu} ACU → row {row_acu} ACU");
    if min_acu <= 0.5 && value > AURORA_SLV2_HALF_ACU_CAP {
        value = AURORA_SLV2_HALF_ACU_CAP;
        note.push_str(", min 0.5 ACU caps at 2000");
    }
    Some(TableLimit {
        max_connections: value,
        source: format!("{AURORA_SLV2} ({note})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_table() {
        let cases = [
            ("db.t3.medium", Some(420)),
            ("db.r6g.large", Some(1722)),
            ("db.r5.2xlarge", Some(5000)),
            ("db.r6g.16xlarge", Some(5000)),
            ("db.r6g.xlarge", Some(3479)),
            ("db.x9.unknown", None),
            ("db.t3.micro", None),
        ];
        for (class, want) in cases {
            assert_eq!(
                aurora_max_connections_for_class(class).map(|t| t.max_connections),
                want,
                "{class}"
            );
        }
    }

    #[test]
    fn serverless_table() {
        let cases = [
            (0.5, 1.0, 189),
            (2.0, 4.0, 823),
            (1.0, 6.0, 823),
            (2.0, 16.0, 3360),
            (2.0, 64.0, 5000),
            (0.5, 64.0, 2000),
        ];
        for (min, max, want) in cases {
            assert_eq!(
                aurora_serverless_max_connections(min, max)
                    .unwrap()
                    .max_connections,
                want,
                "{min}-{max}"
            );
        }
        assert!(aurora_serverless_max_connections(0.5, 0.5).is_none());
    }
}
