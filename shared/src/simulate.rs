//! The pre-flight's permission checks on AWS: `iam:SimulatePrincipalPolicy` for the function's own
//! role, with the condition keys the infra's policies use (`AllowRotationLambdaArn`,
//! `kms:ViaService`). The simulation evaluates the role's policies, its permissions boundary and
//! the organization's service control policies; it does not see resource policies (the secret's,
//! a KMS key policy), resource control policies or VPC endpoint policies.

use crate::preflight::WriteAccess;
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};
use tokio::sync::OnceCell;

pub struct IamSimulation {
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    /// The role's ARN and how it was found; the same for the life of the process.
    role: OnceCell<(String, Option<String>)>,
}

impl IamSimulation {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            iam: aws_sdk_iam::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            role: OnceCell::new(),
        }
    }

    /// The ARN of the principal to simulate, and a note when its path had to be assumed.
    async fn principal_arn(&self) -> Result<&(String, Option<String>), String> {
        self.role
            .get_or_try_init(|| async {
                let caller = self.sts.get_caller_identity().send().await.map_err(|e| {
                    format!(
                        "sts:GetCallerIdentity: {}",
                        aws_sdk_sts::error::DisplayErrorContext(e)
                    )
                })?;
                let caller = caller.arn().unwrap_or_default();
                match principal(caller) {
                    None => Err(format!("cannot tell the role of {caller}")),
                    Some(Principal::Arn(arn)) => Ok((arn, None)),
                    // The session's ARN drops the role's path; GetRole gives the real ARN.
                    Some(Principal::Role { name, default_arn }) => {
                        match self.iam.get_role().role_name(&name).send().await {
                            Ok(out) => {
                                Ok((out.role().map_or(default_arn, |r| r.arn().to_owned()), None))
                            }
                            Err(e) => Ok((
                                default_arn,
                                Some(format!(
                                    "iam:GetRole {name} failed, so its path was taken as /: {}",
                                    aws_sdk_iam::error::DisplayErrorContext(e)
                                )),
                            )),
                        }
                    }
                }
            })
            .await
    }
}

/// Who a caller ARN is, for the simulation.
#[derive(Debug, PartialEq, Eq)]
pub enum Principal {
    /// A role session (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`), as a Lambda function
    /// runs: the role's name, and its ARN if its path is `/`.
    Role { name: String, default_arn: String },
    /// An IAM user or role: the ARN itself.
    Arn(String),
}

pub fn principal(caller: &str) -> Option<Principal> {
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    let [_, partition, service, _, account, resource] = parts[..] else {
        return None;
    };
    let path: Vec<&str> = resource.split('/').collect();
    match (service, path.as_slice()) {
        ("sts", ["assumed-role", role, _session]) => Some(Principal::Role {
            name: (*role).to_owned(),
            default_arn: format!("arn:{partition}:iam::{account}:role/{role}"),
        }),
        ("iam", _) => Some(Principal::Arn(caller.to_owned())),
        _ => None,
    }
}

/// The decision in words: which kind of policy denied, when the simulation says.
fn why(r: &aws_sdk_iam::types::EvaluationResult) -> String {
    let decision = r.eval_decision().as_str().to_owned();
    if r.organizations_decision_detail()
        .is_some_and(|d| !d.allowed_by_organizations())
    {
        format!("{decision} by a service control policy")
    } else if r
        .permissions_boundary_decision_detail()
        .is_some_and(|d| !d.allowed_by_permissions_boundary())
    {
        format!("{decision} by the permissions boundary")
    } else {
        decision
    }
}

#[async_trait::async_trait]
impl WriteAccess for IamSimulation {
    async fn simulate(
        &self,
        actions: &[&str],
        resource: &str,
        context: &[(&str, &str)],
    ) -> Result<Vec<(String, bool, String)>, String> {
        let (role, note) = self.principal_arn().await?;
        let mut request = self
            .iam
            .simulate_principal_policy()
            .policy_source_arn(role)
            .resource_arns(resource);
        for action in actions {
            request = request.action_names(*action);
        }
        for (key, value) in context {
            let entry = ContextEntry::builder()
                .context_key_name(*key)
                .context_key_type(ContextKeyTypeEnum::String)
                .context_key_values(*value)
                .build();
            request = request.context_entries(entry);
        }
        let out = request.send().await.map_err(|e| {
            let mut why = format!(
                "iam:SimulatePrincipalPolicy for {role} failed (the role may not simulate its own policy): {}",
                aws_sdk_iam::error::DisplayErrorContext(e)
            );
            if let Some(note) = note {
                why.push_str(&format!("; {note}"));
            }
            why
        })?;
        Ok(out
            .evaluation_results()
            .iter()
            .map(|r| {
                (
                    r.eval_action_name().to_owned(),
                    *r.eval_decision() == PolicyEvaluationDecisionType::Allowed,
                    why(r),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{Principal, principal};

    #[test]
    fn the_principal_of_a_lambda_session_is_its_role() {
        assert_eq!(
            principal("arn:aws:sts::123456789012:assumed-role/rot-db/rot-db-fn"),
            Some(Principal::Role {
                name: "rot-db".into(),
                default_arn: "arn:aws:iam::123456789012:role/rot-db".into()
            })
        );
        assert_eq!(
            principal("arn:aws-cn:iam::123456789012:user/ops/rotator"),
            Some(Principal::Arn(
                "arn:aws-cn:iam::123456789012:user/ops/rotator".into()
            ))
        );
        assert_eq!(principal("not an arn"), None);
    }
}
