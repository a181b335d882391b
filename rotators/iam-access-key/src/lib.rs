//! Rotates the access key of one IAM user. An *issuer*: IAM mints the key.
//!
//! IAM allows two keys per user. When the user has two, createSecret makes room by deleting only a
//! key that is provably this rotation's or harmless: the orphan of this very rotation (created
//! after its `AWSPENDING` version, by an attempt that crashed between minting and storing), else
//! an inactive key (the `AWSPREVIOUS` one first). An active key it cannot prove is ours (one that
//! predates the rotation and no version holds, or the active `AWSPREVIOUS` key) is never deleted:
//! the step fails naming it. It never touches the `AWSCURRENT` key.
//!
//! The previous key is retired when `RETIRE_PREVIOUS` says: deleted first thing in the next
//! rotation's createSecret (`next-rotation`, default), or deactivated or deleted in finishSecret
//! (`finish`, with `OLD_KEY_ACTION`). Before retiring it, `GetAccessKeyLastUsed` tells whether a
//! consumer used it after it stopped being current.

pub mod secret;

use async_trait::async_trait;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::StatusType;
use secret::KeySecret;
use shared::config::Retire;
use shared::preflight::Check;
use shared::retry::{budget, retry_until};
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use shared::{Error, SecretString, Target, TargetKind, Versions};
use std::time::{Duration, Instant, SystemTime};

pub const ROTATOR: &str = "iam-access-key";

/// The variables this rotator reads besides `shared::config::ENV`.
pub const ENV: &[&str] = &["OLD_KEY_ACTION"];

/// What finishSecret does with the key that was current before, with `RETIRE_PREVIOUS=finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKeyAction {
    Deactivate,
    Delete,
}

impl OldKeyAction {
    /// `OLD_KEY_ACTION`: `deactivate` (default) or `delete`, read with `RETIRE_PREVIOUS=finish`.
    /// With `next-rotation` the previous key is deleted at the next rotation, so only `delete`
    /// (or nothing) agrees with it; `keep` is what `next-rotation` now does for a whole period.
    pub fn from_env(retire: Retire) -> Result<Self, String> {
        Self::parse(
            shared::config::non_empty_env("OLD_KEY_ACTION").as_deref(),
            retire,
        )
    }

    pub fn parse(value: Option<&str>, retire: Retire) -> Result<Self, String> {
        match (value.map(str::trim), retire) {
            (None | Some("deactivate"), Retire::Finish) => Ok(Self::Deactivate),
            (None | Some("delete"), Retire::NextRotation) | (Some("delete"), Retire::Finish) => {
                Ok(Self::Delete)
            }
            (Some("keep"), _) => Err(
                "OLD_KEY_ACTION=keep is replaced by RETIRE_PREVIOUS=next-rotation (the default): the previous key \
                 stays active until the next rotation deletes it; unset OLD_KEY_ACTION"
                    .into(),
            ),
            (Some("deactivate"), Retire::NextRotation) => Err(
                "OLD_KEY_ACTION=deactivate applies with RETIRE_PREVIOUS=finish only; with next-rotation (the default) \
                 the previous key stays active until the next rotation deletes it. Unset OLD_KEY_ACTION, or set \
                 RETIRE_PREVIOUS=finish"
                    .into(),
            ),
            (Some(other), _) => Err(format!(
                "OLD_KEY_ACTION must be deactivate or delete, got `{}`",
                other.escape_debug()
            )),
        }
    }
}

pub struct IamAccessKey {
    pub iam: aws_sdk_iam::Client,
    /// The base configuration for STS clients signed with the pending key.
    pub sdk: aws_config::SdkConfig,
    pub old_key_action: OldKeyAction,
}

struct Key {
    id: String,
    active: bool,
    created: Option<SystemTime>,
}

/// Whether a key was minted after the rotation began. IAM reports `CreateDate` in whole seconds,
/// so the comparison is too: a key from the same second counts as this rotation's.
fn minted_after(created: SystemTime, began: SystemTime) -> bool {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    secs(created) >= secs(began)
}

/// "3 days", "5 hours", "12 minutes", "40 seconds": how long ago `t` was.
fn age(t: Option<SystemTime>) -> String {
    let Some(s) = t.and_then(|t| SystemTime::now().duration_since(t).ok()) else {
        return "an unknown time".into();
    };
    let s = s.as_secs();
    match s {
        0..=119 => format!("{s} seconds"),
        120..=7199 => format!("{} minutes", s / 60),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// The service's code and message. An error body the SDK could not parse (moto's access-denied
/// answers) is read for its `<Code>`/`<Message>`; an error with no answer is described whole.
fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let (Some(code), message) = (e.code(), e.message()) {
        return format!("{code} {}", message.unwrap_or_default());
    }
    if let Some(raw) = e.raw_response()
        && let Some(body) = raw.body().bytes().map(String::from_utf8_lossy)
    {
        let tag = |name: &str| {
            let open = format!("<{name}>");
            let start = body.find(&open)? + open.len();
            Some(
                body[start..]
                    .split(&format!("</{name}>"))
                    .next()?
                    .to_owned(),
            )
        };
        if let Some(code) = tag("Code") {
            return format!(
                "{code} {} (HTTP {})",
                tag("Message").unwrap_or_default(),
                raw.status().as_u16()
            );
        }
    }
    aws_sdk_iam::error::DisplayErrorContext(e).to_string()
}

fn iam_error<E>(what: String, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    Error::target(format!("IAM {what}: {}", describe(&e)))
}

/// Marks the end of an external call: a crash point in fault-injection test builds.
fn called<T>(what: &str, result: T) -> T {
    shared::fault::after_call(what);
    result
}

fn is_missing<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("NoSuchEntity")
}

impl IamAccessKey {
    async fn keys(&self, user: &str) -> Result<Vec<Key>, Error> {
        let out = self.iam.list_access_keys().user_name(user).send().await;
        let out = called("ListAccessKeys", out)
            .map_err(|e| iam_error(format!("ListAccessKeys for user {user:?}"), e))?;
        Ok(out
            .access_key_metadata()
            .iter()
            .filter_map(|k| {
                Some(Key {
                    id: k.access_key_id()?.to_owned(),
                    active: k.status() == Some(&StatusType::Active),
                    created: k.create_date().and_then(|d| SystemTime::try_from(*d).ok()),
                })
            })
            .collect())
    }

    async fn delete_key(&self, user: &str, id: &str) -> Result<(), Error> {
        let result = self
            .iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(id)
            .send()
            .await;
        match called("DeleteAccessKey", result) {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(iam_error(
                format!("DeleteAccessKey {id} of user {user:?}"),
                e,
            )),
        }
    }

    /// The previous version's key id, when it is a key of the same user.
    async fn previous_key(&self, v: &Versions<'_>, user: &str) -> Result<Option<String>, Error> {
        Ok(match v.previous().await? {
            Some(p) => KeySecret::parse(p, AWSPREVIOUS)
                .ok()
                .filter(|p| p.user == user)
                .map(|p| p.key_id),
            None => None,
        })
    }

    /// Frees a key slot when the user has two keys, deleting only a key that is provably this
    /// rotation's orphan or inactive; never the current key, never an active key of unknown owner.
    async fn make_room(
        &self,
        v: &Versions<'_>,
        current: &KeySecret,
        previous: Option<&str>,
    ) -> Result<(), Error> {
        let keys = self.keys(&current.user).await?;
        let began = match keys.len() {
            0 | 1 => None,
            _ => v.rotation_began().await?,
        };
        match room_plan(&keys, current, previous, began)? {
            None => Ok(()),
            Some((key, why)) => {
                tracing::info!(key = %key, "deleting {why} to make room");
                self.delete_key(&current.user, &key).await
            }
        }
    }

    fn pending_with_user(
        &self,
        pending: KeySecret,
        current: &KeySecret,
    ) -> Result<KeySecret, Error> {
        if pending.user != current.user {
            return Err(Error::value(
                AWSPENDING,
                format!(
                    "field `UserName` is {:?} but AWSCURRENT's user is {:?}; the user of a secret cannot change",
                    pending.user, current.user
                ),
            ));
        }
        Ok(pending)
    }
}

/// Which key createSecret deletes to make room for a new one (`None`: there is room), and why;
/// or the refusal, naming the key. `began`: when this rotation's version was created.
fn room_plan(
    keys: &[Key],
    current: &KeySecret,
    previous: Option<&str>,
    began: Option<SystemTime>,
) -> Result<Option<(String, &'static str)>, Error> {
    if keys.len() < 2 {
        return Ok(None);
    }
    let user = &current.user;
    let others: Vec<&Key> = keys.iter().filter(|k| k.id != current.key_id).collect();
    let orphan = others.iter().find(|k| {
        Some(k.id.as_str()) != previous
            && matches!((k.created, began), (Some(c), Some(b)) if minted_after(c, b))
    });
    if let Some(orphan) = orphan {
        return Ok(Some((
            orphan.id.clone(),
            "the key an earlier attempt of this rotation minted but never stored",
        )));
    }
    // An inactive key serves no one; the previous one is ours, so it goes first.
    let inactive = others
        .iter()
        .filter(|k| !k.active)
        .min_by_key(|k| Some(k.id.as_str()) != previous);
    if let Some(old) = inactive {
        return Ok(Some((old.id.clone(), "an inactive key")));
    }
    let old = others.first().expect("two keys, one is not current");
    if Some(old.id.as_str()) == previous {
        return Err(Error::target(format!(
            "user {user:?} already has two access keys: {} (AWSCURRENT) and {} (AWSPREVIOUS), and {} is still active, so \
             making room would delete a key that may be in use; deactivate or delete it, or set RETIRE_PREVIOUS to \
             next-rotation (or finish with OLD_KEY_ACTION) so old keys are retired",
            current.key_id, old.id, old.id
        )));
    }
    Err(Error::target(format!(
        "user {user:?} already has two access keys: {} (AWSCURRENT) and {}, an active key created {} ago that no \
         version of this secret holds; it may belong to another system, so it is not deleted. If nothing uses it \
         (iam:GetAccessKeyLastUsed tells), deactivate or delete {}, then rotate again",
        current.key_id,
        old.id,
        age(old.created),
        old.id
    )))
}

#[async_trait]
impl Target for IamAccessKey {
    fn kind(&self) -> TargetKind {
        TargetKind::Issuer
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let current = KeySecret::parse(v.current().await?, AWSCURRENT)?;
        let previous = self.previous_key(v, &current.user).await?;
        self.make_room(v, &current, previous.as_deref()).await?;
        let out = self
            .iam
            .create_access_key()
            .user_name(&current.user)
            .send()
            .await;
        let out = called("CreateAccessKey", out)
            .map_err(|e| iam_error(format!("CreateAccessKey for user {:?}", current.user), e))?;
        let key = out
            .access_key()
            .ok_or_else(|| Error::target("IAM CreateAccessKey returned no key"))?;
        tracing::info!(key = %key.access_key_id(), "minted a new access key");
        Ok(current.with_key(key.access_key_id(), key.secret_access_key()))
    }

    async fn discard(&self, _v: &Versions<'_>, minted: &SecretString) -> Result<(), Error> {
        let minted = KeySecret::parse(minted, AWSPENDING)?;
        tracing::info!(key = %minted.key_id, "deleting the key that could not be stored");
        self.delete_key(&minted.user, &minted.key_id).await
    }

    /// Nothing to set on IAM: confirm the pending key is one of the user's keys. IAM is
    /// eventually consistent, so a key minted a moment ago may be missing from `ListAccessKeys`
    /// for a few seconds: look again until the invocation's deadline.
    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        let current = KeySecret::parse(v.current().await?, AWSCURRENT)?;
        let pending =
            self.pending_with_user(KeySecret::parse(v.pending().await?, AWSPENDING)?, &current)?;
        retry_until(budget(v.deadline()), || async {
            match self.keys(&pending.user).await {
                Ok(keys) if keys.iter().any(|k| k.id == pending.key_id) => Ok(()),
                Ok(_) => Err(format!(
                    "the AWSPENDING key {} is not a key of user {:?}",
                    pending.key_id, pending.user
                )),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .map_err(Error::target)
    }

    /// Signs `sts:GetCallerIdentity` with the pending key and checks it is the user's; new keys
    /// take seconds to propagate, so this retries with backoff until the invocation's deadline.
    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        let current = KeySecret::parse(v.current().await?, AWSCURRENT)?;
        let pending =
            self.pending_with_user(KeySecret::parse(v.pending().await?, AWSPENDING)?, &current)?;
        // setSecret waited until IAM listed the key, and key ids are never reused: a key IAM no
        // longer lists was deleted, and no retry can bring it back.
        if !self
            .keys(&pending.user)
            .await?
            .iter()
            .any(|k| k.id == pending.key_id)
        {
            return Err(Error::dead(format!(
                "the AWSPENDING key {} is no longer a key of user {:?}: it was deleted",
                pending.key_id, pending.user
            )));
        }
        self.signs_in(&pending, AWSPENDING, budget(v.deadline()))
            .await
    }

    /// The current value parses; the user exists and the current key is one of its active keys
    /// and signs in as the user; there is (or createSecret will make) room for a new key.
    async fn check(&self, v: &Versions<'_>, retire: Retire) -> Vec<Check> {
        let current = match shared::preflight::current_as(v, KeySecret::parse).await {
            Ok(c) => c,
            Err(failed) => return vec![failed],
        };
        let mut checks = vec![Check::ok(
            "AWSCURRENT value",
            format!("user {:?}, key {}", current.user, current.key_id),
        )];
        let keys = match self.keys(&current.user).await {
            Ok(keys) => keys,
            Err(e) => {
                checks.push(Check::failed("IAM user", e.to_string()));
                return checks;
            }
        };
        checks.push(match keys.iter().find(|k| k.id == current.key_id) {
            Some(k) if k.active => Check::ok(
                "current key",
                format!("{} is an active key of the user", k.id),
            ),
            Some(k) => Check::failed(
                "current key",
                format!("{} is a key of the user but inactive", k.id),
            ),
            None => Check::failed(
                "current key",
                format!("{} is not a key of user {:?}", current.key_id, current.user),
            ),
        });
        let until = Instant::now() + Duration::from_secs(10);
        checks.push(Check::of(
            "current credentials",
            "the AWSCURRENT key signs in as the user (sts:GetCallerIdentity)",
            self.signs_in(&current, AWSCURRENT, until).await,
        ));
        let previous = self.previous_key(v, &current.user).await.ok().flatten();
        let mut left: Vec<Key> = keys;
        if retire == Retire::NextRotation && previous.as_deref() != Some(current.key_id.as_str()) {
            // The next rotation deletes the previous key before it mints.
            left.retain(|k| Some(k.id.as_str()) != previous.as_deref());
        }
        checks.push(
            match room_plan(&left, &current, previous.as_deref(), None) {
                Ok(None) => Check::ok("key slot", "there is room for a new key"),
                Ok(Some((key, why))) => Check::ok(
                    "key slot",
                    format!("createSecret will delete {why}, {key}, to make room"),
                ),
                Err(e) => Check::failed("key slot", e.to_string()),
            },
        );
        checks
    }

    async fn retire(&self, v: &Versions<'_>, when: Retire) -> Result<(), Error> {
        let current = KeySecret::parse(v.current().await?, AWSCURRENT)?;
        let Some(old) = self.previous_key(v, &current.user).await? else {
            return Ok(());
        };
        if old == current.key_id {
            return Ok(());
        }
        let user = current.user.as_str();
        self.report_late_use(v, &old).await;
        let action = match when {
            Retire::NextRotation => OldKeyAction::Delete,
            Retire::Finish => self.old_key_action,
        };
        if action == OldKeyAction::Delete {
            return self.delete_key(user, &old).await;
        }
        let result = self
            .iam
            .update_access_key()
            .user_name(user)
            .access_key_id(&old)
            .status(StatusType::Inactive)
            .send()
            .await;
        match called("UpdateAccessKey", result) {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(iam_error(
                format!("UpdateAccessKey {old} of user {user:?} to Inactive"),
                e,
            )),
        }
    }
}

impl IamAccessKey {
    /// Signs `sts:GetCallerIdentity` with the key of `s` and checks it is the user's (from
    /// `iam:GetUser`); new keys take seconds to propagate, so this retries until `until`.
    async fn signs_in(&self, s: &KeySecret, stage: &str, until: Instant) -> Result<(), Error> {
        let user_arn = self.iam.get_user().user_name(&s.user).send().await;
        let user_arn = called("GetUser", user_arn)
            .map_err(|e| iam_error(format!("GetUser {:?}", s.user), e))?
            .user()
            .map(|u| u.arn().to_owned())
            .ok_or_else(|| Error::target("IAM GetUser returned no user"))?;
        let credentials = aws_sdk_sts::config::Credentials::new(
            &s.key_id,
            s.secret_key.expose(),
            None,
            None,
            "rotated-access-key",
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.sdk)
                .credentials_provider(credentials)
                .build(),
        );
        let arn = retry_until(until, || async {
            let out = called("GetCallerIdentity", sts.get_caller_identity().send().await)
                .map_err(|e| describe(&e))?;
            Ok(out.arn().unwrap_or_default().to_owned())
        })
        .await
        .map_err(|e| {
            Error::target(format!(
                "STS did not accept the {stage} key {}: {e}",
                s.key_id
            ))
        })?;
        if arn != user_arn {
            return Err(Error::target(format!(
                "the {stage} key {} signs in as {arn}, not as {user_arn}",
                s.key_id
            )));
        }
        Ok(())
    }

    /// Whether the previous key was used after it stopped being current (`GetAccessKeyLastUsed`):
    /// a consumer that never refreshed. Information only; a failure to tell is logged, not fatal.
    async fn report_late_use(&self, v: &Versions<'_>, key: &str) {
        let out = self
            .iam
            .get_access_key_last_used()
            .access_key_id(key)
            .send()
            .await;
        let last = match called("GetAccessKeyLastUsed", out) {
            Ok(out) => out.access_key_last_used().cloned(),
            Err(e) => {
                tracing::info!(key, error = %describe(&e), "cannot tell whether the previous key is still in use");
                return;
            }
        };
        let Some(last) = last else { return };
        let Some(used) = last
            .last_used_date()
            .and_then(|d| SystemTime::try_from(*d).ok())
        else {
            return;
        };
        if let Ok(Some(retired)) = v.previous_retired_at().await
            && used > retired
        {
            let evidence = format!(
                "IAM last saw it used {} ago by {} in {}",
                age(Some(used)),
                last.service_name(),
                last.region()
            );
            v.report_previous_in_use(key, &evidence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn old_key_action_agrees_with_retire_previous() {
        use OldKeyAction::*;
        assert_eq!(OldKeyAction::parse(None, Retire::Finish), Ok(Deactivate));
        assert_eq!(
            OldKeyAction::parse(Some("delete"), Retire::Finish),
            Ok(Delete)
        );
        assert_eq!(OldKeyAction::parse(None, Retire::NextRotation), Ok(Delete));
        assert_eq!(
            OldKeyAction::parse(Some("delete"), Retire::NextRotation),
            Ok(Delete)
        );
        let err = OldKeyAction::parse(Some("deactivate"), Retire::NextRotation).unwrap_err();
        assert!(err.contains("set RETIRE_PREVIOUS=finish"), "{err}");
        let err = OldKeyAction::parse(Some("keep"), Retire::Finish).unwrap_err();
        assert!(
            err.contains("replaced by RETIRE_PREVIOUS=next-rotation"),
            "{err}"
        );
        assert!(OldKeyAction::parse(Some("shred"), Retire::Finish).is_err());
    }

    #[test]
    fn a_key_from_the_same_second_as_the_rotation_is_its_own() {
        let began = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_400);
        let same_second = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(minted_after(same_second, began));
        assert!(!minted_after(same_second - Duration::from_secs(1), began));
        assert_eq!(
            age(Some(SystemTime::now() - Duration::from_secs(3 * 86_400))),
            "3 days"
        );
    }
}
