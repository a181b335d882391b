//! The stack's throwaway Redis 7 (users in an ACL file; plain and TLS ports with the test CA) and
//! Valkey 9 (users in its config file), as the Redis rotator's tests use them.

use aws_sdk_secretsmanager::Client;
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

/// The administrator secrets the tests' function may use: every test names them so.
pub const ADMIN_SECRETS: &str = "arn:aws:secretsmanager:*:*:secret:*redis-admin-*";
/// The rules of every user the tests create.
pub const RULES: &[&str] = &["~app:*", "&news", "+get", "+set", "+ping"];

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts Redis and Valkey")
    })
}

/// What `rotate-redis-password` runs with in the tests: the test CA, `ADMIN_SECRETS`, and no
/// minimum age for the previous password (the tests rotate back to back).
pub fn function_env() -> Vec<(String, String)> {
    vec![
        ("REDIS_CA_BUNDLE_FILE".to_string(), env("TEST_CA_FILE")),
        ("REDIS_ADMIN_SECRET_ARNS".to_string(), ADMIN_SECRETS.into()),
        ("RETIRE_PREVIOUS_MIN_AGE_SECONDS".to_string(), "0".into()),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Redis,
    RedisTls,
    Valkey,
}

impl Server {
    /// Where the function connects.
    pub fn port(self) -> u16 {
        match self {
            Server::RedisTls => env("TEST_REDIS_TLS_PORT").parse().unwrap(),
            _ => self.plain_port(),
        }
    }

    /// Where the tests log in (plain text: the users are the server's, whatever the port).
    pub fn plain_port(self) -> u16 {
        match self {
            Server::Redis | Server::RedisTls => env("TEST_REDIS_PORT").parse().unwrap(),
            Server::Valkey => env("TEST_VALKEY_PORT").parse().unwrap(),
        }
    }

    pub fn ssl(self) -> bool {
        self == Server::RedisTls
    }

    pub fn secret(self, user: &str, password: &str, masterarn: &str) -> Value {
        json!({
            "host": "127.0.0.1",
            "port": self.port(),
            "username": user,
            "password": password,
            "ssl": self.ssl(),
            "masterarn": masterarn,
            "note": "kept",
        })
    }

    /// The administrator's secret for this server, named as `ADMIN_SECRETS` allows.
    pub async fn admin_secret(self, client: &Client) -> String {
        let value = json!({
            "host": "127.0.0.1",
            "port": self.port(),
            "username": env("TEST_REDIS_ADMIN"),
            "password": env("TEST_REDIS_ADMIN_PASS"),
            "ssl": self.ssl(),
        });
        crate::stack::create_secret(
            client,
            &crate::stack::unique("redis-admin"),
            &value.to_string(),
        )
        .await
    }

    pub async fn login(self, user: &str, password: &str) -> Result<MultiplexedConnection, String> {
        let client = redis::Client::open(("127.0.0.1", self.plain_port())).unwrap();
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("AUTH")
            .arg(user)
            .arg(password)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(conn)
    }

    pub async fn admin(self, args: &[&str]) -> redis::Value {
        let mut conn = self
            .login(&env("TEST_REDIS_ADMIN"), &env("TEST_REDIS_ADMIN_PASS"))
            .await
            .unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    pub async fn create_user(self, user: &str, password: &str) {
        let pass = format!(">{password}");
        let mut args = vec!["ACL", "SETUSER", user, "reset", "on", &pass];
        args.extend(RULES);
        self.admin(&args).await;
    }

    /// The user's `ACL LIST` line: its rules, and its passwords' hashes apart.
    pub async fn acl(self, user: &str) -> (Vec<String>, Vec<String>) {
        let redis::Value::Array(lines) = self.admin(&["ACL", "LIST"]).await else {
            panic!("ACL LIST");
        };
        let prefix = format!("user {user} ");
        let line = lines
            .iter()
            .map(text)
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no user {user}"));
        let (hashes, rules) = line
            .split(' ')
            .map(str::to_owned)
            .partition(|t| t.starts_with('#'));
        (rules, hashes)
    }
}

/// Every string in a server's answer, one per line.
pub fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().map(text).collect::<Vec<_>>().join("\n")
        }
        other => format!("{other:?}"),
    }
}
