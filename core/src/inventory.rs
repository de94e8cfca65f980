//! The data seam between AWS and the decisions: plain structs describing resources as the stack wants them
//! (`Desired`, a typed `spec::Spec`) and as AWS has them (`Observed`). Both are compared through attributes
//! in one canonical string form (sorted lists, names rather than ids) so comparing them is plain equality and
//! AWS defaults never show up as diffs: only the attributes statsctl manages are recorded at all.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::canonical::{
    canonical_map, join_sorted, sorted_unique, split_list, Attrs, KNOWN_AFTER_APPLY,
};
pub use crate::kind::{Key, Kind};
use crate::spec::Spec;

/// A resource as the stack wants it: its typed spec, and the canonical attribute view derived from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub key: Key,
    #[serde(skip)]
    pub spec: Spec,
    /// `spec.attrs()`, filled once by [`Desired::from_spec`]: what plan diffs and shows. Adapter inputs are
    /// built from `spec`, never parsed back from this view.
    pub attrs: Attrs,
    /// Attributes that cannot change in place: a difference there cannot be applied by an update.
    #[serde(skip)]
    pub immutable: &'static [&'static str],
}

impl Desired {
    /// The only constructor: the key's kind, the attribute view and the immutable attributes all come from
    /// `spec`, so they cannot disagree with it.
    pub fn from_spec(name: impl Into<String>, spec: Spec) -> Desired {
        Desired {
            key: Key::new(spec.kind(), name),
            attrs: spec.attrs(),
            immutable: spec.immutable(),
            spec,
        }
    }
    /// An attribute of the canonical view; `""` when not set.
    pub fn get(&self, k: &str) -> &str {
        self.attrs.get(k).map(String::as_str).unwrap_or("")
    }
}

/// Who a live resource belongs to, from its `statsctl:stack` / `statsctl:env` tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub stack: String,
    pub env: String,
}

/// A resource as AWS has it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ObservedResource {
    /// The physical id or ARN.
    pub id: String,
    pub attrs: Attrs,
    /// Values other resources need: endpoints, ARNs, versions (not compared).
    pub outputs: BTreeMap<String, String>,
    /// `None`: not tagged by statsctl.
    pub owner: Option<Owner>,
    /// The state AWS reports (`available`, `ACTIVE`, `OK`…), for `status`.
    pub state: String,
}

impl ObservedResource {
    pub fn output(&self, k: &str) -> Option<&str> {
        self.outputs.get(k).map(String::as_str)
    }
}

/// Everything observed of one stack in one environment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub account_id: String,
    pub region: String,
    pub resources: BTreeMap<Key, ObservedResource>,
    /// Resources statsctl reads but never manages (an existing VPC and subnets named by id).
    pub referenced: BTreeMap<Key, ObservedResource>,
}

impl Observed {
    pub fn get(&self, kind: Kind, name: &str) -> Option<&ObservedResource> {
        let key = Key::new(kind, name);
        self.resources
            .get(&key)
            .or_else(|| self.referenced.get(&key))
    }
    pub fn id_of(&self, kind: Kind, name: &str) -> Option<&str> {
        self.get(kind, name).map(|r| r.id.as_str())
    }
    pub fn output(&self, kind: Kind, name: &str, output: &str) -> Option<&str> {
        self.get(kind, name).and_then(|r| r.output(output))
    }
    /// The name statsctl knows a physical id (or ARN) of `kind` by; unknown ids stay as they are, so a
    /// foreign subnet or group shows up in a diff by its id.
    pub fn name_of(&self, kind: Kind, id: &str) -> String {
        self.resources
            .iter()
            .chain(self.referenced.iter())
            .find(|(k, r)| k.kind == kind && (r.id == id || r.output("arn") == Some(id)))
            .map(|(k, _)| k.name.clone())
            .unwrap_or_else(|| id.to_string())
    }
    /// Canonical list of names for a list of ids.
    pub fn names_of<'a>(&self, kind: Kind, ids: impl IntoIterator<Item = &'a str>) -> String {
        join_sorted(ids.into_iter().map(|id| self.name_of(kind, id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_lists_round_trip() {
        for (items, joined, split) in [
            (vec![], "", vec![]),
            (vec!["b", "a", "b"], "a,b", vec!["a", "b"]),
            (vec!["sg-1"], "sg-1", vec!["sg-1"]),
        ] {
            assert_eq!(join_sorted(items.iter().copied()), joined);
            assert_eq!(split_list(joined).collect::<Vec<_>>(), split);
        }
        // Stray separators from hand-written values add no empty items.
        assert_eq!(split_list(",a,,b,").collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn alias_key_round_trips() {
        let key = Key::alias("live-stats-prod-stats-api", "live");
        assert_eq!(
            key.to_string(),
            "lambda_alias.live-stats-prod-stats-api:live"
        );
        assert_eq!(
            Key::split_alias_name(&key.name),
            Some(("live-stats-prod-stats-api", "live"))
        );
        assert_eq!(Key::split_alias_name("no-alias"), None);
    }

    #[test]
    fn desired_views_come_from_the_spec() {
        let d = Desired::from_spec(
            "v",
            Spec::Vpc(crate::spec::VpcSpec {
                cidr: "10.0.0.0/16".into(),
            }),
        );
        assert_eq!(d.key, Key::new(Kind::Vpc, "v"));
        assert_eq!(d.get("cidr"), "10.0.0.0/16");
        assert_eq!(d.get("absent"), "");
        assert_eq!(d.immutable, &["cidr"]);
    }
}
