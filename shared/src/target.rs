//! What a rotator plugs into the protocol: a `Target`, and the `Versions` it reads values from.

use crate::config::Retire;
use crate::error::Error;
use crate::secret::SecretString;
use crate::store::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, Labels, SecretMeta, SecretStore, StoreError,
};
use async_trait::async_trait;
use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use std::time::SystemTime;
use tokio::sync::OnceCell;

/// A secret's tag whose value is the version id of a leaked `AWSPREVIOUS` credential: the next
/// rotation retires it without waiting for `RETIRE_PREVIOUS_MIN_AGE_SECONDS`. Tagging takes
/// `secretsmanager:TagResource`, apart from `PutSecretValue`.
pub const RETIRE_NOW_TAG: &str = "rotation:retire-previous-now";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// We choose the new value and set it on the service (DB passwords, deploy keys).
    Updater,
    /// The service mints the credential (IAM keys, GitHub installation tokens). If storing a
    /// minted value fails, the protocol asks the target to `discard` it.
    Issuer,
}

#[async_trait]
pub trait Target: Send + Sync {
    fn kind(&self) -> TargetKind;

    /// createSecret: the new value, made from the current one. An issuer must first clean up any
    /// credential of an earlier attempt that crashed before storing it (one that no version of
    /// the secret refers to), so retries do not pile up orphans.
    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error>;

    /// Issuers: revoke a minted value that did not reach the store.
    async fn discard(&self, _v: &Versions<'_>, _minted: &SecretString) -> Result<(), Error> {
        Ok(())
    }

    /// setSecret: make the pending value valid on the service; a no-op when it already is.
    async fn set(&self, v: &Versions<'_>) -> Result<(), Error>;

    /// testSecret: prove the pending value works against the service.
    async fn test(&self, v: &Versions<'_>) -> Result<(), Error>;

    /// Retire the credential labelled `AWSPREVIOUS` (never the `AWSCURRENT` one): in finishSecret
    /// once `AWSCURRENT` moved (`Retire::Finish`), or first thing in the next rotation's
    /// createSecret (`Retire::NextRotation`). Runs again on every retry, so it must be idempotent.
    /// Where the service can tell, a target first asks whether the credential was used after it
    /// stopped being current and reports it with `Versions::report_previous_in_use`.
    async fn retire(&self, v: &Versions<'_>, when: Retire) -> Result<(), Error>;

    /// The pre-flight check: prove, without changing anything, what the four steps will need of
    /// the service (the current value parses, the service accepts the current credential, other
    /// secrets it needs are readable and usable, the permissions it needs). `v` has `AWSCURRENT`
    /// and `AWSPREVIOUS` only. Messages are the ones the failing step would give.
    async fn check(&self, v: &Versions<'_>, retire: Retire) -> Vec<crate::preflight::Check>;

    /// The AWS calls a rotation makes on the target's service, as (actions, resource ARN), for the
    /// pre-flight to simulate against the function's role (they are often what a service control
    /// policy denies). `Err`: why they cannot be named.
    async fn aws_writes(
        &self,
        _v: &Versions<'_>,
        _retire: Retire,
    ) -> Result<Vec<(Vec<&'static str>, String)>, String> {
        Ok(Vec::new())
    }

    /// The key of createSecret's seal (`seal.rs`): what a writer who may only call
    /// `PutSecretValue` cannot read. By default the `AWSCURRENT` value, which most steps read
    /// anyway (`Versions` caches it, so no extra call).
    async fn seal_key(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        Ok(v.current().await?.clone())
    }

    /// Whether a scheduled refresh (`refresh::run`) may serve the secret `arn`: its credentials
    /// expire on their own, so a pending value a failed rotation left may be dropped, not waited
    /// on. `Err` says why not.
    fn refreshable(&self, _arn: &str) -> Result<(), String> {
        Err("this function has no refresh; schedule RotateSecret instead".into())
    }
}

/// The secret's versions as one step sees them. Values are read on first use and cached, so a
/// step makes only the `GetSecretValue` calls its target needs.
pub struct Versions<'a> {
    store: &'a dyn SecretStore,
    meta: SecretMeta,
    token: &'a str,
    deadline: Option<SystemTime>,
    current: OnceCell<SecretString>,
    previous: OnceCell<Option<SecretString>>,
    pending: OnceCell<SecretString>,
    previous_retired_at: OnceCell<Option<SystemTime>>,
    /// Other secrets read in this step (a master or private-key secret), read once each.
    others: std::sync::Mutex<std::collections::HashMap<String, SecretString>>,
}

impl<'a> Versions<'a> {
    pub fn new(
        store: &'a dyn SecretStore,
        meta: SecretMeta,
        token: &'a str,
        deadline: Option<SystemTime>,
    ) -> Self {
        Self {
            store,
            meta,
            token,
            deadline,
            current: OnceCell::new(),
            previous: OnceCell::new(),
            pending: OnceCell::new(),
            previous_retired_at: OnceCell::new(),
            others: Default::default(),
        }
    }

    pub fn arn(&self) -> &str {
        &self.meta.arn
    }

    /// The version being rotated to (`ClientRequestToken`).
    pub fn token(&self) -> &'a str {
        self.token
    }

    pub fn labels(&self) -> &Labels {
        &self.meta.labels
    }

    /// This secret's tag `key`, from the gate's `DescribeSecret` (no extra call). Tagging takes
    /// `secretsmanager:TagResource`, a right apart from `PutSecretValue`: a pin the value's
    /// writer cannot move.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.meta
            .tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// When the Lambda invocation runs out of time, for targets that wait (e.g. key propagation).
    pub fn deadline(&self) -> Option<SystemTime> {
        self.deadline
    }

    /// Records a label move the protocol made, and forgets the values read so far: after
    /// `AWSCURRENT` moves, `current()` and `previous()` name other versions.
    pub(crate) fn move_label(
        &mut self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), Error> {
        crate::store::move_label(&mut self.meta.labels, stage, to, from)?;
        self.current = OnceCell::new();
        self.previous = OnceCell::new();
        self.pending = OnceCell::new();
        self.previous_retired_at = OnceCell::new();
        Ok(())
    }

    /// The value labelled `AWSCURRENT`.
    pub async fn current(&self) -> Result<&SecretString, Error> {
        self.current
            .get_or_try_init(|| async {
                let id = self.meta.labels.version_with(AWSCURRENT);
                self.read(id, AWSCURRENT).await
            })
            .await
    }

    /// The value labelled `AWSPREVIOUS`, if a version carries it.
    pub async fn previous(&self) -> Result<Option<&SecretString>, Error> {
        self.previous
            .get_or_try_init(|| async {
                match self.meta.labels.version_with(AWSPREVIOUS) {
                    None => Ok(None),
                    Some(id) => match self.read(Some(id), AWSPREVIOUS).await {
                        Ok(v) => Ok(Some(v)),
                        // A version that never got a value (an abandoned placeholder).
                        Err(Error::Store(StoreError::NotFound(_))) => Ok(None),
                        Err(e) => Err(e),
                    },
                }
            })
            .await
            .map(Option::as_ref)
    }

    /// The value of the version being rotated to.
    pub async fn pending(&self) -> Result<&SecretString, Error> {
        self.pending
            .get_or_try_init(|| async {
                let stage = if self.meta.labels.has(self.token, AWSPENDING) {
                    AWSPENDING
                } else {
                    AWSCURRENT
                };
                self.read(Some(self.token), stage).await
            })
            .await
    }

    /// Whether the pending version holds a copy of `AWSCURRENT`: no credential of a rotation, but
    /// what Secrets Manager labels `AWSPENDING` to test the rotation configuration when rotation is
    /// turned on with `RotateImmediately=false` (testSecret alone, then it removes the label). Its
    /// label is never the dead-pending rule's to take, and testSecret checks the current
    /// credential on it, changing nothing.
    pub async fn is_probe(&self) -> bool {
        matches!((self.pending().await, self.current().await), (Ok(p), Ok(c)) if p == c)
    }

    /// The `AWSCURRENT` value of another secret, e.g. a master or private-key secret.
    pub async fn other_secret(&self, secret_id: &str) -> Result<SecretString, Error> {
        if let Some(value) = self.others.lock().unwrap().get(secret_id) {
            return Ok(value.clone());
        }
        let value = self
            .store
            .get_value(secret_id, None, AWSCURRENT)
            .await?
            .value;
        self.others
            .lock()
            .unwrap()
            .insert(secret_id.to_owned(), value.clone());
        Ok(value)
    }

    /// When the credential now labelled `AWSPREVIOUS` stopped being current: approximately when
    /// the `AWSCURRENT` version was created (by the rotation that replaced it, seconds before its
    /// finishSecret). `None` when the store cannot tell.
    pub async fn previous_retired_at(&self) -> Result<Option<SystemTime>, Error> {
        self.previous_retired_at
            .get_or_try_init(|| async {
                match self.meta.labels.version_with(AWSCURRENT) {
                    Some(id) => Ok(self.store.version_created(&self.meta.arn, id).await?),
                    None => Ok(None),
                }
            })
            .await
            .copied()
    }

    /// Whether `what` may retire the credential labelled `AWSPREVIOUS` now. With
    /// `RETIRE_PREVIOUS=next-rotation` it keeps working for `RETIRE_PREVIOUS_MIN_AGE_SECONDS`
    /// after it stopped being current, even when rotations come back to back (a manual rotation
    /// after a scheduled one, a retry): `Error::TooSoon` says when this rotation can run. Not
    /// within that time: `finish` (retiring at once is what it asks for), no previous version, an
    /// age the store cannot tell, or the secret's tag `rotation:retire-previous-now` naming the
    /// previous version (a leaked credential).
    pub async fn may_retire_previous(&self, when: Retire, what: &str) -> Result<(), Error> {
        let Some(previous) = self.meta.labels.version_with(AWSPREVIOUS) else {
            return Ok(());
        };
        if when == Retire::Finish || self.tag(RETIRE_NOW_TAG) == Some(previous) {
            return Ok(());
        }
        let Some(since) = self.previous_retired_at().await? else {
            return Ok(());
        };
        let min_age = crate::config::retire_min_age().map_err(Error::Gate)?;
        let until = since + min_age;
        if SystemTime::now() >= until {
            return Ok(());
        }
        let at = |t: SystemTime| {
            DateTime::from(t)
                .fmt(DateTimeFormat::DateTime)
                .unwrap_or_default()
        };
        Err(Error::TooSoon(format!(
            "{what} would retire the previous credential (version {previous}), which stopped being \
             current at {} and keeps working for RETIRE_PREVIOUS_MIN_AGE_SECONDS={}: this rotation \
             can run from {}; if that credential leaked, tag the secret {RETIRE_NOW_TAG}={previous} \
             to retire it at once",
            at(since),
            min_age.as_secs(),
            at(until),
        )))
    }

    /// Reports a previous credential used after it stopped being current: one warning naming the
    /// secret and the credential id (never its value) and the EMF metric
    /// `PreviousCredentialInUse`, so teams find the consumers that never refresh. Information
    /// only: the rotation goes on.
    pub fn report_previous_in_use(&self, credential: &str, evidence: &str) {
        tracing::warn!(
            secret_id = %self.meta.arn,
            credential,
            evidence,
            "the previous credential was used after it stopped being current: a consumer has not refreshed"
        );
        crate::telemetry::previous_in_use(&self.meta.arn, credential);
    }

    /// When the version being rotated to was created: the moment this rotation began
    /// (`RotateSecret` creates the version before the first step).
    pub async fn rotation_began(&self) -> Result<Option<SystemTime>, Error> {
        Ok(self
            .store
            .version_created(&self.meta.arn, self.token)
            .await?)
    }

    /// When the version now labelled `AWSPREVIOUS` was created: the moment the rotation that
    /// made it began, if one did (`None`: no such version).
    pub async fn previous_began(&self) -> Result<Option<SystemTime>, Error> {
        match self.meta.labels.version_with(AWSPREVIOUS) {
            None => Ok(None),
            Some(id) => Ok(self.store.version_created(&self.meta.arn, id).await?),
        }
    }

    /// The tags of another secret (`DescribeSecret`), e.g. to find the database of an
    /// RDS-managed master secret.
    pub async fn other_secret_tags(&self, secret_id: &str) -> Result<Vec<(String, String)>, Error> {
        Ok(self.store.describe(secret_id).await?.tags)
    }

    async fn read(&self, id: Option<&str>, stage: &str) -> Result<SecretString, Error> {
        Ok(self.store.get_value(&self.meta.arn, id, stage).await?.value)
    }
}
