//! Rotates database passwords for PostgreSQL and MySQL/MariaDB, with the secret format of AWS's
//! RDS templates.
//!
//! - Single user (no `masterarn`): the user changes its own password, logging in with the
//!   `AWSCURRENT` password, or `AWSPREVIOUS` when a half-finished rotation already changed it.
//! - Alternating users (`masterarn` set): each rotation sets a new password on the user that is
//!   *not* current (`user` / `user_clone`), with the master secret's credentials, so the current
//!   user keeps working until the next rotation. The clone gets the original's privileges: in
//!   PostgreSQL by role membership, in MySQL/MariaDB by replaying `SHOW GRANTS` every rotation.

pub mod db;
pub mod secret;
pub mod sql;

use async_trait::async_trait;
use db::{Conn, Settings};
use secret::{DbSecret, clone_name};
use shared::password::PasswordPolicy;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use shared::{Error, SecretString, Target, TargetKind, Versions};

pub const ROTATOR: &str = "db-password";

/// The variables this rotator reads besides `shared::config::ENV` and the password policy's.
pub const ENV: &[&str] = &[
    "DB_CA_BUNDLE_FILE",
    "DB_CA_BUNDLE_PEM",
    "DB_CONNECT_TIMEOUT_SECONDS",
    "DB_STATEMENT_TIMEOUT_SECONDS",
];

/// Characters never put in a generated password unless `EXCLUDE_CHARACTERS` says otherwise: the
/// templates' `/@"'\` plus what breaks connection URLs and key=value DSNs (`:?#[]%&+=;` and the
/// backquote), so a password can be pasted into any connection string unescaped.
pub const DEFAULT_EXCLUDED: &str = "/@\"'\\:?#[]%&+=;`";

pub fn default_policy() -> PasswordPolicy {
    PasswordPolicy {
        exclude_characters: DEFAULT_EXCLUDED.into(),
        ..PasswordPolicy::default()
    }
}

pub struct DbPassword {
    pub policy: PasswordPolicy,
    pub settings: Settings,
}

#[async_trait]
impl Target for DbPassword {
    fn kind(&self) -> TargetKind {
        TargetKind::Updater
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let current = DbSecret::parse(v.current().await?, AWSCURRENT)?;
        let username = match &current.masterarn {
            None => current.username.clone(),
            Some(_) => {
                // Toggle back to the previous user when there is one, so a name cut to fit the
                // engine's limit never has to be reversed.
                let previous = match v.previous().await? {
                    Some(p) => DbSecret::parse(p, AWSPREVIOUS).ok().map(|p| p.username),
                    None => None,
                };
                match previous.filter(|p| *p != current.username) {
                    Some(p) => p,
                    None => match current.username.strip_suffix("_clone") {
                        Some(base) => base.to_owned(),
                        None => clone_name(&current.username, current.engine),
                    },
                }
            }
        };
        Ok(current.with_credentials(&username, &self.policy.generate()))
    }

    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        let pending = DbSecret::parse(v.pending().await?, AWSPENDING)?;
        let current = DbSecret::parse(v.current().await?, AWSCURRENT)?;
        same_place(&pending, &current)?;
        if self.login(&pending, &pending).await.is_ok() {
            tracing::info!("the pending password already logs in; nothing to set");
            return Ok(());
        }
        match &current.masterarn {
            None => self.set_own_password(v, &pending, &current).await,
            Some(masterarn) => {
                self.set_alternate_user(v, masterarn, &pending, &current)
                    .await
            }
        }
    }

    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        let pending = DbSecret::parse(v.pending().await?, AWSPENDING)?;
        let mut conn = self
            .login(&pending, &pending)
            .await
            .map_err(|e| Error::target(format!("the AWSPENDING credentials do not work: {e}")))?;
        conn.ping(&self.settings).await.map_err(Error::target)
    }

    /// Nothing to retire: a single user's old password stopped working when it was changed, and
    /// in alternating mode the previous user stays valid until the next rotation, which gives
    /// clients holding it a whole rotation period to refresh.
    async fn retire(&self, _v: &Versions<'_>) -> Result<(), Error> {
        Ok(())
    }
}

/// A rotation may change the user and the password, never where the database is.
fn same_place(pending: &DbSecret, current: &DbSecret) -> Result<(), Error> {
    let differs = |field: &str, p: &str, c: &str| {
        Error::value(
            AWSPENDING,
            format!(
                "field `{field}` is {p:?} but AWSCURRENT has {c:?}; a rotation cannot move the database"
            ),
        )
    };
    if pending.engine != current.engine {
        return Err(differs(
            "engine",
            pending.engine.name(),
            current.engine.name(),
        ));
    }
    if pending.host != current.host {
        return Err(differs("host", &pending.host, &current.host));
    }
    if pending.port != current.port {
        return Err(differs(
            "port",
            &pending.port.to_string(),
            &current.port.to_string(),
        ));
    }
    if current.masterarn.is_none() && pending.username != current.username {
        return Err(differs("username", &pending.username, &current.username));
    }
    Ok(())
}

impl DbPassword {
    async fn login(&self, target: &DbSecret, login: &DbSecret) -> Result<Conn, String> {
        db::connect(target, login, &self.settings).await
    }

    /// Single user: log in as the user with AWSCURRENT, else AWSPREVIOUS, and change the password.
    async fn set_own_password(
        &self,
        v: &Versions<'_>,
        pending: &DbSecret,
        current: &DbSecret,
    ) -> Result<(), Error> {
        let mut conn = match self.login(current, current).await {
            Ok(conn) => conn,
            Err(current_error) => {
                let previous = match v.previous().await? {
                    Some(p) => DbSecret::parse(p, AWSPREVIOUS)
                        .ok()
                        .filter(|p| p.username == current.username),
                    None => None,
                };
                let Some(previous) = previous else {
                    return Err(Error::target(format!(
                        "neither the AWSPENDING nor the AWSCURRENT password logs in: {current_error}"
                    )));
                };
                self.login(current, &previous).await.map_err(|e| {
                    Error::target(format!(
                        "none of the AWSPENDING, AWSCURRENT and AWSPREVIOUS passwords logs in: {current_error}; with AWSPREVIOUS: {e}"
                    ))
                })?
            }
        };
        match conn {
            Conn::Pg(_) => {
                conn.pg_set_password(&self.settings, &pending.username, &pending.password, None)
                    .await
            }
            Conn::My { .. } => {
                conn.my_set_own_password(&self.settings, &pending.password)
                    .await
            }
        }
        .map_err(Error::target)
    }

    /// Alternating users: with the master's credentials, make the pending user exist with the
    /// current user's privileges and the pending password.
    async fn set_alternate_user(
        &self,
        v: &Versions<'_>,
        masterarn: &str,
        pending: &DbSecret,
        current: &DbSecret,
    ) -> Result<(), Error> {
        const MASTER: &str = "master secret";
        let master = DbSecret::parse(&v.other_secret(masterarn).await?, MASTER)?;
        if master.host != current.host || master.port != current.port {
            return Err(Error::value(
                MASTER,
                format!(
                    "field `host`/`port` is {} but the secret's database is at {}",
                    master.endpoint(),
                    current.endpoint()
                ),
            ));
        }
        let s = &self.settings;
        let mut conn = self
            .login(current, &master)
            .await
            .map_err(|e| Error::target(format!("the master credentials do not log in: {e}")))?;
        let (user, from) = (pending.username.as_str(), current.username.as_str());
        match conn {
            Conn::Pg(_) => {
                let create_in = match conn.pg_role_exists(s, user).await.map_err(Error::target)? {
                    true => None,
                    false => Some(from),
                };
                conn.pg_set_password(s, user, &pending.password, create_in)
                    .await
            }
            Conn::My { .. } => {
                let hosts = conn.my_user_hosts(s, from).await.map_err(Error::target)?;
                if hosts.is_empty() {
                    return Err(Error::target(format!(
                        "the current user {from:?} has no account to copy"
                    )));
                }
                for host in hosts {
                    conn.my_sync_user(s, user, &host, &pending.password, from)
                        .await
                        .map_err(Error::target)?;
                }
                Ok(())
            }
        }
        .map_err(Error::target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: serde_json::Value) -> DbSecret {
        DbSecret::parse(&SecretString::new(json.to_string()), AWSCURRENT).unwrap()
    }

    #[test]
    fn default_passwords_are_safe_in_urls_and_dsns() {
        let policy = default_policy();
        for _ in 0..200 {
            let pw = policy.generate();
            assert!(
                !pw.expose().contains(|c| DEFAULT_EXCLUDED.contains(c)),
                "{}",
                pw.expose()
            );
            assert!(pw.expose().chars().any(|c| c.is_ascii_punctuation()));
        }
    }

    #[test]
    fn a_rotation_cannot_move_the_database_or_rename_a_single_user() {
        let current = secret(
            serde_json::json!({"engine": "postgres", "host": "a", "username": "u", "password": "p"}),
        );
        let cases = [
            (
                serde_json::json!({"engine": "mysql", "host": "a", "username": "u", "password": "p"}),
                "field `engine`",
            ),
            (
                serde_json::json!({"engine": "postgres", "host": "b", "username": "u", "password": "p"}),
                "field `host`",
            ),
            (
                serde_json::json!({"engine": "postgres", "host": "a", "port": 1, "username": "u", "password": "p"}),
                "field `port`",
            ),
            (
                serde_json::json!({"engine": "postgres", "host": "a", "username": "v", "password": "p"}),
                "field `username`",
            ),
        ];
        for (pending, want) in cases {
            let err = same_place(&secret(pending), &current)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want) && err.contains("AWSPENDING"), "{err}");
        }
    }
}
