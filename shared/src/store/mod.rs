//! The Secrets Manager calls the protocol needs, behind a trait: the AWS SDK in production, an
//! in-memory store with the same label semantics for fast unit and fault-injection tests.

mod aws;
mod labels;
mod memory;

pub use aws::AwsStore;
pub use labels::{Labels, move_label};
pub use memory::MemoryStore;

use crate::secret::SecretString;
use async_trait::async_trait;
use std::time::SystemTime;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// What `DescribeSecret` tells the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    pub arn: String,
    pub rotation_enabled: bool,
    /// The rotation function Secrets Manager invokes, once rotation was configured.
    pub rotation_lambda_arn: Option<String>,
    /// The rotation schedule (`ScheduleExpression`, or every N days), once configured.
    pub rotation_schedule: Option<String>,
    /// The rotation window (`RotationRules.Duration`, e.g. `3h`), when one is set.
    pub rotation_window: Option<String>,
    /// The KMS key of the secret's values (`KmsKeyId`); `None`: the AWS managed key.
    pub kms_key_id: Option<String>,
    pub labels: Labels,
    /// The secret's tags, e.g. the `aws:rds:primaryDBInstanceArn` of an RDS-managed secret.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct SecretValue {
    pub version_id: String,
    pub value: SecretString,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `ResourceNotFoundException`: no such secret, version, or a version with no value yet.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request contradicts the secret's state (e.g. a reused token with a different value).
    #[error("refused: {0}")]
    Refused(String),
    /// Anything else: network, throttling, permissions.
    #[error("{0}")]
    Service(String),
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn describe(&self, secret_id: &str) -> Result<SecretMeta, StoreError>;

    /// Whether this function rotates the secret `arn` (`crate::rotated`). Every step, refresh and
    /// pre-flight asks it of the ARN `describe` resolved, before anything else.
    fn may_rotate(&self, arn: &str) -> Result<(), String>;

    /// Reads one version. The stage is always given: moto answers a read by version id alone with
    /// a stale default version after labels move, and naming the stage also guards against races.
    async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<SecretValue, StoreError>;

    /// `PutSecretValue(ClientRequestToken=token, VersionStages=[AWSPENDING])`.
    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
        rotation_token: Option<&str>,
    ) -> Result<(), StoreError>;

    /// When a version was created (`ListSecretVersionIds`' `CreatedDate`), or `None` when the
    /// secret has no such version. Lets an issuer prove a credential was minted after a rotation
    /// began, so it is that rotation's own.
    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<SystemTime>, StoreError>;

    /// `UpdateSecretVersionStage`.
    async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), StoreError>;
}
