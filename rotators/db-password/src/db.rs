//! Connections and the few statements the rotator runs, for PostgreSQL and MySQL/MariaDB.
//!
//! TLS is strict unless the secret says `"ssl": false`: the server certificate must chain to the
//! public roots or the CA bundle (Amazon RDS's unless configured) and match the host name. There
//! is no fallback.

use crate::secret::{DbSecret, Engine};
use crate::sql;
use shared::SecretString;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use std::future::Future;
use std::time::Duration;

/// The Amazon RDS CA bundle (certs/README.md), compiled in so every package carries it.
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// Connection settings from the function's environment.
#[derive(Clone)]
pub struct Settings {
    /// PEM CAs trusted beside the public roots: the Amazon RDS bundle unless `DB_CA_BUNDLE_FILE`
    /// or `DB_CA_BUNDLE_PEM` names others.
    pub ca_pem: Vec<u8>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Settings {
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
        if let Some(pem) = &ca_pem
            && !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----")
        {
            return Err("the DB CA bundle holds no PEM certificate".into());
        }
        let ca_pem = ca_pem.unwrap_or_else(|| RDS_CA_BUNDLE.to_vec());
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
        Ok(Self {
            ca_pem,
            connect_timeout: seconds("DB_CONNECT_TIMEOUT_SECONDS")?,
            statement_timeout: seconds("DB_STATEMENT_TIMEOUT_SECONDS")?,
        })
    }
}

pub enum Conn {
    Pg(PgConnection),
    My {
        conn: MySqlConnection,
        mariadb: bool,
        no_backslash_escapes: bool,
    },
}

/// Removes a secret from a driver or server message, in case one ever echoes it.
fn scrub(message: String, secrets: &[&SecretString]) -> String {
    secrets
        .iter()
        .filter(|s| !s.expose().is_empty())
        .fold(message, |m, s| m.replace(s.expose(), "[redacted]"))
}

/// Logs in with the host, port and TLS setting of `target` and the credentials of `login`.
pub async fn connect(target: &DbSecret, login: &DbSecret, s: &Settings) -> Result<Conn, String> {
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
        match target.engine {
            Engine::Postgres => {
                let mut o = PgConnectOptions::new()
                    .host(&target.host)
                    .port(target.port)
                    .username(&login.username)
                    .password(login.password.expose())
                    .database(target.dbname.as_deref().unwrap_or("postgres"))
                    .options([(
                        "statement_timeout",
                        format!("{}ms", s.statement_timeout.as_millis()),
                    )]);
                // sqlx adds these CAs to the public roots.
                o = if target.ssl {
                    o.ssl_mode(PgSslMode::VerifyFull)
                        .ssl_root_cert_from_pem(s.ca_pem.clone())
                } else {
                    o.ssl_mode(PgSslMode::Disable)
                };
                PgConnection::connect_with(&quiet(o)).await.map(Conn::Pg)
            }
            Engine::MySql | Engine::MariaDb => {
                let mut o = MySqlConnectOptions::new()
                    .host(&target.host)
                    .port(target.port)
                    .username(&login.username)
                    .password(login.password.expose());
                if let Some(db) = &target.dbname {
                    o = o.database(db);
                }
                o = if target.ssl {
                    o.ssl_mode(MySqlSslMode::VerifyIdentity)
                        .ssl_ca_from_pem(s.ca_pem.clone())
                } else {
                    o.ssl_mode(MySqlSslMode::Disabled)
                };
                let mut conn = MySqlConnection::connect_with(&quiet(o)).await?;
                let (version, mode): (String, String) =
                    sqlx::query_as("SELECT VERSION(), @@SESSION.sql_mode")
                        .fetch_one(&mut conn)
                        .await?;
                Ok(Conn::My {
                    conn,
                    mariadb: version.contains("MariaDB"),
                    no_backslash_escapes: mode.contains("NO_BACKSLASH_ESCAPES"),
                })
            }
        }
    };
    let result = tokio::time::timeout(s.connect_timeout, attempt).await;
    shared::fault::after_call("connect");
    match result {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(scrub(
            format!("cannot connect to {place}: {e}"),
            &[&login.password],
        )),
        Err(_) => Err(format!(
            "timed out after {:?} connecting to {place}",
            s.connect_timeout
        )),
    }
}

/// sqlx logs every statement at debug level, and our `ALTER USER` statements carry the password
/// (or its verifier): statement logging is off, always. The leak tests run at `trace`.
fn quiet<O: ConnectOptions>(options: O) -> O {
    options
        .log_statements(log::LevelFilter::Off)
        .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(3600))
}

impl Conn {
    async fn timed<T>(
        timeout: Duration,
        what: &str,
        secrets: &[&SecretString],
        f: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, String> {
        let result = tokio::time::timeout(timeout, f).await;
        shared::fault::after_call(what);
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(scrub(format!("{what} failed: {e}"), secrets)),
            Err(_) => Err(format!("{what} timed out after {timeout:?}")),
        }
    }

    /// Runs one statement through the text protocol (utility statements cannot be prepared).
    async fn run(
        &mut self,
        s: &Settings,
        what: &str,
        statement: String,
        secrets: &[&SecretString],
    ) -> Result<(), String> {
        let q = sqlx::raw_sql(AssertSqlSafe(statement));
        match self {
            Conn::Pg(c) => Self::timed(s.statement_timeout, what, secrets, q.execute(c))
                .await
                .map(drop),
            Conn::My { conn, .. } => {
                Self::timed(s.statement_timeout, what, secrets, q.execute(conn))
                    .await
                    .map(drop)
            }
        }
    }

    /// Proves the login works.
    pub async fn ping(&mut self, s: &Settings) -> Result<(), String> {
        self.run(s, "SELECT 1", "SELECT 1".into(), &[]).await
    }

    /// PostgreSQL: whether a role exists.
    pub async fn pg_role_exists(&mut self, s: &Settings, role: &str) -> Result<bool, String> {
        let Conn::Pg(c) = self else {
            unreachable!("PostgreSQL only")
        };
        let q =
            sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_roles WHERE rolname = $1").bind(role);
        Self::timed(
            s.statement_timeout,
            "looking up the role",
            &[],
            q.fetch_optional(c),
        )
        .await
        .map(|r| r.is_some())
    }

    /// PostgreSQL: sets a role's password as a SCRAM verifier computed here, so the plaintext
    /// never reaches the server or its logs. With `member_of`, creates the role first as a
    /// member of that role, which gives it the same privileges, now and later.
    pub async fn pg_set_password(
        &mut self,
        s: &Settings,
        role: &str,
        password: &SecretString,
        create_in_role: Option<&str>,
    ) -> Result<(), String> {
        let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
        let statement = match create_in_role {
            Some(parent) => format!(
                "CREATE ROLE {} WITH LOGIN PASSWORD {} IN ROLE {}",
                sql::pg_ident(role),
                sql::pg_literal(&verifier),
                sql::pg_ident(parent)
            ),
            None => format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                sql::pg_ident(role),
                sql::pg_literal(&verifier)
            ),
        };
        self.run(s, "setting the password", statement, &[password])
            .await
    }

    /// Open sessions of `user` other than this one (PostgreSQL `pg_stat_activity`, MySQL/MariaDB
    /// the process list, which the master may read).
    pub async fn sessions_of(&mut self, s: &Settings, user: &str) -> Result<i64, String> {
        let what = "counting the user's sessions";
        match self {
            Conn::Pg(c) => {
                let q = sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
                )
                .bind(user);
                Self::timed(s.statement_timeout, what, &[], q.fetch_one(c)).await
            }
            Conn::My { conn, .. } => {
                let q = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
                )
                .bind(user);
                Self::timed(s.statement_timeout, what, &[], q.fetch_one(conn)).await
            }
        }
    }

    /// MySQL/MariaDB: the hosts a user has accounts for.
    pub async fn my_user_hosts(&mut self, s: &Settings, user: &str) -> Result<Vec<String>, String> {
        let Conn::My { conn, .. } = self else {
            unreachable!("MySQL only")
        };
        let q = sqlx::query_scalar::<_, String>("SELECT Host FROM mysql.user WHERE User = ?")
            .bind(user);
        Self::timed(
            s.statement_timeout,
            "listing the user's accounts",
            &[],
            q.fetch_all(conn),
        )
        .await
    }

    fn my_literal(&self, text: &str) -> String {
        let Conn::My {
            no_backslash_escapes,
            ..
        } = self
        else {
            unreachable!("MySQL only")
        };
        sql::my_literal(text, *no_backslash_escapes)
    }

    fn my_account(&self, user: &str, host: &str) -> String {
        format!("{}@{}", self.my_literal(user), self.my_literal(host))
    }

    /// MySQL/MariaDB: the logged-in user changes its own password, which needs no privilege.
    pub async fn my_set_own_password(
        &mut self,
        s: &Settings,
        password: &SecretString,
    ) -> Result<(), String> {
        let Conn::My { mariadb, .. } = *self else {
            unreachable!("MySQL only")
        };
        let literal = self.my_literal(password.expose());
        let statement = if mariadb {
            format!("SET PASSWORD = PASSWORD({literal})")
        } else {
            format!("ALTER USER CURRENT_USER() IDENTIFIED BY {literal}")
        };
        self.run(s, "setting the password", statement, &[password])
            .await
    }

    /// MySQL/MariaDB, as an administrator: sets `user@host`'s password, creating the account first
    /// when `create` (the clone's first rotation).
    pub async fn my_set_password(
        &mut self,
        s: &Settings,
        user: &str,
        host: &str,
        password: &SecretString,
        create: bool,
    ) -> Result<(), String> {
        let account = self.my_account(user, host);
        let literal = self.my_literal(password.expose());
        if create {
            let create = format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {literal}");
            self.run(s, "creating the user", create, &[password])
                .await?;
        }
        let alter = format!("ALTER USER {account} IDENTIFIED BY {literal}");
        self.run(s, "setting the password", alter, &[password])
            .await
    }

    /// MySQL/MariaDB: one account's grants (as `SHOW GRANTS` prints them) and `REQUIRE` clause.
    pub async fn my_account_state(
        &mut self,
        s: &Settings,
        user: &str,
        host: &str,
    ) -> Result<(Vec<String>, String), String> {
        let shown = format!("SHOW GRANTS FOR {}", self.my_account(user, host));
        let Conn::My {
            conn,
            no_backslash_escapes,
            ..
        } = self
        else {
            unreachable!("MySQL only")
        };
        let nbe = *no_backslash_escapes;
        let q = sqlx::query_scalar::<_, String>(AssertSqlSafe(shown));
        let lines = Self::timed(
            s.statement_timeout,
            "reading the grants",
            &[],
            q.fetch_all(&mut *conn),
        )
        .await?;
        let q = sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT CAST(ssl_type AS CHAR), CAST(ssl_cipher AS CHAR), CAST(x509_issuer AS CHAR), \
             CAST(x509_subject AS CHAR) FROM mysql.user WHERE User = ? AND Host = ?",
        )
        .bind(user)
        .bind(host);
        let (ty, cipher, issuer, subject) = Self::timed(
            s.statement_timeout,
            "reading the account's REQUIRE",
            &[],
            q.fetch_one(&mut *conn),
        )
        .await?;
        let require = crate::privileges::my_require(&ty, &cipher, &issuer, &subject, |v| {
            sql::my_literal(v, nbe)
        });
        Ok((lines, require))
    }

    /// MySQL/MariaDB, as an administrator: gives `to@host` every grant, role, default role and the
    /// `REQUIRE` clause of `from@host`. Grants are only added: testSecret reports any extra.
    pub async fn my_copy_privileges(
        &mut self,
        s: &Settings,
        from: &str,
        to: &str,
        host: &str,
    ) -> Result<(), String> {
        let (lines, require) = self.my_account_state(s, from, host).await?;
        let account = self.my_account(to, host);
        self.run(
            s,
            "copying REQUIRE",
            format!("ALTER USER {account} REQUIRE {require}"),
            &[],
        )
        .await?;
        let from_shown = sql::my_account_shown(from, host);
        for line in lines {
            if let Some(grant) = sql::regrant(&line, &from_shown, &account) {
                self.run(s, "copying a grant", grant, &[]).await?;
            }
        }
        Ok(())
    }

    /// PostgreSQL: a role's attributes and direct memberships, or `None` when it does not exist.
    /// The catalog is readable by every role, so any login can ask.
    pub async fn pg_role(
        &mut self,
        s: &Settings,
        role: &str,
    ) -> Result<Option<crate::privileges::PgRole>, String> {
        use crate::privileges::{PG_ATTRIBUTES, PgRole};
        let Conn::Pg(c) = self else {
            unreachable!("PostgreSQL only")
        };
        let columns: Vec<String> = PG_ATTRIBUTES
            .iter()
            .map(|(name, _)| format!("{name}::text"))
            .collect();
        let q = format!(
            "SELECT ARRAY[{}] FROM pg_roles WHERE rolname = $1",
            columns.join(", ")
        );
        let q = sqlx::query_scalar::<_, Vec<String>>(AssertSqlSafe(q)).bind(role);
        let Some(values) = Self::timed(
            s.statement_timeout,
            "reading the role",
            &[],
            q.fetch_optional(&mut *c),
        )
        .await?
        else {
            return Ok(None);
        };
        let q = sqlx::query_scalar::<_, String>(
            "SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1",
        )
        .bind(role);
        let member_of = Self::timed(
            s.statement_timeout,
            "reading the role's memberships",
            &[],
            q.fetch_all(&mut *c),
        )
        .await?;
        Ok(Some(PgRole {
            attributes: PG_ATTRIBUTES.iter().map(|(n, _)| *n).zip(values).collect(),
            member_of: member_of.into_iter().collect(),
        }))
    }

    /// PostgreSQL, as an administrator: makes `clone` a member of `original` (idempotent) and
    /// gives it the attributes of `original` that a `CREATEROLE` role may set.
    pub async fn pg_copy_privileges(
        &mut self,
        s: &Settings,
        original: &str,
        clone: &str,
    ) -> Result<(), String> {
        let (Some(o), Some(c)) = (
            self.pg_role(s, original).await?,
            self.pg_role(s, clone).await?,
        ) else {
            return Err(format!("role `{original}` or `{clone}` does not exist"));
        };
        if !c.member_of.contains(original) {
            let grant = format!(
                "GRANT {} TO {}",
                sql::pg_ident(original),
                sql::pg_ident(clone)
            );
            self.run(s, "granting the original role", grant, &[])
                .await?;
        }
        let changes: Vec<&str> = crate::privileges::PG_ATTRIBUTES
            .iter()
            .filter_map(|(name, set)| {
                let (on, off) = (*set)?;
                let want = o.attributes.get(name)?;
                (c.attributes.get(name) != Some(want)).then_some(if want == "true" {
                    on
                } else {
                    off
                })
            })
            .collect();
        if !changes.is_empty() {
            let alter = format!(
                "ALTER ROLE {} WITH {}",
                sql::pg_ident(clone),
                changes.join(" ")
            );
            self.run(s, "copying role attributes", alter, &[]).await?;
        }
        Ok(())
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
}
