//! Rotates the two GitHub credentials the API can really rotate (personal access tokens cannot be
//! created through it), one `Target` each:
//!
//! - `installation_token` (an *issuer*): a GitHub App installation token, minted with the App's
//!   JWT and scoped to what the secret's tags allow (`pin`).
//! - `deploy_key` (an *updater*): an Ed25519 SSH deploy key generated here and registered on the
//!   pinned repository under a title that names this secret and the version.
//!
//! One function serves both: `GitHubToken` hands each step to the target of the secret's `kind`.
//! What both need (the API, the App's key, the pin, the shared pre-flight checks) is `App`.

pub mod api;
pub mod deploy_key;
pub mod installation_token;
pub mod pin;
pub mod secret;

pub use deploy_key::{TITLE_PREFIX, is_stale, title};

use api::Api;
use async_trait::async_trait;
use deploy_key::DeployKey;
use installation_token::InstallationToken;
use secret::{GhSecret, Kind};
use serde_json::Value;
use shared::config::Retire;
use shared::preflight::Check;
use shared::retry::budget;
use shared::store::{AWSCURRENT, AWSPENDING};
use shared::{Error, SecretString, Target, TargetKind, Versions};
use std::sync::Arc;

pub const ROTATOR: &str = "github-token";

/// What both credentials need: the GitHub API and the App's key; and the installation-token
/// secrets the deployment's schedule refreshes (`GITHUB_TOKEN_SECRET_ARNS`).
pub struct App {
    pub api: Api,
    pub refreshed: RefreshList,
}

/// The secrets the templates' refresh schedule names (`GITHUB_TOKEN_SECRET_ARNS`, comma-separated
/// ARNs, the same list the schedule sends), so the pre-flight can tell from the configuration
/// whether a token secret is refreshed at all.
#[derive(Debug, Clone, Default)]
pub struct RefreshList(shared::rotated::SecretList);

impl RefreshList {
    pub const ENV: &'static str = "GITHUB_TOKEN_SECRET_ARNS";

    /// The schedule sends each entry as a SecretId: a pattern names no secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        shared::rotated::SecretList::parse(Self::ENV, text, false).map(Self)
    }

    /// Whether `arn` (a full ARN, as DescribeSecret gives it) is listed, by its full ARN.
    pub fn contains(&self, arn: &str) -> bool {
        self.0.contains(arn)
    }
}

impl App {
    pub fn from_env() -> Result<Self, String> {
        let base = shared::config::non_empty_env("GITHUB_API_URL")
            .unwrap_or_else(|| "https://api.github.com".into());
        if !(base.starts_with("https://")
            || base.starts_with("http://127.0.0.1")
            || base.starts_with("http://localhost"))
        {
            return Err(format!("GITHUB_API_URL must be an https URL, got `{base}`"));
        }
        if let Some(v) = shared::config::non_empty_env("REVOKE_PREVIOUS") {
            return Err(format!(
                "REVOKE_PREVIOUS (`{}`) is replaced by RETIRE_PREVIOUS: `finish` revokes the previous token in \
                 finishSecret (what REVOKE_PREVIOUS=true did), `next-rotation` (the default) keeps it valid until the \
                 next rotation revokes it; unset REVOKE_PREVIOUS",
                v.escape_debug()
            ));
        }
        let refreshed = shared::config::non_empty_env(RefreshList::ENV)
            .map(|v| RefreshList::parse(&v))
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            api: Api { base },
            refreshed,
        })
    }

    /// The App's private key, from its own secret: the PEM itself, or JSON with `private_key`.
    /// Errors name the field that points at it and its ARN.
    async fn app_key(&self, v: &Versions<'_>, s: &GhSecret) -> Result<SecretString, Error> {
        const WHICH: &str = "private key secret";
        let arn = &s.private_key_secret_arn;
        let raw = v.other_secret(arn).await.map_err(|e| {
            Error::target(format!(
                "the App's private key secret {arn} (field `private_key_secret_arn`) cannot be read: {e}"
            ))
        })?;
        let bad = |problem: &str| {
            Error::value(
                WHICH,
                format!("{arn} (field `private_key_secret_arn`): {problem}"),
            )
        };
        let pem = match raw.json_object() {
            Ok(map) => match map.get("private_key").and_then(Value::as_str) {
                Some(pem) => SecretString::from(pem),
                None => return Err(bad("field `private_key` is missing")),
            },
            Err(_) => raw,
        };
        if !pem.expose().contains("PRIVATE KEY-----") {
            return Err(bad("it holds no private key in PEM form"));
        }
        Ok(pem)
    }

    /// The key of createSecret's seal (`shared::seal`) for both kinds: the App's private key, not
    /// the default `AWSCURRENT` value, which a token's consumers read and, given `PutSecretValue`,
    /// could seal a planted value with. The pin comes first, so the key secret read is the one the
    /// tags name, never one a writer chose; `Versions` caches the read, which the step's own hooks
    /// make too.
    async fn seal_key(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let (current, _) = pinned(v, v.current().await?, AWSCURRENT)?;
        self.app_key(v, &current).await
    }

    /// The pre-flight checks both credentials share: the value parses, the tags pin it, the
    /// App's key secret is readable and its JWT accepted, the installation is active and grants
    /// the permissions `needed` (from the value and its pinned scope). Only GETs: minting a token
    /// would be a write. `Err` holds the checks up to the first failure that stops the rest.
    async fn check(
        &self,
        v: &Versions<'_>,
        needed: impl FnOnce(&GhSecret, &Value) -> Vec<(String, String)>,
    ) -> Result<(Vec<Check>, GhSecret), Vec<Check>> {
        let current = shared::preflight::current_as(v, GhSecret::parse)
            .await
            .map_err(|failed| vec![failed])?;
        let mut checks = vec![Check::ok(
            "AWSCURRENT value",
            format!(
                "App {}, installation {}",
                current.app_id, current.installation_id
            ),
        )];
        let scope =
            match pin::Pin::from_tags(|k| v.tag(k)).and_then(|p| p.allows(&current, AWSCURRENT)) {
                Ok(scope) => scope,
                Err(e) => {
                    checks.push(Check::failed("tags", e.to_string()));
                    return Err(checks);
                }
            };
        checks.push(Check::ok(
            "tags",
            "the secret's tags pin the App, installation and key secret, and AWSCURRENT asks for no more than they allow",
        ));
        let pem = match self.app_key(v, &current).await {
            Ok(pem) => pem,
            Err(e) => {
                checks.push(Check::failed("App private key", e.to_string()));
                return Err(checks);
            }
        };
        checks.push(Check::ok(
            "App private key",
            format!(
                "{} (field `private_key_secret_arn`) holds a private key",
                current.private_key_secret_arn
            ),
        ));
        let installation = self
            .api
            .installation(
                current.app_id,
                &pem,
                current.installation_id,
                budget(v.deadline()),
            )
            .await;
        let installation = match installation {
            Ok(i) => i,
            Err(e) => {
                checks.push(Check::failed("installation", e.to_string()));
                return Err(checks);
            }
        };
        checks.push(if installation["suspended_at"].is_null() {
            Check::ok(
                "installation",
                format!(
                    "the App's JWT is accepted and installation {} is active",
                    current.installation_id
                ),
            )
        } else {
            Check::failed(
                "installation",
                format!("installation {} is suspended", current.installation_id),
            )
        });
        let granted = &installation["permissions"];
        let missing: Vec<String> = needed(&current, &scope)
            .iter()
            .filter(|(name, level)| {
                let has = granted[name.as_str()].as_str();
                !(has == Some("write") || (has == Some("read") && level == "read"))
            })
            .map(|(name, level)| format!("{name}: {level}"))
            .collect();
        checks.push(if missing.is_empty() {
            Check::ok(
                "permissions",
                "the installation grants every permission the rotation asks for",
            )
        } else {
            Check::failed(
                "permissions",
                format!("the installation does not grant {}", missing.join(", ")),
            )
        });
        Ok((checks, current))
    }
}

/// The value labelled `stage`, parsed and checked against the secret's tags (`pin`): the value
/// and, for an installation token, the scope to mint. Every step goes through here before it
/// calls GitHub, so a value asking for more than its pin allows changes nothing.
fn pinned(
    v: &Versions<'_>,
    value: &SecretString,
    stage: &'static str,
) -> Result<(GhSecret, Value), Error> {
    let s = GhSecret::parse(value, stage)?;
    let scope = pin::Pin::from_tags(|k| v.tag(k))?.allows(&s, stage)?;
    Ok((s, scope))
}

/// `AWSCURRENT` and `AWSPENDING`, both pinned, for setSecret and testSecret: the pending value's
/// scope. A rotation may not move the secret to another App, installation or repository.
async fn current_and_pending(v: &Versions<'_>) -> Result<(GhSecret, GhSecret, Value), Error> {
    let (current, _) = pinned(v, v.current().await?, AWSCURRENT)?;
    let (pending, scope) = pinned(v, v.pending().await?, AWSPENDING)?;
    let differs = |field: &str| {
        Error::value(
            AWSPENDING,
            format!("field `{field}` differs from AWSCURRENT's; a rotation cannot change it"),
        )
    };
    if pending.kind != current.kind {
        return Err(differs("kind"));
    }
    if pending.app_id != current.app_id {
        return Err(differs("app_id"));
    }
    if pending.installation_id != current.installation_id {
        return Err(differs("installation_id"));
    }
    for field in ["owner", "repo", "repositories", "permissions"] {
        if pending.field(field) != current.field(field) {
            return Err(differs(field));
        }
    }
    Ok((current, pending, scope))
}

/// The function: each step goes to the target of the secret's `kind`.
pub struct GitHubToken {
    token: InstallationToken,
    key: DeployKey,
}

impl GitHubToken {
    pub fn from_env() -> Result<Self, String> {
        let app = Arc::new(App::from_env()?);
        Ok(Self {
            token: InstallationToken { app: app.clone() },
            key: DeployKey { app },
        })
    }

    /// The target for the `AWSCURRENT` value's kind (read once per step, cached by `Versions`).
    async fn pick(&self, v: &Versions<'_>) -> Result<&dyn Target, Error> {
        Ok(
            match GhSecret::parse(v.current().await?, AWSCURRENT)?.kind {
                Kind::InstallationToken => &self.token,
                Kind::DeployKey => &self.key,
            },
        )
    }
}

#[async_trait]
impl Target for GitHubToken {
    /// The protocol asks before it knows the secret, so the router answers `Issuer` (it may have
    /// to discard) and `discard` asks the secret's own target, which knows its kind.
    fn kind(&self) -> TargetKind {
        TargetKind::Issuer
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        self.pick(v).await?.create(v).await
    }

    async fn discard(&self, v: &Versions<'_>, minted: &SecretString) -> Result<(), Error> {
        let target = self.pick(v).await?;
        match target.kind() {
            TargetKind::Issuer => target.discard(v, minted).await,
            TargetKind::Updater => Ok(()),
        }
    }

    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        self.pick(v).await?.set(v).await
    }

    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        self.pick(v).await?.test(v).await
    }

    async fn check(&self, v: &Versions<'_>, retire: Retire) -> Vec<Check> {
        match self.pick(v).await {
            Ok(target) => target.check(v, retire).await,
            Err(e) => vec![Check::failed("AWSCURRENT value", e.to_string())],
        }
    }

    async fn retire(&self, v: &Versions<'_>, when: Retire) -> Result<(), Error> {
        self.pick(v).await?.retire(v, when).await
    }

    async fn seal_key(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        self.pick(v).await?.seal_key(v).await
    }

    /// Installation tokens expire within the hour, so the templates refresh them on a schedule
    /// (`shared::refresh`); a pending token a failed rotation left serves nobody. Only the token
    /// secrets that schedule names: a refresh drops an in-flight `AWSPENDING`, which a deploy
    /// key's rotation (or a direct invocation naming any other secret) must keep.
    fn refreshable(&self, arn: &str) -> Result<(), String> {
        if self.token.app.refreshed.contains(arn) {
            Ok(())
        } else {
            Err(format!(
                "{} does not name this secret: only the installation-token secrets the stack's \
                 schedule refreshes are refreshed here; rotate anything else with RotateSecret",
                RefreshList::ENV
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::{MemoryStore, SecretMeta, SecretStore, SecretValue, StoreError};
    use shared::{RotationEvent, Step};
    use std::sync::Mutex;
    use std::time::SystemTime;

    /// Stands for the App's key: `app_key` only checks its PEM armour, and nothing here signs.
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n";

    /// A store whose `DescribeSecret` carries the pin's tags and which records every read.
    struct Tagged {
        inner: MemoryStore,
        tags: Vec<(String, String)>,
        reads: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl SecretStore for Tagged {
        async fn describe(&self, id: &str) -> Result<SecretMeta, StoreError> {
            let mut meta = self.inner.describe(id).await?;
            meta.tags = self.tags.clone();
            Ok(meta)
        }
        fn may_rotate(&self, _arn: &str) -> Result<(), String> {
            Ok(())
        }
        async fn get_value(
            &self,
            id: &str,
            version: Option<&str>,
            stage: &str,
        ) -> Result<SecretValue, StoreError> {
            self.reads.lock().unwrap().push(id.to_owned());
            self.inner.get_value(id, version, stage).await
        }
        async fn put_pending(
            &self,
            id: &str,
            token: &str,
            value: &SecretString,
            rotation_token: Option<&str>,
        ) -> Result<(), StoreError> {
            self.inner
                .put_pending(id, token, value, rotation_token)
                .await
        }
        async fn version_created(
            &self,
            id: &str,
            version: &str,
        ) -> Result<Option<SystemTime>, StoreError> {
            self.inner.version_created(id, version).await
        }
        async fn move_stage(
            &self,
            id: &str,
            stage: &str,
            to: Option<&str>,
            from: Option<&str>,
        ) -> Result<(), StoreError> {
            self.inner.move_stage(id, stage, to, from).await
        }
    }

    /// A token secret pinned to the App key secret `key`, and a second key secret a writer
    /// made (holding a key they know). `(store, secret, key, writer's key)`.
    fn rig() -> (Tagged, String, String, String) {
        let inner = MemoryStore::new();
        let key = inner.create_secret("app-key", PEM);
        let writers = inner.create_secret(
            "writers-key",
            "-----BEGIN PRIVATE KEY-----\nw\n-----END PRIVATE KEY-----",
        );
        let value = serde_json::json!({"kind": "app-installation-token", "app_id": 42,
            "installation_id": 7, "private_key_secret_arn": key, "token": "ghs_current"});
        let arn = inner.create_secret("ci-token", &value.to_string());
        let tags = [
            (pin::APP_ID, "42"),
            (pin::INSTALLATION_ID, "7"),
            (pin::KEY_SECRET, key.as_str()),
            (pin::PERMISSIONS, "contents=read"),
        ];
        let tags = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let store = Tagged {
            inner,
            tags,
            reads: Mutex::default(),
        };
        (store, arn, key, writers)
    }

    fn function() -> GitHubToken {
        // Never called: these steps make no GitHub request.
        let app = Arc::new(App {
            api: Api {
                base: "http://127.0.0.1:9".into(),
            },
            refreshed: RefreshList::default(),
        });
        GitHubToken {
            token: InstallationToken { app: app.clone() },
            key: DeployKey { app },
        }
    }

    /// `AWSCURRENT` with another token, sealed with `key` for the version `token`.
    async fn planted(store: &Tagged, arn: &str, token: &str, key: &SecretString) -> SecretString {
        let current = store.inner.get_value(arn, None, AWSCURRENT).await.unwrap();
        let mut map = current.value.json_object().unwrap();
        map.insert("token".into(), "ghs_planted".into());
        shared::seal::seal(key, arn, token, &SecretString::from_json(&map)).unwrap()
    }

    /// A consumer of a token secret reads `AWSCURRENT`: a value they seal with it and put under
    /// the rotation's version is dead (a default `seal_key` would take it), and only a value sealed
    /// with the App's key gets through setSecret.
    #[tokio::test]
    async fn the_seal_is_keyed_by_the_app_key_not_awscurrent() {
        let (store, arn, _, _) = rig();
        let target = function();
        let current = store.inner.get_value(&arn, None, AWSCURRENT).await.unwrap();
        let set = |token: &str| RotationEvent::new(Step::Set, &arn, token);
        let token = shared::random::version_id();
        store.inner.begin_rotation(&arn, &token).unwrap();
        let forged = planted(&store, &arn, &token, &current.value).await;
        store
            .put_pending(&arn, &token, &forged, None)
            .await
            .unwrap();
        let err = shared::run_step(&store, &target, &set(&token), None, Retire::NextRotation)
            .await
            .unwrap_err();
        assert!(matches!(err.error, Error::Dead(_)), "{err}");
        assert!(err.to_string().contains("createsecret_seal"), "{err}");
        assert_eq!(store.inner.labels(&arn).version_with(AWSPENDING), None);

        let token = shared::random::version_id();
        store.inner.begin_rotation(&arn, &token).unwrap();
        let sealed = planted(&store, &arn, &token, &SecretString::from(PEM)).await;
        store
            .put_pending(&arn, &token, &sealed, None)
            .await
            .unwrap();
        let done =
            shared::run_step(&store, &target, &set(&token), None, Retire::NextRotation).await;
        assert!(matches!(done, Ok(shared::Outcome::Done)), "{done:?}");
    }

    /// The pin is checked before the key is read: a value naming a key secret the tags do not
    /// is refused without reading it, and the pinned one is read once per step, however often
    /// the step asks.
    #[tokio::test]
    async fn the_seal_key_is_read_from_the_pinned_key_secret_once() {
        let (store, arn, key, writers) = rig();
        let target = function();
        let meta = store.describe(&arn).await.unwrap();
        let v = Versions::new(&store, meta.clone(), "v", None);
        for _ in 0..2 {
            let got = target.seal_key(&v).await.unwrap();
            assert!(got.expose() == PEM, "the seal's key is not the App's key");
        }
        let (current, _) = pinned(&v, v.current().await.unwrap(), AWSCURRENT).unwrap();
        target.token.app.app_key(&v, &current).await.unwrap();
        let reads = store.reads.lock().unwrap().clone();
        assert_eq!(reads.iter().filter(|r| **r == key).count(), 1, "{reads:?}");

        // A writer points AWSCURRENT at their own key secret.
        let mut value = store
            .inner
            .get_value(&arn, None, AWSCURRENT)
            .await
            .unwrap()
            .value
            .json_object()
            .unwrap();
        value.insert("private_key_secret_arn".into(), writers.clone().into());
        let id = shared::random::version_id();
        store.inner.begin_rotation(&arn, &id).unwrap();
        store
            .put_pending(&arn, &id, &SecretString::from_json(&value), None)
            .await
            .unwrap();
        let old = meta.labels.version_with(AWSCURRENT).unwrap().to_owned();
        store
            .move_stage(&arn, AWSCURRENT, Some(&id), Some(&old))
            .await
            .unwrap();
        let meta = store.describe(&arn).await.unwrap();
        store.reads.lock().unwrap().clear();
        let v = Versions::new(&store, meta, "v", None);
        let err = target.seal_key(&v).await.unwrap_err().to_string();
        assert!(err.contains("field `private_key_secret_arn`"), "{err}");
        let reads = store.reads.lock().unwrap().clone();
        assert!(
            !reads.contains(&writers) && !reads.contains(&key),
            "{reads:?}"
        );
    }
}
