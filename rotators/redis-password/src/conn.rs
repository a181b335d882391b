//! Logins and the ACL commands of a rotation, through the `redis` crate over a socket and TLS
//! session the function opens itself: `TCP_NODELAY`, and the shared trust store (`shared::tls`).
//! Every connect and command ends by the sooner of `REDIS_TIMEOUT_SECONDS` and the step's budget
//! (3 s before the invocation's deadline), so a slow server fails the step with our error.

use crate::secret::RedisSecret;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisConnectionInfo, Value};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use shared::SecretString;
use shared::bounded::Bounded;
use std::sync::Arc;

use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub const CA_BUNDLE_FILE: &str = "REDIS_CA_BUNDLE_FILE";
pub const CA_BUNDLE_PEM: &str = "REDIS_CA_BUNDLE_PEM";
pub const TIMEOUT_SECONDS: &str = "REDIS_TIMEOUT_SECONDS";

/// The most one session reads from its server. A rotation's answers are a few hundred bytes; the
/// secret's writer picks the host, and the `redis` crate buffers a bulk string of any declared
/// length (up to 512 MiB), more than a 128 MB function has.
pub const SESSION_READ_LIMIT: usize = 1 << 20;

/// Connection settings from the function's environment.
#[derive(Clone)]
pub struct Settings {
    /// The public roots, plus `REDIS_CA_BUNDLE_FILE` or `REDIS_CA_BUNDLE_PEM` when set.
    pub tls: Arc<ClientConfig>,
    /// Each connect and each command.
    pub timeout: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let env = shared::config::non_empty_env;
        let bundle = match (env(CA_BUNDLE_FILE), env(CA_BUNDLE_PEM)) {
            (Some(_), Some(_)) => {
                return Err(format!("set {CA_BUNDLE_FILE} or {CA_BUNDLE_PEM}, not both"));
            }
            (Some(path), None) => {
                Some(std::fs::read(&path).map_err(|e| format!("{CA_BUNDLE_FILE} {path}: {e}"))?)
            }
            (None, Some(pem)) => Some(pem.into_bytes()),
            (None, None) => None,
        };
        let timeout = match env(TIMEOUT_SECONDS) {
            None => Duration::from_secs(5),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=300).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    format!(
                        "{TIMEOUT_SECONDS} must be a whole number of seconds from 1 to 300, got `{v}`"
                    )
                })?,
        };
        Ok(Self {
            tls: shared::tls::client_config("Redis CA bundle", bundle.as_deref())?,
            timeout,
        })
    }
}

/// One step's time: the budget ends 3 s before the invocation's deadline.
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

    /// Runs `f` for at most `timeout` or what is left of the step; the error names `what`.
    /// Marks one external call for the crash tests.
    async fn run<T>(
        &self,
        timeout: Duration,
        what: &str,
        f: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let left = self.until.saturating_duration_since(Instant::now());
        let result = tokio::time::timeout(left.min(timeout), f).await;
        shared::fault::after_call(what);
        match result {
            Ok(r) => r.map_err(|e| format!("{what}: {e}")),
            Err(_) if left < timeout => Err(format!(
                "{what}: still running when the step's time budget ran out (3 s before the invocation's deadline)"
            )),
            Err(_) => Err(format!("{what}: timed out after {timeout:?}")),
        }
    }
}

/// The `#<hex>` form of a password that `ACL SETUSER` takes: its SHA-256, so the plaintext never
/// reaches the server's `SLOWLOG`, `MONITOR` or ACL file.
pub fn password_hash(password: &SecretString) -> String {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, password.expose().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a login failed: the server refused the credentials, or something else went wrong.
#[derive(Debug)]
pub enum LoginError {
    Refused(String),
    Failed(String),
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Refused(m) | LoginError::Failed(m) => f.write_str(m),
        }
    }
}

/// A session logged in as one user. Every error ends the step, so a session is never used after
/// one (its answers could be out of step).
pub struct Conn {
    inner: MultiplexedConnection,
    clock: Clock,
    timeout: Duration,
    place: String,
}

/// Logs in at `server`'s host and port, over TLS when `tls`, with `login`'s user and password
/// (`AUTH username password`).
pub async fn login(
    server: &RedisSecret,
    login: &RedisSecret,
    tls: bool,
    s: &Settings,
    clock: Clock,
) -> Result<Conn, LoginError> {
    let place = format!(
        "Redis at {} as user {:?}{}",
        server.endpoint(),
        login.username,
        if tls { " over TLS" } else { "" }
    );
    if !tls {
        tracing::warn!(
            endpoint = %server.endpoint(),
            "TLS is off because the secret says \"ssl\": false; the password crosses the network in plain text"
        );
    }
    let info = RedisConnectionInfo::default()
        .set_username(&login.username)
        .set_password(login.password.expose())
        .set_skip_set_lib_name();
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(s.timeout));
    let attempt = async {
        let tcp = TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|e| LoginError::Failed(e.to_string()))?;
        // A login is several small writes; Nagle would hold each for a delayed ACK.
        tcp.set_nodelay(true)
            .map_err(|e| LoginError::Failed(e.to_string()))?;
        let tcp = Bounded::new(tcp, SESSION_READ_LIMIT);
        if !tls {
            return handshake(&info, tcp, config).await;
        }
        let name = ServerName::try_from(server.host.clone()).map_err(|e| {
            LoginError::Failed(format!(
                "host {:?} is not a valid TLS server name: {e}",
                server.host
            ))
        })?;
        let stream = tokio_rustls::TlsConnector::from(s.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| LoginError::Failed(format!("TLS: {e}")))?;
        handshake(&info, stream, config).await
    };
    let left = clock.until.saturating_duration_since(Instant::now());
    let result = tokio::time::timeout(left.min(s.timeout), attempt).await;
    shared::fault::after_call("connect");
    let scrub = |m: String| m.replace(login.password.expose(), "[redacted]");
    match result {
        Ok(Ok(inner)) => Ok(Conn {
            inner,
            clock,
            timeout: s.timeout,
            place,
        }),
        Ok(Err(LoginError::Refused(m))) => Err(LoginError::Refused(scrub(format!(
            "{place}: the password is refused: {m}"
        )))),
        Ok(Err(LoginError::Failed(m))) => Err(LoginError::Failed(scrub(format!(
            "cannot connect to {place}: {m}"
        )))),
        Err(_) if left < s.timeout => Err(LoginError::Failed(format!(
            "connecting to {place}: still running when the step's time budget ran out (3 s before the invocation's deadline)"
        ))),
        Err(_) => Err(LoginError::Failed(format!(
            "timed out after {:?} connecting to {place}",
            s.timeout
        ))),
    }
}

async fn handshake<C>(
    info: &RedisConnectionInfo,
    stream: C,
    config: AsyncConnectionConfig,
) -> Result<MultiplexedConnection, LoginError>
where
    C: Unpin + AsyncRead + AsyncWrite + Send + 'static,
{
    let (conn, driver) = MultiplexedConnection::new_with_config(info, stream, config)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::AuthenticationFailed => LoginError::Refused(e.to_string()),
            _ if e.code() == Some("WRONGPASS") => LoginError::Refused(e.to_string()),
            _ => LoginError::Failed(e.to_string()),
        })?;
    tokio::spawn(driver);
    Ok(conn)
}

/// A user's ACL as `ACL GETUSER` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAcl {
    /// `flags`: `on`/`off`, `nopass`, ...
    pub flags: Vec<String>,
    /// The SHA-256 (hex) of each password.
    pub passwords: Vec<String>,
    /// Every other field (commands, keys, channels, selectors), as the server printed it.
    pub rules: Vec<(String, String)>,
}

impl UserAcl {
    fn from_value(v: Value) -> Result<Option<Self>, String> {
        let pairs: Vec<(String, Value)> = match v {
            Value::Nil => return Ok(None),
            Value::Map(m) => m
                .into_iter()
                .map(|(k, v)| Ok((string(k)?, v)))
                .collect::<Result<_, String>>()?,
            Value::Array(items) => items
                .chunks(2)
                .map(|kv| match kv {
                    [k, v] => Ok((string(k.clone())?, v.clone())),
                    _ => Err("an odd-length ACL GETUSER answer".to_string()),
                })
                .collect::<Result<_, String>>()?,
            other => return Err(format!("an unexpected ACL GETUSER answer: {other:?}")),
        };
        let mut acl = UserAcl {
            flags: Vec::new(),
            passwords: Vec::new(),
            rules: Vec::new(),
        };
        for (key, value) in pairs {
            match key.as_str() {
                "flags" => acl.flags = strings(value)?,
                "passwords" => acl.passwords = strings(value)?,
                _ => acl.rules.push((key, format!("{value:?}"))),
            }
        }
        Ok(Some(acl))
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn has_password(&self, hash: &str) -> bool {
        self.passwords.iter().any(|p| p.eq_ignore_ascii_case(hash))
    }
}

fn string(v: Value) -> Result<String, String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).map_err(|_| "a non-UTF-8 ACL field".into()),
        Value::SimpleString(s) => Ok(s),
        other => Err(format!("an unexpected ACL field: {other:?}")),
    }
}

fn strings(v: Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(items) | Value::Set(items) => items.into_iter().map(string).collect(),
        other => Err(format!("an unexpected ACL list: {other:?}")),
    }
}

/// What `ACL SAVE` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    ToFile,
    /// The server keeps its users in its config file (or nowhere): no ACL file to write.
    NoAclFile,
}

impl Conn {
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        what: &str,
        cmd: redis::Cmd,
    ) -> Result<T, String> {
        let what = format!("{what} ({})", self.place);
        let conn = &mut self.inner;
        self.clock
            .run(self.timeout, &what, async {
                cmd.query_async(conn).await.map_err(|e| e.to_string())
            })
            .await
    }

    pub async fn ping(&mut self) -> Result<(), String> {
        self.query::<String>("PING", redis::cmd("PING"))
            .await
            .map(drop)
    }

    /// `None` when the user does not exist.
    pub async fn get_user(&mut self, user: &str) -> Result<Option<UserAcl>, String> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("GETUSER").arg(user);
        let value: Value = self.query("ACL GETUSER", cmd).await?;
        UserAcl::from_value(value).map_err(|e| format!("ACL GETUSER ({}): {e}", self.place))
    }

    /// `ACL SETUSER user <rule>` with one password rule (`#<hex>` adds, `!<hex>` removes); the
    /// user's other rules and passwords are left as they are.
    pub async fn set_user_password_rule(&mut self, user: &str, rule: &str) -> Result<(), String> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(user).arg(rule);
        self.query::<String>("ACL SETUSER", cmd).await.map(drop)
    }

    /// `ACL SAVE`, where the server uses an ACL file.
    pub async fn save(&mut self) -> Result<Saved, String> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SAVE");
        match self.query::<String>("ACL SAVE", cmd).await {
            Ok(_) => Ok(Saved::ToFile),
            // Redis and Valkey: "This Redis instance is not configured to use an ACL file..."
            Err(e) if e.contains("not configured to use an ACL file") => Ok(Saved::NoAclFile),
            Err(e) => Err(e),
        }
    }
}

/// #23.8: any `ACL GETUSER` answer (RESP2 or RESP3 shapes, any nesting) is read or refused, never
/// a panic (`shared::fuzz::CASES` cases).
#[cfg(test)]
mod fuzz_acl {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            Just(Value::Okay),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::BulkString),
            prop_oneof![
                Just("flags".to_owned()),
                Just("passwords".to_owned()),
                Just("on".to_owned()),
                ".{0,8}"
            ]
            .prop_map(Value::SimpleString),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..7).prop_map(Value::Array),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Set),
                proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
            ]
        })
    }

    proptest! {
        #![proptest_config(shared::fuzz::config())]

        #[test]
        fn any_acl_answer_is_read_or_refused(v in value()) {
            let _ = UserAcl::from_value(v);
        }
    }
}
