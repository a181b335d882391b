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

/// The field that seals a value this function's createSecret made.
pub const SEAL: &str = "rotation_seal";

/// HMAC-SHA-256, keyed by the App's private key (which only this function and the App's owners
/// hold), of the secret, the version and the credential's public part: proof that createSecret
/// made the `AWSPENDING` value. A writer who puts a value under the rotation's version before
/// createSecret runs cannot forge it, so setSecret and testSecret never register or promote a
/// planted key or token. A MAC reveals nothing of its key, so it may sit in the value.
fn mac(pem: &SecretString, arn: &str, version: &str, credential: &str) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(pem.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    for part in [arn, version, credential] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac
}

/// The seal createSecret stores with a new value (`mac`), in hex.
fn seal(pem: &SecretString, v: &Versions<'_>, credential: &str) -> String {
    use hmac::Mac;
    mac(pem, v.arn(), v.token(), credential)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the pending value's seal (`mac`). A value without a valid one was not made by this
/// function: it can never pass, so it is dead and the protocol abandons it.
fn check_seal(
    pending: &GhSecret,
    pem: &SecretString,
    v: &Versions<'_>,
    credential: &str,
) -> Result<(), Error> {
    use hmac::Mac;
    let given = pending.str_field(SEAL);
    let bytes: Option<Vec<u8>> = (given.len() == 64 && given.is_ascii())
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(&given[2 * i..2 * i + 2], 16).ok())
                .collect()
        })
        .flatten();
    match bytes {
        // `verify_slice` compares in constant time.
        Some(b)
            if mac(pem, v.arn(), v.token(), credential)
                .verify_slice(&b)
                .is_ok() =>
        {
            Ok(())
        }
        _ => Err(Error::dead(format!(
            "the AWSPENDING value's field `{SEAL}` is missing or wrong: this function's createSecret did not \
             make it (a value written under the rotation's version by hand), so it is neither registered nor promoted"
        ))),
    }
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
