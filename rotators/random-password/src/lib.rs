//! A service-less updater: the secret is a JSON object whose `password` field applications read
//! (a shared API secret, an HMAC key). Rotation generates a new password under the password
//! policy and keeps every other field; consumers accept `AWSCURRENT` and `AWSPREVIOUS` while they
//! refresh. It is also the smallest complete example of a `Target`.

use async_trait::async_trait;
use shared::password::PasswordPolicy;
use shared::preflight::Check;
use shared::store::{AWSCURRENT, AWSPENDING};
use shared::{Error, SecretString, Target, TargetKind, Versions};

pub const FIELD: &str = "password";

pub struct RandomPassword {
    pub policy: PasswordPolicy,
}

#[async_trait]
impl Target for RandomPassword {
    fn kind(&self) -> TargetKind {
        TargetKind::Updater
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let mut fields = v
            .current()
            .await?
            .json_object()
            .map_err(|e| Error::value(AWSCURRENT, e))?;
        fields.insert(FIELD.into(), self.policy.generate().expose().into());
        Ok(SecretString::from_json(&fields))
    }

    /// Nothing to set: applications pick the value up from Secrets Manager.
    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        self.test(v).await
    }

    /// The pending value must be an object with a non-empty string `password`.
    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        let fields = v
            .pending()
            .await?
            .json_object()
            .map_err(|e| Error::value(AWSPENDING, e))?;
        match fields.get(FIELD) {
            Some(serde_json::Value::String(p)) if !p.is_empty() => Ok(()),
            Some(_) => Err(Error::value(
                AWSPENDING,
                format!("field `{FIELD}` must be a non-empty string"),
            )),
            None => Err(Error::value(
                AWSPENDING,
                format!("field `{FIELD}` is missing"),
            )),
        }
    }

    async fn retire(&self, _v: &Versions<'_>, _when: shared::config::Retire) -> Result<(), Error> {
        Ok(())
    }

    /// No service: the current value must be a JSON object (createSecret replaces `password`).
    async fn check(&self, v: &Versions<'_>, _retire: shared::config::Retire) -> Vec<Check> {
        let parsed = match v.current().await {
            Ok(c) => c.json_object().map_err(|e| Error::value(AWSCURRENT, e)),
            Err(e) => Err(e),
        };
        vec![Check::of(
            "AWSCURRENT value",
            format!("AWSCURRENT is a JSON object; createSecret writes a new `{FIELD}`"),
            parsed,
        )]
    }
}
