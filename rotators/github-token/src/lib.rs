//! Rotates the two GitHub credentials the API can really rotate (personal access tokens cannot be
//! created through it):
//!
//! - `app-installation-token` (an *issuer*): a GitHub App installation token, minted with the
//!   App's JWT, optionally scoped down to repositories and permissions; the previous token is
//!   revoked when `RETIRE_PREVIOUS` says (the next rotation, or finishSecret). Tokens live one
//!   hour, so schedule the rotation more often than that (infra/ ships an EventBridge Scheduler
//!   schedule).
//! - `deploy-key` (an *updater*): an Ed25519 SSH deploy key generated here; setSecret registers
//!   its public key on the repository under a title that names this secret (a digest of its ARN)
//!   and the version; finishSecret deletes this secret's keys that the current version does not
//!   hold, never another secret's (two secrets may rotate keys on one repository).
//!
//! Managing deploy keys uses a short-lived installation token of the same App
//! (`administration: write` on the repository), revoked as soon as the step is done.

pub mod api;
pub mod pin;
pub mod secret;

use api::Api;
use async_trait::async_trait;
use secret::{GhSecret, Kind};
use serde_json::{Value, json};
use shared::config::Retire;
use shared::preflight::Check;
use shared::retry::budget;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use shared::{Error, SecretString, Target, TargetKind, Versions};

pub const ROTATOR: &str = "github-token";

/// The variables this rotator reads besides `shared::config::ENV`.
pub const ENV: &[&str] = &["GITHUB_API_URL", "REVOKE_PREVIOUS"];

/// Deploy keys we manage are titled with this prefix, the secret's tag and the version id
/// (`secrets-manager-rotation <tag> <version>`).
pub const TITLE_PREFIX: &str = "secrets-manager-rotation ";

pub struct GitHubToken {
    pub api: Api,
}

impl GitHubToken {
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
        Ok(Self { api: Api { base } })
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

    /// A short-lived token to manage the repository's deploy keys.
    async fn manager(
        &self,
        v: &Versions<'_>,
        s: &GhSecret,
        write: bool,
    ) -> Result<api::Token, Error> {
        let pem = self.app_key(v, s).await?;
        let scope = json!({
            "repositories": [s.str_field("repo")],
            "permissions": {"administration": if write { "write" } else { "read" }},
        });
        Ok(self
            .api
            .mint(
                s.app_id,
                &pem,
                s.installation_id,
                &scope,
                budget(v.deadline()),
            )
            .await?
            .token)
    }

    /// Runs `f` with a management token, then revokes the token whatever `f` returned.
    async fn managed<T>(
        &self,
        v: &Versions<'_>,
        s: &GhSecret,
        write: bool,
        f: impl AsyncFnOnce(&api::Token) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let token = self.manager(v, s, write).await?;
        let result = f(&token).await;
        if let Err(e) = self.api.revoke(&token, budget(v.deadline())).await {
            tracing::warn!(error = %e, "could not revoke the management token; it expires within the hour");
        }
        result
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

/// How long GitHub's installation tokens live.
const TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

/// The installation token a value holds, minted when its `expires_at` says (an hour before).
fn stored_token(s: &GhSecret) -> Option<api::Token> {
    let secret = s.credential.clone()?;
    let minted =
        api::parse_time(s.str_field("expires_at")).and_then(|e| e.checked_sub(TOKEN_LIFETIME));
    Some(api::Token { secret, minted })
}

/// A rotation may not move the secret to another App, installation or repository.
fn same_target(pending: &GhSecret, current: &GhSecret) -> Result<(), Error> {
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
    Ok(())
}

/// A short tag that names one secret in deploy-key titles: the first 12 hex digits of the
/// SHA-256 of its ARN (stable, and not a secret).
fn secret_tag(arn: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(arn.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The title of this secret's key for `version`.
pub fn title(arn: &str, version: &str) -> String {
    format!("{TITLE_PREFIX}{} {version}", secret_tag(arn))
}

/// The "which deploy keys are ours" rule: a key is this secret's to delete when the previous
/// credential is retired if its title carries this secret's `tag` and a version other than
/// `AWSCURRENT`'s (the previous key, or the orphan of a crashed attempt). Nothing else, ever: a
/// person's key, another secret's, or a title without a tag (no deployment predates the tags, so
/// an untagged title is someone else's).
pub fn is_stale(title: &str, tag: &str, current_version: &str) -> bool {
    let Some((t, version)) = title
        .strip_prefix(TITLE_PREFIX)
        .and_then(|rest| rest.split_once(' '))
    else {
        return false;
    };
    t == tag && !version.is_empty() && !version.contains(' ') && version != current_version
}

/// The `type base64` part of an OpenSSH public key (GitHub drops the comment).
fn key_body(key: &str) -> String {
    key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// The `type base64` public key of an OpenSSH private key, if it is one.
fn public_of(private: &SecretString) -> Option<String> {
    let key = ssh_key::PrivateKey::from_openssh(private.expose()).ok()?;
    Some(key_body(&key.public_key().to_openssh().ok()?))
}

/// A new Ed25519 key pair: the private key in OpenSSH form, and the public key line.
fn generate_key(comment: &str) -> Result<(SecretString, String), Error> {
    let mut seed = [0u8; 32];
    shared::random::fill(&mut seed);
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    seed.fill(0);
    let private = ssh_key::PrivateKey::new(ssh_key::private::KeypairData::Ed25519(pair), comment)
        .map_err(|e| Error::target(format!("generating the SSH key failed: {e}")))?;
    let pem = private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| Error::target(format!("encoding the SSH key failed: {e}")))?;
    let public = private
        .public_key()
        .to_openssh()
        .map_err(|e| Error::target(format!("encoding the SSH public key failed: {e}")))?;
    Ok((SecretString::from(pem.as_str()), public))
}

#[async_trait]
impl Target for GitHubToken {
    /// An issuer for installation tokens; deploy keys are generated here, so nothing to discard.
    fn kind(&self) -> TargetKind {
        TargetKind::Issuer
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let (current, scope) = pinned(v, v.current().await?, AWSCURRENT)?;
        match current.kind {
            Kind::InstallationToken => {
                let pem = self.app_key(v, &current).await?;
                let minted = self
                    .api
                    .mint(
                        current.app_id,
                        &pem,
                        current.installation_id,
                        &scope,
                        budget(v.deadline()),
                    )
                    .await?;
                Ok(current.with(
                    minted.token.secret.expose(),
                    &[
                        ("expires_at", minted.expires_at.into()),
                        ("granted_permissions", minted.permissions),
                    ],
                ))
            }
            Kind::DeployKey => {
                let (private, public) = generate_key(&title(v.arn(), v.token()))?;
                Ok(current.with(private.expose(), &[("public_key", public.into())]))
            }
        }
    }

    async fn discard(&self, v: &Versions<'_>, minted: &SecretString) -> Result<(), Error> {
        let minted = GhSecret::parse(minted, AWSPENDING)?;
        match (minted.kind, stored_token(&minted)) {
            (Kind::InstallationToken, Some(token)) => {
                self.api.revoke(&token, budget(v.deadline())).await
            }
            _ => Ok(()),
        }
    }

    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        let (current, _) = pinned(v, v.current().await?, AWSCURRENT)?;
        let (pending, _) = pinned(v, v.pending().await?, AWSPENDING)?;
        same_target(&pending, &current)?;
        if pending.kind == Kind::InstallationToken {
            return Ok(()); // GitHub minted it: nothing to set.
        }
        let (owner, repo) = (pending.str_field("owner"), pending.str_field("repo"));
        let public = pending.str_field("public_key").to_owned();
        let want = title(v.arn(), v.token());
        let until = budget(v.deadline());
        self.managed(v, &pending, true, async |token| {
            let keys = self.api.keys(token, owner, repo, until).await?;
            match keys.iter().find(|k| k.title == want) {
                Some(k)
                    if k.read_only == pending.read_only()
                        && key_body(&k.key) == key_body(&public) =>
                {
                    return Ok(());
                }
                // Ours for this version but not this key (a value replaced by hand): redo it.
                Some(k) => self.api.delete_key(token, owner, repo, k.id, until).await?,
                None => {}
            }
            self.api
                .add_key(
                    token,
                    owner,
                    repo,
                    &want,
                    &public,
                    pending.read_only(),
                    until,
                )
                .await
        })
        .await
    }

    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        let (current, _) = pinned(v, v.current().await?, AWSCURRENT)?;
        let (pending, scope) = pinned(v, v.pending().await?, AWSPENDING)?;
        same_target(&pending, &current)?;
        match pending.kind {
            Kind::InstallationToken => {
                let token = stored_token(&pending)
                    .ok_or_else(|| Error::value(AWSPENDING, "field `token` is missing"))?;
                let reached = self.api.repositories(&token, budget(v.deadline())).await?;
                if let Some(Value::Array(asked)) = scope.get("repositories") {
                    let mut want: Vec<&str> = asked.iter().filter_map(Value::as_str).collect();
                    let mut got: Vec<&str> = reached
                        .iter()
                        .map(|r| r.rsplit('/').next().unwrap_or(r))
                        .collect();
                    want.sort();
                    got.sort();
                    if want != got {
                        return Err(Error::target(format!(
                            "the AWSPENDING token reaches {got:?}, not the requested repositories {want:?}"
                        )));
                    }
                }
                Ok(())
            }
            Kind::DeployKey => {
                let (owner, repo) = (pending.str_field("owner"), pending.str_field("repo"));
                let public = pending.str_field("public_key");
                let want = title(v.arn(), v.token());
                let until = budget(v.deadline());
                let keys = self
                    .managed(v, &pending, false, async |t| {
                        self.api.keys(t, owner, repo, until).await
                    })
                    .await?;
                match keys.iter().find(|k| k.title == want) {
                    Some(k)
                        if key_body(&k.key) == key_body(public)
                            && k.read_only == pending.read_only() =>
                    {
                        Ok(())
                    }
                    Some(_) => Err(Error::target(format!(
                        "the deploy key titled {want:?} on {owner}/{repo} is not the AWSPENDING key or has other access"
                    ))),
                    None => Err(Error::target(format!(
                        "no deploy key titled {want:?} on {owner}/{repo}"
                    ))),
                }
            }
        }
    }

    /// The current value parses; the App's key secret is readable and its JWT is accepted; the
    /// installation exists, is not suspended and grants what the kind needs; the current token
    /// still works. Only GETs: minting a token would be a write.
    async fn check(&self, v: &Versions<'_>, _retire: Retire) -> Vec<Check> {
        let current = match shared::preflight::current_as(v, GhSecret::parse).await {
            Ok(c) => c,
            Err(failed) => return vec![failed],
        };
        let mut checks = vec![Check::ok(
            "AWSCURRENT value",
            format!(
                "App {}, installation {}",
                current.app_id, current.installation_id
            ),
        )];
        let tags = pin::Pin::from_tags(|k| v.tag(k)).and_then(|p| p.allows(&current, AWSCURRENT));
        let pinned = tags.is_ok();
        checks.push(Check::of(
            "tags",
            "the secret's tags pin the App, installation and key secret, and AWSCURRENT asks for no more than they allow",
            tags,
        ));
        if !pinned {
            return checks;
        }
        let pem = match self.app_key(v, &current).await {
            Ok(pem) => pem,
            Err(e) => {
                checks.push(Check::failed("App private key", e.to_string()));
                return checks;
            }
        };
        checks.push(Check::ok(
            "App private key",
            format!(
                "{} (field `private_key_secret_arn`) holds a private key",
                current.private_key_secret_arn
            ),
        ));
        let until = budget(v.deadline());
        let installation = self
            .api
            .installation(current.app_id, &pem, current.installation_id, until)
            .await;
        let installation = match installation {
            Ok(i) => i,
            Err(e) => {
                checks.push(Check::failed("installation", e.to_string()));
                return checks;
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
        let needed: Vec<(String, String)> = match current.kind {
            Kind::DeployKey => vec![("administration".into(), "write".into())],
            Kind::InstallationToken => current
                .field("permissions")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let missing: Vec<String> = needed
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
        match current.kind {
            Kind::InstallationToken => {
                checks.push(Check::not_verified(
                    "repositories",
                    "which repositories a token reaches is checked by testSecret; listing them needs a token, and minting one is a write",
                ));
                if let Some(token) = stored_token(&current) {
                    checks.push(Check::of(
                        "current credentials",
                        "the AWSCURRENT token works",
                        self.api.token_works(&token, until).await,
                    ));
                }
            }
            Kind::DeployKey => checks.push(Check::not_verified(
                "repository",
                format!(
                    "access to {}/{} is checked by setSecret; listing its deploy keys needs a token, and minting one is a write",
                    current.str_field("owner"),
                    current.str_field("repo")
                ),
            )),
        }
        checks
    }

    /// The same whenever it runs (`RETIRE_PREVIOUS`): revoke the previous token; delete this
    /// secret's deploy keys but the current one.
    async fn retire(&self, v: &Versions<'_>, _when: Retire) -> Result<(), Error> {
        let (current, _) = pinned(v, v.current().await?, AWSCURRENT)?;
        match current.kind {
            Kind::InstallationToken => {
                let previous = match v.previous().await? {
                    Some(p) => GhSecret::parse(p, AWSPREVIOUS)
                        .ok()
                        .and_then(|p| stored_token(&p)),
                    None => None,
                };
                match previous {
                    Some(old) if Some(&old.secret) != current.credential.as_ref() => {
                        self.api.revoke(&old, budget(v.deadline())).await
                    }
                    _ => Ok(()),
                }
            }
            Kind::DeployKey => {
                let (owner, repo) = (current.str_field("owner"), current.str_field("repo"));
                let current_version = v.labels().version_with(AWSCURRENT).unwrap_or(v.token());
                let tag = secret_tag(v.arn());
                // The previous version's key, to report a late use: derived from the version's
                // private key, not its `public_key` field (anyone may copy another secret's
                // public key into this one, nobody its private key).
                let previous_key = match v.previous().await? {
                    Some(p) => GhSecret::parse(p, AWSPREVIOUS)
                        .ok()
                        .and_then(|p| public_of(p.credential.as_ref()?)),
                    None => None,
                };
                let until = budget(v.deadline());
                let retired_at = v.previous_retired_at().await?;
                self.managed(v, &current, true, async |token| {
                    for k in self.api.keys(token, owner, repo, until).await? {
                        let body = key_body(&k.key);
                        if !is_stale(&k.title, &tag, current_version) {
                            continue;
                        }
                        // GitHub's `last_used`: was the previous key used after it stopped being
                        // current?
                        if previous_key.as_ref() == Some(&body)
                            && let (Some(used), Some(at)) = (k.last_used.as_deref(), retired_at)
                            && api::parse_time(used).is_some_and(|u| u > at)
                        {
                            v.report_previous_in_use(
                                &format!("deploy key {} on {owner}/{repo}", k.id),
                                &format!("GitHub last saw it used at {used}"),
                            );
                        }
                        self.api.delete_key(token, owner, repo, k.id, until).await?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_deploy_keys_are_ours() {
        let ours = secret_tag("arn:ours");
        let theirs = secret_tag("arn:theirs");
        let t = |tag: &str, version: &str| format!("{TITLE_PREFIX}{tag} {version}");
        let rows = [
            (
                t(&ours, "v1"),
                true,
                "ours, a version that is not AWSCURRENT's",
            ),
            (t(&ours, "v2"), false, "ours, AWSCURRENT's own key"),
            (t(&theirs, "v1"), false, "another secret's"),
            (format!("{TITLE_PREFIX}v1"), false, "the untagged title"),
            (
                format!("{TITLE_PREFIX}{ours} v1 x"),
                false,
                "more after the version",
            ),
            (format!("{TITLE_PREFIX}{ours} "), false, "no version"),
            ("laptop of alice".into(), false, "a person's"),
            (format!("{ours} v1"), false, "no prefix"),
        ];
        for (title, stale, why) in rows {
            assert_eq!(is_stale(&title, &ours, "v2"), stale, "{why}: {title}");
        }
    }

    #[test]
    fn a_previous_key_is_known_by_the_private_key_we_hold() {
        let (private, public) = generate_key("t").unwrap();
        assert_eq!(public_of(&private), Some(key_body(&public)));
        // A `public_key` field copied from elsewhere proves nothing: only a private key counts.
        assert_eq!(public_of(&SecretString::from(public.as_str())), None);
    }

    #[test]
    fn titles_name_the_secret_and_the_version() {
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:ci-key-AbCdEf";
        let t = title(arn, "v1");
        assert!(t.starts_with(TITLE_PREFIX), "{t}");
        let tag = secret_tag(arn);
        assert_eq!(tag.len(), 12);
        assert_ne!(
            tag,
            secret_tag("arn:aws:secretsmanager:us-east-1:1:secret:write-key-XyZ")
        );
        assert!(is_stale(&t, &tag, "v2") && !is_stale(&t, &tag, "v1"));
    }
}
