//! An in-memory Secrets Manager with the real service's label and version semantics, for unit,
//! property and fault-injection tests of the protocol. Lookups accept the name or the ARN.

use super::{
    AWSCURRENT, AWSPENDING, Labels, SecretMeta, SecretStore, SecretValue, StoreError, move_label,
};
use crate::secret::SecretString;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Default)]
pub struct MemoryStore {
    secrets: Mutex<HashMap<String, Secret>>,
}

struct Secret {
    arn: String,
    rotation_enabled: bool,
    deleted: bool,
    labels: Labels,
    /// `None` is a placeholder version: labelled, but no value yet.
    values: HashMap<String, Option<SecretString>>,
    created: HashMap<String, SystemTime>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// `CreateSecret`: the first version gets `AWSCURRENT`. Returns the ARN.
    pub fn create_secret(&self, name: &str, value: &str) -> String {
        let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf");
        let id = crate::random::version_id();
        let mut labels = Labels::default();
        labels.label_new_version(&id, &[AWSCURRENT]);
        let secret = Secret {
            arn: arn.clone(),
            rotation_enabled: false,
            deleted: false,
            labels,
            created: HashMap::from([(id.clone(), SystemTime::now())]),
            values: HashMap::from([(id, Some(SecretString::from(value)))]),
        };
        self.secrets.lock().unwrap().insert(name.to_owned(), secret);
        arn
    }

    /// What `RotateSecret` does before it calls the function: enable rotation, refuse while a
    /// rotation is in progress, add a placeholder version labelled `AWSPENDING`.
    pub fn begin_rotation(&self, secret_id: &str, token: &str) -> Result<(), StoreError> {
        self.with_secret(secret_id, |s| {
            if let Some(v) = s.labels.rotation_in_progress() {
                return Err(StoreError::Refused(format!(
                    "a previous rotation isn't complete (AWSPENDING is on version {v})"
                )));
            }
            s.rotation_enabled = true;
            s.values.entry(token.to_owned()).or_insert(None);
            s.created
                .entry(token.to_owned())
                .or_insert_with(SystemTime::now);
            s.labels.label_new_version(token, &[AWSPENDING]);
            Ok(())
        })
    }

    pub fn set_rotation_enabled(&self, secret_id: &str, enabled: bool) {
        self.with_secret(secret_id, |s| {
            s.rotation_enabled = enabled;
            Ok(())
        })
        .unwrap();
    }

    pub fn delete_secret(&self, secret_id: &str) {
        self.with_secret(secret_id, |s| {
            s.deleted = true;
            Ok(())
        })
        .unwrap();
    }

    pub fn labels(&self, secret_id: &str) -> Labels {
        self.with_secret(secret_id, |s| Ok(s.labels.clone()))
            .unwrap()
    }

    /// The plaintext under a label, for test assertions.
    pub fn value_of(&self, secret_id: &str, stage: &str) -> Option<String> {
        self.with_secret(secret_id, |s| {
            Ok(s.labels
                .version_with(stage)
                .and_then(|id| s.values.get(id).cloned().flatten())
                .map(|v| v.expose().to_owned()))
        })
        .unwrap()
    }

    fn with_secret<R>(
        &self,
        secret_id: &str,
        f: impl FnOnce(&mut Secret) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut secrets = self.secrets.lock().unwrap();
        let secret = secrets
            .iter_mut()
            .find(|(name, s)| *name == secret_id || s.arn == secret_id)
            .map(|(_, s)| s)
            .ok_or_else(|| {
                StoreError::NotFound("Secrets Manager can't find the specified secret".into())
            })?;
        if secret.deleted {
            return Err(StoreError::Refused(
                "the secret is marked for deletion".into(),
            ));
        }
        f(secret)
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    /// A fake for the protocol's own tests: every secret (the list's check is `rotated::tests`
    /// and the e2e tests against the real binaries).
    fn may_rotate(&self, _arn: &str) -> Result<(), String> {
        Ok(())
    }

    async fn describe(&self, secret_id: &str) -> Result<SecretMeta, StoreError> {
        self.with_secret(secret_id, |s| {
            Ok(SecretMeta {
                arn: s.arn.clone(),
                rotation_enabled: s.rotation_enabled,
                rotation_lambda_arn: None,
                rotation_schedule: None,
                rotation_window: None,
                kms_key_id: None,
                labels: s.labels.clone(),
                tags: Vec::new(),
            })
        })
    }

    async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<SecretValue, StoreError> {
        self.with_secret(secret_id, |s| {
            let id = match version_id {
                Some(id) if s.labels.has(id, stage) => id.to_owned(),
                Some(id) => {
                    return Err(StoreError::NotFound(format!(
                        "version {id} does not carry label {stage}"
                    )));
                }
                None => s
                    .labels
                    .version_with(stage)
                    .ok_or_else(|| StoreError::NotFound(format!("no version carries {stage}")))?
                    .to_owned(),
            };
            match s.values.get(&id) {
                Some(Some(value)) => Ok(SecretValue {
                    version_id: id,
                    value: value.clone(),
                }),
                _ => Err(StoreError::NotFound(format!(
                    "Secrets Manager can't find the specified secret value for VersionId: {id}"
                ))),
            }
        })
    }

    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
        _rotation_token: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with_secret(secret_id, |s| {
            match s.values.get(token) {
                Some(Some(existing)) if existing == value => return Ok(()),
                Some(Some(_)) => {
                    return Err(StoreError::Refused(format!(
                        "version {token} already exists with a different value"
                    )));
                }
                _ => {}
            }
            s.values.insert(token.to_owned(), Some(value.clone()));
            s.created
                .entry(token.to_owned())
                .or_insert_with(SystemTime::now);
            s.labels.label_new_version(token, &[AWSPENDING]);
            Ok(())
        })
    }

    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<SystemTime>, StoreError> {
        self.with_secret(secret_id, |s| Ok(s.created.get(version_id).copied()))
    }

    async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with_secret(secret_id, |s| move_label(&mut s.labels, stage, to, from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AWSPREVIOUS;

    #[tokio::test]
    async fn placeholder_answers_not_found_until_filled() {
        let store = MemoryStore::new();
        let arn = store.create_secret("s", "v1");
        store.begin_rotation("s", "t2").unwrap();
        let err = store
            .get_value(&arn, Some("t2"), AWSPENDING)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        store
            .put_pending("s", "t2", &"v2".into(), None)
            .await
            .unwrap();
        let got = store.get_value("s", Some("t2"), AWSPENDING).await.unwrap();
        assert_eq!(got.value.expose(), "v2");
    }

    #[tokio::test]
    async fn put_is_idempotent_for_the_same_value_only() {
        let store = MemoryStore::new();
        store.create_secret("s", "v1");
        store
            .put_pending("s", "t2", &"v2".into(), None)
            .await
            .unwrap();
        store
            .put_pending("s", "t2", &"v2".into(), None)
            .await
            .unwrap();
        let err = store
            .put_pending("s", "t2", &"other".into(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
        assert_eq!(store.value_of("s", AWSPENDING).as_deref(), Some("v2"));
    }

    #[tokio::test]
    async fn a_second_rotation_is_refused_while_one_is_pending() {
        let store = MemoryStore::new();
        store.create_secret("s", "v1");
        store.begin_rotation("s", "t2").unwrap();
        assert!(store.begin_rotation("s", "t3").is_err());
        let current = store
            .labels("s")
            .version_with(AWSCURRENT)
            .unwrap()
            .to_owned();
        store
            .move_stage("s", AWSCURRENT, Some("t2"), Some(&current))
            .await
            .unwrap();
        store.begin_rotation("s", "t3").unwrap();
        assert_eq!(
            store.labels("s").version_with(AWSPREVIOUS),
            Some(current.as_str())
        );
    }

    #[tokio::test]
    async fn a_deleted_secret_refuses_everything() {
        let store = MemoryStore::new();
        store.create_secret("s", "v1");
        store.delete_secret("s");
        assert!(matches!(
            store.describe("s").await,
            Err(StoreError::Refused(_))
        ));
    }
}
