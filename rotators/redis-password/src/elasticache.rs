//! ElastiCache (Redis OSS and Valkey) and MemoryDB users, with the secret of AWS's
//! `SecretsManagerElasticacheUserRotation` template: `user_arn`, `username`, `password`, plus
//! optional `host`, `port`, `ssl` naming an endpoint of a cluster the user belongs to. The ARN
//! names the service: `arn:PARTITION:elasticache:REGION:ACCOUNT:user:ID` or
//! `arn:PARTITION:memorydb:REGION:ACCOUNT:user/NAME`. The two services differ only in their calls
//! (`ModifyUser` or `UpdateUser`; `DescribeUsers` by id or by name), so every rule below serves
//! both.
//!
//! setSecret sets the user's passwords to `[pending, current]` (both services keep at most two),
//! so consumers holding the current one keep working; retiring sets `[current]`. A change makes
//! the user `modifying` for a while and another change meanwhile is refused (`InvalidUserState`,
//! `InvalidUserStateFault`), so every change waits for `active` within the step's budget.
//!
//! The user must be allowed by the function's `ELASTICACHE_USER_ARNS` or `MEMORYDB_USER_ARNS`
//! (and the role's IAM policy), and its name must be the user's. The secret's tags pin the user
//! and the endpoint (`pin`): the current password must log in as the user there before anything
//! changes, and testSecret logs in there with the pending one. With no endpoint pinned, nothing
//! proves the current password, so the function refuses unless `KEEP_UNPROVEN_CURRENT_PASSWORD`
//! keeps it as AWS's template does (testSecret then only waits for `active`).

use crate::conn::{self, Clock, Settings};
use crate::pin::{self, Endpoint};
use crate::secret::{Fields, RedisSecret, take_password};
use aws_sdk_elasticache::error::{ProvideErrorMetadata, SdkError};
use serde_json::{Map, Value};
use shared::allow_list::AllowList;
use shared::config::Retire;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use shared::{Error, SecretString, Versions};
use std::time::{Duration, Instant};

/// The ElastiCache users this function may change (comma-separated ARNs, `*` wildcards).
pub const USER_ARNS: &str = "ELASTICACHE_USER_ARNS";
/// The MemoryDB users this function may change (comma-separated ARNs, `*` wildcards).
pub const MEMORYDB_USER_ARNS: &str = "MEMORYDB_USER_ARNS";

/// Both services take passwords of 16 to 128 printable characters.
pub const PASSWORD_LENGTHS: std::ops::RangeInclusive<usize> = 16..=128;

/// Which service holds the user, from its ARN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    ElastiCache,
    MemoryDb,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::ElastiCache => "ElastiCache",
            Service::MemoryDb => "MemoryDB",
        }
    }

    /// The variable that lists the users of this service the function may change.
    pub fn allow_list(self) -> &'static str {
        match self {
            Service::ElastiCache => USER_ARNS,
            Service::MemoryDb => MEMORYDB_USER_ARNS,
        }
    }
}

/// The users of both services, and the lists of those this function may change.
pub struct ElastiCache {
    pub client: aws_sdk_elasticache::Client,
    pub memorydb: aws_sdk_memorydb::Client,
    /// `ELASTICACHE_USER_ARNS`.
    pub users: AllowList,
    /// `MEMORYDB_USER_ARNS`.
    pub memorydb_users: AllowList,
    /// `KEEP_UNPROVEN_CURRENT_PASSWORD`: rotate a secret whose tags pin no endpoint, keeping its
    /// current password unproven.
    pub keep_unproven_current: bool,
}

/// One version of an ElastiCache or MemoryDB user secret. `Debug` never shows the password.
#[derive(Clone)]
pub struct EcSecret {
    pub service: Service,
    pub user_arn: String,
    /// How the service's API names the user: ElastiCache's user id, MemoryDB's user name.
    pub user_id: String,
    pub username: String,
    pub password: SecretString,
    /// `host`, `port`, `ssl`: where testSecret and the proof of possession log in.
    pub endpoint: Option<(String, u16, bool)>,
    others: Map<String, Value>,
}

impl std::fmt::Debug for EcSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcSecret")
            .field("user_arn", &self.user_arn)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Whether a value has the shape of a service user's secret (a `user_arn` field).
pub fn is_elasticache(value: &SecretString) -> bool {
    value
        .json_object()
        .is_ok_and(|m| m.contains_key("user_arn"))
}

impl EcSecret {
    pub fn parse(value: &SecretString, which: &'static str) -> Result<Self, Error> {
        let mut others = value.json_object().map_err(|e| Error::value(which, e))?;
        let password = take_password(&mut others, which)?;
        let f = Fields {
            map: &others,
            which,
        };
        let user_arn = f.required("user_arn", 2048)?;
        let (service, user_id) = user_id(&user_arn).ok_or_else(|| {
            Error::value(
                which,
                "field `user_arn` is neither an ElastiCache user ARN (arn:aws:elasticache:REGION:ACCOUNT:user:ID) nor a MemoryDB one (arn:aws:memorydb:REGION:ACCOUNT:user/NAME)",
            )
        })?;
        let endpoint = match f.text("host", 253)? {
            Some(host) => Some((host, f.port()?, f.ssl()?)),
            None => None,
        };
        Ok(Self {
            service,
            user_id,
            user_arn,
            username: f.required("username", 512)?,
            password,
            endpoint,
            others,
        })
    }

    pub fn with_password(&self, password: &SecretString) -> SecretString {
        let mut fields = self.others.clone();
        fields.insert("password".into(), password.expose().into());
        SecretString::from_json(&fields)
    }

    /// This value's user and password at the pinned endpoint (never the value's own `host`).
    fn login_at(&self, at: &Endpoint) -> RedisSecret {
        RedisSecret::login_at(&at.host, at.port, at.tls, &self.username, &self.password)
    }

    /// `ElastiCache user app-1`, `MemoryDB user app`: how errors name the user.
    fn named(&self) -> String {
        format!("{} user {}", self.service.name(), self.user_id)
    }
}

/// The service and the user's id in its API, from a user ARN.
fn user_id(arn: &str) -> Option<(Service, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let (service, id) = match parts.as_slice() {
        ["arn", _, "elasticache", _, _, resource] => {
            (Service::ElastiCache, resource.strip_prefix("user:")?)
        }
        ["arn", _, "memorydb", _, _, resource] => {
            (Service::MemoryDb, resource.strip_prefix("user/")?)
        }
        _ => return None,
    };
    (!id.is_empty() && !id.contains([':', '/'])).then(|| (service, id.to_owned()))
}

/// What `DescribeUsers` says of the user.
struct User {
    arn: Option<String>,
    name: Option<String>,
    status: String,
    /// `password`, `no-password`, `iam`.
    authentication: Option<String>,
    passwords: i32,
}

impl ElastiCache {
    pub async fn create(
        &self,
        v: &Versions<'_>,
        password: SecretString,
    ) -> Result<SecretString, Error> {
        let current = EcSecret::parse(v.current().await?, AWSCURRENT)?;
        self.pinned(v, &current)?;
        if !PASSWORD_LENGTHS.contains(&password.expose().len()) {
            return Err(Error::target(format!(
                "{} takes passwords of 16 to 128 characters: set PASSWORD_LENGTH within them",
                current.service.name()
            )));
        }
        Ok(current.with_password(&password))
    }

    /// `[pending, current]`, after the checks and the proof of possession.
    pub async fn set(&self, v: &Versions<'_>, s: &Settings) -> Result<(), Error> {
        let (pending, current) = self.pending_and_current(v).await?;
        let at = self.pinned(v, &current)?;
        let clock = Clock::new(v.deadline());
        self.prove(&current, at.as_ref(), s, clock).await?;
        self.user(&current).await?;
        self.modify(v, &current, &[&pending.password, &current.password])
            .await
    }

    /// At the pinned endpoint the pending and current passwords log in; with none pinned (and
    /// `KEEP_UNPROVEN_CURRENT_PASSWORD`) the user is `active`.
    pub async fn test(&self, v: &Versions<'_>, s: &Settings) -> Result<(), Error> {
        let (pending, current) = self.pending_and_current(v).await?;
        let at = self.pinned(v, &current)?;
        self.wait_active(v, &current).await?;
        let Some(at) = at else {
            return Ok(());
        };
        let (new, old) = (pending.login_at(&at), current.login_at(&at));
        let clock = Clock::new(v.deadline());
        let (new_login, old_login) = tokio::join!(
            conn::login(&new, &new, at.tls, s, clock),
            conn::login(&old, &old, at.tls, s, clock)
        );
        let mut new_login = new_login
            .map_err(|e| Error::target(format!("the AWSPENDING password does not log in: {e}")))?;
        new_login.ping().await.map_err(Error::target)?;
        old_login.map(drop).map_err(|e| {
            Error::target(format!(
                "the AWSCURRENT password no longer logs in, so consumers holding it would fail: {e}"
            ))
        })
    }

    /// `[current]` when the user has two passwords and AWSPREVIOUS is of the same user.
    pub async fn retire(&self, v: &Versions<'_>, s: &Settings, when: Retire) -> Result<(), Error> {
        let Some(previous) = v.previous().await? else {
            return Ok(());
        };
        let current = EcSecret::parse(v.current().await?, AWSCURRENT)?;
        match EcSecret::parse(previous, AWSPREVIOUS) {
            Ok(p) if p.user_arn == current.user_arn => {}
            _ => return Ok(()),
        }
        let at = self.pinned(v, &current)?;
        self.prove(&current, at.as_ref(), s, Clock::new(v.deadline()))
            .await?;
        if self.user(&current).await?.passwords < 2 {
            return Ok(());
        }
        v.may_retire_previous(
            when,
            &format!("removing the previous password of {}", current.user_arn),
        )
        .await?;
        self.modify(v, &current, &[&current.password]).await?;
        tracing::info!(user_arn = %current.user_arn, "the previous password is removed");
        Ok(())
    }

    pub async fn check(&self, v: &Versions<'_>) -> Result<String, Error> {
        let current = EcSecret::parse(v.current().await?, AWSCURRENT)?;
        let at = match self.pinned(v, &current)? {
            Some(at) => format!("the tags pin it and endpoint {}:{}", at.host, at.port),
            None => format!(
                "the tags pin it and no endpoint: its current password is kept unproven ({})",
                pin::KEEP_UNPROVEN_CURRENT
            ),
        };
        let user = self.user(&current).await?;
        Ok(format!(
            "{} user {} ({:?}) is allowed, {}, with {} password(s); {at}",
            current.service.name(),
            current.user_arn,
            current.username,
            user.status,
            user.passwords
        ))
    }

    /// Where `current`'s passwords may log in, from the secret's tags (`pin::pin`): `None` when
    /// no endpoint is pinned and the function keeps an unproven current password.
    fn pinned(&self, v: &Versions<'_>, current: &EcSecret) -> Result<Option<Endpoint>, Error> {
        let endpoint = current.endpoint.as_ref();
        let claim = pin::Claim {
            which: AWSCURRENT,
            user_arn: &current.user_arn,
            endpoint: endpoint.map(|(host, port, ssl)| (host.as_str(), *port, *ssl)),
        };
        let tags = pin::Tags {
            user_arn: v.tag(pin::USER_ARN_TAG),
            endpoint: v.tag(pin::ENDPOINT_TAG),
        };
        pin::pin(claim, tags, self.keep_unproven_current)
    }

    async fn pending_and_current(&self, v: &Versions<'_>) -> Result<(EcSecret, EcSecret), Error> {
        let pending = EcSecret::parse(v.pending().await?, AWSPENDING)?;
        let current = EcSecret::parse(v.current().await?, AWSCURRENT)?;
        for (field, same) in [
            ("user_arn", pending.user_arn == current.user_arn),
            ("username", pending.username == current.username),
            ("host", pending.endpoint == current.endpoint),
        ] {
            if !same {
                return Err(Error::value(
                    AWSPENDING,
                    format!(
                        "field `{field}` differs from AWSCURRENT's; a rotation changes only the password"
                    ),
                ));
            }
        }
        Ok((pending, current))
    }

    /// At the pinned endpoint, the current password must log in as the user before anything
    /// changes (`None`: none is pinned, and the function keeps the current password unproven).
    async fn prove(
        &self,
        current: &EcSecret,
        at: Option<&Endpoint>,
        s: &Settings,
        clock: Clock,
    ) -> Result<(), Error> {
        let Some(at) = at else {
            return Ok(());
        };
        let login = current.login_at(at);
        conn::login(&login, &login, at.tls, s, clock)
            .await
            .map(drop)
            .map_err(|e| {
                Error::target(format!(
                    "the AWSCURRENT password must log in as the user before its passwords change: {e}"
                ))
            })
    }

    /// The user, once the allow-list and the service agree it is the secret's.
    async fn user(&self, current: &EcSecret) -> Result<User, Error> {
        let allowed = match current.service {
            Service::ElastiCache => &self.users,
            Service::MemoryDb => &self.memorydb_users,
        };
        if !allowed.allows(&current.user_arn) {
            return Err(Error::value(
                AWSCURRENT,
                format!(
                    "field `user_arn`: {} is not in the function's {}, so it is not changed (list it there to allow it)",
                    current.user_arn,
                    current.service.allow_list()
                ),
            ));
        }
        let user = self.describe(current).await?;
        let service = current.service.name();
        if user.arn.as_deref() != Some(current.user_arn.as_str()) {
            return Err(Error::value(
                AWSCURRENT,
                format!(
                    "field `user_arn`: {service} names user {} {:?}",
                    current.user_id, user.arn
                ),
            ));
        }
        if user.name.as_deref() != Some(current.username.as_str()) {
            return Err(Error::value(
                AWSCURRENT,
                format!(
                    "field `username` is {:?} but {} is named {:?}",
                    current.username,
                    current.named(),
                    user.name.unwrap_or_default()
                ),
            ));
        }
        if user.authentication.as_deref() != Some("password") {
            return Err(Error::target(format!(
                "{} authenticates by {}, not by password",
                current.named(),
                user.authentication.as_deref().unwrap_or("nothing")
            )));
        }
        Ok(user)
    }

    /// `DescribeUsers` of the one user.
    async fn describe(&self, user: &EcSecret) -> Result<User, Error> {
        let id = Some(user.user_id.as_str());
        let found = match user.service {
            Service::ElastiCache => {
                let out = self
                    .client
                    .describe_users()
                    .user_id(&user.user_id)
                    .send()
                    .await;
                shared::fault::after_call("ElastiCache DescribeUsers");
                let out = out.map_err(|e| sdk_error(user, "DescribeUsers", e))?;
                out.users()
                    .iter()
                    .find(|u| u.user_id() == id)
                    .map(|u| User {
                        arn: u.arn().map(str::to_owned),
                        name: u.user_name().map(str::to_owned),
                        status: u.status().unwrap_or_default().to_owned(),
                        authentication: u
                            .authentication()
                            .and_then(|a| a.r#type())
                            .map(|t| t.as_str().to_owned()),
                        passwords: u
                            .authentication()
                            .and_then(|a| a.password_count())
                            .unwrap_or_default(),
                    })
            }
            Service::MemoryDb => {
                let out = self
                    .memorydb
                    .describe_users()
                    .user_name(&user.user_id)
                    .send()
                    .await;
                shared::fault::after_call("MemoryDB DescribeUsers");
                let out = out.map_err(|e| sdk_error(user, "DescribeUsers", e))?;
                out.users().iter().find(|u| u.name() == id).map(|u| User {
                    arn: u.arn().map(str::to_owned),
                    name: u.name().map(str::to_owned),
                    status: u.status().unwrap_or_default().to_owned(),
                    authentication: u
                        .authentication()
                        .and_then(|a| a.r#type())
                        .map(|t| t.as_str().to_owned()),
                    passwords: u
                        .authentication()
                        .and_then(|a| a.password_count())
                        .unwrap_or_default(),
                })
            }
        };
        found.ok_or_else(|| Error::target(format!("{} does not exist", user.named())))
    }

    /// Sets exactly `passwords` (`ModifyUser`, `UpdateUser`); `Ok(false)` when the service refused
    /// because the user is not `active` (another change is under way).
    async fn set_passwords(
        &self,
        user: &EcSecret,
        passwords: &[&SecretString],
    ) -> Result<bool, Error> {
        match user.service {
            Service::ElastiCache => {
                let mut call = self.client.modify_user().user_id(&user.user_id);
                for p in passwords {
                    call = call.passwords(p.expose());
                }
                let result = call.send().await;
                shared::fault::after_call("ElastiCache ModifyUser");
                match result {
                    Ok(_) => Ok(true),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_invalid_user_state_fault()) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(sdk_error(user, "ModifyUser", e)),
                }
            }
            Service::MemoryDb => {
                use aws_sdk_memorydb::types::{AuthenticationMode, InputAuthenticationType};
                let mut mode =
                    AuthenticationMode::builder().r#type(InputAuthenticationType::Password);
                for p in passwords {
                    mode = mode.passwords(p.expose());
                }
                let result = self
                    .memorydb
                    .update_user()
                    .user_name(&user.user_id)
                    .authentication_mode(mode.build())
                    .send()
                    .await;
                shared::fault::after_call("MemoryDB UpdateUser");
                match result {
                    Ok(_) => Ok(true),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_invalid_user_state_fault()) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(sdk_error(user, "UpdateUser", e)),
                }
            }
        }
    }

    /// Sets exactly `passwords` (idempotent), waiting out `modifying` before and after.
    async fn modify(
        &self,
        v: &Versions<'_>,
        user: &EcSecret,
        passwords: &[&SecretString],
    ) -> Result<(), Error> {
        let until = shared::retry::budget(v.deadline());
        loop {
            self.wait_active(v, user).await?;
            if self.set_passwords(user, passwords).await? {
                break;
            }
            // Another change began between our look and ours: wait for it, then ours.
            if Instant::now() >= until {
                return Err(Error::target(format!(
                    "{} refused the change as not active until the end of the step's time budget",
                    user.named()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.wait_active(v, user).await
    }

    /// Polls `DescribeUsers` until the user is `active`, within the step's budget.
    async fn wait_active(&self, v: &Versions<'_>, user: &EcSecret) -> Result<(), Error> {
        let until = shared::retry::budget(v.deadline());
        loop {
            let status = self.user(user).await?.status;
            if status == "active" {
                return Ok(());
            }
            if Instant::now() + Duration::from_millis(500) > until {
                return Err(Error::target(format!(
                    "{} is still {status} at the end of the step's time budget",
                    user.named()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The service's error code and message (never a request, which holds the passwords).
fn sdk_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    user: &EcSecret,
    call: &str,
    e: SdkError<E>,
) -> Error {
    let detail = match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
        None => aws_sdk_elasticache::error::DisplayErrorContext(&e).to_string(),
    };
    Error::target(format!(
        "{} {call} of user {} failed: {detail}",
        user.service.name(),
        user.user_id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_and_user_id_come_from_the_arn() {
        assert_eq!(
            user_id("arn:aws:elasticache:us-east-1:123456789012:user:app-1"),
            Some((Service::ElastiCache, "app-1".to_owned()))
        );
        assert_eq!(
            user_id("arn:aws-cn:memorydb:cn-north-1:123456789012:user/app-1"),
            Some((Service::MemoryDb, "app-1".to_owned()))
        );
        for bad in [
            "arn:aws:elasticache:us-east-1:123456789012:usergroup:g",
            "arn:aws:iam::123456789012:user/app",
            "arn:aws:elasticache:us-east-1:123456789012:user:",
            "arn:aws:elasticache:us-east-1:123456789012:user/app",
            "arn:aws:memorydb:us-east-1:123456789012:user:app",
            "arn:aws:memorydb:us-east-1:123456789012:acl/app",
            "arn:aws:memorydb:us-east-1:123456789012:user/",
            "arn:aws:memorydb:us-east-1:123456789012:user/a/b",
        ] {
            assert_eq!(user_id(bad), None, "{bad}");
        }
    }
}
