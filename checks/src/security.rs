//! `security`: the database is not publicly accessible, the proxy requires TLS, and no security group opens
//! 5432 to the internet.

use statsctl_core::inventory::Kind;

use crate::{Facts, Finding, Status};

pub const ID: &str = "security";

pub fn check(facts: &Facts) -> Vec<Finding> {
    let o = facts.observed;
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    for (k, r) in &o.resources {
        if k.kind == Kind::DbInstance
            && r.attrs.get("publicly_accessible").map(String::as_str) == Some("true")
        {
            problems.push(format!("DB instance `{}` is publicly accessible", k.name));
            fixes.push("set `database.publicly_accessible: false` and statsctl deploy".to_string());
        }
        if k.kind == Kind::Ingress {
            for rule in r
                .attrs
                .get("rules")
                .map(|v| v.split(',').collect::<Vec<_>>())
                .unwrap_or_default()
            {
                let open = rule.ends_with(":cidr:0.0.0.0/0") || rule.ends_with(":cidr:::/0");
                if open && (rule.starts_with("tcp:5432:") || rule.starts_with("-1:")) {
                    problems.push(format!(
                        "security group `{}` admits the internet on 5432 ({rule})",
                        k.name
                    ));
                    fixes.push(format!(
                        "statsctl deploy (restores the rules of `{}`)",
                        k.name
                    ));
                }
            }
        }
    }
    if let Some(p) = &facts.stack.proxy {
        if let Some(live) = o.get(Kind::Proxy, &p.name) {
            if live.attrs.get("require_tls").map(String::as_str) != Some("true") {
                problems.push(format!("proxy `{}` does not require TLS", p.name));
                fixes.push("set `proxy.require_tls: true` and statsctl deploy".into());
            }
        }
    }
    if problems.is_empty() {
        return vec![Finding::new(
            ID,
            Status::Pass,
            "database private, TLS required, 5432 closed to the internet",
        )];
    }
    let mut f = Finding::new(ID, Status::Fail, problems[0].clone());
    f.evidence = problems;
    fixes.dedup();
    f.fixes = fixes;
    vec![f]
}
