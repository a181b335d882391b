//! Rotates the access key of one IAM user. An *issuer*: IAM mints the key.
//!
//! IAM allows two keys per user. When the user has two, createSecret makes room by deleting only a
//! key that is provably this rotation's or harmless: the orphan of this very rotation (created
//! after its `AWSPENDING` version, by an attempt that crashed between minting and storing), else
//! the `AWSPREVIOUS` key once inactive, if the rotation that made that version minted it. A key it cannot prove is ours (one that predates the
//! rotation and no version holds, active or not, or the active `AWSPREVIOUS` key) is never
//! deleted: the step fails naming it. It never touches the `AWSCURRENT` key.
//!
//! Whose key is minted: the user named in `AWSCURRENT`, which anyone allowed `PutSecretValue` can
//! rewrite. So before it deletes or mints anything, createSecret proves the `AWSCURRENT` key is that
//! user's (signed `sts:GetCallerIdentity`); a secret with no working key yet is served only when
//! the secret's tag `USER_TAG`, which takes `secretsmanager:TagResource`, names the user.
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

/// The secret's tag that pins its IAM user: a value naming another user is refused, and a secret
/// whose key does not work yet (a new user's first key) is minted for only when the tag names
/// the user.
pub const USER_TAG: &str = "iam:user-name";

/// The longest a createSecret invocation can run (Lambda's maximum timeout): a key is this
/// rotation's orphan only when an attempt of its createSecret could have minted it, i.e. within
/// this window after the rotation's version was created.
const CREATE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long the ownership proof waits for the `AWSCURRENT` key (a key made seconds ago may not
/// sign in yet), within the step's budget.
const PROOF_WAIT: Duration = Duration::from_secs(10);

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
    /// The last credential proven to be its user's, for one version: createSecret's retire and
    /// create, and finishSecret's re-test and retire, then prove it once.
    pub proven: std::sync::Mutex<Option<Proven>>,
}

impl IamAccessKey {
    pub fn new(sdk: &aws_config::SdkConfig, old_key_action: OldKeyAction) -> Self {
        Self {
            iam: aws_sdk_iam::Client::new(sdk),
            sdk: sdk.clone(),
            old_key_action,
            proven: Default::default(),
        }
    }
}

/// The `AWSCURRENT` user agrees with the secret's tag `USER_TAG`, when it has one.
fn pinned(user: &str, pin: Option<&str>) -> Result<(), Error> {
    match pin {
        Some(pinned) if pinned != user => Err(Error::value(
            AWSCURRENT,
            format!(
                "field `UserName` is {user:?} but the secret's tag {USER_TAG} pins user {pinned:?}; nothing was minted"
            ),
        )),
        _ => Ok(()),
    }
}

/// A credential proven (or pinned) to be its user's, for the version `token`.
pub struct Proven {
    token: String,
    user: String,
    key_id: String,
    secret_key: SecretString,
    /// Whether the key signed in as the user; `false`: only the tag `USER_TAG` vouches for it.
    signed: bool,
}

/// What `sts:GetCallerIdentity` signed with the `AWSCURRENT` key answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// The key signs in as this ARN.
    Is(String),
    /// The key did not sign in (why, as the service said; never the key).
    Refused(String),
}

/// Whether createSecret may delete and mint keys of `user` (whose ARN is `user_arn`): only when
/// the `AWSCURRENT` key signs in as that user, or when it does not sign in at all and the
/// secret's tag pins that very user (the first key of a new user). `Ok` says why.
fn may_mint(
    user: &str,
    user_arn: &str,
    pin: Option<&str>,
    caller: &Caller,
) -> Result<&'static str, String> {
    match (caller, pin) {
        (Caller::Is(arn), _) if arn == user_arn => Ok("the AWSCURRENT key signs in as the user"),
        (Caller::Is(arn), _) => Err(format!(
            "the AWSCURRENT key signs in as {arn}, not as user {user:?} ({user_arn}): a key is minted only for \
             the user whose key the secret holds; nothing was minted"
        )),
        (Caller::Refused(_), Some(_)) => {
            Ok("the AWSCURRENT key does not sign in yet and the secret's tag pins the user")
        }
        (Caller::Refused(why), None) => Err(format!(
            "the AWSCURRENT key does not sign in as user {user:?} ({why}), and without the secret's tag \
             {USER_TAG} naming the user nothing proves the secret is that user's; nothing was minted. Store a \
             working key of the user, or tag the secret {USER_TAG}={user} (secretsmanager:TagResource)"
        )),
    }
}

struct Key {
    id: String,
    active: bool,
    created: Option<SystemTime>,
}

/// Whether a key could have been minted by this rotation's createSecret: created within
/// `CREATE_WINDOW` after the rotation began. IAM reports `CreateDate` in whole seconds, so the
/// comparison is too: a key from the rotation's first second counts as its own.
fn minted_in_window(created: SystemTime, began: SystemTime) -> bool {
    minted_after(created, began) && secs(created) <= secs(began) + CREATE_WINDOW.as_secs()
}

/// Whether a key was created at or after a version (in IAM's whole seconds). The key a version
/// holds is that rotation's when it is: a version written by `PutSecretValue` gets its value as
/// it is created, so it can only name a key that already existed; a rotation's version is created
/// empty when `RotateSecret` starts, and createSecret (or a retry, however late) mints after.
fn minted_after(created: SystemTime, version: SystemTime) -> bool {
    secs(created) >= secs(version)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
        let _waiting = shared::retry::waiting_for("IAM ListAccessKeys");
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
        let _waiting = shared::retry::waiting_for("IAM DeleteAccessKey");
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
        Ok(self.previous_value(v, user).await?.map(|p| p.key_id))
    }

    /// The previous version, when it names the same user.
    async fn previous_value(
        &self,
        v: &Versions<'_>,
        user: &str,
    ) -> Result<Option<KeySecret>, Error> {
        Ok(match v.previous().await? {
            Some(p) => KeySecret::parse(p, AWSPREVIOUS)
                .ok()
                .filter(|p| p.user == user),
            None => None,
        })
    }

    /// Frees a key slot when the user has two keys, deleting only a key that is provably this
    /// rotation's orphan or the inactive previous key; never the current key, never a key of
    /// unknown owner.
    async fn make_room(
        &self,
        v: &Versions<'_>,
        current: &KeySecret,
        previous: Option<&str>,
    ) -> Result<(), Error> {
        let keys = self.keys(&current.user).await?;
        let began = match keys.len() {
            0 | 1 => Began::default(),
            _ => Began {
                this: v.rotation_began().await?,
                previous: v.previous_began().await?,
            },
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

/// When the versions that may own a key were created (`CreatedDate`): this rotation's, and the
/// `AWSPREVIOUS` one's.
#[derive(Debug, Clone, Copy, Default)]
struct Began {
    this: Option<SystemTime>,
    previous: Option<SystemTime>,
}

/// Which key createSecret deletes to make room for a new one (`None`: there is room), and why;
/// or the refusal, naming the key. A key no version holds is this rotation's orphan only when
/// made within its createSecret window (a break-glass key made during a stalled rotation is
/// not). The inactive `AWSPREVIOUS` key goes only when created at or after its version
/// (`minted_after`): an inactive key cannot sign in, and a writer can name any key of the user
/// there.
fn room_plan(
    keys: &[Key],
    current: &KeySecret,
    previous: Option<&str>,
    began: Began,
) -> Result<Option<(String, &'static str)>, Error> {
    if keys.len() < 2 {
        return Ok(None);
    }
    let user = &current.user;
    let others: Vec<&Key> = keys.iter().filter(|k| k.id != current.key_id).collect();
    let orphan = others.iter().find(|k| {
        Some(k.id.as_str()) != previous
            && matches!((k.created, began.this), (Some(c), Some(b)) if minted_in_window(c, b))
    });
    if let Some(orphan) = orphan {
        return Ok(Some((
            orphan.id.clone(),
            "the key an earlier attempt of this rotation minted but never stored",
        )));
    }
    // The previous key, once inactive, serves no one; any other inactive key may be kept to be
    // switched back on.
    let old = others.first().expect("two keys, one is not current");
    if !old.active && Some(old.id.as_str()) == previous {
        if matches!((old.created, began.previous), (Some(c), Some(b)) if minted_after(c, b)) {
            return Ok(Some((old.id.clone(), "the inactive AWSPREVIOUS key")));
        }
        return Err(Error::target(format!(
            "user {user:?} already has two access keys: {} (AWSCURRENT) and {} (AWSPREVIOUS, inactive, created {} \
             ago), which no rotation of this secret minted (it predates its version, e.g. the first key put in by \
             hand), so nothing proves this secret held it and it is not deleted. If nothing needs it, delete {}, then \
             rotate again",
            current.key_id,
            old.id,
            age(old.created),
            old.id
        )));
    }
    if !old.active {
        return Err(Error::target(format!(
            "user {user:?} already has two access keys: {} (AWSCURRENT) and {}, an inactive key created {} ago that \
             no version of this secret holds; it may be kept to be switched back on, so it is not deleted. If nothing \
             needs it, delete {}, then rotate again",
            current.key_id,
            old.id,
            age(old.created),
            old.id
        )));
    }
    if Some(old.id.as_str()) == previous {
        return Err(Error::target(format!(
            "user {user:?} already has two access keys: {} (AWSCURRENT) and {} (AWSPREVIOUS), and {} is still active, so \
             making room would delete a key that may be in use; delete it, or set RETIRE_PREVIOUS to \
             next-rotation (or finish with OLD_KEY_ACTION) so old keys are retired",
            current.key_id, old.id, old.id
        )));
    }
    Err(Error::target(format!(
        "user {user:?} already has two access keys: {} (AWSCURRENT) and {}, an active key created {} ago that no \
         version of this secret holds; it may belong to another system, so it is not deleted. If nothing uses it \
         (iam:GetAccessKeyLastUsed tells, or deactivate it a while to find out), delete {}, then rotate again",
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
        self.prove_owner(v, &current).await?;
        let previous = self.previous_key(v, &current.user).await?;
        self.make_room(v, &current, previous.as_deref()).await?;
        let _waiting = shared::retry::waiting_for("IAM CreateAccessKey");
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
        // Secrets Manager's probe is unsealed, so its user is a writer's: the tag must agree.
        pinned(&current.user, v.tag(USER_TAG))?;
        let pending =
            self.pending_with_user(KeySecret::parse(v.pending().await?, AWSPENDING)?, &current)?;
        self.pending_listed(v, &pending, &current).await?;
        self.signs_in(&pending, AWSPENDING, budget(v.deadline()))
            .await?;
        // finishSecret retires right after this re-test, with this key as AWSCURRENT.
        self.remember(v.token(), &pending, true);
        Ok(())
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
        let pinned = v.tag(USER_TAG) == Some(current.user.as_str());
        checks.push(match keys.iter().find(|k| k.id == current.key_id) {
            Some(k) if k.active => Check::ok(
                "current key",
                format!("{} is an active key of the user", k.id),
            ),
            Some(k) => Check::failed(
                "current key",
                format!("{} is a key of the user but inactive", k.id),
            ),
            None if pinned => Check::ok(
                "current key",
                format!(
                    "{} is not a key of user {:?} yet; the tag {USER_TAG} pins the user, so createSecret mints its key",
                    current.key_id, current.user
                ),
            ),
            None => Check::failed(
                "current key",
                format!("{} is not a key of user {:?}", current.key_id, current.user),
            ),
        });
        checks.push(match self.whose_key(v, &current).await {
            Ok((why, _)) => Check::ok(
                "current credentials",
                format!("{why} (sts:GetCallerIdentity)"),
            ),
            Err(e) => Check::failed("current credentials", e.to_string()),
        });
        let previous = self.previous_key(v, &current.user).await.ok().flatten();
        // No rotation yet: only the previous version's date matters.
        let began = Began {
            this: None,
            previous: v.previous_began().await.ok().flatten(),
        };
        let mut left: Vec<Key> = keys;
        if retire == Retire::NextRotation && previous.as_deref() != Some(current.key_id.as_str()) {
            // The next rotation retires an active previous key before it mints; an inactive one
            // is left to make room.
            left.retain(|k| !k.active || Some(k.id.as_str()) != previous.as_deref());
        }
        checks.push(
            match room_plan(&left, &current, previous.as_deref(), began) {
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

    /// createSecret mints a key and may delete one to make room (calls a service control policy
    /// often denies); with `finish` and `deactivate`, finishSecret deactivates the previous key.
    async fn aws_writes(
        &self,
        v: &Versions<'_>,
        retire: Retire,
    ) -> Result<Vec<(Vec<&'static str>, String)>, String> {
        let user = KeySecret::parse(v.current().await.map_err(|e| e.to_string())?, AWSCURRENT)
            .map_err(|e| e.to_string())?
            .user;
        let arn = self.user_arn(&user).await.map_err(|e| e.to_string())?;
        let mut actions = vec!["iam:CreateAccessKey", "iam:DeleteAccessKey"];
        if retire == Retire::Finish && self.old_key_action == OldKeyAction::Deactivate {
            actions.push("iam:UpdateAccessKey");
        }
        Ok(vec![(actions, arn)])
    }

    /// The previous version names the key, and a writer can name there any key of the user (a
    /// break-glass key no version ever held): only an active key that the previous value signs in
    /// with, after a current key that signs in, is retired; otherwise it is left, and said why.
    async fn retire(&self, v: &Versions<'_>, when: Retire) -> Result<(), Error> {
        let current = KeySecret::parse(v.current().await?, AWSCURRENT)?;
        let Some(previous) = self.previous_value(v, &current.user).await? else {
            return Ok(());
        };
        let old = previous.key_id.clone();
        if old == current.key_id {
            return Ok(());
        }
        // The tag vouches for the user, not for which of its keys the versions name.
        if !self.prove_owner(v, &current).await? {
            tracing::warn!(key = %old, "the AWSCURRENT key does not sign in (only the tag pins the user), so the previous key is not retired");
            return Ok(());
        }
        // IAM allows two keys: a rotation that cannot delete this one cannot make its own.
        v.may_retire_previous(when, &format!("deleting the previous access key {old}"))
            .await?;
        let user = current.user.as_str();
        match self.keys(user).await?.iter().find(|k| k.id == old) {
            None => return Ok(()),
            // It serves no one; createSecret's make_room deletes it when it needs the slot.
            Some(k) if !k.active => return Ok(()),
            Some(_) => {}
        }
        let user_arn = self.user_arn(user).await?;
        match self.caller(&previous, Instant::now()).await {
            Caller::Is(arn) if arn == user_arn => {}
            Caller::Is(arn) => {
                tracing::warn!(key = %old, caller = %arn, "the AWSPREVIOUS value signs in as another user, so key {old} is not retired");
                return Ok(());
            }
            Caller::Refused(why) => {
                tracing::warn!(key = %old, reason = %why, "the AWSPREVIOUS value does not sign in with key {old}, so nothing proves a version held it: it is not retired");
                return Ok(());
            }
        }
        self.report_late_use(v, &old).await;
        let action = match when {
            Retire::NextRotation => OldKeyAction::Delete,
            Retire::Finish => self.old_key_action,
        };
        if action == OldKeyAction::Delete {
            return self.delete_key(user, &old).await;
        }
        let _waiting = shared::retry::waiting_for("IAM UpdateAccessKey");
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
    /// The user's ARN (`iam:GetUser`).
    async fn user_arn(&self, user: &str) -> Result<String, Error> {
        let _waiting = shared::retry::waiting_for("IAM GetUser");
        let out = self.iam.get_user().user_name(user).send().await;
        called("GetUser", out)
            .map_err(|e| iam_error(format!("GetUser {user:?}"), e))?
            .user()
            .map(|u| u.arn().to_owned())
            .ok_or_else(|| Error::target("IAM GetUser returned no user"))
    }

    /// Who the key of `s` signs in as (`sts:GetCallerIdentity` signed with it); a new key takes
    /// seconds to propagate, so a refusal is retried until `until`.
    async fn caller(&self, s: &KeySecret, until: Instant) -> Caller {
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
            let _waiting = shared::retry::waiting_for("STS GetCallerIdentity (with the new key)");
            let out = called("GetCallerIdentity", sts.get_caller_identity().send().await)
                .map_err(|e| describe(&e))?;
            Ok(out.arn().unwrap_or_default().to_owned())
        })
        .await;
        match arn {
            Ok(arn) => Caller::Is(arn),
            Err(why) => Caller::Refused(why),
        }
    }

    /// Checks the key of `s` signs in as its user, retrying until `until`.
    async fn signs_in(&self, s: &KeySecret, stage: &str, until: Instant) -> Result<(), Error> {
        let user_arn = self.user_arn(&s.user).await?;
        match self.caller(s, until).await {
            Caller::Is(arn) if arn == user_arn => Ok(()),
            Caller::Is(arn) => Err(Error::target(format!(
                "the {stage} key {} signs in as {arn}, not as {user_arn}",
                s.key_id
            ))),
            Caller::Refused(e) => Err(Error::target(format!(
                "STS did not accept the {stage} key {}: {e}",
                s.key_id
            ))),
        }
    }

    /// Whether createSecret may delete and mint keys of the `AWSCURRENT` user (`may_mint`), why,
    /// and whether the key signed in (not only the tag). With the tag pinning the user, a key that does not sign in changes nothing, so it
    /// is asked once; without it, a key made seconds ago gets `PROOF_WAIT` to propagate.
    async fn whose_key(
        &self,
        v: &Versions<'_>,
        current: &KeySecret,
    ) -> Result<(&'static str, bool), Error> {
        let pin = v.tag(USER_TAG);
        pinned(&current.user, pin)?;
        let user_arn = self.user_arn(&current.user).await?;
        let until = match pin {
            Some(_) => Instant::now(),
            None => budget(v.deadline()).min(Instant::now() + PROOF_WAIT),
        };
        let caller = self.caller(current, until).await;
        let why = may_mint(&current.user, &user_arn, pin, &caller).map_err(Error::target)?;
        Ok((why, matches!(caller, Caller::Is(_))))
    }

    /// Proves the `AWSCURRENT` user is the secret's before anything is deleted or minted
    /// (`whose_key`); remembered for this version, so one step proves once. `Ok(true)`: the key
    /// signed in as the user; `Ok(false)`: only the tag pins the user.
    async fn prove_owner(&self, v: &Versions<'_>, current: &KeySecret) -> Result<bool, Error> {
        if let Some(signed) = self.is_proven(v.token(), current) {
            return Ok(signed);
        }
        let (why, signed) = self.whose_key(v, current).await?;
        tracing::info!(user = %current.user, key = %current.key_id, "whose key: {why}");
        self.remember(v.token(), current, signed);
        Ok(signed)
    }

    /// Whether `s` is proven for `token`, and if so whether it signed in.
    fn is_proven(&self, token: &str, s: &KeySecret) -> Option<bool> {
        match &*self.proven.lock().unwrap() {
            Some(p)
                if p.token == token
                    && p.user == s.user
                    && p.key_id == s.key_id
                    && p.secret_key == s.secret_key =>
            {
                Some(p.signed)
            }
            _ => None,
        }
    }

    fn remember(&self, token: &str, s: &KeySecret, signed: bool) {
        *self.proven.lock().unwrap() = Some(Proven {
            token: token.to_owned(),
            user: s.user.clone(),
            key_id: s.key_id.clone(),
            secret_key: s.secret_key.clone(),
            signed,
        });
    }

    /// IAM still lists the pending key. IAM is eventually consistent, so one listing without it
    /// proves nothing: the key is dead only when every listing until the step's budget runs
    /// out (at least two) answers without it; setSecret saw it and key ids are never reused, so
    /// it was deleted. Its version holds it, so it is provably this secret's: it is deleted
    /// before the version is abandoned, in case it is only hidden, so no live key of unknown
    /// owner jams the next rotation.
    async fn pending_listed(
        &self,
        v: &Versions<'_>,
        pending: &KeySecret,
        current: &KeySecret,
    ) -> Result<(), Error> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let (misses, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
        let started = Instant::now();
        let listed = retry_until(budget(v.deadline()), || async {
            match self.keys(&pending.user).await {
                Ok(keys) if keys.iter().any(|k| k.id == pending.key_id) => Ok(()),
                Ok(_) => {
                    misses.fetch_add(1, Ordering::SeqCst);
                    Err("not listed".to_owned())
                }
                Err(e) => {
                    failed.store(true, Ordering::SeqCst);
                    Err(e.to_string())
                }
            }
        })
        .await;
        let Err(last) = listed else { return Ok(()) };
        let (misses, key, user) = (misses.into_inner(), &pending.key_id, &pending.user);
        if failed.into_inner() || misses < 2 {
            return Err(Error::target(format!(
                "cannot tell whether the AWSPENDING key {key} is still a key of user {user:?} ({misses} listings \
                 without it): {last}"
            )));
        }
        // The key of `AWSCURRENT` or `AWSPREVIOUS` (Secrets Manager's probe, or a value sealed by
        // a reader of `AWSCURRENT`) is not this rotation's to delete: it may be live, only hidden.
        let held = *key == current.key_id
            || self.previous_key(v, user).await?.as_deref() == Some(key.as_str());
        if held {
            return Err(Error::target(format!(
                "the AWSPENDING key {key} is not a key of user {user:?} ({misses} listings over {} s agree); it is \
                 also the key of AWSCURRENT or AWSPREVIOUS, which this rotation did not mint, so it is not deleted",
                started.elapsed().as_secs()
            )));
        }
        self.delete_key(user, key).await?;
        Err(Error::dead(format!(
            "the AWSPENDING key {key} is no longer a key of user {user:?}: it was deleted ({misses} listings over {} s \
             agree; deleted again in case IAM only hid it)",
            started.elapsed().as_secs()
        )))
    }

    /// Whether the previous key was used after it stopped being current (`GetAccessKeyLastUsed`):
    /// a consumer that never refreshed. Information only; a failure to tell is logged, not fatal.
    async fn report_late_use(&self, v: &Versions<'_>, key: &str) {
        let _waiting = shared::retry::waiting_for("IAM GetAccessKeyLastUsed");
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
        assert!(minted_in_window(same_second, began));
        assert!(!minted_in_window(
            same_second - Duration::from_secs(1),
            began
        ));
        // A key made during a stall, long after the rotation began, is not its orphan.
        assert!(minted_in_window(same_second + CREATE_WINDOW, began));
        assert!(!minted_in_window(
            same_second + CREATE_WINDOW + Duration::from_secs(1),
            began
        ));
        assert!(!minted_in_window(
            same_second + Duration::from_secs(2 * 86_400),
            began
        ));
        assert_eq!(
            age(Some(SystemTime::now() - Duration::from_secs(3 * 86_400))),
            "3 days"
        );
    }

    /// Which key createSecret may delete when the user has two: one row per second key.
    #[test]
    fn only_a_key_provably_this_secrets_makes_room() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s);
        let value = SecretString::from(
            r#"{"UserName":"app","AccessKeyId":"CUR","SecretAccessKey":"sk"}"#.to_owned(),
        );
        let current = KeySecret::parse(&value, AWSCURRENT).unwrap();
        let key = |id: &str, active: bool, at: u64| Key {
            id: id.into(),
            active,
            created: Some(t(at)),
        };
        // The previous version was created at 100; this rotation began at 5,000.
        let began = Began {
            this: Some(t(5_000)),
            previous: Some(t(100)),
        };
        let plan = |other: Key, previous: Option<&str>| {
            room_plan(&[key("CUR", true, 0), other], &current, previous, began)
                .map(|p| p.map(|(id, _)| id))
                .map_err(|e| e.to_string())
        };
        // Minted by the rotation that made the previous version, however late its retry ran.
        assert_eq!(
            plan(key("OLD", false, 100), Some("OLD")),
            Ok(Some("OLD".into()))
        );
        assert_eq!(
            plan(key("OLD", false, 4_000), Some("OLD")),
            Ok(Some("OLD".into()))
        );
        // Older than its version: put in by hand, or named there by a writer.
        let err = plan(key("OLD", false, 99), Some("OLD")).unwrap_err();
        assert!(err.contains("no rotation of this secret minted"), "{err}");
        // Inactive but no version holds it: kept to be switched back on.
        let err = plan(key("B", false, 4_000), Some("OLD")).unwrap_err();
        assert!(
            err.contains("an inactive key") && err.contains("not deleted"),
            "{err}"
        );
        // Active previous: retire's to judge, never room's.
        let err = plan(key("OLD", true, 100), Some("OLD")).unwrap_err();
        assert!(err.contains("still active"), "{err}");
        // This rotation's orphan, and a key from before it began.
        assert_eq!(
            plan(key("ORPHAN", true, 5_001), Some("OLD")),
            Ok(Some("ORPHAN".into()))
        );
        let err = plan(key("OTHER", true, 4_999), Some("OLD")).unwrap_err();
        assert!(err.contains("may belong to another system"), "{err}");
    }

    /// Whose key createSecret mints: one row per (tag, what the AWSCURRENT key signs in as).
    #[test]
    fn a_key_is_minted_only_for_the_user_the_secret_proves_or_pins() {
        let u = "app";
        let arn = "arn:aws:iam::1:user/rotated/app";
        let other = "arn:aws:iam::1:user/rotated/writer";
        let is = |a: &str| Caller::Is(a.to_owned());
        let refused = Caller::Refused("InvalidClientTokenId".into());
        // (tag, caller, Ok(reason part) or Err(message part))
        let rows: &[(Option<&str>, Caller, Result<&str, &str>)] = &[
            (None, is(arn), Ok("signs in as the user")),
            (Some(u), is(arn), Ok("signs in as the user")),
            (
                None,
                is(other),
                Err("signs in as arn:aws:iam::1:user/rotated/writer, not as user \"app\""),
            ),
            (Some(u), is(other), Err("not as user \"app\"")),
            (
                None,
                refused.clone(),
                Err(
                    "does not sign in as user \"app\" (InvalidClientTokenId), and without the secret's tag iam:user-name",
                ),
            ),
            (
                Some(u),
                refused.clone(),
                Ok("the secret's tag pins the user"),
            ),
        ];
        for (pin, caller, want) in rows {
            let got = may_mint(u, arn, *pin, caller);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert!(g.contains(w), "{pin:?} {caller:?}: {g}"),
                (Err(w), Err(g)) => {
                    assert!(
                        g.contains(w) && g.contains("nothing was minted"),
                        "{pin:?} {caller:?}: {g}"
                    )
                }
                _ => panic!("{pin:?} {caller:?}: want {want:?}, got {got:?}"),
            }
        }
        assert!(pinned(u, None).is_ok() && pinned(u, Some(u)).is_ok());
        let err = pinned("victim", Some(u)).unwrap_err().to_string();
        assert!(
            err.contains("field `UserName` is \"victim\"")
                && err.contains("iam:user-name pins user \"app\"")
                && err.contains("AWSCURRENT"),
            "{err}"
        );
    }
}
