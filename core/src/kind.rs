//! Resource identity: the kinds of resources statsctl manages, in creation order, and the key (kind and name) each
//! is known by. A leaf: desired state, observed state and the typed specs all name resources this way.

use std::fmt;

use serde::Serialize;

/// Kinds of resources, in the order they are created (destroy runs it backwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Vpc,
    Subnet,
    SecurityGroup,
    Ingress,
    Secret,
    Ledger,
    Role,
    DbSubnetGroup,
    DbCluster,
    DbInstance,
    Proxy,
    ProxyTargetGroup,
    ProxyTarget,
    RolePolicy,
    Function,
    Alias,
    EcsCluster,
    LoadBalancer,
    TargetGroup,
    Listener,
    TaskDefinition,
    EcsService,
    Alarm,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::SecurityGroup => "security_group",
            Kind::Ingress => "security_group_ingress",
            Kind::Role => "iam_role",
            Kind::Secret => "secret",
            Kind::Ledger => "ledger_bucket",
            Kind::DbSubnetGroup => "db_subnet_group",
            Kind::DbCluster => "db_cluster",
            Kind::DbInstance => "db_instance",
            Kind::Proxy => "db_proxy",
            Kind::ProxyTargetGroup => "db_proxy_target_group",
            Kind::ProxyTarget => "db_proxy_target",
            Kind::RolePolicy => "iam_role_policy",
            Kind::Function => "lambda_function",
            Kind::Alias => "lambda_alias",
            Kind::EcsCluster => "ecs_cluster",
            Kind::LoadBalancer => "load_balancer",
            Kind::TargetGroup => "target_group",
            Kind::Listener => "listener",
            Kind::TaskDefinition => "task_definition",
            Kind::EcsService => "ecs_service",
            Kind::Alarm => "alarm",
        }
    }

    /// Resources whose deletion loses data: destroyed only with `--delete-data`.
    pub fn holds_data(self) -> bool {
        matches!(
            self,
            Kind::DbCluster | Kind::DbInstance | Kind::Secret | Kind::Ledger
        )
    }
}

/// Serialized as its label (`lambda_function`), the same word the human plan shows.
impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// One resource's identity: its kind and the name statsctl knows it by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Key {
    pub kind: Kind,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, name: impl Into<String>) -> Key {
        Key {
            kind,
            name: name.into(),
        }
    }
    /// The name statsctl knows a Lambda alias by: `<function>:<alias>`.
    pub fn alias_name(function: &str, alias: &str) -> String {
        format!("{function}:{alias}")
    }
    pub fn alias(function: &str, alias: &str) -> Key {
        Key::new(Kind::Alias, Key::alias_name(function, alias))
    }
    /// The function and alias in an alias's name (see [`Key::alias_name`]); `None` for any other name.
    pub fn split_alias_name(name: &str) -> Option<(&str, &str)> {
        name.rsplit_once(':')
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.label(), self.name)
    }
}
