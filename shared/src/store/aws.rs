//! The Secrets Manager store over the AWS SDK.

use super::{AWSPENDING, Labels, SecretMeta, SecretStore, SecretValue, StoreError};
use crate::secret::SecretString;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

#[derive(Clone)]
pub struct AwsStore {
    client: Client,
    rotated: crate::rotated::Rotated,
}

impl AwsStore {
    /// A store that may rotate no secret: for reading and labelling only (tools, tests).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            rotated: Default::default(),
        }
    }

    /// The function's store: it rotates the secrets `rotated` names.
    pub fn rotating(client: Client, rotated: crate::rotated::Rotated) -> Self {
        Self { client, rotated }
    }
}

/// Maps an SDK error by its service code; the message is the service's, which never carries the
/// secret value.
fn store_error<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    let message = match err.message() {
        Some(m) => m.to_owned(),
        None => aws_sdk_secretsmanager::error::DisplayErrorContext(&err).to_string(),
    };
    let text = format!("{op}: {code} {message}").replace("  ", " ");
    match code.as_str() {
        "ResourceNotFoundException" => StoreError::NotFound(text),
        "InvalidRequestException" | "InvalidParameterException" | "ResourceExistsException" => {
            StoreError::Refused(text)
        }
        _ => StoreError::Service(text),
    }
}

#[async_trait]
impl SecretStore for AwsStore {
    fn may_rotate(&self, arn: &str) -> Result<(), String> {
        self.rotated.check(arn)
    }

    async fn describe(&self, secret_id: &str) -> Result<SecretMeta, StoreError> {
        let _waiting = crate::retry::waiting_for("Secrets Manager DescribeSecret");
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await;
        crate::fault::after_call("DescribeSecret");
        let out = out.map_err(|e| store_error("DescribeSecret", e))?;
        if out.deleted_date().is_some() {
            return Err(StoreError::Refused(
                "DescribeSecret: the secret is marked for deletion".into(),
            ));
        }
        let labels = out
            .version_ids_to_stages()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        // The ARN is what `may_rotate` checks: never the caller's id in its place.
        let arn = out
            .arn()
            .ok_or_else(|| StoreError::Service("DescribeSecret: the answer has no ARN".into()))?;
        Ok(SecretMeta {
            arn: arn.to_owned(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            rotation_lambda_arn: out.rotation_lambda_arn().map(str::to_owned),
            rotation_schedule: out.rotation_rules().and_then(|r| {
                r.schedule_expression().map(str::to_owned).or_else(|| {
                    r.automatically_after_days().map(|d| match d {
                        1 => "every day".to_owned(),
                        d => format!("every {d} days"),
                    })
                })
            }),
            rotation_window: out
                .rotation_rules()
                .and_then(|r| r.duration())
                .map(str::to_owned),
            kms_key_id: out.kms_key_id().map(str::to_owned),
            labels: Labels(labels),
            tags: out
                .tags()
                .iter()
                .map(|t| {
                    let text = |v: Option<&str>| v.unwrap_or_default().to_owned();
                    (text(t.key()), text(t.value()))
                })
                .collect(),
        })
    }

    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<std::time::SystemTime>, StoreError> {
        let _waiting = crate::retry::waiting_for("Secrets Manager ListSecretVersionIds");
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_secret_version_ids()
                .secret_id(secret_id)
                .set_next_token(next.take())
                .send()
                .await;
            crate::fault::after_call("ListSecretVersionIds");
            let out = out.map_err(|e| store_error("ListSecretVersionIds", e))?;
            if let Some(v) = out
                .versions()
                .iter()
                .find(|v| v.version_id() == Some(version_id))
            {
                return Ok(v
                    .created_date()
                    .and_then(|d| std::time::SystemTime::try_from(*d).ok()));
            }
            match out.next_token().filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t.to_owned()),
                None => return Ok(None),
            }
        }
    }

    async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<SecretValue, StoreError> {
        let _waiting = crate::retry::waiting_for("Secrets Manager GetSecretValue");
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version_id.map(str::to_owned))
            .version_stage(stage)
            .send()
            .await;
        crate::fault::after_call("GetSecretValue");
        let out = out.map_err(|e| store_error("GetSecretValue", e))?;
        let value = out.secret_string().ok_or_else(|| {
            StoreError::NotFound(format!(
                "GetSecretValue: version under {stage} has no SecretString"
            ))
        })?;
        Ok(SecretValue {
            version_id: out.version_id().unwrap_or_default().to_owned(),
            value: SecretString::from(value),
        })
    }

    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
        rotation_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let _waiting = crate::retry::waiting_for("Secrets Manager PutSecretValue");
        let out = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value.expose())
            .version_stages(AWSPENDING)
            .set_rotation_token(rotation_token.map(str::to_owned))
            .send()
            .await;
        crate::fault::after_call("PutSecretValue");
        out.map_err(|e| store_error("PutSecretValue", e))?;
        Ok(())
    }

    async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), StoreError> {
        let _waiting = crate::retry::waiting_for("Secrets Manager UpdateSecretVersionStage");
        let out = self
            .client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await;
        crate::fault::after_call("UpdateSecretVersionStage");
        out.map_err(|e| store_error("UpdateSecretVersionStage", e))?;
        Ok(())
    }
}
