//! The IAM family: each function's role, the proxy's role and the service task's role, with their base inline
//! policy. The database-connect grants come with the proxy (database.rs): they need its resource id.

use serde_json::json;

use super::{read_secrets, Ctx};
use crate::inventory::Desired;
use crate::spec::{Policy, RoleSpec, Spec};

fn role(name: String, trust: &str, statements: Vec<serde_json::Value>) -> Desired {
    Desired::from_spec(
        name,
        Spec::Role(RoleSpec {
            trust: trust.to_string(),
            policy: Policy { statements },
        }),
    )
}

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let mut out = Vec::new();
    let logs = json!({"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"});
    let eni = json!({"Effect": "Allow", "Action": ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:UnassignPrivateIpAddresses"], "Resource": "*"});
    for (name, f) in &stack.functions {
        let (_, secrets) = cx.split_environment(&f.environment);
        let mut statements = vec![logs.clone(), eni.clone()];
        statements.extend(read_secrets(secrets.into_iter().map(|(_, arn, _)| arn)));
        out.push(role(
            n.function_role(name),
            "lambda.amazonaws.com",
            statements,
        ));
    }
    if stack.proxy.is_some() {
        let secret = cx.credentials_arn().render();
        out.push(role(
            n.proxy_role(),
            "rds.amazonaws.com",
            vec![json!({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secret})],
        ));
    }
    if let Some(svc) = &stack.service {
        // The task's role is also its execution role: the one ECS uses to fetch `secrets` at task start.
        let (_, secrets) = cx.split_environment(&svc.environment);
        let mut statements = vec![logs];
        statements.extend(read_secrets(secrets.into_iter().map(|(_, arn, _)| arn)));
        out.push(role(n.task_role(), "ecs-tasks.amazonaws.com", statements));
    }
    out
}
