//! Rotates database passwords for PostgreSQL and MySQL/MariaDB (RDS, Aurora or self-run), with the
//! secret format of AWS's RDS templates.
//!
//! - Single user (no `masterarn`): the user changes its own password, logging in with the
//!   `AWSCURRENT` password, or `AWSPREVIOUS` when a half-finished rotation already changed it.
//! - Alternating users (`masterarn` set): each rotation sets a new password on the partner of the
//!   current user (`user` <-> `user_clone`), with the master secret's credentials, so the current
//!   user keeps working until the next rotation. The master acts only after the current
//!   credentials logged in, and never on itself. The original user is the source of privileges:
//!   every setSecret copies them onto the clone (PostgreSQL: membership in the original role and
//!   its attributes; MySQL/MariaDB: grants, roles, default roles, `REQUIRE`), and testSecret
//!   refuses a pending user whose privileges differ from the current user's.

pub mod db;
pub mod master;
pub mod mysql;
pub mod mysql_wire;
pub mod net;
pub mod postgres;
pub mod privileges;
pub mod rds;
pub mod secret;
pub mod sql;

use async_trait::async_trait;
use db::{Clock, Session, Settings};
use secret::{DbSecret, Engine, pair};
use shared::config::Retire;
use shared::password::PasswordPolicy;
use shared::preflight::Check;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use shared::{Error, SecretString, Target, TargetKind, Versions};

pub const ROTATOR: &str = "db-password";

/// Characters never put in a generated password unless `EXCLUDE_CHARACTERS` says otherwise: the
/// templates' `/@"'\` plus what breaks connection URLs and key=value DSNs (`:?#[]%&+=;` and the
/// backquote), so a password can be pasted into any connection string unescaped.
pub const DEFAULT_EXCLUDED: &str = "/@\"'\\:?#[]%&+=;`";

const MASTER: &str = "master secret";

pub fn default_policy() -> PasswordPolicy {
    PasswordPolicy {
        exclude_characters: DEFAULT_EXCLUDED.into(),
        ..PasswordPolicy::default()
    }
}

pub struct DbPassword {
    pub policy: PasswordPolicy,
    pub settings: Settings,
    /// The master secrets alternating users may name (`DB_MASTER_SECRET_ARNS`).
    pub masters: master::MasterAllowList,
    /// Finds the database of an RDS-managed master secret.
    pub rds: aws_sdk_rds::Client,
}

#[async_trait]
impl Target for DbPassword {
    fn kind(&self) -> TargetKind {
        TargetKind::Updater
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let current = DbSecret::parse(v.current().await?, AWSCURRENT)?;
        let username = current
            .pending_user()
            .map_err(|e| Error::value(AWSCURRENT, e))?;
        Ok(current.with_credentials(&username, &self.policy.generate()))
    }

    /// `AWSCURRENT`, and for a single user `AWSPREVIOUS` too: its setSecret falls back on
    /// `AWSPREVIOUS`'s password when `AWSCURRENT`'s does not log in, so a writer who replaced
    /// `AWSCURRENT` with a value they know (the live password moves to `AWSPREVIOUS`) must not be
    /// able to seal a value of theirs. A master never falls back, and reads no more.
    async fn seal_key(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let current = v.current().await?;
        let single = DbSecret::parse(current, AWSCURRENT).is_ok_and(|c| c.masterarn.is_none());
        let current = current.expose();
        let previous = match single {
            true => v.previous().await?.map_or("", |p| p.expose()),
            false => "",
        };
        // Sized first, so no reallocation leaves a copy that `SecretString` does not wipe.
        let mut key = String::with_capacity(current.len() + 1 + previous.len());
        key.push_str(current);
        key.push('\0');
        key.push_str(previous);
        Ok(SecretString::new(key))
    }

    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        let pending = DbSecret::parse(v.pending().await?, AWSPENDING)?;
        let current = DbSecret::parse(v.current().await?, AWSCURRENT)?;
        same_place(&pending, &current)?;
        match &current.masterarn {
            None => self.set_own_password(v, &pending, &current).await,
            // The master gives the user the pending password beside the current one.
            Some(masterarn) if current.dual_password => {
                let mut conn = self.master_login(v, masterarn, &current).await?;
                conn.add_password(&pending.username, &pending.password, &current.password)
                    .await
                    .map_err(Error::target)
            }
            // Always the whole sequence: it is idempotent, and a shortcut on "the pending
            // password already logs in" would promote a clone whose privileges never arrived.
            Some(masterarn) => {
                self.set_alternate_user(v, masterarn, &pending, &current)
                    .await
            }
        }
    }

    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        let pending = DbSecret::parse(v.pending().await?, AWSPENDING)?;
        // A probe of the rotation configuration (`RotateImmediately=false`) is a copy of
        // AWSCURRENT, whose user is not the partner a rotation moves to: its credentials must log
        // in, and nothing is compared or changed. Only the alternating test tells the two apart
        // (and reads AWSCURRENT anyway); a single user's test is the same login either way.
        let Some(masterarn) = pending.masterarn.as_ref().filter(|_| pending.alternating()) else {
            self.pending_login(v, &pending).await?;
            return Ok(());
        };
        if v.is_probe().await {
            self.pending_login(v, &pending).await?;
            return Ok(());
        }
        let current = DbSecret::parse(v.current().await?, AWSCURRENT)?;
        same_place(&pending, &current)?;
        let (original, clone) =
            pair(&current.username, current.engine).map_err(|e| Error::value(AWSCURRENT, e))?;
        let mut reader = if pending.engine == Engine::Postgres {
            // The catalog is readable by the pending user itself.
            self.pending_login(v, &pending).await?
        } else {
            // Reading another account's grants takes the master; its logins run alongside.
            let (conn, admin) = tokio::join!(
                self.pending_login(v, &pending),
                self.master_login(v, masterarn, &current)
            );
            conn?;
            admin?
        };
        let mut differences = reader
            .differences(&original, &clone)
            .await
            .map_err(Error::target)?;
        // Set up whenever the clone is the pending user; an older pair, with the clone current,
        // gets it at the next rotation that moves to the clone.
        if pending.username == clone {
            differences.extend(
                reader
                    .owner_differences(&original, &clone)
                    .await
                    .map_err(Error::target)?,
            );
        }
        if differences.is_empty() {
            return Ok(());
        }
        Err(Error::target(format!(
            "the pending user `{}` does not have the privileges of the current user `{}`, so it is not promoted: {}",
            pending.username,
            current.username,
            differences.join("; ")
        )))
    }

    /// Dual passwords: the account keeps only `AWSCURRENT`'s password, when `RETIRE_PREVIOUS`
    /// says (at the next rotation's createSecret by default, so a consumer that cached the old
    /// one has a whole rotation period). Otherwise nothing to retire: a single user's old
    /// password stopped working when setSecret changed it, and in alternating mode the previous
    /// user stays valid until the next rotation's setSecret gives it a new password (which
    /// reports any open session of it).
    async fn retire(&self, v: &Versions<'_>, when: Retire) -> Result<(), Error> {
        let current = DbSecret::parse(v.current().await?, AWSCURRENT)?;
        let Some(masterarn) = current.masterarn.as_ref().filter(|_| current.dual_password) else {
            return Ok(());
        };
        v.may_retire_previous(
            when,
            &format!(
                "removing the previous password of user {:?}",
                current.username
            ),
        )
        .await?;
        let mut conn = self.master_login(v, masterarn, &current).await?;
        conn.keep_only_password(&current.username, &current.password)
            .await
            .map_err(Error::target)
    }

    /// The current value parses; the current credentials log in (over the configured TLS); in
    /// alternating mode the pair fits, the master secret is readable, on this database, not one
    /// of the pair, and its credentials log in. Nothing is changed.
    async fn check(&self, v: &Versions<'_>, _retire: Retire) -> Vec<Check> {
        let mut checks = Vec::new();
        let current = match shared::preflight::current_as(v, DbSecret::parse).await {
            Ok(c) => c,
            Err(failed) => return vec![failed],
        };
        let tls = if current.ssl {
            "TLS verify-full"
        } else {
            "plain text (the secret says \"ssl\": false)"
        };
        checks.push(Check::ok(
            "AWSCURRENT value",
            format!(
                "{} user {:?} at {}",
                current.engine.name(),
                current.username,
                current.endpoint()
            ),
        ));
        let login = self
            .login(v, &current, &current)
            .await
            .map(drop)
            .map_err(Error::target);
        let proved = login.is_ok();
        checks.push(Check::of(
            "current credentials",
            format!(
                "user {:?} logs in at {} over {tls}",
                current.username,
                current.endpoint()
            ),
            login,
        ));
        let Some(masterarn) = &current.masterarn else {
            return checks;
        };
        if current.dual_password {
            checks.push(Check::ok(
                "dual passwords",
                format!(
                    "user {:?} keeps its current password beside the new one until the previous credential is retired",
                    current.username
                ),
            ));
        } else {
            let pair =
                pair(&current.username, current.engine).map_err(|e| Error::value(AWSCURRENT, e));
            let pair_text = pair
                .as_ref()
                .map(|(o, c)| format!("alternates between {o:?} and {c:?}"));
            checks.push(Check::of(
                "alternating users",
                pair_text.unwrap_or_default(),
                pair,
            ));
        }
        let master = self.master(v, masterarn, &current).await;
        let Ok(master) = master else {
            checks.push(Check::of("master secret", "", master));
            return checks;
        };
        checks.push(Check::ok(
            "master secret",
            format!(
                "{masterarn} is readable, for {} at {}, and its user is not one of the pair",
                current.engine.name(),
                master.endpoint()
            ),
        ));
        let place = master_place(&master, &current);
        if !proved {
            // As in every step: no master login before the current credentials proved themselves.
            checks.push(Check::of(
                "master credentials",
                "not tried",
                Err::<(), _>(Error::target(
                    "the AWSCURRENT credentials do not log in, so the master secret is not used",
                )),
            ));
            return checks;
        }
        let detail = format!(
            "master user {:?} logs in at {}",
            master.username,
            master.endpoint()
        );
        let mut conn = match self.login(v, &place, &master).await {
            Ok(conn) => {
                checks.push(Check::ok("master credentials", detail));
                conn
            }
            Err(e) => {
                let e = Error::target(format!("the master credentials do not log in: {e}"));
                checks.push(Check::of("master credentials", detail, Err::<(), _>(e)));
                return checks;
            }
        };
        if current.dual_password {
            let can = conn.dual_password_privilege().await;
            let text = can.clone().unwrap_or_default();
            checks.push(Check::of(
                "dual password privilege",
                text,
                can.map_err(Error::target),
            ));
        }
        checks
    }
}

/// Where the master logs in: its own secret's database, never the application's (whose owner
/// may have set its `search_path` or planted objects there; role statements are cluster-wide),
/// over TLS when either its own secret or AWSCURRENT asks for it, since the pending password
/// travels on this session.
fn master_place(master: &DbSecret, current: &DbSecret) -> DbSecret {
    let mut place = master.clone();
    place.ssl = master.ssl || current.ssl;
    place
}

/// A rotation may change the password, and in alternating mode switch to the partner user; it
/// never moves the database or picks another user.
fn same_place(pending: &DbSecret, current: &DbSecret) -> Result<(), Error> {
    let differs = |field: &str, p: &str, c: &str, why: &str| {
        Error::value(
            AWSPENDING,
            format!("field `{field}` is {p:?} but AWSCURRENT has {c:?}; {why}"),
        )
    };
    let moved = "a rotation cannot move the database";
    if pending.engine != current.engine {
        return Err(differs(
            "engine",
            pending.engine.name(),
            current.engine.name(),
            moved,
        ));
    }
    if pending.host != current.host {
        return Err(differs("host", &pending.host, &current.host, moved));
    }
    if pending.port != current.port {
        return Err(differs(
            "port",
            &pending.port.to_string(),
            &current.port.to_string(),
            moved,
        ));
    }
    if pending.ssl != current.ssl {
        return Err(Error::value(
            AWSPENDING,
            format!(
                "field `ssl` is {} but AWSCURRENT's is {}; a rotation cannot change the transport",
                pending.ssl, current.ssl
            ),
        ));
    }
    if pending.dual_password != current.dual_password {
        return Err(Error::value(
            AWSPENDING,
            "field `dual_password` differs from AWSCURRENT's; a rotation cannot change its mode",
        ));
    }
    if pending.masterarn != current.masterarn {
        return Err(Error::value(
            AWSPENDING,
            "field `masterarn` differs from AWSCURRENT's; a rotation cannot change the master secret",
        ));
    }
    let want = current
        .pending_user()
        .map_err(|e| Error::value(AWSCURRENT, e))?;
    if pending.username != want {
        let why = match current.alternating() {
            false => "a single-user rotation keeps the user".to_string(),
            true => format!("alternating users rotate the partner of the current user, {want:?}"),
        };
        return Err(differs(
            "username",
            &pending.username,
            &current.username,
            &why,
        ));
    }
    Ok(())
}

impl DbPassword {
    /// testSecret's proof: the pending credentials log in and run a statement.
    async fn pending_login(
        &self,
        v: &Versions<'_>,
        pending: &DbSecret,
    ) -> Result<Box<dyn Session>, Error> {
        let mut conn = self
            .login(v, pending, pending)
            .await
            .map_err(|e| Error::target(format!("the AWSPENDING credentials do not work: {e}")))?;
        conn.ping().await.map_err(Error::target)?;
        Ok(conn)
    }

    /// Every login of a step shares the step's time budget.
    async fn login(
        &self,
        v: &Versions<'_>,
        target: &DbSecret,
        login: &DbSecret,
    ) -> Result<Box<dyn Session>, String> {
        db::connect(target, login, &self.settings, Clock::new(v.deadline())).await
    }

    /// Single user: log in as the user with AWSCURRENT, else AWSPREVIOUS, and change the password.
    async fn set_own_password(
        &self,
        v: &Versions<'_>,
        pending: &DbSecret,
        current: &DbSecret,
    ) -> Result<(), Error> {
        // AWSCURRENT first: it logs in on every first attempt, so a rotation costs one login
        // here, and the database sees no failed login.
        let mut conn = match self.login(v, current, current).await {
            Ok(conn) => conn,
            Err(current_error) => {
                // A retry after this step already changed the password.
                if self.login(v, pending, pending).await.is_ok() {
                    tracing::info!("the pending password already logs in; nothing to set");
                    return Ok(());
                }
                // AWSPREVIOUS may hold the live password (a PutSecretValue moves AWSCURRENT
                // there): it is only ever sent to its own database, and only when that is the
                // current one. Otherwise an AWSCURRENT written to point at another server would
                // collect it.
                let previous = match v.previous().await? {
                    Some(p) => DbSecret::parse(p, AWSPREVIOUS).ok().filter(|p| {
                        p.username == current.username
                            && p.engine == current.engine
                            && p.host == current.host
                            && p.port == current.port
                    }),
                    None => None,
                };
                let Some(previous) = previous else {
                    return Err(Error::target(format!(
                        "neither the AWSPENDING nor the AWSCURRENT password logs in: {current_error}"
                    )));
                };
                // The new password will travel with AWSCURRENT's setting; a password that had
                // TLS is never replaced by one sent in plain text. The login uses AWSCURRENT's
                // setting, so a previous value saying `"ssl": false` still gets TLS when
                // AWSCURRENT has it, and a change is only made that AWSCURRENT can then test.
                if previous.ssl && !current.ssl {
                    return Err(Error::value(
                        AWSCURRENT,
                        format!(
                            "field `ssl` is false but AWSPREVIOUS, whose password still logs in, uses TLS: the password is not replaced by one sent in plain text ({current_error})"
                        ),
                    ));
                }
                self.login(v, current, &previous).await.map_err(|e| {
                    Error::target(format!(
                        "none of the AWSPENDING, AWSCURRENT and AWSPREVIOUS passwords logs in: {current_error}; with AWSPREVIOUS: {e}"
                    ))
                })?
            }
        };
        conn.set_own_password(&pending.username, &pending.password)
            .await
            .map_err(Error::target)
    }

    /// The master secret, with the database of an RDS-managed one (only `username` and
    /// `password`) found from its tag, as the templates do. It must be allowed by the function's
    /// configuration or be RDS's own master secret of this database; it must be on the secret's
    /// database, and neither user of the pair may be the master.
    async fn master(
        &self,
        v: &Versions<'_>,
        masterarn: &str,
        current: &DbSecret,
    ) -> Result<DbSecret, Error> {
        let allowed = self.masters.allows(masterarn);
        // Not configured: only RDS's own master secret, which its `aws:rds:` tags prove (the
        // `aws:` prefix is reserved to AWS) and whose database is checked below.
        let tags = match allowed {
            true => None,
            false => Some(v.other_secret_tags(masterarn).await?),
        };
        if tags
            .as_deref()
            .is_some_and(|t| rds::primary_from_tags(t).is_none())
        {
            return Err(Error::value(
                AWSCURRENT,
                format!(
                    "field `masterarn`: {masterarn} is not in the function's {} and is not an RDS-managed master secret, so it is not used (list it in {} to allow it)",
                    master::MasterAllowList::ENV,
                    master::MasterAllowList::ENV
                ),
            ));
        }
        let raw = v.other_secret(masterarn).await?;
        let mut fields = raw.json_object().map_err(|e| Error::value(MASTER, e))?;
        if !allowed && !rds::is_managed_shape(&fields) {
            return Err(Error::value(
                AWSCURRENT,
                format!(
                    "field `masterarn`: {masterarn} carries RDS's tags but not the shape of an RDS-managed secret (only `username` and `password`), and is not in the function's {}",
                    master::MasterAllowList::ENV
                ),
            ));
        }
        let master = if rds::is_managed_shape(&fields) {
            let tags = match tags {
                Some(t) => t,
                None => v.other_secret_tags(masterarn).await?,
            };
            let primary = rds::primary_from_tags(&tags).ok_or_else(|| {
                Error::value(
                    MASTER,
                    format!(
                        "field `host` is missing, and {masterarn} has no {} or {} tag, so it is not an RDS-managed secret whose database could be looked up",
                        rds::INSTANCE_TAG,
                        rds::CLUSTER_TAG
                    ),
                )
            })?;
            let found = rds::endpoint(&self.rds, &primary)
                .await
                .map_err(|e| Error::target(format!("finding the master secret's database: {e}")))?;
            fields.insert("host".into(), found.host.into());
            fields.insert("port".into(), found.port.into());
            fields.insert("engine".into(), found.engine.into());
            DbSecret::parse(&SecretString::from_json(&fields), MASTER)?
        } else {
            DbSecret::parse(&raw, MASTER)?
        };
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
        if master.engine != current.engine {
            return Err(Error::value(
                MASTER,
                format!(
                    "field `engine` is {} but the secret's is {}",
                    master.engine.name(),
                    current.engine.name()
                ),
            ));
        }
        let pending = current
            .pending_user()
            .map_err(|e| Error::value(AWSCURRENT, e))?;
        for (which, user) in [("current", &current.username), ("pending", &pending)] {
            if *user == master.username {
                return Err(Error::value(
                    AWSCURRENT,
                    format!(
                        "field `username`: the {which} user {user:?} is the master user; the master never rotates itself"
                    ),
                ));
            }
        }
        Ok(master)
    }

    /// Logs in as the master, after proving that the current credentials log in: a secret
    /// writer who does not hold a working credential for the pair never gets the master to act.
    async fn master_login(
        &self,
        v: &Versions<'_>,
        masterarn: &str,
        current: &DbSecret,
    ) -> Result<Box<dyn Session>, Error> {
        let master = self.master(v, masterarn, current).await?;
        let place = master_place(&master, current);
        // Both logins at once (one round trip of latency, not two); the master's session is only
        // used, and otherwise dropped unused, once the current credentials proved themselves.
        let (proof, admin) = tokio::join!(
            self.login(v, current, current),
            self.login(v, &place, &master)
        );
        proof.map_err(|e| {
            Error::target(format!(
                "the AWSCURRENT credentials do not log in, so the master secret is not used: {e}"
            ))
        })?;
        admin.map_err(|e| Error::target(format!("the master credentials do not log in: {e}")))
    }

    /// Alternating users: with the master's credentials, make the pending user exist with the
    /// pending password, and the clone hold the original's privileges.
    async fn set_alternate_user(
        &self,
        v: &Versions<'_>,
        masterarn: &str,
        pending: &DbSecret,
        current: &DbSecret,
    ) -> Result<(), Error> {
        // The pending user is the previous one: a new password retires what a consumer may still
        // hold, so it keeps its minimum age whatever RETIRE_PREVIOUS says (back-to-back rotations).
        v.may_retire_previous(
            Retire::NextRotation,
            &format!(
                "setting a new password on the previous user {:?}",
                pending.username
            ),
        )
        .await?;
        let mut conn = self.master_login(v, masterarn, current).await?;
        let (original, clone) =
            pair(&current.username, current.engine).map_err(|e| Error::value(AWSCURRENT, e))?;
        let user = pending.username.as_str();
        let pending_is_clone = user == clone;
        // Privileges only ever flow onto the pending user. When the current user is the clone,
        // the pair was set up by an earlier rotation, so the clone already holds the original's
        // privileges; a clone that does not (a leftover role whose password the writer knows)
        // must not get the original's password reset and stored for it.
        if !pending_is_clone {
            let differences = conn
                .differences(&original, &clone)
                .await
                .map_err(Error::target)?;
            if !differences.is_empty() {
                return Err(Error::target(format!(
                    "the current user `{clone}` does not hold the privileges of `{original}`, so `{original}`'s password is not changed: {}",
                    differences.join("; ")
                )));
            }
        }
        // A role already named like the clone must be this pair's: holding nothing the original
        // does not (a crash may have left it before its privileges arrived). Another role of
        // that name is never taken over.
        if pending_is_clone {
            let extras = conn
                .clone_extras(&original, &clone)
                .await
                .map_err(Error::target)?;
            if !extras.is_empty() {
                return Err(Error::target(format!(
                    "a user `{clone}` exists that is not the clone of `{original}`, so its password is not changed: {}",
                    extras.join("; ")
                )));
            }
        }
        let clone_of = pending_is_clone.then_some(original.as_str());
        conn.set_password(user, &pending.password, clone_of)
            .await
            .map_err(Error::target)?;
        if pending_is_clone {
            conn.copy_privileges(&original, &clone)
                .await
                .map_err(Error::target)?;
        }
        // The pending user was the previous one: sessions of it mean a consumer never refreshed.
        match conn.sessions_of(user).await {
            Ok(0) => {}
            Ok(n) => v.report_previous_in_use(user, &format!("{n} open sessions")),
            Err(e) => {
                tracing::info!(error = %e, "cannot tell whether the previous user is still in use")
            }
        }
        Ok(())
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
            (
                serde_json::json!({"engine": "postgres", "host": "a", "username": "u", "password": "p", "masterarn": "m"}),
                "field `masterarn`",
            ),
        ];
        for (pending, want) in cases {
            let err = same_place(&secret(pending), &current)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want) && err.contains("AWSPENDING"), "{err}");
        }
    }

    #[test]
    fn alternating_users_rotate_only_the_partner_of_the_current_user() {
        let current = secret(
            serde_json::json!({"engine": "postgres", "host": "a", "username": "app", "password": "p", "masterarn": "m"}),
        );
        let pending = |user: &str| {
            secret(
                serde_json::json!({"engine": "postgres", "host": "a", "username": user, "password": "q", "masterarn": "m"}),
            )
        };
        same_place(&pending("app_clone"), &current).unwrap();
        for other in ["postgres", "app", "app_clone_clone", "other_clone"] {
            let err = same_place(&pending(other), &current)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("field `username`") && err.contains("\"app_clone\""),
                "{other}: {err}"
            );
        }
    }
}
