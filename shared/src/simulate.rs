//! The pre-flight's write-permission check on AWS: `iam:SimulatePrincipalPolicy` for the
//! function's own role, with the condition key the infra's policies use
//! (`secretsmanager:resource/AllowRotationLambdaArn`).

use crate::preflight::WriteAccess;
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};

pub struct IamSimulation {
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
}

impl IamSimulation {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            iam: aws_sdk_iam::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
        }
    }
}

/// The IAM principal behind a caller ARN: a Lambda function runs as an assumed role session
/// (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, simulated as the role with the default
/// path); a user is itself.
pub fn principal(caller: &str) -> Option<String> {
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    let [_, partition, service, _, account, resource] = parts[..] else {
        return None;
    };
    let path: Vec<&str> = resource.split('/').collect();
    match (service, path.as_slice()) {
        ("sts", ["assumed-role", role, _session]) => {
            Some(format!("arn:{partition}:iam::{account}:role/{role}"))
        }
        ("iam", _) => Some(caller.to_owned()),
        _ => None,
    }
}

#[async_trait::async_trait]
impl WriteAccess for IamSimulation {
    async fn simulate(
        &self,
        actions: &[&str],
        resource: &str,
        function_arn: Option<&str>,
    ) -> Result<Vec<(String, bool, String)>, String> {
        let caller = self.sts.get_caller_identity().send().await.map_err(|e| {
            format!(
                "sts:GetCallerIdentity: {}",
                aws_sdk_sts::error::DisplayErrorContext(e)
            )
        })?;
        let caller = caller.arn().unwrap_or_default();
        let role = principal(caller).ok_or_else(|| format!("cannot tell the role of {caller}"))?;
        let mut request = self
            .iam
            .simulate_principal_policy()
            .policy_source_arn(&role)
            .resource_arns(resource);
        for action in actions {
            request = request.action_names(*action);
        }
        if let Some(f) = function_arn {
            let entry = ContextEntry::builder()
                .context_key_name("secretsmanager:resource/AllowRotationLambdaArn")
                .context_key_type(ContextKeyTypeEnum::String)
                .context_key_values(f)
                .build();
            request = request.context_entries(entry);
        }
        let out = request.send().await.map_err(|e| {
            format!(
                "iam:SimulatePrincipalPolicy for {role} failed (the role may not simulate its own policy): {}",
                aws_sdk_iam::error::DisplayErrorContext(e)
            )
        })?;
        Ok(out
            .evaluation_results()
            .iter()
            .map(|r| {
                let decision = r.eval_decision();
                (
                    r.eval_action_name().to_owned(),
                    *decision == PolicyEvaluationDecisionType::Allowed,
                    decision.as_str().to_owned(),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::principal;

    #[test]
    fn the_principal_of_a_lambda_session_is_its_role() {
        assert_eq!(
            principal("arn:aws:sts::123456789012:assumed-role/rot-db/rot-db-fn").as_deref(),
            Some("arn:aws:iam::123456789012:role/rot-db")
        );
        assert_eq!(
            principal("arn:aws:iam::123456789012:user/ops/rotator").as_deref(),
            Some("arn:aws:iam::123456789012:user/ops/rotator")
        );
        assert_eq!(principal("not an arn"), None);
    }
}
