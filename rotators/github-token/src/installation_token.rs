//! `app-installation-token` (an *issuer*): a GitHub App installation token, minted with the App's
//! JWT and scoped to what the secret's tags allow; the previous token is revoked when
//! `RETIRE_PREVIOUS` says (the next rotation, or finishSecret). Tokens live one hour, so infra/
//! refreshes them on a schedule of its own (Secrets Manager's runs at most every four hours).

use crate::secret::GhSecret;
use crate::{App, RefreshList, api, current_and_pending, pinned};
use async_trait::async_trait;
use serde_json::Value;
use shared::config::Retire;
use shared::preflight::Check;
use shared::retry::budget;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use shared::{Error, SecretString, Target, TargetKind, Versions};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long GitHub's installation tokens live.
const LIFETIME: Duration = Duration::from_secs(3600);

pub struct InstallationToken {
    pub app: Arc<App>,
}

/// The token a value holds, minted when its `expires_at` says (an hour before): how long a 401
/// may only mean "too new" (`api::Token`). Never later than now: an `expires_at` more than an
/// hour away (a writer's) would otherwise keep a refused token "too new" for as long as it says.
fn stored_token(s: &GhSecret) -> Option<api::Token> {
    let secret = s.credential.clone()?;
    let minted = api::parse_time(s.str_field("expires_at"))
        .and_then(|e| e.checked_sub(LIFETIME))
        .map(|m| m.min(SystemTime::now()));
    Some(api::Token { secret, minted })
}

/// Whether the deployment refreshes this secret, judged by its configuration: Secrets Manager's
/// own schedule (every 4 hours at best) cannot keep an hour-long token fresh, so a token secret
/// that the templates' refresh schedule does not name (`GITHUB_TOKEN_SECRET_ARNS`, filled from
/// the same list as the schedule) fails, whatever its token's age today.
fn refreshed(list: &RefreshList, arn: &str) -> Check {
    const NAME: &str = "refresh schedule";
    if list.contains(arn) {
        Check::ok(
            NAME,
            format!(
                "{} names this secret: the stack's schedule refreshes it",
                RefreshList::ENV
            ),
        )
    } else {
        Check::failed(
            NAME,
            format!(
                "the secret has no refresh schedule from this stack: {} does not name it, and its tokens \
                 expire within the hour; add its ARN to GitHubTokenSecretArns (SAM) or \
                 github_token_secret_arns (Terraform)",
                RefreshList::ENV
            ),
        )
    }
}

#[async_trait]
impl Target for InstallationToken {
    fn kind(&self) -> TargetKind {
        TargetKind::Issuer
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let (current, scope) = pinned(v, v.current().await?, AWSCURRENT)?;
        let pem = self.app.app_key(v, &current).await?;
        let minted = self
            .app
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

    async fn discard(&self, v: &Versions<'_>, minted: &SecretString) -> Result<(), Error> {
        match stored_token(&GhSecret::parse(minted, AWSPENDING)?) {
            Some(token) => self.app.api.revoke(&token, budget(v.deadline())).await,
            None => Ok(()),
        }
    }

    /// GitHub minted it: nothing to set, once the value is checked (the protocol checked its seal).
    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        current_and_pending(v).await.map(drop)
    }

    /// The token lists the installation's repositories: exactly the scope's, when it has some.
    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        let (_, pending, scope) = current_and_pending(v).await?;
        // The protocol checked the seal (keyed by the App's key, `seal_key`) of every value but a
        // probe of the rotation configuration (`RotateImmediately=false`): a copy of AWSCURRENT,
        // sealed for AWSCURRENT's own version. Its token is tested as it is, which promotes
        // nothing; before the first rotation it has none, and the App's key and installation are
        // what can be proved.
        let Some(token) = stored_token(&pending) else {
            if v.is_probe().await {
                let pem = self.app.app_key(v, &pending).await?;
                let (id, until) = (pending.installation_id, budget(v.deadline()));
                let api = &self.app.api;
                return api
                    .installation(pending.app_id, &pem, id, until)
                    .await
                    .map(drop);
            }
            return Err(Error::value(AWSPENDING, "field `token` is missing"));
        };
        let reached = self
            .app
            .api
            .repositories(&token, budget(v.deadline()))
            .await?;
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

    /// The shared checks with the permissions the token is scoped to, and whether the current
    /// token still works.
    async fn check(&self, v: &Versions<'_>, _retire: Retire) -> Vec<Check> {
        let permissions = |_: &GhSecret, scope: &Value| {
            scope["permissions"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (mut checks, current) = match self.app.check(v, permissions).await {
            Ok(passed) => passed,
            Err(stopped) => return stopped,
        };
        checks.push(Check::not_verified(
            "repositories",
            "which repositories a token reaches is checked by testSecret; listing them needs a token, and minting one is a write",
        ));
        checks.push(refreshed(&self.app.refreshed, v.arn()));
        if let Some(token) = stored_token(&current) {
            checks.push(Check::of(
                "current credentials",
                "the AWSCURRENT token works",
                self.app.api.token_works(&token, budget(v.deadline())).await,
            ));
        }
        checks
    }

    async fn seal_key(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        self.app.seal_key(v).await
    }

    /// Revokes the previous token (never the current one) once `Versions::may_retire_previous`
    /// allows it. Too soon (a refresh or rotation made the current token minutes ago, and
    /// consumers may still cache the previous one) it is left to expire on its own within the
    /// hour, and the step goes on.
    async fn retire(&self, v: &Versions<'_>, when: Retire) -> Result<(), Error> {
        let (current, _) = pinned(v, v.current().await?, AWSCURRENT)?;
        let previous = match v.previous().await? {
            Some(p) => GhSecret::parse(p, AWSPREVIOUS)
                .ok()
                .and_then(|p| stored_token(&p)),
            None => None,
        };
        match previous {
            Some(old) if Some(&old.secret) != current.credential.as_ref() => {
                match v
                    .may_retire_previous(when, "revoking the previous installation token")
                    .await
                {
                    Ok(()) => self.app.api.revoke(&old, budget(v.deadline())).await,
                    Err(Error::TooSoon(why)) => {
                        tracing::info!(%why, "the previous token is not revoked; it expires on its own within the hour");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 401 is "too new" for at most `api::YOUNG` (10 s) from now, whatever `expires_at` says.
    #[test]
    fn a_stored_token_is_young_for_at_most_ten_seconds() {
        let token = |expires_at: &str| {
            let v = serde_json::json!({"kind": "app-installation-token", "app_id": 1, "installation_id": 2,
                "private_key_secret_arn": "arn:k", "token": "ghs_x", "expires_at": expires_at});
            stored_token(&GhSecret::parse(&SecretString::new(v.to_string()), AWSCURRENT).unwrap())
                .unwrap()
        };
        let bound = SystemTime::now() + api::YOUNG;
        for far in ["2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
            let young = token(far).young_until().unwrap();
            assert!(
                young <= SystemTime::now() + api::YOUNG && young >= bound,
                "{far}"
            );
        }
        assert!(token("2020-01-01T00:00:00Z").young_until().unwrap() < SystemTime::now());
        // A date no clock holds is no youth at all, and no panic.
        assert_eq!(token("300000000000-01-01T00:00:00Z").young_until(), None);
    }

    #[test]
    fn a_token_secret_the_schedule_does_not_name_fails_the_preflight() {
        use shared::preflight::Status;
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-token-AbCdEf";
        let list = |text: &str| RefreshList::parse(text).unwrap();
        assert_eq!(refreshed(&list(arn), arn).status, Status::Ok);
        assert_eq!(
            refreshed(&list(&format!("a, {arn}")), arn).status,
            Status::Ok
        );
        // Full ARNs only: the ARN without its random suffix would also name a later secret of
        // that name, and the listed ARN is no prefix of another secret's.
        for other in [
            "",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-tok",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-token",
            &arn.replace("-AbCdEf", ""),
        ] {
            let missing = refreshed(&list(other), arn);
            assert_eq!(missing.status, Status::Failed);
            assert!(
                missing
                    .message
                    .contains("no refresh schedule from this stack"),
                "{missing:?}"
            );
        }
        assert!(RefreshList::parse("arn:aws:secretsmanager:us-east-1:1:secret:ci-*").is_err());
    }
}
