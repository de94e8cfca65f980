//! `service.healthy`: the service answers, and runs as many tasks as it should. Answers come from preflight's own
//! HTTP probes (its health endpoint and the load-test targets), so a service that accepts connections but never
//! answers is named as such (and one whose TLS handshake stalls, or whose certificate is refused); ECS task
//! counts and load-balancer target health where AWS can report them.

use serde::Serialize;
use statsctl_core::inventory::Kind;

use crate::{Facts, Finding, Status};

pub const ID: &str = "service.healthy";

/// How one probe request ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// An HTTP status line came back.
    Answered { status: u16 },
    /// The connection was refused or failed (the error's text).
    ConnectFailed { error: String },
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// Connected, sent the request, and no byte came back within the answer timeout: the incident's shape.
    NoAnswer,
    /// Connected, and the peer closed or sent something that is not HTTP.
    BadAnswer { error: String },
    /// The status line and headers came, and the body did not complete within the answer timeout: a service
    /// that starts its answer and then waits (on its database, a lock) is as stuck as one that never starts.
    BodyStalled { status: u16 },
    /// `https://`: connected, and the server's certificate was refused (unknown issuer, expired, wrong name).
    CertificateRefused { error: String },
    /// `https://`: connected, and the TLS handshake failed otherwise (an alert, no common protocol, a plain HTTP
    /// server behind an https:// URL).
    HandshakeFailed { error: String },
    /// `https://`: connected, and the TLS handshake did not finish within the handshake timeout: the incident's
    /// shape one layer down (a listener that accepts but whose TLS terminator does not answer).
    HandshakeStalled,
}

/// One GET preflight sent; times in milliseconds, measured separately so a slow connect and a silent server
/// read differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// Time to establish the TCP connection, when it was.
    pub connect_ms: Option<f64>,
    /// `https://`: time for the TLS handshake after the connection, when it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_ms: Option<f64>,
    /// From the request written to the first byte of the answer, when one came.
    pub first_byte_ms: Option<f64>,
    /// From the request written to the answer's last byte (its body read to its end), when it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_ms: Option<f64>,
    pub outcome: Outcome,
}

/// A few GETs to one URL of the service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    /// What the URL is: `health endpoint` or `load-test target`.
    pub role: String,
    pub url: String,
    pub connect_timeout_ms: u64,
    /// `https://`: how long the TLS handshake may take.
    pub handshake_timeout_ms: u64,
    pub answer_timeout_ms: u64,
    /// Why it was not probed (e.g. a URL with credentials in it), when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_probed: Option<String>,
    pub attempts: Vec<Attempt>,
}

/// A probe's verdict and one line saying what it saw. Pure.
pub fn judge_probe(p: &Probe) -> (Status, String) {
    let head = format!("{} `{}`", p.role, p.url);
    if let Some(why) = &p.not_probed {
        return (Status::Skip, format!("{head}: not probed ({why})"));
    }
    let n = p.attempts.len();
    if n == 0 {
        return (Status::Skip, format!("{head}: not probed"));
    }
    let count = |f: &dyn Fn(&Outcome) -> bool| p.attempts.iter().filter(|a| f(&a.outcome)).count();
    let times = |pick: fn(&Attempt) -> Option<f64>| {
        let v: Vec<f64> = p.attempts.iter().filter_map(pick).collect();
        v.iter()
            .cloned()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    let connect = times(|a| a.connect_ms)
        .map(|m| format!("connect ≤ {m:.1} ms"))
        .unwrap_or_else(|| "no connection".into());
    let silent = count(&|o| matches!(o, Outcome::NoAnswer));
    if silent > 0 {
        return (
            Status::Fail,
            format!(
                "{head} accepted the connection but did not answer within {} ms ({silent} of {n} requests; {connect})",
                p.answer_timeout_ms
            ),
        );
    }
    let body_stalled: Vec<u16> = p
        .attempts
        .iter()
        .filter_map(|a| match a.outcome {
            Outcome::BodyStalled { status } => Some(status),
            _ => None,
        })
        .collect();
    if let Some(status) = body_stalled.first() {
        return (
            Status::Fail,
            format!(
                "{head} answered {status} headers but the body stalled: not complete within {} ms ({} of {n} requests; {connect})",
                p.answer_timeout_ms,
                body_stalled.len()
            ),
        );
    }
    let stalled = count(&|o| matches!(o, Outcome::HandshakeStalled));
    if stalled > 0 {
        return (
            Status::Fail,
            format!(
                "{head} accepted the connection but did not complete the TLS handshake within {} ms ({stalled} of {n} requests; {connect})",
                p.handshake_timeout_ms
            ),
        );
    }
    let tls_failed = |certificate: bool| -> Vec<&String> {
        p.attempts
            .iter()
            .filter_map(|a| match &a.outcome {
                Outcome::CertificateRefused { error } if certificate => Some(error),
                Outcome::HandshakeFailed { error } if !certificate => Some(error),
                _ => None,
            })
            .collect()
    };
    for (certificate, what) in [
        (true, "its TLS certificate was refused"),
        (false, "the TLS handshake failed"),
    ] {
        let errors = tls_failed(certificate);
        if let Some(e) = errors.first() {
            return (
                Status::Fail,
                format!("{head}: {what} ({} of {n} requests: {e})", errors.len()),
            );
        }
    }
    let refused: Vec<&String> = p
        .attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::ConnectFailed { error } => Some(error),
            _ => None,
        })
        .collect();
    if let Some(e) = refused.first() {
        return (
            Status::Fail,
            format!(
                "{head}: no connection ({} of {n} requests: {e})",
                refused.len()
            ),
        );
    }
    let timed_out = count(&|o| matches!(o, Outcome::ConnectTimeout));
    if timed_out > 0 {
        return (
            Status::Fail,
            format!(
                "{head} did not accept a connection within {} ms ({timed_out} of {n} requests)",
                p.connect_timeout_ms
            ),
        );
    }
    if let Some(e) = p.attempts.iter().find_map(|a| match &a.outcome {
        Outcome::BadAnswer { error } => Some(error),
        _ => None,
    }) {
        return (Status::Fail, format!("{head} did not answer HTTP: {e}"));
    }
    let bad: Vec<u16> = p
        .attempts
        .iter()
        .filter_map(|a| match a.outcome {
            Outcome::Answered { status } if !(200..400).contains(&status) => Some(status),
            _ => None,
        })
        .collect();
    let handshake = times(|a| a.handshake_ms)
        .map(|m| format!("TLS handshake ≤ {m:.1} ms, "))
        .unwrap_or_default();
    let whole = times(|a| a.answer_ms)
        .map(|m| format!(", whole answer ≤ {m:.1} ms"))
        .unwrap_or_default();
    let first_byte = times(|a| a.first_byte_ms)
        .map(|m| format!("{handshake}first byte ≤ {m:.1} ms{whole}"))
        .unwrap_or_default();
    if let Some(s) = bad.first() {
        return (
            Status::Fail,
            format!(
                "{head} answered {s} ({} of {n} requests; {connect}, {first_byte})",
                bad.len()
            ),
        );
    }
    (
        Status::Pass,
        format!("{head}: {n}/{n} answered ({connect}, {first_byte})"),
    )
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let Some(svc) = &facts.stack.service else {
        return vec![Finding::new(ID, Status::Skip, "the stack has no service")];
    };
    // The serving colour's service (the other colour, when there is one, takes no traffic).
    let Some((live_name, live)) =
        statsctl_core::desired::service::live_service(facts.stack, facts.env, facts.observed)
    else {
        return vec![Finding::new(
            ID,
            Status::Fail,
            format!("service `{}` does not exist", svc.name),
        )
        .fix("statsctl deploy")];
    };
    // Skip ranks above Pass: track what was observed apart from how bad it is.
    let mut status: Option<Status> = None;
    let worst = |s: Status, status: &mut Option<Status>| {
        *status = Some(status.map_or(s, |w| w.max(s)));
    };
    let mut problems = Vec::new();
    // What passed, for the summary (a "not probed" line never is).
    let mut passed = Vec::new();
    let mut evidence = Vec::new();
    let mut fixes = Vec::new();
    for p in &facts.service_probes {
        let (s, line) = judge_probe(p);
        if s == Status::Fail {
            problems.push(line.clone());
            let silent = p
                .attempts
                .iter()
                .any(|a| matches!(a.outcome, Outcome::NoAnswer | Outcome::BodyStalled { .. }));
            let unreachable = p.attempts.iter().any(|a| {
                matches!(
                    a.outcome,
                    Outcome::ConnectFailed { .. } | Outcome::ConnectTimeout
                )
            });
            let certificate = p
                .attempts
                .iter()
                .any(|a| matches!(a.outcome, Outcome::CertificateRefused { .. }));
            let tls = p.attempts.iter().any(|a| {
                matches!(
                    a.outcome,
                    Outcome::HandshakeFailed { .. } | Outcome::HandshakeStalled
                )
            });
            if certificate {
                fixes.push(format!("renew or replace the certificate behind `{}`: it must chain to a trusted root and name the host (ACM certificate on the load balancer's HTTPS listener)", p.url));
            }
            if tls {
                fixes.push(format!("look at the TLS listener behind `{}` (its load balancer listener's certificate and security policy): it accepts connections but does not complete a TLS handshake", p.url));
            }
            if silent {
                fixes.push("look at the service's logs and its database connections: a service that accepts but does not answer is usually waiting on its database pool".to_string());
            }
            if unreachable {
                fixes.push(format!("check that the service listens where `loadtest.targets` say (locally: `statsctl local up`), and its load balancer's listener on {}", svc.load_balancer.listener_port));
            }
            if !silent && !unreachable && !certificate && !tls {
                fixes.push(format!(
                    "look at what `{}` answers and the service's logs",
                    p.url
                ));
            }
        }
        if s != Status::Skip {
            worst(s, &mut status);
        }
        if s == Status::Pass {
            passed.push(line.clone());
        }
        evidence.push(line);
    }
    fixes.dedup();

    // The environment says it has no task capacity (the emulator runs no tasks): counts there mean nothing.
    if svc.steady_state_timeout.0.is_zero() {
        evidence.push(
            "ECS task counts not observable here: this environment runs no tasks (service.steady_state_timeout: 0s)"
                .to_string(),
        );
    } else {
        let count = |k: &str| -> u64 { live.output(k).and_then(|v| v.parse().ok()).unwrap_or(0) };
        let (running, desired) = (count("running"), count("desired"));
        let line = format!(
            "{running}/{desired} tasks running (service `{}` in cluster `{}`)",
            live_name, svc.cluster
        );
        if running >= desired && desired > 0 {
            worst(Status::Pass, &mut status);
            passed.push(line.clone());
        } else {
            worst(Status::Fail, &mut status);
            problems.push(format!("{running}/{desired} tasks running"));
            fixes.push(format!("look at the service's stopped tasks: aws ecs describe-services --cluster {} --services {}", svc.cluster, live_name));
        }
        evidence.push(line);
        // Target health, when the load balancer reports it (`healthy,unhealthy,…` per registered target).
        if let Some(states) = facts
            .observed
            .get(Kind::TargetGroup, &facts_target_group(facts))
            .and_then(|t| t.output("target_health"))
        {
            let states: Vec<&str> = states.split(',').filter(|s| !s.is_empty()).collect();
            let healthy = states.iter().filter(|s| **s == "healthy").count();
            let line = format!(
                "load balancer: {healthy}/{} registered targets healthy",
                states.len()
            );
            if healthy < states.len() || states.is_empty() {
                worst(Status::Fail, &mut status);
                problems.push(line.clone());
            }
            evidence.push(line);
        }
    }
    let status = status.unwrap_or(Status::Skip);
    let summary = if let Some(p) = problems.first() {
        p.clone()
    } else if status == Status::Skip {
        "nothing observable: no probe could run and ECS task counts are not observable here".into()
    } else {
        passed.join("; ")
    };
    let mut f = Finding::new(ID, status, summary);
    f.evidence = evidence;
    f.fixes = fixes;
    vec![f]
}

/// The serving colour's target group.
fn facts_target_group(facts: &Facts) -> String {
    statsctl_core::desired::service::live_target_group(facts.stack, facts.env, facts.observed)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(outcomes: Vec<(Option<f64>, Option<f64>, Outcome)>) -> Probe {
        Probe {
            role: "health endpoint".into(),
            url: "http://127.0.0.1:1/healthz".into(),
            connect_timeout_ms: 1000,
            handshake_timeout_ms: 2000,
            answer_timeout_ms: 2000,
            not_probed: None,
            attempts: outcomes
                .into_iter()
                .map(|(c, f, outcome)| Attempt {
                    connect_ms: c,
                    handshake_ms: None,
                    first_byte_ms: f,
                    answer_ms: None,
                    outcome,
                })
                .collect(),
        }
    }

    #[test]
    fn probes_are_judged_by_what_came_back() {
        let ok = |ms| (Some(0.4), Some(ms), Outcome::Answered { status: 200 });
        let silent = || (Some(0.3), None, Outcome::NoAnswer);
        let cases = [
            ("all answered", vec![ok(3.0), ok(5.0), ok(4.0)], Status::Pass, "3/3 answered (connect ≤ 0.4 ms, first byte ≤ 5.0 ms)"),
            (
                "accepts, never answers (the incident)",
                vec![silent(), silent(), silent()],
                Status::Fail,
                "accepted the connection but did not answer within 2000 ms (3 of 3 requests; connect ≤ 0.3 ms)",
            ),
            ("one silent of three is enough", vec![ok(3.0), silent(), ok(3.0)], Status::Fail, "did not answer within 2000 ms (1 of 3"),
            (
                "refused",
                vec![(None, None, Outcome::ConnectFailed { error: "connection refused".into() }); 3],
                Status::Fail,
                "no connection (3 of 3 requests: connection refused)",
            ),
            ("connect timeout", vec![(None, None, Outcome::ConnectTimeout)], Status::Fail, "did not accept a connection within 1000 ms"),
            ("503", vec![ok(1.0), (Some(0.2), Some(1.0), Outcome::Answered { status: 503 })], Status::Fail, "answered 503 (1 of 2 requests"),
            ("closes without answering", vec![(Some(0.2), None, Outcome::BadAnswer { error: "closed before answering".into() })], Status::Fail, "did not answer HTTP: closed"),
            ("nothing sent", vec![], Status::Skip, "not probed"),
            (
                "headers, then the body stalls",
                vec![ok(2.0), (Some(0.3), Some(1.0), Outcome::BodyStalled { status: 200 })],
                Status::Fail,
                "answered 200 headers but the body stalled: not complete within 2000 ms (1 of 2 requests; connect ≤ 0.4 ms)",
            ),
            (
                "https: certificate refused",
                vec![(Some(0.2), None, Outcome::CertificateRefused { error: "invalid peer certificate: UnknownIssuer".into() }); 3],
                Status::Fail,
                "its TLS certificate was refused (3 of 3 requests: invalid peer certificate: UnknownIssuer)",
            ),
            (
                "https: handshake failed",
                vec![(Some(0.2), None, Outcome::HandshakeFailed { error: "received corrupt message".into() })],
                Status::Fail,
                "the TLS handshake failed (1 of 1 requests: received corrupt message)",
            ),
            (
                "https: accepts, handshake stalls",
                vec![(Some(0.3), None, Outcome::HandshakeStalled), ok(2.0)],
                Status::Fail,
                "accepted the connection but did not complete the TLS handshake within 2000 ms (1 of 2 requests; connect ≤ 0.4 ms)",
            ),
        ];
        for (name, attempts, want, text) in cases {
            let (s, line) = judge_probe(&probe(attempts));
            assert_eq!(s, want, "{name}: {line}");
            assert!(line.contains(text), "{name}: {line}");
        }
        let mut with_credentials = probe(vec![]);
        with_credentials.not_probed = Some("a URL with credentials is not probed".into());
        assert_eq!(judge_probe(&with_credentials).0, Status::Skip);
        assert!(judge_probe(&with_credentials)
            .1
            .contains("not probed (a URL with credentials is not probed)"));
        // Over TLS, the handshake's time is reported apart from the connect and the answer.
        let mut tls = probe(vec![ok(3.0)]);
        tls.attempts[0].handshake_ms = Some(7.5);
        assert!(judge_probe(&tls).1.contains(
            "1/1 answered (connect ≤ 0.4 ms, TLS handshake ≤ 7.5 ms, first byte ≤ 3.0 ms)"
        ));
    }

    /// The check over whole facts: probes, ECS counts (or not observable, by the environment's data), targets.
    #[test]
    fn verdict_from_probes_tasks_and_targets() {
        use statsctl_core::inventory::{Key, Observed, ObservedResource};
        let ok = || {
            probe(vec![
                (
                    Some(0.4),
                    Some(3.0),
                    Outcome::Answered { status: 200 }
                );
                3
            ])
        };
        let hung = || probe(vec![(Some(0.3), None, Outcome::NoAnswer); 3]);
        let unprobed = || {
            let mut p = probe(vec![]);
            p.not_probed = Some("a URL with credentials is not probed".into());
            p
        };
        struct Case {
            name: &'static str,
            no_tasks: bool,
            running: &'static str,
            target_health: Option<&'static str>,
            probes: Vec<Probe>,
            want: Status,
            text: &'static str,
            /// Words one of the fixes must hold ("" for none asked).
            fix: &'static str,
        }
        let cases = [
            Case {
                name: "answers, tasks running",
                no_tasks: false,
                running: "2",
                target_health: Some("healthy,healthy"),
                probes: vec![ok()],
                want: Status::Pass,
                text: "3/3 answered",
                fix: "",
            },
            Case {
                name: "not probed, tasks running",
                no_tasks: false,
                running: "2",
                target_health: None,
                probes: vec![unprobed()],
                want: Status::Pass,
                text: "2/2 tasks running",
                fix: "",
            },
            Case {
                name: "tasks missing",
                no_tasks: false,
                running: "0",
                target_health: None,
                probes: vec![ok()],
                want: Status::Fail,
                text: "0/2 tasks running",
                fix: "",
            },
            Case {
                name: "an unhealthy target",
                no_tasks: false,
                running: "2",
                target_health: Some("healthy,unhealthy"),
                probes: vec![ok()],
                want: Status::Fail,
                text: "1/2 registered targets healthy",
                fix: "",
            },
            Case {
                name: "no tasks here, answers",
                no_tasks: true,
                running: "0",
                target_health: None,
                probes: vec![ok()],
                want: Status::Pass,
                text: "ECS task counts not observable here",
                fix: "",
            },
            Case {
                name: "no tasks here, hung",
                no_tasks: true,
                running: "0",
                target_health: None,
                probes: vec![hung()],
                want: Status::Fail,
                text: "accepted the connection but did not answer within 2000 ms",
                fix: "",
            },
            Case {
                name: "no tasks here, nothing to probe",
                no_tasks: true,
                running: "0",
                target_health: None,
                probes: vec![],
                want: Status::Skip,
                text: "nothing observable",
                fix: "",
            },
            Case {
                name: "certificate refused",
                no_tasks: true,
                running: "0",
                target_health: None,
                probes: vec![probe(vec![
                    (
                        Some(0.3),
                        None,
                        Outcome::CertificateRefused {
                            error: "invalid peer certificate: UnknownIssuer".into()
                        }
                    );
                    3
                ])],
                want: Status::Fail,
                text: "its TLS certificate was refused",
                fix: "renew or replace the certificate behind",
            },
            Case {
                name: "handshake stalls",
                no_tasks: true,
                running: "0",
                target_health: None,
                probes: vec![probe(vec![(Some(0.3), None, Outcome::HandshakeStalled); 3])],
                want: Status::Fail,
                text: "did not complete the TLS handshake within 2000 ms",
                fix: "it accepts connections but does not complete a TLS handshake",
            },
            Case {
                name: "headers, then the body stalls",
                no_tasks: true,
                running: "0",
                target_health: None,
                probes: vec![probe(vec![
                    (
                        Some(0.3),
                        None,
                        Outcome::BodyStalled { status: 200 }
                    );
                    3
                ])],
                want: Status::Fail,
                text: "answered 200 headers but the body stalled",
                fix: "waiting on its database pool",
            },
        ];
        for c in cases {
            let mut stack = crate::fixtures::stack_from("");
            if c.no_tasks {
                stack.service.as_mut().unwrap().steady_state_timeout =
                    statsctl_core::duration::Span(std::time::Duration::ZERO);
            }
            let mut observed = Observed::default();
            let mut svc = ObservedResource::default();
            svc.outputs.insert("running".into(), c.running.into());
            svc.outputs.insert("desired".into(), "2".into());
            observed
                .resources
                .insert(Key::new(Kind::EcsService, "svc"), svc);
            if let Some(h) = c.target_health {
                let mut tg = ObservedResource::default();
                tg.outputs.insert("target_health".into(), h.into());
                let name = statsctl_core::desired::Names::new(&stack, "prod").target_group();
                observed
                    .resources
                    .insert(Key::new(Kind::TargetGroup, &name), tg);
            }
            let facts = Facts {
                service_probes: c.probes,
                ..crate::fixtures::facts(&stack, "prod", &observed)
            };
            let f = &check(&facts)[0];
            assert_eq!(f.status, c.want, "{}: {f:#?}", c.name);
            let all = format!("{} {:?}", f.summary, f.evidence);
            assert!(all.contains(c.text), "{}: {all}", c.name);
            assert!(
                c.fix.is_empty() || f.fixes.iter().any(|x| x.contains(c.fix)),
                "{}: {:?}",
                c.name,
                f.fixes
            );
            if c.no_tasks {
                assert!(!all.contains("tasks running"), "{}: {all}", c.name);
            }
            if f.status == Status::Pass {
                assert!(
                    !f.summary.contains("not probed"),
                    "{}: {}",
                    c.name,
                    f.summary
                );
            }
        }
    }

    /// With two colours, the counts and target health read are the serving colour's: green serving with its
    /// tasks running passes even though blue (idle, scaled to 0) runs none, and the other way round fails.
    #[test]
    fn counts_come_from_the_serving_colour() {
        use statsctl_core::desired::service::Colour;
        use statsctl_core::inventory::{Key, Observed, ObservedResource};
        let stack = crate::fixtures::stack_from("");
        let names = statsctl_core::desired::service::ColourNames::new(&stack, "prod").unwrap();
        let with = |serving: Colour| {
            let mut observed = Observed::default();
            for (c, running) in [(Colour::Blue, "0"), (Colour::Green, "2")] {
                let mut svc = ObservedResource::default();
                svc.outputs.insert("running".into(), running.into());
                svc.outputs.insert("desired".into(), "2".into());
                observed
                    .resources
                    .insert(Key::new(Kind::EcsService, names.service(c)), svc);
            }
            let mut l = ObservedResource::default();
            l.outputs.insert(
                "weights".into(),
                format!(
                    "{}=0,{}=1",
                    names.target_group(serving.other()),
                    names.target_group(serving)
                ),
            );
            observed
                .resources
                .insert(Key::new(Kind::Listener, &names.listener), l);
            observed
        };
        for (serving, want, service) in [
            (Colour::Green, Status::Pass, "svc-green"),
            (Colour::Blue, Status::Fail, "svc"),
        ] {
            let observed = with(serving);
            let facts = Facts {
                ..crate::fixtures::facts(&stack, "prod", &observed)
            };
            let f = &check(&facts)[0];
            assert_eq!(f.status, want, "{serving}: {f:#?}");
            let all = format!("{} {:?}", f.summary, f.evidence);
            assert!(
                all.contains(&format!("(service `{service}` in")),
                "{serving}: {all}"
            );
        }
    }
}

/// At most this many load-test targets are probed.
pub const PROBE_MAX_TARGETS: usize = 5;

/// What preflight probes, where viewers reach the service: the health endpoint (`service.health_check_path`) at
/// each load-test target's origin, once per origin, then the first load-test targets themselves. Nothing without
/// a service. Pure.
pub fn probe_urls(stack: &statsctl_core::model::StackFile) -> Vec<(&'static str, String)> {
    let Some(svc) = &stack.service else {
        return vec![];
    };
    let targets: Vec<&String> = stack
        .loadtest
        .iter()
        .flat_map(|l| l.targets.iter())
        .take(PROBE_MAX_TARGETS)
        .collect();
    let mut urls: Vec<(&'static str, String)> = Vec::new();
    for t in &targets {
        if let Some(origin) = origin_of(t) {
            let health = format!("{origin}{}", svc.health_check_path);
            if !urls.iter().any(|(_, u)| *u == health) {
                urls.push(("health endpoint", health));
            }
        }
    }
    urls.extend(targets.iter().map(|t| ("load-test target", t.to_string())));
    urls
}

/// `http://host:port/path?q` → `http://host:port`. Pure.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// The URL as shown: any `user:password@` is masked. Pure.
pub fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[end..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// What preflight probes, and how URLs are shown.
#[cfg(test)]
mod probe_url_tests {
    use super::*;
    use crate::fixtures::BASE;

    #[test]
    fn origins_and_masked_urls() {
        for (url, origin) in [
            (
                "http://127.0.0.1:28080/matches/1/stats",
                Some("http://127.0.0.1:28080"),
            ),
            (
                "https://stats.example.com/matches/1/stats?x=1",
                Some("https://stats.example.com"),
            ),
            ("http://host?q", Some("http://host")),
            ("http:///x", None),
            ("not a url", None),
        ] {
            assert_eq!(origin_of(url).as_deref(), origin, "{url}");
        }
        for (url, want) in [
            ("http://user:secret@host:80/x?y", "http://***@host:80/x?y"),
            ("http://host/a@b", "http://host/a@b"),
            ("http://a@b@host", "http://***@host"),
            ("no scheme@host", "no scheme@host"),
        ] {
            assert_eq!(shown(url), want, "{url}");
        }
    }

    fn stack(targets: &[&str]) -> statsctl_core::model::StackFile {
        let list = targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let text = if targets.is_empty() {
            BASE.to_string()
        } else {
            format!("{BASE}loadtest: {{ targets: [{list}] }}\n")
        };
        statsctl_core::loader::load_str(std::path::Path::new("t.yaml"), &text, None, &|_: &str| {
            None
        })
        .unwrap_or_else(|d| panic!("{d}"))
        .spec
    }

    #[test]
    fn health_once_per_origin_then_the_first_targets() {
        let urls = |targets: &[&str]| -> Vec<String> {
            probe_urls(&stack(targets))
                .into_iter()
                .map(|(role, url)| format!("{role} {url}"))
                .collect()
        };
        // (case, load-test targets, expected probes)
        let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
            ("no targets", vec![], vec![]),
            (
                "one target",
                vec!["http://127.0.0.1:28080/matches/1/stats"],
                vec![
                    "health endpoint http://127.0.0.1:28080/healthz",
                    "load-test target http://127.0.0.1:28080/matches/1/stats",
                ],
            ),
            (
                "two on one origin, one elsewhere",
                vec!["http://a:1/x", "http://a:1/y", "https://b/z"],
                vec![
                    "health endpoint http://a:1/healthz",
                    "health endpoint https://b/healthz",
                    "load-test target http://a:1/x",
                    "load-test target http://a:1/y",
                    "load-test target https://b/z",
                ],
            ),
            (
                "at most five targets",
                vec![
                    "http://a/1",
                    "http://a/2",
                    "http://a/3",
                    "http://a/4",
                    "http://a/5",
                    "http://a/6",
                ],
                vec![
                    "health endpoint http://a/healthz",
                    "load-test target http://a/1",
                    "load-test target http://a/2",
                    "load-test target http://a/3",
                    "load-test target http://a/4",
                    "load-test target http://a/5",
                ],
            ),
        ];
        for (case, targets, want) in cases {
            assert_eq!(urls(&targets), want, "{case}");
        }
        let mut no_service = stack(&["http://a/1"]);
        no_service.service = None;
        assert!(probe_urls(&no_service).is_empty());
    }
}
