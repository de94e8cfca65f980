//! The network family: the VPC and subnets the stack creates, its security groups and who may reach whom.

use super::{Ctx, POSTGRES_PORT};
use crate::inventory::{Desired, Kind};
use crate::model::Via;
use crate::spec::{
    IngressRule, IngressSpec, Ref, SecurityGroupSpec, Source, Spec, SubnetSpec, VpcSpec,
};

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let mut out = Vec::new();
    if let Some(c) = &stack.network.create {
        out.push(Desired::from_spec(
            n.vpc(),
            Spec::Vpc(VpcSpec {
                cidr: c.cidr.clone(),
            }),
        ));
        for (i, s) in c.subnets.iter().enumerate() {
            out.push(Desired::from_spec(
                n.subnet(i),
                Spec::Subnet(SubnetSpec {
                    cidr: s.cidr.clone(),
                    availability_zone: s.availability_zone.clone(),
                }),
            ));
        }
    }
    let vpc_cidr = match (&stack.network.create, &stack.network.existing) {
        (Some(c), _) => Ref::Known(c.cidr.clone()),
        (None, Some(e)) => Ref::or_after_apply(cx.observed.output(Kind::Vpc, &e.vpc_id, "cidr")),
        (None, None) => Ref::AfterApply,
    };

    let from_sg = |port: u16, role: &str| IngressRule {
        port,
        from: Source::Group(n.sg(role)),
    };
    let mut db_ingress = vec![];
    if stack.proxy.is_some() {
        db_ingress.push(from_sg(POSTGRES_PORT, "proxy"));
    }
    if cx.functions_via(Via::Direct) {
        db_ingress.push(from_sg(POSTGRES_PORT, "fn"));
    }
    if cx.service_via(Via::Direct) {
        db_ingress.push(from_sg(POSTGRES_PORT, "svc"));
    }
    // Groups first, then their rules: rules reference other groups, which must all exist by then.
    let mut group = |role: &str, rules: Vec<IngressRule>| {
        out.push(Desired::from_spec(
            n.sg(role),
            Spec::SecurityGroup(SecurityGroupSpec {
                vpc: cx.vpc.clone(),
            }),
        ));
        out.push(Desired::from_spec(
            n.sg(role),
            Spec::Ingress(IngressSpec { rules }),
        ));
    };
    group("db", db_ingress);
    if stack.proxy.is_some() {
        let mut ingress = vec![];
        if cx.functions_via(Via::Proxy) {
            ingress.push(from_sg(POSTGRES_PORT, "fn"));
        }
        if cx.service_via(Via::Proxy) {
            ingress.push(from_sg(POSTGRES_PORT, "svc"));
        }
        group("proxy", ingress);
    }
    if !stack.functions.is_empty() {
        group("fn", vec![]);
    }
    if let Some(svc) = &stack.service {
        group("svc", vec![from_sg(svc.port, "lb")]);
        let lb_from = if svc.load_balancer.internal {
            vpc_cidr
        } else {
            Ref::Known("0.0.0.0/0".into())
        };
        group(
            "lb",
            vec![IngressRule {
                port: svc.load_balancer.listener_port,
                from: Source::Cidr(lb_from),
            }],
        );
    }
    out
}
