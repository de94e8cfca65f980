//! The service family: the ECS cluster, the load balancer with its two colours' target groups and the listener,
//! the task definition (environment from the same database block preflight budgets with) and the service's two
//! colours. Also the colours' names and the pure rules about them: which colour serves (from the listener's
//! observed weights), the weights for a percent, and when an idle colour's keep time has passed.
//!
//! Which colour serves is live state, not stack-file state: the stack's service is wanted on the colour the
//! listener sends all traffic to, the other colour is wanted as it is observed (so a completed rollout leaves an
//! empty plan whichever colour won), and a listener found splitting traffic (a rollout stopped mid-way) is wanted
//! exactly as found: plan never "fixes" it blindly; the listener's `weights` output and state say a rollout is in
//! progress.

use std::collections::BTreeMap;
use std::fmt::Write;

use sha2::{Digest, Sha256};

use super::{Ctx, Names};
use crate::inventory::{split_list, Desired, Kind, Observed, ObservedResource};
use crate::model::{Connections, StackFile};
use crate::spec::{
    EcsServiceSpec, ListenerSpec, LoadBalancerSpec, Ref, SecretSource, Spec, TargetGroupSpec,
    TaskDefinitionSpec,
};

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let Some(svc) = &stack.service else {
        return vec![];
    };
    let mut out = vec![
        Desired::from_spec(svc.cluster.clone(), Spec::EcsCluster),
        Desired::from_spec(
            n.load_balancer(),
            Spec::LoadBalancer(LoadBalancerSpec {
                internal: svc.load_balancer.internal,
                subnets: cx.subnets.clone(),
                security_groups: vec![n.sg("lb")],
            }),
        ),
    ];
    let names = ColourNames::of(n, svc);
    let routing = names.routing(cx.observed);
    let live = match &routing {
        Routing::All(c) => Some(*c),
        Routing::Split(_) => None,
        Routing::Elsewhere => Some(Colour::Blue),
    };
    // The live colour's target group always; the other's while it exists (a rollout created it).
    for c in Colour::BOTH {
        let name = names.target_group(c);
        if live == Some(c)
            || c == Colour::Blue
            || cx.observed.get(Kind::TargetGroup, &name).is_some()
        {
            out.push(Desired::from_spec(
                name,
                Spec::TargetGroup(TargetGroupSpec {
                    vpc: cx.vpc.clone(),
                    port: svc.port,
                    health_check_path: svc.health_check_path.clone(),
                }),
            ));
        }
    }
    let port = svc.load_balancer.listener_port;
    let listener = match (&routing, live) {
        (Routing::Split(forwards), _) => {
            let f: Vec<(&str, u16)> = forwards.iter().map(|(t, w)| (t.as_str(), *w)).collect();
            ListenerSpec::weighted(port, &f)
                .unwrap_or_else(|_| ListenerSpec::forward(port, names.target_group(Colour::Blue)))
        }
        (_, live) => ListenerSpec::forward(port, names.target_group(live.unwrap_or(Colour::Blue))),
    };
    out.push(Desired::from_spec(
        names.listener.clone(),
        Spec::Listener(listener),
    ));
    let (mut vars, secrets) = cx.split_environment(&svc.environment);
    // ECS sets these from Secrets Manager when a task starts.
    let secrets: BTreeMap<String, SecretSource> = secrets
        .into_iter()
        .map(|(k, arn, key)| (k, SecretSource { arn, key }))
        .collect();
    if let Some(d) = &svc.database {
        vars.insert(d.host_env.clone(), cx.db_host(d));
        // What the stats service (stats-service/) reads, from the same block preflight budgets with;
        // values set in `service.environment` win.
        let mode = if d.connections == Connections::PerRequest {
            "per-request"
        } else {
            "pool"
        };
        for (k, v) in [
            ("PORT", svc.port.to_string()),
            ("DB_USER", d.user.clone()),
            ("DB_NAME", stack.database.database_name.clone()),
            ("DB_MODE", mode.to_string()),
            ("DB_POOL_SIZE", d.pool_size.to_string()),
        ] {
            if !secrets.contains_key(k) {
                vars.entry(k.to_string()).or_insert(Ref::Known(v));
            }
        }
    }
    let family = n.task_family(&svc.name);
    let task = Desired::from_spec(
        family.clone(),
        Spec::TaskDefinition(TaskDefinitionSpec {
            image: svc.image.clone(),
            cpu: svc.cpu,
            memory_mb: svc.memory_mb,
            port: svc.port,
            environment: vars,
            secrets,
            task_role: n.task_role(),
        }),
    );
    // The service runs the registered revision that matches exactly; any change registers a new one.
    let revision = cx
        .observed
        .get(Kind::TaskDefinition, &family)
        .filter(|o| o.attrs == task.attrs)
        .and_then(|o| o.output("revision_ref"));
    out.push(task);
    for c in Colour::BOTH {
        let name = names.service(c);
        if live == Some(c) {
            out.push(Desired::from_spec(
                name,
                Spec::EcsService(EcsServiceSpec {
                    cluster: svc.cluster.clone(),
                    task_definition: Ref::or_after_apply(revision),
                    desired_count: svc.desired_count,
                    subnets: cx.subnets.clone(),
                    security_groups: vec![n.sg("svc")],
                    target_group: names.target_group(c),
                }),
            ));
        } else if let Some(o) = cx.observed.get(Kind::EcsService, &name) {
            // In a split both colours serve: neither is scaled down whatever its tags say.
            let may_scale_down = live.is_some();
            out.push(Desired::from_spec(
                name,
                Spec::EcsService(kept(o, may_scale_down)),
            ));
        }
    }
    out
}

/// An idle colour (or either colour while a rollout is in progress) as it runs, so plan leaves it alone — except
/// its task count once its keep time has passed (`keep_expired`, see [`keep_expired`]): then it is scaled to 0.
fn kept(o: &ObservedResource, may_scale_down: bool) -> EcsServiceSpec {
    let attr = |k: &str| o.attrs.get(k).map(String::as_str).unwrap_or_default();
    let expired = may_scale_down && o.output(KEEP_EXPIRED) == Some("true");
    EcsServiceSpec {
        cluster: attr("cluster").to_string(),
        task_definition: Ref::Known(attr("task_definition").to_string()),
        desired_count: if expired {
            0
        } else {
            attr("desired_count").parse().unwrap_or(0)
        },
        subnets: split_list(attr("subnets")).map(str::to_string).collect(),
        security_groups: split_list(attr("security_groups"))
            .map(str::to_string)
            .collect(),
        target_group: attr("target_group").to_string(),
    }
}

/// One of the service's two colours. Blue keeps the names the service had before it had colours (the service's
/// own name and the `<stack>-<env>-svc` target group), so an existing stack needs no rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Blue,
    Green,
}

impl Colour {
    pub const BOTH: [Colour; 2] = [Colour::Blue, Colour::Green];
    pub fn label(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }
    pub fn other(self) -> Colour {
        match self {
            Colour::Blue => Colour::Green,
            Colour::Green => Colour::Blue,
        }
    }
}

impl std::fmt::Display for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The ECS service tag saying until when (Unix seconds) an idle colour keeps its tasks for a rollback.
pub const KEEP_UNTIL_TAG: &str = "statsctl:keep-until";
/// The ECS service tag saying when (Unix seconds) a colour was last started with a new revision: in a split,
/// the colour started later is the new one.
pub const STARTED_TAG: &str = "statsctl:started";
/// The observed output (`true`/`false`) the adapter derives from [`KEEP_UNTIL_TAG`] with [`keep_expired`].
pub const KEEP_EXPIRED: &str = "keep_expired";

/// An ELB target group name's limit ("up to 32 alphanumeric characters or hyphens", CreateTargetGroup).
pub const TARGET_GROUP_NAME_MAX: usize = 32;

/// `name` if it fits a target group name; otherwise its start and a short hash of the whole, so two long names
/// that differ only at the end (`…-svc` and `…-svc-green`) stay different. Never ends with a hyphen.
pub fn fit_target_group_name(name: &str) -> String {
    if name.len() <= TARGET_GROUP_NAME_MAX {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash = digest.iter().take(4).fold(String::new(), |mut h, b| {
        let _ = write!(h, "{b:02x}");
        h
    });
    let head: String = name
        .chars()
        .take(TARGET_GROUP_NAME_MAX - hash.len() - 1)
        .collect();
    format!("{}-{hash}", head.trim_end_matches('-'))
}

/// The names of one stack's two colours and of the listener in front of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColourNames {
    /// The stack's service name: blue's ECS service.
    pub service: String,
    /// Blue's target group.
    pub target_group: String,
    /// The listener's resource name (`<load balancer>:<port>`).
    pub listener: String,
}

impl ColourNames {
    fn of(n: &Names, svc: &crate::model::Service) -> ColourNames {
        ColourNames {
            service: svc.name.clone(),
            target_group: fit_target_group_name(&n.target_group()),
            listener: format!("{}:{}", n.load_balancer(), svc.load_balancer.listener_port),
        }
    }
    /// `None` when the stack has no service.
    pub fn new(stack: &StackFile, env: &str) -> Option<ColourNames> {
        let svc = stack.service.as_ref()?;
        Some(ColourNames::of(&Names::new(stack, env), svc))
    }
    /// The ECS service of a colour: blue is the stack's service name, green `<name>-green`.
    pub fn service(&self, c: Colour) -> String {
        match c {
            Colour::Blue => self.service.clone(),
            Colour::Green => format!("{}-green", self.service),
        }
    }
    /// The target group of a colour, at most 32 characters.
    pub fn target_group(&self, c: Colour) -> String {
        match c {
            Colour::Blue => self.target_group.clone(),
            Colour::Green => fit_target_group_name(&format!("{}-green", self.target_group)),
        }
    }
    pub fn colour_of_target_group(&self, name: &str) -> Option<Colour> {
        Colour::BOTH
            .into_iter()
            .find(|c| self.target_group(*c) == name)
    }
    /// Whether `name` is one of the service's colours.
    pub fn is_service(&self, name: &str) -> bool {
        Colour::BOTH.into_iter().any(|c| self.service(c) == name)
    }
    /// How the listener routes, from its observed `weights` output.
    pub fn routing(&self, observed: &Observed) -> Routing {
        let forwards = observed
            .output(Kind::Listener, &self.listener, "weights")
            .map(parse_weights)
            .unwrap_or_default();
        self.routing_of(&forwards)
    }
    /// How forwards (target group → weight) route. Pure.
    pub fn routing_of(&self, forwards: &[(String, u16)]) -> Routing {
        // Sorted by target group: the same split reads the same whatever order ELB lists it in.
        let mut positive: Vec<(String, u16)> =
            forwards.iter().filter(|(_, w)| *w > 0).cloned().collect();
        positive.sort();
        match positive.as_slice() {
            [] => Routing::Elsewhere,
            [(tg, _)] => self
                .colour_of_target_group(tg)
                .map_or(Routing::Elsewhere, Routing::All),
            _ => Routing::Split(positive),
        }
    }
    /// Of the two colours, the one whose service started later: in a split listener (a deploy stopped
    /// mid-rollout), the new one. Blue when neither says when it started.
    pub fn newer(&self, observed: &Observed) -> Colour {
        let started = |c: Colour| -> u64 {
            observed
                .output(Kind::EcsService, &self.service(c), "started")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        if started(Colour::Green) >= started(Colour::Blue) {
            Colour::Green
        } else {
            Colour::Blue
        }
    }
    /// The colour serving viewers as observed: the one taking all traffic; in a split, the one taking more (on a
    /// tie, blue); with no listener or one pointing elsewhere, blue. What checks read.
    pub fn serving(&self, observed: &Observed) -> Colour {
        match self.routing(observed) {
            Routing::All(c) => c,
            Routing::Elsewhere => Colour::Blue,
            Routing::Split(forwards) => {
                let weight = |c: Colour| {
                    let tg = self.target_group(c);
                    forwards
                        .iter()
                        .find(|(t, _)| *t == tg)
                        .map_or(0, |(_, w)| *w)
                };
                if weight(Colour::Green) > weight(Colour::Blue) {
                    Colour::Green
                } else {
                    Colour::Blue
                }
            }
        }
    }
}

/// How the listener routes traffic between the colours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Every request to one colour.
    All(Colour),
    /// Split by weight (only the target groups with a weight above 0): a rollout in progress.
    Split(Vec<(String, u16)>),
    /// No listener, nothing forwarded, or forwarded to a target group that is not a colour's.
    Elsewhere,
}

/// The live service of a stack as observed (name and resource): the serving colour's. What preflight reads.
pub fn live_service<'o>(
    stack: &StackFile,
    env: &str,
    observed: &'o Observed,
) -> Option<(String, &'o ObservedResource)> {
    let names = ColourNames::new(stack, env)?;
    let name = names.service(names.serving(observed));
    let r = observed.get(Kind::EcsService, &name)?;
    Some((name, r))
}

/// The serving colour's target group name.
pub fn live_target_group(stack: &StackFile, env: &str, observed: &Observed) -> Option<String> {
    let names = ColourNames::new(stack, env)?;
    Some(names.target_group(names.serving(observed)))
}

/// `a=90,b=10` (the listener's `weights` output) → forwards. A part that does not parse is left out.
pub fn parse_weights(text: &str) -> Vec<(String, u16)> {
    split_list(text)
        .filter_map(|p| {
            let (tg, w) = p.rsplit_once('=')?;
            Some((tg.to_string(), w.parse().ok()?))
        })
        .collect()
}

/// Forwards → `a=90,b=10`, sorted by target group.
pub fn render_weights(forwards: &[(String, u16)]) -> String {
    let mut sorted = forwards.to_vec();
    sorted.sort();
    let parts: Vec<String> = sorted.iter().map(|(t, w)| format!("{t}={w}")).collect();
    parts.join(",")
}

/// The listener weights (previous colour, new colour) that put `percent` % of traffic on the new colour. Weights
/// are checked as ELB takes them: each 0..=999, at least one above 0.
pub fn weights_for(percent: u32) -> Result<(u16, u16), String> {
    let new = u16::try_from(percent)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("{percent}% is not a share of traffic (0–100)"))?;
    let old = 100 - new;
    for w in [old, new] {
        crate::spec::ForwardWeight::new(w).map_err(|e| e.what)?;
    }
    Ok((old, new))
}

/// The percent of traffic `target` gets from forwards as read back (rounded down; 0 when it is not among them);
/// `None` when nothing has a weight above 0 (the listener sends traffic nowhere).
pub fn percent_on(forwards: &[(String, u16)], target: &str) -> Option<u32> {
    let total: u32 = forwards.iter().map(|(_, w)| u32::from(*w)).sum();
    let mine: u32 = forwards
        .iter()
        .filter(|(t, _)| t == target)
        .map(|(_, w)| u32::from(*w))
        .sum();
    (total > 0).then(|| mine * 100 / total)
}

/// Whether an idle colour's keep time (`statsctl:keep-until`, Unix seconds) has passed at `now`. No tag: kept
/// (only a promote or a rollback makes a colour idle, and both write it).
pub fn keep_expired(keep_until: Option<u64>, now: u64) -> bool {
    keep_until.is_some_and(|t| now >= t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::desired;
    use crate::inventory::Key;

    fn shipped() -> StackFile {
        crate::testing::shipped("local")
    }

    fn names() -> ColourNames {
        ColourNames::new(&shipped(), "local").unwrap()
    }

    fn fw(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(t, w)| (t.to_string(), *w)).collect()
    }

    #[test]
    fn colour_names_fit_target_group_limits_and_stay_distinct() {
        let n = names();
        assert_eq!(n.service(Colour::Blue), "stats-service");
        assert_eq!(n.service(Colour::Green), "stats-service-green");
        assert_eq!(n.target_group(Colour::Blue), "live-stats-local-svc");
        assert_eq!(n.target_group(Colour::Green), "live-stats-local-svc-green");
        assert_eq!(n.listener, "live-stats-local:80");
        let long = "a".repeat(32) + "-production-svc";
        let cases = [
            ("short-svc", "short-svc".to_string()),
            (&"b".repeat(32), "b".repeat(32)),
            (long.as_str(), fit_target_group_name(&long)),
        ];
        for (name, want) in cases {
            let got = fit_target_group_name(name);
            assert_eq!(got, want, "{name}");
            assert!(got.len() <= TARGET_GROUP_NAME_MAX, "{got}");
            assert!(!got.ends_with('-') && !got.starts_with('-'), "{got}");
        }
        let blue = fit_target_group_name(&long);
        let green = fit_target_group_name(&format!("{long}-green"));
        assert_ne!(blue, green, "long names differing at the end stay distinct");
        assert_eq!(blue.len(), TARGET_GROUP_NAME_MAX);
        // A hyphen where the cut falls is not kept before the hash.
        let cut = format!("{}-{}", "c".repeat(22), "d".repeat(20));
        assert!(!fit_target_group_name(&cut).contains("--"));
    }

    #[test]
    fn which_colour_serves_from_the_listener_weights() {
        let n = names();
        let (b, g) = ("live-stats-local-svc", "live-stats-local-svc-green");
        let cases = [
            ("no listener", fw(&[]), Routing::Elsewhere, Colour::Blue),
            (
                "plain forward to blue",
                fw(&[(b, 1)]),
                Routing::All(Colour::Blue),
                Colour::Blue,
            ),
            (
                "green attached at 0",
                fw(&[(b, 100), (g, 0)]),
                Routing::All(Colour::Blue),
                Colour::Blue,
            ),
            (
                "promoted to green",
                fw(&[(b, 0), (g, 100)]),
                Routing::All(Colour::Green),
                Colour::Green,
            ),
            (
                "canary on green",
                fw(&[(b, 90), (g, 10)]),
                Routing::Split(fw(&[(b, 90), (g, 10)])),
                Colour::Blue,
            ),
            (
                "mostly green",
                fw(&[(b, 30), (g, 70)]),
                Routing::Split(fw(&[(b, 30), (g, 70)])),
                Colour::Green,
            ),
            (
                "half and half",
                fw(&[(b, 50), (g, 50)]),
                Routing::Split(fw(&[(b, 50), (g, 50)])),
                Colour::Blue,
            ),
            (
                "someone else's group",
                fw(&[("other", 1)]),
                Routing::Elsewhere,
                Colour::Blue,
            ),
            (
                "all weights 0",
                fw(&[(b, 0), (g, 0)]),
                Routing::Elsewhere,
                Colour::Blue,
            ),
        ];
        for (name, forwards, routing, serving) in cases {
            assert_eq!(n.routing_of(&forwards), routing, "{name}");
            let mut o = Observed::default();
            let mut l = ObservedResource::default();
            l.outputs
                .insert("weights".into(), render_weights(&forwards));
            o.resources.insert(Key::new(Kind::Listener, &n.listener), l);
            assert_eq!(n.serving(&o), serving, "{name}");
            assert_eq!(n.routing(&o), routing, "{name}: through the weights output");
        }
    }

    #[test]
    fn weights_for_a_percent_and_the_percent_read_back() {
        /// (percent, the weights (old, new) or the error).
        type Case = (u32, Result<(u16, u16), &'static str>);
        let cases: [Case; 6] = [
            (0, Ok((100, 0))),
            (10, Ok((90, 10))),
            (50, Ok((50, 50))),
            (100, Ok((0, 100))),
            (101, Err("101% is not a share of traffic")),
            (70_000, Err("70000% is not a share of traffic")),
        ];
        for (p, want) in cases {
            match (weights_for(p), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{p}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{p}: {e}"),
                (got, w) => panic!("{p}: got {got:?}, want {w:?}"),
            }
        }
        let back = [
            (fw(&[("old", 90), ("new", 10)]), Some(10)),
            (fw(&[("old", 0), ("new", 1)]), Some(100)),
            (fw(&[("old", 1)]), Some(0)),
            (fw(&[("old", 2), ("new", 1)]), Some(33)),
            (fw(&[("old", 0), ("new", 0)]), None),
            (fw(&[]), None),
        ];
        for (forwards, want) in back {
            assert_eq!(percent_on(&forwards, "new"), want, "{forwards:?}");
        }
        assert_eq!(
            parse_weights("a=90,b=10,junk,c=x"),
            fw(&[("a", 90), ("b", 10)])
        );
        assert_eq!(render_weights(&fw(&[("b", 10), ("a", 90)])), "a=90,b=10");
    }

    #[test]
    fn an_idle_colour_is_kept_until_its_time_has_passed() {
        let cases = [
            (None, 1_000, false),
            (Some(2_000), 1_000, false),
            (Some(2_000), 1_999, false),
            (Some(2_000), 2_000, true),
            (Some(2_000), 9_999, true),
            (Some(0), 0, true),
        ];
        for (until, now, want) in cases {
            assert_eq!(keep_expired(until, now), want, "{until:?} at {now}");
        }
    }

    /// Observed state after a rollout: both colours and target groups, the listener as given.
    fn world(weights: &str, blue_expired: bool) -> (StackFile, Observed) {
        let stack = shipped();
        let n = names();
        let mut o = Observed::default();
        let first = desired(&stack, "local", &o, &BTreeMap::new());
        // Everything the stack wants exists as wanted (the service on blue)…
        for d in &first {
            let r = ObservedResource {
                id: format!("id-{}", d.key.name),
                attrs: d.attrs.clone(),
                ..Default::default()
            };
            o.resources.insert(d.key.clone(), r);
        }
        let mut td =
            o.resources[&Key::new(Kind::TaskDefinition, "live-stats-local-stats-service")].clone();
        td.outputs.insert(
            "revision_ref".into(),
            "live-stats-local-stats-service:2".into(),
        );
        o.resources.insert(
            Key::new(Kind::TaskDefinition, "live-stats-local-stats-service"),
            td,
        );
        // …blue runs revision 1, green revision 2 (the stack's).
        let blue_key = Key::new(Kind::EcsService, n.service(Colour::Blue));
        let mut blue = o.resources[&blue_key].clone();
        blue.attrs.insert(
            "task_definition".into(),
            "live-stats-local-stats-service:1".into(),
        );
        blue.outputs
            .insert(KEEP_EXPIRED.into(), blue_expired.to_string());
        let mut green = blue.clone();
        green.attrs.insert(
            "task_definition".into(),
            "live-stats-local-stats-service:2".into(),
        );
        green
            .attrs
            .insert("target_group".into(), n.target_group(Colour::Green));
        green.outputs.insert(KEEP_EXPIRED.into(), "false".into());
        o.resources.insert(blue_key, blue);
        o.resources
            .insert(Key::new(Kind::EcsService, n.service(Colour::Green)), green);
        let tg = o.resources[&Key::new(Kind::TargetGroup, n.target_group(Colour::Blue))].clone();
        o.resources.insert(
            Key::new(Kind::TargetGroup, n.target_group(Colour::Green)),
            tg,
        );
        let mut l = o.resources[&Key::new(Kind::Listener, &n.listener)].clone();
        l.outputs.insert("weights".into(), weights.into());
        o.resources.insert(Key::new(Kind::Listener, &n.listener), l);
        (stack, o)
    }

    fn wanted(stack: &StackFile, o: &Observed, kind: Kind, name: &str) -> Option<Desired> {
        desired(stack, "local", o, &BTreeMap::new())
            .into_iter()
            .find(|d| d.key == Key::new(kind, name))
    }

    #[test]
    fn the_desired_state_follows_the_serving_colour() {
        let n = names();
        let (b, g) = (n.target_group(Colour::Blue), n.target_group(Colour::Green));
        // Promoted to green, blue within its keep time: the stack's service is wanted on green, blue as it runs.
        let (stack, o) = world(&format!("{b}=0,{g}=100"), false);
        let green = wanted(&stack, &o, Kind::EcsService, "stats-service-green").unwrap();
        assert_eq!(
            green.get("task_definition"),
            "live-stats-local-stats-service:2"
        );
        assert_eq!(green.get("target_group"), g);
        let blue = wanted(&stack, &o, Kind::EcsService, "stats-service").unwrap();
        assert_eq!(
            blue.get("task_definition"),
            "live-stats-local-stats-service:1"
        );
        assert_eq!(blue.get("desired_count"), "1");
        assert_eq!(blue.get("target_group"), b);
        let l = wanted(&stack, &o, Kind::Listener, &n.listener).unwrap();
        assert_eq!(l.get("target_group"), g);
        assert!(
            wanted(&stack, &o, Kind::TargetGroup, &b).is_some(),
            "both target groups are kept"
        );
        assert!(wanted(&stack, &o, Kind::TargetGroup, &g).is_some());
        // Blue's keep time has passed: it is wanted with no tasks.
        let (stack, o) = world(&format!("{b}=0,{g}=100"), true);
        let blue = wanted(&stack, &o, Kind::EcsService, "stats-service").unwrap();
        assert_eq!(blue.get("desired_count"), "0");
        // A split (a rollout stopped mid-way) is wanted exactly as found, and no colour is scaled down.
        let (stack, o) = world(&format!("{b}=90,{g}=10"), true);
        let l = wanted(&stack, &o, Kind::Listener, &n.listener).unwrap();
        assert_eq!(
            l.get("target_group_weights"),
            format!(r#"{{"{b}":"90","{g}":"10"}}"#)
        );
        let blue = wanted(&stack, &o, Kind::EcsService, "stats-service").unwrap();
        assert_eq!(blue.get("desired_count"), "1");
        assert_eq!(
            blue.get("task_definition"),
            "live-stats-local-stats-service:1"
        );
        // Nothing observed yet: blue only, no green anything.
        let stack = shipped();
        let fresh = Observed::default();
        assert!(wanted(&stack, &fresh, Kind::EcsService, "stats-service").is_some());
        assert!(wanted(&stack, &fresh, Kind::EcsService, "stats-service-green").is_none());
        assert!(wanted(&stack, &fresh, Kind::TargetGroup, &g).is_none());
    }
}
