//! Errors. Every message names the secret, the step, the version and the field or condition at
//! fault, and none carries a secret value: values only ever live in `SecretString`.

use crate::event::Step;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stage gate refused the step.
    #[error("{0}")]
    Gate(String),
    #[error("Secrets Manager {0}")]
    Store(#[from] StoreError),
    /// A stored value is unusable; names the label and the field.
    #[error("the {stage} value is invalid: {problem}")]
    Value {
        stage: &'static str,
        problem: String,
    },
    /// The target service refused or failed.
    #[error("{0}")]
    Target(String),
    /// The pending credential is provably dead (expired, revoked, deleted; never a network
    /// error): no retry can make it work, so the protocol abandons the pending version.
    #[error("{0}")]
    Dead(String),
    /// The step's time budget ran out (`retry::within_budget`); names what was slow.
    #[error("{0}")]
    OutOfTime(String),
    /// The step would retire the previous credential before its minimum age
    /// (`Versions::may_retire_previous`); says when the rotation can run.
    #[error("{0}")]
    TooSoon(String),
}

impl Error {
    pub fn target(message: impl Into<String>) -> Self {
        Error::Target(message.into())
    }

    pub fn dead(message: impl Into<String>) -> Self {
        Error::Dead(message.into())
    }

    pub fn value(stage: &'static str, problem: impl Into<String>) -> Self {
        Error::Value {
            stage,
            problem: problem.into(),
        }
    }

    /// A short name for metrics and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Gate(_) => "gate",
            Error::Store(_) => "store",
            Error::Value { .. } => "value",
            Error::Target(_) => "target",
            Error::Dead(_) => "dead-pending",
            Error::OutOfTime(_) => "out-of-time",
            Error::TooSoon(_) => "too-soon",
        }
    }

    /// Lambda's `errorType` for a step this error ended: what Secrets Manager's failure message,
    /// the console and an alarm see, so they can tell a bad value from an unreachable service.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Gate(_) => "StageGateRefused",
            Error::Store(_) => "SecretsManagerFailed",
            Error::Value { .. } => "InvalidSecretValue",
            Error::Target(_) => "TargetServiceFailed",
            Error::Dead(_) => "PendingCredentialDead",
            Error::OutOfTime(_) => "StepOutOfTime",
            Error::TooSoon(_) => "PreviousCredentialTooYoung",
        }
    }
}

/// An error with the context of the step it ended.
#[derive(Debug, thiserror::Error)]
#[error("{step} failed for secret {secret} (version {version}): {error}")]
pub struct StepError {
    pub secret: String,
    pub step: Step,
    pub version: String,
    #[source]
    pub error: Error,
}

/// The one conversion to Lambda's error: the kind as `errorType`, the message as it reads.
impl From<StepError> for lambda_runtime::Diagnostic {
    fn from(e: StepError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error.error_type().into(),
            error_message: e.to_string(),
        }
    }
}
