//! What every database engine offers the rotation (`Session`), the settings every login shares,
//! and the one time budget a step's connects and statements run under. `postgres.rs` and
//! `mysql.rs` are the two implementations.
//!
//! TLS is strict unless the secret says `"ssl": false`: the server certificate must chain to the
//! public roots or the CA bundle (Amazon RDS's unless configured) and match the host name. There
//! is no fallback.

use crate::net;
use crate::secret::{DbSecret, Engine};
use async_trait::async_trait;
use rustls::ClientConfig;
use shared::SecretString;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The Amazon RDS CA bundle (certs/README.md), compiled in so every package carries it.
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// Connection settings from the function's environment.
#[derive(Clone)]
pub struct Settings {
    /// PEM CAs trusted beside the public roots: the Amazon RDS bundle unless `DB_CA_BUNDLE_FILE`
    /// or `DB_CA_BUNDLE_PEM` names others.
    pub ca_pem: Vec<u8>,
    /// Built once from `ca_pem` and the public roots; every TLS login shares it.
    pub tls: Arc<ClientConfig>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Settings {
    pub fn new(
        ca_pem: Vec<u8>,
        connect_timeout: Duration,
        statement_timeout: Duration,
    ) -> Result<Self, String> {
        let tls = net::client_config(&ca_pem)?;
        Ok(Self {
            ca_pem,
            tls,
            connect_timeout,
            statement_timeout,
        })
    }

    /// `DB_CA_BUNDLE_FILE` (a path) or `DB_CA_BUNDLE_PEM` (the PEM itself) instead of the RDS
    /// bundle, and
    /// `DB_CONNECT_TIMEOUT_SECONDS` / `DB_STATEMENT_TIMEOUT_SECONDS` (5 each).
    pub fn from_env() -> Result<Self, String> {
        let env = |name: &str| shared::config::non_empty_env(name);
        let ca_pem = match (env("DB_CA_BUNDLE_FILE"), env("DB_CA_BUNDLE_PEM")) {
            (Some(_), Some(_)) => {
                return Err("set DB_CA_BUNDLE_FILE or DB_CA_BUNDLE_PEM, not both".into());
            }
            (Some(path), None) => {
                Some(std::fs::read(&path).map_err(|e| format!("DB_CA_BUNDLE_FILE {path}: {e}"))?)
            }
            (None, Some(pem)) => Some(pem.into_bytes()),
            (None, None) => None,
        };
        let seconds = |name: &str| -> Result<Duration, String> {
            match env(name) {
                None => Ok(Duration::from_secs(5)),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=300).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        format!("{name} must be a whole number of seconds from 1 to 300, got `{v}`")
                    }),
            }
        };
        Self::new(
            ca_pem.unwrap_or_else(|| RDS_CA_BUNDLE.to_vec()),
            seconds("DB_CONNECT_TIMEOUT_SECONDS")?,
            seconds("DB_STATEMENT_TIMEOUT_SECONDS")?,
        )
    }
}

/// One step's time: every connect and statement ends by the sooner of its own timeout and the
/// step's budget (3 s before the invocation's deadline), so Lambda never kills a step that has
/// not yet said what was slow.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    until: Instant,
}

impl Clock {
    pub fn new(deadline: Option<SystemTime>) -> Self {
        Self {
            until: shared::retry::budget(deadline),
        }
    }

    /// Runs `f` for at most `timeout`, or what is left of the step; `Err(true)` when the step's
    /// budget ran out first, `Err(false)` when `timeout` did.
    async fn limit<T>(&self, timeout: Duration, f: impl Future<Output = T>) -> Result<T, bool> {
        let left = self.until.saturating_duration_since(Instant::now());
        let budget = left < timeout;
        tokio::time::timeout(left.min(timeout), f)
            .await
            .map_err(|_| budget)
    }

    /// Runs `f` under `limit`. The error names `what`, and says whether its own timeout or the
    /// step's budget ran out; secrets are scrubbed from it.
    pub async fn run<T, E: std::fmt::Display>(
        &self,
        timeout: Duration,
        what: &str,
        secrets: &[&SecretString],
        f: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        let result = self.limit(timeout, f).await;
        shared::fault::after_call(what);
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(scrub(format!("{what} failed: {e}"), secrets)),
            Err(true) => Err(format!("{what} {OUT_OF_BUDGET}")),
            Err(false) => Err(format!("{what} timed out after {timeout:?}")),
        }
    }
}

const OUT_OF_BUDGET: &str =
    "was still running when the step's time budget ran out (3 s before the invocation's deadline)";

/// What the rotation asks of a logged-in database session. Every call runs under the step's
/// `Clock`; after any error or timeout the session refuses further use (a half-read answer would
/// desynchronise the protocol).
#[async_trait]
pub trait Session: Send {
    /// Proves the login works.
    async fn ping(&mut self) -> Result<(), String>;

    /// Open sessions of `user` other than this one.
    async fn sessions_of(&mut self, user: &str) -> Result<i64, String>;

    /// The logged-in user changes its own password (single user).
    async fn set_own_password(&mut self, user: &str, password: &SecretString)
    -> Result<(), String>;

    /// As an administrator: sets `user`'s password. With `clone_of`, `user` is the clone of that
    /// original and is created first when missing.
    async fn set_password(
        &mut self,
        user: &str,
        password: &SecretString,
        clone_of: Option<&str>,
    ) -> Result<(), String>;

    /// As an administrator: gives `clone` the privileges of `original`.
    async fn copy_privileges(&mut self, original: &str, clone: &str) -> Result<(), String>;

    /// Every way the privileges of `clone` differ from those of `original`.
    async fn differences(&mut self, original: &str, clone: &str) -> Result<Vec<String>, String>;

    /// What an existing `clone` holds that `original` does not (empty when it does not exist).
    async fn clone_extras(&mut self, original: &str, clone: &str) -> Result<Vec<String>, String>;

    /// As an administrator, dual passwords: every account of `user` accepts `password` beside
    /// `keep`. Idempotent. Engines with one password per user refuse.
    async fn add_password(
        &mut self,
        _user: &str,
        _password: &SecretString,
        _keep: &SecretString,
    ) -> Result<(), String> {
        Err(ONE_PASSWORD.into())
    }

    /// As an administrator, dual passwords: every account of `user` accepts `password` alone.
    async fn keep_only_password(
        &mut self,
        _user: &str,
        _password: &SecretString,
    ) -> Result<(), String> {
        Err(ONE_PASSWORD.into())
    }

    /// Whether this (administrator's) login may give accounts a second password, and how.
    async fn dual_password_privilege(&mut self) -> Result<String, String> {
        Err(ONE_PASSWORD.into())
    }

    /// Engines with object owners: what keeps `clone`'s sessions from acting as `original`, so
    /// that the objects either user creates have one owner. Empty where objects have no owner.
    async fn owner_differences(
        &mut self,
        _original: &str,
        _clone: &str,
    ) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

const ONE_PASSWORD: &str = "this engine keeps one password per user";

/// A session that failed (an error, a timeout: its protocol state is unknown) is never used again.
pub fn usable(broken: bool, what: &str) -> Result<(), String> {
    match broken {
        true => Err(format!(
            "{what}: not run, because the session failed earlier and is never reused"
        )),
        false => Ok(()),
    }
}

/// Removes a secret from a driver or server message, in case one ever echoes it.
pub fn scrub(message: String, secrets: &[&SecretString]) -> String {
    secrets
        .iter()
        .filter(|s| !s.expose().is_empty())
        .fold(message, |m, s| m.replace(s.expose(), "[redacted]"))
}

/// Logs in with the host, port, TLS setting and database of `target` and the credentials of
/// `login`, within the connect timeout and the step's budget.
pub async fn connect(
    target: &DbSecret,
    login: &DbSecret,
    s: &Settings,
    clock: Clock,
) -> Result<Box<dyn Session>, String> {
    let place = format!(
        "{} at {} as user {:?}",
        target.engine.name(),
        target.endpoint(),
        login.username
    );
    if !target.ssl {
        tracing::warn!(
            endpoint = %target.endpoint(),
            "TLS is off because the secret says \"ssl\": false; the password crosses the network in plain text"
        );
    }
    let attempt = async {
        let tcp = net::connect(&target.host, target.port)
            .await
            .map_err(|e| e.to_string())?;
        match target.engine {
            Engine::Postgres => crate::postgres::login(tcp, target, login, s, clock).await,
            Engine::MySql | Engine::MariaDb => {
                crate::mysql::login(tcp, target, login, s, clock).await
            }
        }
    };
    let result = clock.limit(s.connect_timeout, attempt).await;
    shared::fault::after_call("connect");
    match result {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(scrub(
            format!("cannot connect to {place}: {e}"),
            &[&login.password],
        )),
        Err(true) => Err(format!("connecting to {place} {OUT_OF_BUDGET}")),
        Err(false) => Err(format!(
            "timed out after {:?} connecting to {place}",
            s.connect_timeout
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With neither variable set (as in the test environment), the RDS bundle is trusted.
    #[test]
    fn the_rds_bundle_is_trusted_by_default() {
        assert!(std::env::var_os("DB_CA_BUNDLE_FILE").is_none());
        assert!(std::env::var_os("DB_CA_BUNDLE_PEM").is_none());
        let s = Settings::from_env().unwrap();
        assert_eq!(s.ca_pem, RDS_CA_BUNDLE);
        let text = String::from_utf8_lossy(RDS_CA_BUNDLE);
        assert!(text.matches("-----BEGIN CERTIFICATE-----").count() >= 100);
    }

    #[tokio::test]
    async fn the_step_budget_cuts_a_longer_timeout_and_says_so() {
        let clock = Clock {
            until: Instant::now() + Duration::from_millis(50),
        };
        let slow = tokio::time::sleep(Duration::from_secs(5));
        let started = Instant::now();
        let err = clock
            .run(Duration::from_secs(5), "reading the role", &[], async {
                slow.await;
                Ok::<_, String>(())
            })
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            err.contains("reading the role") && err.contains("time budget"),
            "{err}"
        );
        let own = Clock::new(None)
            .run(Duration::from_millis(20), "SELECT 1", &[], async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, String>(())
            })
            .await
            .unwrap_err();
        assert!(own.contains("SELECT 1 timed out after 20ms"), "{own}");
    }
}
