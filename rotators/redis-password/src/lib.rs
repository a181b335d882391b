//! Rotates the password of a Redis 6+ or Valkey ACL user with zero downtime. A user may hold
//! several passwords: setSecret adds the pending one beside the current one, so every consumer
//! keeps working whatever its cache; the old one is removed when the previous credential is
//! retired (`RETIRE_PREVIOUS`). Passwords go to the server as their SHA-256 (`#<hex>`), through
//! the administrator user of `masterarn`, which the function's `REDIS_ADMIN_SECRET_ARNS` must
//! allow, and only after the current password logged in as the user.

pub mod conn;
pub mod elasticache;
pub mod pin;
pub mod secret;

use async_trait::async_trait;
use conn::{Clock, Conn, LoginError, Saved, Settings, UserAcl, password_hash};
use elasticache::{EcSecret, ElastiCache, is_elasticache};
use secret::RedisSecret;
use shared::allow_list::AllowList;
use shared::config::Retire;
use shared::password::PasswordPolicy;
use shared::preflight::Check;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use shared::{Error, SecretString, Target, TargetKind, Versions};

pub const ROTATOR: &str = "redis-password";

/// The administrator secrets `masterarn` may name (comma-separated ARNs, `*` wildcards).
pub const ADMIN_SECRET_ARNS: &str = "REDIS_ADMIN_SECRET_ARNS";

/// Characters never put in a generated password unless `EXCLUDE_CHARACTERS` says otherwise: the
/// templates' `/@"'\` plus what breaks a `redis://user:password@host` URL or a config line, so a
/// password can be pasted anywhere unescaped, and the comma, which ElastiCache refuses.
pub const DEFAULT_EXCLUDED: &str = "/@\"'\\:?#[]%&+=;` ,";

const ADMIN: &str = "administrator secret";

pub fn default_policy() -> PasswordPolicy {
    PasswordPolicy {
        exclude_characters: DEFAULT_EXCLUDED.into(),
        ..PasswordPolicy::default()
    }
}

pub struct RedisPassword {
    pub policy: PasswordPolicy,
    pub settings: Settings,
    /// `REDIS_ADMIN_SECRET_ARNS`.
    pub admins: AllowList,
    /// Secrets with a `user_arn` (AWS's ElastiCache template; ElastiCache and MemoryDB users).
    pub elasticache: ElastiCache,
}

#[async_trait]
impl Target for RedisPassword {
    fn kind(&self) -> TargetKind {
        TargetKind::Updater
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        if is_elasticache(v.current().await?) {
            return self.elasticache.create(v, self.policy.generate()).await;
        }
        let current = RedisSecret::parse(v.current().await?, AWSCURRENT)?;
        Ok(current.with_password(&self.policy.generate()))
    }

    /// Adds the pending password to the user, keeping every other password and rule. Idempotent.
    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        if is_elasticache(v.current().await?) {
            return self.elasticache.set(v, &self.settings).await;
        }
        let (pending, current) = self.pending_and_current(v).await?;
        let (mut admin, acl) = self.admin_for(v, &current).await?;
        let hash = password_hash(&pending.password);
        let user = &current.username;
        if !acl.has_password(&hash) {
            admin
                .set_user_password_rule(user, &format!("#{hash}"))
                .await
                .map_err(Error::target)?;
        }
        // The change must be the pending password and nothing else: a rule that moved in
        // between (another administrator, a writer's trick) stops the rotation, named.
        let after = admin.get_user(user).await.map_err(Error::target)?;
        let after = after.ok_or_else(|| {
            Error::target(format!(
                "user {user:?} disappeared while its password was set"
            ))
        })?;
        let mut want = acl.clone();
        if !want.has_password(&hash) {
            want.passwords.push(hash.clone());
        }
        if let Some(diff) = differences(&want, &after) {
            return Err(Error::target(format!(
                "the ACL of user {user:?} changed beyond the added password, so the rotation stops: {diff}"
            )));
        }
        persist(&mut admin, &current).await
    }

    /// The pending password logs in as the user, and the current one still does: consumers that
    /// read AWSCURRENT before this rotation keep working.
    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        if is_elasticache(v.current().await?) {
            return self.elasticache.test(v, &self.settings).await;
        }
        let (pending, current) = self.pending_and_current(v).await?;
        let clock = Clock::new(v.deadline());
        let (new, old) = tokio::join!(
            self.login(&pending, &pending, clock),
            self.login(&current, &current, clock)
        );
        let mut new = new
            .map_err(|e| Error::target(format!("the AWSPENDING password does not log in: {e}")))?;
        new.ping().await.map_err(Error::target)?;
        if let Err(e) = old {
            return Err(Error::target(format!(
                "the AWSCURRENT password no longer logs in, so consumers holding it would fail: {e}"
            )));
        }
        Ok(())
    }

    /// Removes the AWSPREVIOUS password from the user: only when it is another password of the
    /// same user on the same server than AWSCURRENT's, after AWSCURRENT's proof of possession.
    async fn retire(&self, v: &Versions<'_>, when: Retire) -> Result<(), Error> {
        if is_elasticache(v.current().await?) {
            return self.elasticache.retire(v, &self.settings, when).await;
        }
        let Some(previous) = v.previous().await? else {
            return Ok(());
        };
        let current = RedisSecret::parse(v.current().await?, AWSCURRENT)?;
        let previous = match RedisSecret::parse(previous, AWSPREVIOUS) {
            Ok(p) if p.same_user(&current) => p,
            Ok(p) => {
                tracing::warn!(
                    previous_user = %p.username,
                    previous_endpoint = %p.endpoint(),
                    "AWSPREVIOUS names another user or server than AWSCURRENT; its password is not removed"
                );
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "AWSPREVIOUS is not a Redis secret; nothing to retire");
                return Ok(());
            }
        };
        let old = password_hash(&previous.password);
        if old == password_hash(&current.password) {
            return Ok(());
        }
        // Back-to-back rotations keep the previous password for its minimum age.
        v.may_retire_previous(
            when,
            &format!(
                "removing the previous password of user {:?}",
                current.username
            ),
        )
        .await?;
        let (mut admin, acl) = self.admin_for(v, &current).await?;
        if acl.has_password(&old) {
            admin
                .set_user_password_rule(&current.username, &format!("!{old}"))
                .await
                .map_err(Error::target)?;
            tracing::info!(user = %current.username, "the previous password is removed");
        }
        // Saved when already removed too: the attempt that removed it may have died before its
        // ACL SAVE, and the file would bring the password back at the server's next restart.
        persist(&mut admin, &current).await
    }

    /// The current value parses and logs in; the administrator secret is allowed, on this server,
    /// logs in, and sees the user holding the current password. Nothing is changed.
    async fn check(&self, v: &Versions<'_>, _retire: Retire) -> Vec<Check> {
        if v.current().await.is_ok_and(is_elasticache) {
            let current = shared::preflight::current_as(v, EcSecret::parse).await;
            if let Err(failed) = current {
                return vec![failed];
            }
            let user = self.elasticache.check(v).await;
            let message = user.as_ref().cloned().unwrap_or_default();
            return vec![Check::of("ElastiCache or MemoryDB user", message, user)];
        }
        let current = match shared::preflight::current_as(v, RedisSecret::parse).await {
            Ok(c) => c,
            Err(failed) => return vec![failed],
        };
        let mut checks = vec![Check::ok(
            "AWSCURRENT value",
            format!(
                "Redis user {:?} at {}",
                current.username,
                current.endpoint()
            ),
        )];
        let admin = self.admin_for(v, &current).await;
        checks.push(Check::of(
            "administrator",
            format!(
                "the administrator secret is allowed and logs in at {}; user {:?} holds the AWSCURRENT password",
                current.endpoint(),
                current.username
            ),
            admin,
        ));
        checks
    }
}

/// Every way `got` differs from `want` (passwords by count, never by value).
fn differences(want: &UserAcl, got: &UserAcl) -> Option<String> {
    let mut out = Vec::new();
    if want.flags != got.flags {
        out.push(format!("flags {:?} became {:?}", want.flags, got.flags));
    }
    let (mut w, mut g) = (want.passwords.clone(), got.passwords.clone());
    w.sort();
    g.sort();
    if w != g {
        out.push(format!(
            "passwords: {} expected, {} found",
            w.len(),
            g.len()
        ));
    }
    if want.rules != got.rules {
        out.push(format!("rules {:?} became {:?}", want.rules, got.rules));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// `ACL SAVE` where the server has an ACL file; elsewhere the change lives until a restart.
async fn persist(admin: &mut Conn, current: &RedisSecret) -> Result<(), Error> {
    match admin.save().await.map_err(Error::target)? {
        Saved::ToFile => Ok(()),
        Saved::NoAclFile => {
            tracing::warn!(
                endpoint = %current.endpoint(),
                "the server has no ACL file, so the change is not saved: a restart brings back the users of its config file (CONFIG REWRITE is not run: it rewrites the whole file)"
            );
            Ok(())
        }
    }
}

impl RedisPassword {
    async fn login(
        &self,
        server: &RedisSecret,
        user: &RedisSecret,
        clock: Clock,
    ) -> Result<Conn, LoginError> {
        conn::login(server, user, server.ssl, &self.settings, clock).await
    }

    /// Both values, refused unless the pending one names the same server, transport, user and
    /// administrator as the current one: a rotation changes the password and nothing else.
    async fn pending_and_current(
        &self,
        v: &Versions<'_>,
    ) -> Result<(RedisSecret, RedisSecret), Error> {
        let pending = RedisSecret::parse(v.pending().await?, AWSPENDING)?;
        let current = RedisSecret::parse(v.current().await?, AWSCURRENT)?;
        let differs = |field: &str| {
            Error::value(
                AWSPENDING,
                format!(
                    "field `{field}` differs from AWSCURRENT's; a rotation changes only the password"
                ),
            )
        };
        if pending.host != current.host {
            return Err(differs("host"));
        }
        if pending.port != current.port {
            return Err(differs("port"));
        }
        if pending.ssl != current.ssl {
            return Err(differs("ssl"));
        }
        if pending.username != current.username {
            return Err(differs("username"));
        }
        if pending.masterarn != current.masterarn {
            return Err(differs("masterarn"));
        }
        Ok((pending, current))
    }

    /// The administrator's session and the user's ACL, once the current value proved itself:
    /// `masterarn` must be allowed by `REDIS_ADMIN_SECRET_ARNS`, its secret must name the current
    /// server and another user, the current password must log in as the user (proof of
    /// possession) and be one of the user's passwords.
    async fn admin_for(
        &self,
        v: &Versions<'_>,
        current: &RedisSecret,
    ) -> Result<(Conn, UserAcl), Error> {
        let masterarn = current.masterarn.as_deref().unwrap_or_default();
        if !self.admins.allows(masterarn) {
            return Err(Error::value(
                AWSCURRENT,
                format!(
                    "field `masterarn`: {masterarn} is not in the function's {ADMIN_SECRET_ARNS}, so it is not used (list it there to allow it)"
                ),
            ));
        }
        let admin = RedisSecret::parse_admin(&v.other_secret(masterarn).await?, ADMIN)?;
        if admin.host != current.host || admin.port != current.port {
            return Err(Error::value(
                AWSCURRENT,
                format!(
                    "fields `host` and `port` ({}) must be those of the administrator secret {masterarn} ({}): its password goes nowhere else",
                    current.endpoint(),
                    admin.endpoint()
                ),
            ));
        }
        if admin.username == current.username {
            return Err(Error::value(
                AWSCURRENT,
                format!(
                    "field `username`: {:?} is the administrator user, which this function never rotates",
                    current.username
                ),
            ));
        }
        let clock = Clock::new(v.deadline());
        // The administrator logs in only after the user did: its password never goes to a
        // server the current value's writer picked unless that writer holds the user's password.
        self.login(current, current, clock).await.map_err(|e| {
            Error::target(format!(
                "the AWSCURRENT password must log in as the user before the administrator acts: {e}"
            ))
        })?;
        let tls = admin.ssl || current.ssl;
        let mut session = conn::login(&admin, &admin, tls, &self.settings, clock)
            .await
            .map_err(|e| Error::target(format!("the administrator cannot log in: {e}")))?;
        let user = &current.username;
        let acl = session
            .get_user(user)
            .await
            .map_err(Error::target)?
            .ok_or_else(|| Error::target(format!("user {user:?} does not exist")))?;
        // A `nopass` user takes any password, so a login proves nothing; and adding a password
        // would end `nopass`, locking out the consumers that send none.
        if acl.has_flag("nopass") || !acl.has_password(&password_hash(&current.password)) {
            return Err(Error::target(format!(
                "the AWSCURRENT password is not one of user {user:?}'s passwords (or the user is `nopass`), so nothing is changed"
            )));
        }
        Ok((session, acl))
    }
}
