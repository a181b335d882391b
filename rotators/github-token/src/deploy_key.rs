//! `deploy-key` (an *updater*): an Ed25519 SSH deploy key generated here. setSecret registers its
//! public key on the pinned repository under a title that names this secret (a digest of its ARN)
//! and the version; retiring deletes this secret's keys that the current version does not hold,
//! never another secret's (two secrets may rotate keys on one repository), nor a person's.
//!
//! Managing deploy keys uses a short-lived installation token of the same App
//! (`administration: write` on the one repository), revoked as soon as the step is done.

use crate::secret::GhSecret;
use crate::{App, api, current_and_pending, pinned};
use async_trait::async_trait;
use serde_json::json;
use shared::config::Retire;
use shared::preflight::Check;
use shared::retry::budget;
use shared::store::{AWSCURRENT, AWSPREVIOUS};
use shared::{Error, SecretString, Target, TargetKind, Versions};
use std::sync::Arc;

/// Deploy keys we manage are titled with this prefix, the secret's tag and the version id
/// (`secrets-manager-rotation <tag> <version>`).
pub const TITLE_PREFIX: &str = "secrets-manager-rotation ";

pub struct DeployKey {
    pub app: Arc<App>,
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

impl DeployKey {
    /// A short-lived token to manage the pinned repository's deploy keys.
    async fn manager(
        &self,
        v: &Versions<'_>,
        s: &GhSecret,
        write: bool,
    ) -> Result<api::Token, Error> {
        let pem = self.app.app_key(v, s).await?;
        let scope = json!({
            "repositories": [s.str_field("repo")],
            "permissions": {"administration": if write { "write" } else { "read" }},
        });
        Ok(self
            .app
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

    /// testSecret on a probe of the rotation configuration (`RotateImmediately=false`): a copy of
    /// AWSCURRENT, not a key of this version. AWSCURRENT's key (derived from its private key) must
    /// be on the repository with the value's access, whatever its title (the first key may have
    /// been added by hand); before the first rotation there is none, and listing the keys proves
    /// the App reaches the repository. Nothing is registered or deleted.
    async fn test_probe(&self, v: &Versions<'_>) -> Result<(), Error> {
        let (current, _, _) = current_and_pending(v).await?;
        let want = match &current.credential {
            None => None,
            Some(private) => Some(public_of(private).ok_or_else(|| {
                Error::value(
                    AWSCURRENT,
                    "field `private_key` is not an OpenSSH private key",
                )
            })?),
        };
        let (owner, repo) = (current.str_field("owner"), current.str_field("repo"));
        let until = budget(v.deadline());
        let keys = self
            .managed(v, &current, false, async |t| {
                self.app.api.keys(t, owner, repo, until).await
            })
            .await?;
        let Some(want) = want else {
            return Ok(());
        };
        match keys.iter().find(|k| key_body(&k.key) == want) {
            Some(k) if k.read_only == current.read_only() => Ok(()),
            Some(k) => Err(Error::target(format!(
                "AWSCURRENT's deploy key on {owner}/{repo} (id {}) has other access than the value's `read_only`",
                k.id
            ))),
            None => Err(Error::target(format!(
                "AWSCURRENT's deploy key is not on {owner}/{repo}"
            ))),
        }
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
        if let Err(e) = self.app.api.revoke(&token, budget(v.deadline())).await {
            tracing::warn!(error = %e, "could not revoke the management token; it expires within the hour");
        }
        result
    }
}

#[async_trait]
impl Target for DeployKey {
    fn kind(&self) -> TargetKind {
        TargetKind::Updater
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let (current, _) = pinned(v, v.current().await?, AWSCURRENT)?;
        let (private, public) = generate_key(&title(v.arn(), v.token()))?;
        Ok(current.with(private.expose(), &[("public_key", public.into())]))
    }

    /// The protocol checked the value's seal (`seal_key`) first: a planted key never gets here.
    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        let (_, pending, _) = current_and_pending(v).await?;
        let (owner, repo) = (pending.str_field("owner"), pending.str_field("repo"));
        let public = pending.str_field("public_key").to_owned();
        let want = title(v.arn(), v.token());
        let until = budget(v.deadline());
        let gh = &self.app.api;
        self.managed(v, &pending, true, async |token| {
            let keys = gh.keys(token, owner, repo, until).await?;
            match keys.iter().find(|k| k.title == want) {
                Some(k)
                    if k.read_only == pending.read_only()
                        && key_body(&k.key) == key_body(&public) =>
                {
                    return Ok(());
                }
                // Ours for this version but not this key (a value replaced by hand): redo it.
                Some(k) => gh.delete_key(token, owner, repo, k.id, until).await?,
                None => {}
            }
            gh.add_key(
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
        if v.is_probe().await {
            return self.test_probe(v).await;
        }
        let (_, pending, _) = current_and_pending(v).await?;
        let (owner, repo) = (pending.str_field("owner"), pending.str_field("repo"));
        let public = pending.str_field("public_key");
        let want = title(v.arn(), v.token());
        let until = budget(v.deadline());
        let keys = self
            .managed(v, &pending, false, async |t| {
                self.app.api.keys(t, owner, repo, until).await
            })
            .await?;
        match keys.iter().find(|k| k.title == want) {
            Some(k)
                if key_body(&k.key) == key_body(public) && k.read_only == pending.read_only() =>
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

    /// The shared checks, with `administration: write` (to manage deploy keys).
    async fn check(&self, v: &Versions<'_>, _retire: Retire) -> Vec<Check> {
        let needed = |_: &GhSecret, _: &serde_json::Value| {
            vec![("administration".to_owned(), "write".to_owned())]
        };
        let (mut checks, current) = match self.app.check(v, needed).await {
            Ok(passed) => passed,
            Err(stopped) => return stopped,
        };
        checks.push(Check::not_verified(
            "repository",
            format!(
                "access to {}/{} is checked by setSecret; listing its deploy keys needs a token, and minting one is a write",
                current.str_field("owner"),
                current.str_field("repo")
            ),
        ));
        checks
    }

    async fn seal_key(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        self.app.seal_key(v).await
    }

    /// Deletes this secret's keys but the current one (`is_stale`), whenever it runs.
    async fn retire(&self, v: &Versions<'_>, when: Retire) -> Result<(), Error> {
        let (current, _) = pinned(v, v.current().await?, AWSCURRENT)?;
        let (owner, repo) = (current.str_field("owner"), current.str_field("repo"));
        let current_version = v.labels().version_with(AWSCURRENT).unwrap_or(v.token());
        let tag = secret_tag(v.arn());
        // The previous version's key, to report a late use: derived from the version's private
        // key, not its `public_key` field (anyone may copy another secret's public key into this
        // one, nobody its private key).
        let previous_key = match v.previous().await? {
            Some(p) => GhSecret::parse(p, AWSPREVIOUS)
                .ok()
                .and_then(|p| public_of(p.credential.as_ref()?)),
            None => None,
        };
        let previous_title = v
            .labels()
            .version_with(AWSPREVIOUS)
            .map(|p| title(v.arn(), p));
        // The key AWSCURRENT holds stays whatever its title says: a finishSecret run by hand on a
        // RotateImmediately=false probe makes a copy of the current value current under another
        // version id.
        let current_key = current.credential.as_ref().and_then(public_of);
        let until = budget(v.deadline());
        let retired_at = v.previous_retired_at().await?;
        let gh = &self.app.api;
        self.managed(v, &current, true, async |token| {
            for k in gh.keys(token, owner, repo, until).await? {
                let body = key_body(&k.key);
                if !is_stale(&k.title, &tag, current_version) || current_key.as_ref() == Some(&body)
                {
                    continue;
                }
                // The previous version's key (by title, or by key after such a probe) keeps its
                // minimum age, as every previous credential does; an orphan of a crashed attempt
                // served nobody and goes at once.
                if previous_title.as_deref() == Some(k.title.as_str())
                    || previous_key.as_ref() == Some(&body)
                {
                    let what = format!(
                        "deleting the previous deploy key {} on {owner}/{repo}",
                        k.id
                    );
                    v.may_retire_previous(when, &what).await?;
                }
                // GitHub's `last_used`: was the previous key used after it stopped being current?
                if previous_key.as_ref() == Some(&body)
                    && let (Some(used), Some(at)) = (k.last_used.as_deref(), retired_at)
                    && api::parse_time(used).is_some_and(|u| u > at)
                {
                    v.report_previous_in_use(
                        &format!("deploy key {} on {owner}/{repo}", k.id),
                        &format!("GitHub last saw it used at {used}"),
                    );
                }
                gh.delete_key(token, owner, repo, k.id, until).await?;
            }
            Ok(())
        })
        .await
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
