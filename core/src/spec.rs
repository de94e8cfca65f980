//! Typed desired state: one spec per resource kind with typed fields (numbers as integers, lists as `Vec`,
//! values only AWS will know as [`Ref::AfterApply`]) and the ONE canonical attribute view ([`Spec::attrs`]) that
//! plan diffs against observed state. The view is the string format observed state has always used, so plan
//! output does not move when a spec gains structure (weights, a second target group).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::json;

use crate::canonical::{canonical_map, join_sorted, Attrs, KNOWN_AFTER_APPLY};
use crate::kind::Kind;
use crate::model::Comparison;

/// A value that may only exist once something else has been created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Known(String),
    /// An endpoint, ARN or id that the apply creating its owner will produce.
    AfterApply,
    /// A secret the stack references that does not exist: the plan blocks whatever uses it.
    MissingSecret(String),
}

impl Ref {
    /// Known when `value` is there, otherwise known after apply.
    pub fn or_after_apply(value: Option<&str>) -> Ref {
        value.map_or(Ref::AfterApply, |v| Ref::Known(v.to_string()))
    }
    pub fn is_known(&self) -> bool {
        matches!(self, Ref::Known(_))
    }
    /// The canonical string: the value, [`KNOWN_AFTER_APPLY`], or the missing-secret marker plan looks for.
    pub fn render(&self) -> String {
        match self {
            Ref::Known(v) => v.clone(),
            Ref::AfterApply => KNOWN_AFTER_APPLY.to_string(),
            Ref::MissingSecret(name) => crate::canonical::missing_secret(name),
        }
    }
}

impl From<&str> for Ref {
    fn from(v: &str) -> Ref {
        Ref::Known(v.to_string())
    }
}

impl From<String> for Ref {
    fn from(v: String) -> Ref {
        Ref::Known(v)
    }
}

/// Why a spec cannot be built; the caller turns it into a diagnostic with a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub what: String,
    pub hint: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\nhint: {}", self.what, self.hint)
    }
}

impl std::error::Error for SpecError {}

fn spec_error(what: impl Into<String>, hint: impl Into<String>) -> SpecError {
    SpecError {
        what: what.into(),
        hint: hint.into(),
    }
}

/// The share of an alias's traffic routed to its additional version.
///
/// Lambda's `AliasRoutingConfiguration.AdditionalVersionWeights` is a map from ONE second version to a double
/// with "Valid Range: Minimum value of 0.0. Maximum value of 1.0." (AWS Lambda API reference,
/// https://docs.aws.amazon.com/lambda/latest/dg/API_AliasRoutingConfiguration.html); the main version gets
/// the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AliasWeight(f64);

impl AliasWeight {
    pub fn new(weight: f64) -> Result<AliasWeight, SpecError> {
        // `contains` is false for NaN as well, so NaN is refused too.
        if !(0.0..=1.0).contains(&weight) {
            return Err(spec_error(
                format!("alias weight {weight} is outside 0.0..=1.0"),
                "give the additional version's share of traffic as a fraction, e.g. 0.1 for 10%",
            ));
        }
        Ok(AliasWeight(weight))
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

/// Which version an alias points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasVersion {
    /// The version already published from exactly the code and configuration the stack wants.
    Current,
    /// A version apply publishes first (the code or configuration changes).
    ToPublish,
    /// A version named by number (`7`): rollouts and rollbacks.
    Number(String),
}

/// What [`AliasVersion::Current`] reads as in the canonical view (and in observed state).
pub const ALIAS_CURRENT: &str = "published from current code and configuration";

impl AliasVersion {
    fn render(&self) -> String {
        match self {
            AliasVersion::Current => ALIAS_CURRENT.to_string(),
            AliasVersion::ToPublish => KNOWN_AFTER_APPLY.to_string(),
            AliasVersion::Number(v) => v.clone(),
        }
    }
}

/// A Lambda alias: its version and, while traffic shifts, a second version with its share.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasSpec {
    pub version: AliasVersion,
    additional: Option<(String, AliasWeight)>,
}

impl AliasSpec {
    /// All traffic to `version`.
    pub fn new(version: AliasVersion) -> AliasSpec {
        AliasSpec {
            version,
            additional: None,
        }
    }
    /// `weight` of the traffic to `additional` (a published version number), the rest to `version`.
    pub fn weighted(
        version: AliasVersion,
        additional: &str,
        weight: f64,
    ) -> Result<AliasSpec, SpecError> {
        let weight = AliasWeight::new(weight)?;
        // Lambda's key pattern for the map is `[0-9]+`: only a published version, never $LATEST.
        if additional.is_empty() || !additional.bytes().all(|b| b.is_ascii_digit()) {
            return Err(spec_error(
                format!("additional alias version `{additional}` is not a published version number"),
                "name the second version by its number, e.g. `6`; $LATEST cannot take weighted traffic",
            ));
        }
        if matches!(&version, AliasVersion::Number(v) if v == additional) {
            return Err(spec_error(
                format!("alias version {additional} is both the main and the additional version"),
                "weight a different version, or drop the additional version to send it all traffic",
            ));
        }
        Ok(AliasSpec {
            version,
            additional: Some((additional.to_string(), weight)),
        })
    }
    pub fn additional(&self) -> Option<(&str, AliasWeight)> {
        self.additional.as_ref().map(|(v, w)| (v.as_str(), *w))
    }
}

/// An ELB forward weight.
///
/// `TargetGroupTuple.Weight`: "The weight. The range is 0 to 999." (Elastic Load Balancing API reference,
/// https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetGroupTuple.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardWeight(u16);

impl ForwardWeight {
    pub const MAX: u16 = 999;
    pub fn new(weight: u16) -> Result<ForwardWeight, SpecError> {
        if weight > Self::MAX {
            return Err(spec_error(
                format!("target group weight {weight} is above {}", Self::MAX),
                "ELB forward weights are 0..=999 and relative to each other, e.g. 90 and 10",
            ));
        }
        Ok(ForwardWeight(weight))
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

/// A listener forwarding to one target group, or splitting traffic between several by weight.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    pub port: u16,
    forwards: Vec<(String, ForwardWeight)>,
}

impl ListenerSpec {
    /// Everything to one target group.
    pub fn forward(port: u16, target_group: impl Into<String>) -> ListenerSpec {
        ListenerSpec {
            port,
            forwards: vec![(target_group.into(), ForwardWeight(1))],
        }
    }
    /// Traffic split by weight. Weights are relative; at least one must be above 0 or nothing would receive
    /// traffic (a requirement statsctl sets: the API reference only states each weight's range).
    pub fn weighted(port: u16, forwards: &[(&str, u16)]) -> Result<ListenerSpec, SpecError> {
        if forwards.is_empty() {
            return Err(spec_error(
                format!("listener on port {port} forwards to no target group"),
                "name at least one target group to forward to",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(forwards.len());
        for (tg, w) in forwards {
            if !seen.insert(*tg) {
                return Err(spec_error(
                    format!("target group `{tg}` appears twice in the listener on port {port}"),
                    "list each target group once, with its weight",
                ));
            }
            out.push((tg.to_string(), ForwardWeight::new(*w)?));
        }
        if out.iter().all(|(_, w)| w.get() == 0) {
            return Err(spec_error(
                format!("every target group of the listener on port {port} has weight 0"),
                "give at least one target group a weight above 0",
            ));
        }
        Ok(ListenerSpec {
            port,
            forwards: out,
        })
    }
    pub fn forwards(&self) -> &[(String, ForwardWeight)] {
        &self.forwards
    }
}

/// Where an ingress rule admits traffic from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Another of the stack's security groups, by name.
    Group(String),
    /// An IPv4 range (the VPC's, known after apply for a VPC not yet read).
    Cidr(Ref),
}

/// One TCP ingress rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRule {
    pub port: u16,
    pub from: Source,
}

impl IngressRule {
    /// `tcp:<port>:sg:<group>` or `tcp:<port>:cidr:<range>`, as observed state records rules.
    pub fn render(&self) -> String {
        match &self.from {
            Source::Group(g) => format!("tcp:{}:sg:{g}", self.port),
            Source::Cidr(c) => format!("tcp:{}:cidr:{}", self.port, c.render()),
        }
    }
}

/// An IAM policy document: its statements (`Version` is always 2012-10-17).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub statements: Vec<serde_json::Value>,
}

impl Policy {
    pub fn render(&self) -> String {
        json!({ "Version": "2012-10-17", "Statement": self.statements }).to_string()
    }
}

/// A secret ECS injects at task start: the whole secret, or one JSON key of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSource {
    pub arn: Ref,
    pub key: Option<String>,
}

impl SecretSource {
    /// `<arn>:<json-key>::` or the ARN alone: ECS's `valueFrom`.
    pub fn render(&self) -> String {
        match &self.key {
            Some(key) => format!("{}:{key}::", self.arn.render()),
            None => self.arn.render(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VpcSpec {
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubnetSpec {
    pub cidr: String,
    pub availability_zone: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroupSpec {
    pub vpc: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngressSpec {
    pub rules: Vec<IngressRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    /// The service principal that may assume the role (`lambda.amazonaws.com`).
    pub trust: String,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbSubnetGroupSpec {
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbClusterSpec {
    pub engine_version: String,
    pub database_name: String,
    pub master_username: String,
    pub subnet_group: String,
    pub security_groups: Vec<String>,
    /// Aurora Serverless v2 range in ACUs, `None` for provisioned instances.
    pub serverless_acu: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbInstanceSpec {
    pub cluster: String,
    pub instance_class: String,
    pub publicly_accessible: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxySpec {
    pub role: String,
    pub secret: Ref,
    pub iam_auth: bool,
    pub require_tls: bool,
    pub idle_client_timeout_secs: u64,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyTargetGroupSpec {
    pub max_connections_percent: u32,
    pub connection_borrow_timeout_secs: u64,
    /// Only managed when the stack says: AWS picks a default otherwise, which must not read as drift.
    pub max_idle_connections_percent: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyTargetSpec {
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RolePolicySpec {
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_secs: u64,
    pub role: String,
    pub environment: BTreeMap<String, Ref>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub code_sha256: Ref,
    /// `None`: draws from the account's unreserved pool.
    pub reserved_concurrency: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancerSpec {
    pub internal: bool,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroupSpec {
    pub vpc: String,
    pub port: u16,
    pub health_check_path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskDefinitionSpec {
    pub image: String,
    pub cpu: u32,
    pub memory_mb: u32,
    pub port: u16,
    pub environment: BTreeMap<String, Ref>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub task_role: String,
}

/// The load-generator task definition (`loadtest --runner ecs`): statsctl's own image, no port, a default
/// command that `loadtest` overrides per task, and its output in CloudWatch Logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadgenTaskSpec {
    pub image: String,
    pub cpu: u32,
    pub memory_mb: u32,
    /// The container's arguments to statsctl (the image's entrypoint).
    pub command: Vec<String>,
    pub task_role: String,
    /// The CloudWatch Logs group the container writes to (created by the `awslogs` driver on first use).
    pub log_group: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EcsServiceSpec {
    pub cluster: String,
    /// The task definition revision (`family:7`): known once the wanted revision is registered.
    pub task_definition: Ref,
    pub desired_count: u32,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub target_group: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: String,
    pub comparison: Comparison,
    pub threshold: f64,
    pub period_secs: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub actions: Vec<String>,
    pub description: String,
}

/// The only DB engine statsctl manages (Aurora PostgreSQL behind RDS Proxy).
pub const DB_ENGINE: &str = "aurora-postgresql";

/// A resource as the stack wants it, one variant per [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Vpc(VpcSpec),
    Subnet(SubnetSpec),
    SecurityGroup(SecurityGroupSpec),
    Ingress(IngressSpec),
    /// The credentials secret: created with a generated password, nothing else managed.
    Secret,
    /// The ledger bucket: created versioned, nothing compared.
    Ledger,
    Role(RoleSpec),
    DbSubnetGroup(DbSubnetGroupSpec),
    DbCluster(DbClusterSpec),
    DbInstance(DbInstanceSpec),
    Proxy(ProxySpec),
    ProxyTargetGroup(ProxyTargetGroupSpec),
    ProxyTarget(ProxyTargetSpec),
    RolePolicy(RolePolicySpec),
    Function(FunctionSpec),
    Alias(AliasSpec),
    EcsCluster,
    LoadBalancer(LoadBalancerSpec),
    TargetGroup(TargetGroupSpec),
    Listener(ListenerSpec),
    TaskDefinition(TaskDefinitionSpec),
    EcsService(EcsServiceSpec),
    Alarm(AlarmSpec),
    /// A task definition too (same kind, same engine path), for the load generator rather than the service.
    LoadgenTask(LoadgenTaskSpec),
}

/// Builds an attribute map from `(name, value)` pairs.
fn attrs<const N: usize>(pairs: [(&str, String); N]) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn rendered(map: &BTreeMap<String, Ref>) -> String {
    let plain: BTreeMap<String, String> =
        map.iter().map(|(k, v)| (k.clone(), v.render())).collect();
    canonical_map(&plain)
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Vpc(_) => Kind::Vpc,
            Spec::Subnet(_) => Kind::Subnet,
            Spec::SecurityGroup(_) => Kind::SecurityGroup,
            Spec::Ingress(_) => Kind::Ingress,
            Spec::Secret => Kind::Secret,
            Spec::Ledger => Kind::Ledger,
            Spec::Role(_) => Kind::Role,
            Spec::DbSubnetGroup(_) => Kind::DbSubnetGroup,
            Spec::DbCluster(_) => Kind::DbCluster,
            Spec::DbInstance(_) => Kind::DbInstance,
            Spec::Proxy(_) => Kind::Proxy,
            Spec::ProxyTargetGroup(_) => Kind::ProxyTargetGroup,
            Spec::ProxyTarget(_) => Kind::ProxyTarget,
            Spec::RolePolicy(_) => Kind::RolePolicy,
            Spec::Function(_) => Kind::Function,
            Spec::Alias(_) => Kind::Alias,
            Spec::EcsCluster => Kind::EcsCluster,
            Spec::LoadBalancer(_) => Kind::LoadBalancer,
            Spec::TargetGroup(_) => Kind::TargetGroup,
            Spec::Listener(_) => Kind::Listener,
            Spec::TaskDefinition(_) => Kind::TaskDefinition,
            Spec::EcsService(_) => Kind::EcsService,
            Spec::Alarm(_) => Kind::Alarm,
            Spec::LoadgenTask(_) => Kind::TaskDefinition,
        }
    }

    /// Attributes that cannot change in place: a difference there cannot be applied by an update.
    pub fn immutable(&self) -> &'static [&'static str] {
        match self {
            Spec::Vpc(_) => &["cidr"],
            Spec::Subnet(_) => &["cidr", "availability_zone"],
            Spec::SecurityGroup(_) => &["vpc"],
            Spec::Role(_) => &["trust"],
            Spec::DbCluster(_) => &["engine", "database_name", "master_username", "subnet_group"],
            Spec::DbInstance(_) => &["cluster"],
            Spec::Proxy(_) => &["engine_family", "subnets"],
            Spec::LoadBalancer(_) => &["scheme"],
            Spec::TargetGroup(_) => &["vpc", "port", "protocol", "target_type"],
            Spec::Listener(_) => &["port"],
            Spec::EcsService(_) => &["cluster", "target_group"],
            _ => &[],
        }
    }

    /// The canonical attribute view: what plan compares with observed state and shows. Lists sorted and
    /// comma-joined, maps as sorted JSON, numbers in decimal, values not yet known as [`KNOWN_AFTER_APPLY`].
    pub fn attrs(&self) -> Attrs {
        match self {
            Spec::Vpc(s) => attrs([("cidr", s.cidr.clone())]),
            Spec::Subnet(s) => attrs([
                ("cidr", s.cidr.clone()),
                ("availability_zone", s.availability_zone.clone()),
            ]),
            Spec::SecurityGroup(s) => attrs([("vpc", s.vpc.clone())]),
            Spec::Ingress(s) => attrs([(
                "rules",
                join_sorted(s.rules.iter().map(IngressRule::render)),
            )]),
            Spec::Secret | Spec::Ledger | Spec::EcsCluster => Attrs::new(),
            Spec::Role(s) => attrs([("trust", s.trust.clone()), ("policy", s.policy.render())]),
            Spec::DbSubnetGroup(s) => attrs([("subnets", join_sorted(s.subnets.iter().cloned()))]),
            Spec::DbCluster(s) => {
                let mut a = attrs([
                    ("engine", DB_ENGINE.to_string()),
                    ("engine_version", s.engine_version.clone()),
                    ("database_name", s.database_name.clone()),
                    ("master_username", s.master_username.clone()),
                    ("subnet_group", s.subnet_group.clone()),
                    (
                        "security_groups",
                        join_sorted(s.security_groups.iter().cloned()),
                    ),
                ]);
                if let Some((min, max)) = s.serverless_acu {
                    a.insert("serverless_acu".into(), format!("{min}-{max}"));
                }
                a
            }
            Spec::DbInstance(s) => attrs([
                ("cluster", s.cluster.clone()),
                ("instance_class", s.instance_class.clone()),
                ("publicly_accessible", s.publicly_accessible.to_string()),
            ]),
            Spec::Proxy(s) => attrs([
                ("engine_family", "POSTGRESQL".to_string()),
                ("role", s.role.clone()),
                ("secret", s.secret.render()),
                (
                    "iam_auth",
                    if s.iam_auth { "REQUIRED" } else { "DISABLED" }.to_string(),
                ),
                ("require_tls", s.require_tls.to_string()),
                (
                    "idle_client_timeout",
                    s.idle_client_timeout_secs.to_string(),
                ),
                ("subnets", join_sorted(s.subnets.iter().cloned())),
                (
                    "security_groups",
                    join_sorted(s.security_groups.iter().cloned()),
                ),
            ]),
            Spec::ProxyTargetGroup(s) => {
                let mut a = attrs([
                    (
                        "max_connections_percent",
                        s.max_connections_percent.to_string(),
                    ),
                    (
                        "connection_borrow_timeout",
                        s.connection_borrow_timeout_secs.to_string(),
                    ),
                ]);
                if let Some(idle) = s.max_idle_connections_percent {
                    a.insert("max_idle_connections_percent".into(), idle.to_string());
                }
                a
            }
            Spec::ProxyTarget(s) => attrs([("cluster", s.cluster.clone())]),
            Spec::RolePolicy(s) => attrs([("policy", s.policy.render())]),
            Spec::Function(s) => attrs([
                ("runtime", s.runtime.clone()),
                ("handler", s.handler.clone()),
                ("memory_mb", s.memory_mb.to_string()),
                ("timeout", s.timeout_secs.to_string()),
                ("role", s.role.clone()),
                ("environment", rendered(&s.environment)),
                ("subnets", join_sorted(s.subnets.iter().cloned())),
                (
                    "security_groups",
                    join_sorted(s.security_groups.iter().cloned()),
                ),
                ("code_sha256", s.code_sha256.render()),
                (
                    "reserved_concurrency",
                    s.reserved_concurrency
                        .map_or_else(|| "unreserved".to_string(), |c| c.to_string()),
                ),
            ]),
            Spec::Alias(s) => {
                let mut a = attrs([("version", s.version.render())]);
                // Only while traffic shifts: an alias without weights reads exactly as it always has.
                if let Some((version, weight)) = s.additional() {
                    let weights = BTreeMap::from([(
                        version.to_string(),
                        crate::canonical::format_number(weight.get()),
                    )]);
                    a.insert("additional_version_weights".into(), canonical_map(&weights));
                }
                a
            }
            Spec::LoadBalancer(s) => attrs([
                (
                    "scheme",
                    if s.internal {
                        "internal"
                    } else {
                        "internet-facing"
                    }
                    .to_string(),
                ),
                ("subnets", join_sorted(s.subnets.iter().cloned())),
                (
                    "security_groups",
                    join_sorted(s.security_groups.iter().cloned()),
                ),
            ]),
            Spec::TargetGroup(s) => attrs([
                ("vpc", s.vpc.clone()),
                ("port", s.port.to_string()),
                ("protocol", "HTTP".to_string()),
                ("target_type", "ip".to_string()),
                ("health_check_path", s.health_check_path.clone()),
            ]),
            Spec::Listener(s) => {
                let mut a = attrs([
                    ("port", s.port.to_string()),
                    (
                        "target_group",
                        join_sorted(s.forwards.iter().map(|(tg, _)| tg.clone())),
                    ),
                ]);
                // One target group takes all traffic whatever its weight: weights only show when they split it.
                if s.forwards.len() > 1 {
                    let weights: BTreeMap<String, String> = s
                        .forwards
                        .iter()
                        .map(|(tg, w)| (tg.clone(), w.get().to_string()))
                        .collect();
                    a.insert("target_group_weights".into(), canonical_map(&weights));
                }
                a
            }
            Spec::TaskDefinition(s) => {
                let secrets: BTreeMap<String, String> = s
                    .secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render()))
                    .collect();
                attrs([
                    ("image", s.image.clone()),
                    ("cpu", s.cpu.to_string()),
                    ("memory_mb", s.memory_mb.to_string()),
                    ("port", s.port.to_string()),
                    ("environment", rendered(&s.environment)),
                    ("secrets", canonical_map(&secrets)),
                    ("task_role", s.task_role.clone()),
                ])
            }
            Spec::LoadgenTask(s) => attrs([
                ("image", s.image.clone()),
                ("cpu", s.cpu.to_string()),
                ("memory_mb", s.memory_mb.to_string()),
                // In order: it is an argument list.
                ("command", json!(s.command).to_string()),
                ("task_role", s.task_role.clone()),
                ("log_group", s.log_group.clone()),
            ]),
            Spec::EcsService(s) => attrs([
                ("cluster", s.cluster.clone()),
                ("task_definition", s.task_definition.render()),
                ("desired_count", s.desired_count.to_string()),
                ("subnets", join_sorted(s.subnets.iter().cloned())),
                (
                    "security_groups",
                    join_sorted(s.security_groups.iter().cloned()),
                ),
                ("target_group", s.target_group.clone()),
            ]),
            Spec::Alarm(s) => attrs([
                ("metric", format!("{}/{}", s.namespace, s.metric)),
                ("dimensions", canonical_map(&s.dimensions)),
                ("statistic", s.statistic.clone()),
                (
                    "comparison",
                    crate::canonical::comparison_name(s.comparison).to_string(),
                ),
                ("threshold", crate::canonical::format_number(s.threshold)),
                ("period", s.period_secs.to_string()),
                ("evaluation_periods", s.evaluation_periods.to_string()),
                ("datapoints_to_alarm", s.datapoints_to_alarm.to_string()),
                ("actions", join_sorted(s.actions.iter().cloned())),
                ("description", s.description.clone()),
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(spec: &Spec) -> Vec<(String, String)> {
        spec.attrs().into_iter().collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn alias_view_with_and_without_weights() {
        let cases = [
            (
                "unweighted, current: exactly today's single attribute",
                AliasSpec::new(AliasVersion::Current),
                pairs(&[("version", ALIAS_CURRENT)]),
            ),
            (
                "unweighted, to publish",
                AliasSpec::new(AliasVersion::ToPublish),
                pairs(&[("version", KNOWN_AFTER_APPLY)]),
            ),
            (
                "a tenth to version 6 while 7 takes the rest",
                AliasSpec::weighted(AliasVersion::Number("7".into()), "6", 0.1).unwrap(),
                pairs(&[
                    ("additional_version_weights", r#"{"6":"0.1"}"#),
                    ("version", "7"),
                ]),
            ),
            (
                "a canary of the version about to be published",
                AliasSpec::weighted(AliasVersion::ToPublish, "12", 0.5).unwrap(),
                pairs(&[
                    ("additional_version_weights", r#"{"12":"0.5"}"#),
                    ("version", KNOWN_AFTER_APPLY),
                ]),
            ),
            (
                "the whole share (1.0) is still a valid weight",
                AliasSpec::weighted(AliasVersion::Number("3".into()), "4", 1.0).unwrap(),
                pairs(&[
                    ("additional_version_weights", r#"{"4":"1"}"#),
                    ("version", "3"),
                ]),
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(view(&Spec::Alias(spec)), want, "{name}");
        }
    }

    #[test]
    fn listener_view_with_one_and_two_target_groups() {
        let cases = [
            (
                "one target group: exactly today's attributes",
                ListenerSpec::forward(80, "live-stats-prod-svc"),
                pairs(&[("port", "80"), ("target_group", "live-stats-prod-svc")]),
            ),
            (
                "one target group given a weight: the weight moves nothing",
                ListenerSpec::weighted(80, &[("live-stats-prod-svc", 7)]).unwrap(),
                pairs(&[("port", "80"), ("target_group", "live-stats-prod-svc")]),
            ),
            (
                "blue 90 / green 10, listed in any order",
                ListenerSpec::weighted(443, &[("svc-green", 10), ("svc-blue", 90)]).unwrap(),
                pairs(&[
                    ("port", "443"),
                    ("target_group", "svc-blue,svc-green"),
                    (
                        "target_group_weights",
                        r#"{"svc-blue":"90","svc-green":"10"}"#,
                    ),
                ]),
            ),
            (
                "a drained group keeps weight 0",
                ListenerSpec::weighted(80, &[("svc-blue", 0), ("svc-green", 999)]).unwrap(),
                pairs(&[
                    ("port", "80"),
                    ("target_group", "svc-blue,svc-green"),
                    (
                        "target_group_weights",
                        r#"{"svc-blue":"0","svc-green":"999"}"#,
                    ),
                ]),
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(view(&Spec::Listener(spec)), want, "{name}");
        }
    }

    #[test]
    fn weights_outside_what_aws_accepts_are_errors_with_a_hint() {
        let alias = |version: AliasVersion, additional: &str, w: f64| {
            AliasSpec::weighted(version, additional, w).unwrap_err()
        };
        let n = |v: &str| AliasVersion::Number(v.into());
        let cases = [
            ("negative", alias(n("2"), "1", -0.1), "outside 0.0..=1.0"),
            ("above one", alias(n("2"), "1", 1.5), "outside 0.0..=1.0"),
            (
                "a percentage",
                alias(n("2"), "1", 10.0),
                "outside 0.0..=1.0",
            ),
            ("NaN", alias(n("2"), "1", f64::NAN), "outside 0.0..=1.0"),
            (
                "infinite",
                alias(n("2"), "1", f64::INFINITY),
                "outside 0.0..=1.0",
            ),
            (
                "second version is the main one",
                alias(n("2"), "2", 0.5),
                "both the main and the additional",
            ),
            (
                "$LATEST",
                alias(n("2"), "$LATEST", 0.5),
                "not a published version number",
            ),
            (
                "empty version",
                alias(n("2"), "", 0.5),
                "not a published version number",
            ),
            (
                "listener weight above 999",
                ListenerSpec::weighted(80, &[("a", 1000), ("b", 1)]).unwrap_err(),
                "above 999",
            ),
            (
                "every weight 0",
                ListenerSpec::weighted(80, &[("a", 0), ("b", 0)]).unwrap_err(),
                "has weight 0",
            ),
            (
                "no target group",
                ListenerSpec::weighted(80, &[]).unwrap_err(),
                "forwards to no target group",
            ),
            (
                "a target group twice",
                ListenerSpec::weighted(80, &[("a", 1), ("a", 2)]).unwrap_err(),
                "appears twice",
            ),
        ];
        for (name, err, says) in cases {
            assert!(err.what.contains(says), "{name}: {err}");
            assert!(!err.hint.is_empty(), "{name}: no hint");
            assert!(err.to_string().contains("\nhint: "), "{name}: {err}");
        }
        assert_eq!(ForwardWeight::new(999).map(ForwardWeight::get), Ok(999));
        assert_eq!(AliasWeight::new(0.0).map(AliasWeight::get), Ok(0.0));
    }

    #[test]
    fn refs_render_as_the_plan_shows_them() {
        for (r, want) in [
            (Ref::Known("arn:x".into()), "arn:x"),
            (Ref::AfterApply, KNOWN_AFTER_APPLY),
            (
                Ref::MissingSecret("live/x".into()),
                "(secret `live/x` does not exist)",
            ),
            (Ref::or_after_apply(None), KNOWN_AFTER_APPLY),
            (Ref::or_after_apply(Some("e")), "e"),
        ] {
            assert_eq!(r.render(), want);
        }
        let secret = |key: Option<&str>| SecretSource {
            arn: Ref::Known("arn:s".into()),
            key: key.map(str::to_string),
        };
        assert_eq!(secret(Some("password")).render(), "arn:s:password::");
        assert_eq!(secret(None).render(), "arn:s");
        let rule = |from| IngressRule { port: 80, from }.render();
        assert_eq!(rule(Source::Group("g".into())), "tcp:80:sg:g");
        assert_eq!(
            rule(Source::Cidr(Ref::AfterApply)),
            "tcp:80:cidr:(known after apply)"
        );
    }
}
