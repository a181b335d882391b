//! The local Secrets Manager: moto server, reached through the real AWS SDK client.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::RotationRulesType;
use shared::SecretString;
use shared::store::{
    AWSCURRENT, AWSPENDING, AwsStore, SecretMeta, SecretStore, SecretValue, StoreError,
};
use shared::testkit::Admin;

/// The endpoint the test command exported. Refuses anything off loopback, so a test can never
/// touch a real AWS account.
pub fn endpoint() -> String {
    let url = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run the tests with scripts/test, which starts moto server"
        )
    });
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL must point at the local moto server, got {url}"
    );
    url
}

pub async fn client() -> Client {
    endpoint();
    let sdk = shared::config::load().await;
    shared::config::secrets_manager(&sdk)
}

/// The ARN moto is told the rotation function has. No such Lambda exists in moto (see below).
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

/// What Secrets Manager's `RotateSecret` does before invoking the function: record the rotation
/// settings, enable rotation, and add a placeholder version with `AWSPENDING` and no value.
///
/// moto workaround: moto's own `rotate_secret` cannot run a Lambda without Docker, so it answers
/// "Resource not found for ARN" - but only after it created the placeholder and stored the
/// settings. We call it for those effects, accept exactly that error, and verify the placeholder.
/// Its in-progress rule is inverted (it refuses when `AWSPENDING` sits on the `AWSCURRENT`
/// version, which AWS treats as finished), so that label is cleared first; and it wipes the stored
/// rotation ARN when called without one, so the ARN is always passed. The caller applies AWS's real
/// in-progress rule before calling this.
pub async fn begin_rotation(
    client: &Client,
    secret_id: &str,
    token: &str,
    lambda_arn: &str,
) -> Result<(), String> {
    let store = AwsStore::new(client.clone());
    let labels = store
        .describe(secret_id)
        .await
        .map_err(|e| e.to_string())?
        .labels;
    if let Some(current) = labels.version_with(AWSCURRENT)
        && labels.has(current, AWSPENDING)
    {
        store
            .move_stage(secret_id, AWSPENDING, None, Some(current))
            .await
            .map_err(|e| e.to_string())?;
    }
    let result = client
        .rotate_secret()
        .secret_id(secret_id)
        .client_request_token(token)
        .rotation_lambda_arn(lambda_arn)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(1)
                .build(),
        )
        .rotate_immediately(true)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(e)
            if e.message()
                .is_some_and(|m| m.contains("Resource not found for ARN")) => {}
        Err(e) => {
            return Err(format!(
                "RotateSecret: {} {}",
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default()
            ));
        }
    }
    let labels = store
        .describe(secret_id)
        .await
        .map_err(|e| e.to_string())?
        .labels;
    if !labels.has(token, AWSPENDING) {
        return Err(format!(
            "moto did not create the AWSPENDING placeholder for {token}"
        ));
    }
    Ok(())
}

/// What Secrets Manager does to test the rotation configuration when rotation is turned on with
/// `RotateImmediately=false`: rotation enabled, and a new version holding a copy of `AWSCURRENT`
/// labelled `AWSPENDING`, on which it runs testSecret alone (then removes the label). Returns that
/// version's id. The probe's content is not documented; a copy of `AWSCURRENT` is the likely one.
pub async fn begin_probe(client: &Client, secret_id: &str, lambda_arn: &str) -> String {
    let placeholder = shared::random::version_id();
    begin_rotation(client, secret_id, &placeholder, lambda_arn)
        .await
        .unwrap();
    let store = AwsStore::new(client.clone());
    let current = store.get_value(secret_id, None, AWSCURRENT).await.unwrap();
    let probe = shared::random::version_id();
    store
        .put_pending(secret_id, &probe, &current.value, None)
        .await
        .unwrap();
    probe
}

/// `value` with the seal the function's createSecret gives a pending value of version `token`
/// (`shared::seal`, keyed by `AWSCURRENT`, the default `Target::seal_key`). Only a writer who can
/// also read `AWSCURRENT` could make it: tests use it to reach the checks behind the seal.
pub async fn sealed(store: &AwsStore, secret_id: &str, token: &str, value: &str) -> String {
    let arn = store.describe(secret_id).await.unwrap().arn;
    let current = store.get_value(&arn, None, AWSCURRENT).await.unwrap().value;
    let value = SecretString::from(value);
    let sealed = shared::seal::seal(&current, &arn, token, &value).unwrap();
    sealed.expose().to_owned()
}

pub async fn create_secret(client: &Client, name: &str, value: &str) -> String {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "CreateSecret {name}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })
        .arn()
        .unwrap()
        .to_owned()
}

/// The JSON value under a label.
pub async fn json_value(store: &AwsStore, secret_id: &str, stage: &str) -> serde_json::Value {
    let v = store.get_value(secret_id, None, stage).await.unwrap();
    serde_json::from_str(v.value.expose()).unwrap()
}

/// A name no other test run has used: moto keeps state between runs of one server.
pub fn unique(name: &str) -> String {
    format!("{name}-{}", &shared::random::version_id()[..8])
}

/// The testkit's scenarios against moto.
pub struct Moto {
    pub client: Client,
    store: AwsStore,
}

impl Moto {
    pub async fn connect() -> Self {
        let client = client().await;
        Self {
            store: AwsStore::new(client.clone()),
            client,
        }
    }
}

#[async_trait]
impl SecretStore for Moto {
    /// Runs the protocol in the tests' own process, on the tests' own secrets.
    fn may_rotate(&self, _arn: &str) -> Result<(), String> {
        Ok(())
    }
    async fn describe(&self, secret_id: &str) -> Result<SecretMeta, StoreError> {
        self.store.describe(secret_id).await
    }
    async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<SecretValue, StoreError> {
        self.store.get_value(secret_id, version_id, stage).await
    }
    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
        rotation_token: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store
            .put_pending(secret_id, token, value, rotation_token)
            .await
    }
    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<std::time::SystemTime>, StoreError> {
        self.store.version_created(secret_id, version_id).await
    }
    async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store.move_stage(secret_id, stage, to, from).await
    }
}

#[async_trait]
impl Admin for Moto {
    async fn create_secret(&self, name: &str, value: &str) -> String {
        create_secret(&self.client, &unique(name), value).await
    }
    async fn begin_rotation(&self, secret_id: &str, token: &str) -> Result<(), String> {
        begin_rotation(&self.client, secret_id, token, &function_arn("testkit")).await
    }
}
