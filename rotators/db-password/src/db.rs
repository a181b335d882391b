//! Connections and the few statements the rotator runs, for PostgreSQL and MySQL/MariaDB.
//!
//! TLS is strict unless the secret says `"ssl": false`: the server certificate must chain to the
//! public roots or the CA bundle (Amazon RDS's unless configured) and match the host name. There
//! is no fallback.

use crate::mysql;
use crate::net;
use crate::secret::{DbSecret, Engine};
use crate::sql;
use rustls::ClientConfig;
use shared::SecretString;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::{ToSql, Type};

/// The Amazon RDS CA bundle (certs/README.md), compiled in so every package carries it.
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// Every PostgreSQL session's `search_path`: the catalog, then the session's own temporary
/// schema last, so no object a database owner made shadows a catalog name. The statements name
/// every catalog object and operator with its schema as well.
pub const PG_SEARCH_PATH: &str = "search_path=pg_catalog,pg_temp";

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
        let ca_pem = ca_pem.unwrap_or_else(|| RDS_CA_BUNDLE.to_vec());
        let tls = net::client_config(&ca_pem)?;
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
            tls,
            connect_timeout: seconds("DB_CONNECT_TIMEOUT_SECONDS")?,
            statement_timeout: seconds("DB_STATEMENT_TIMEOUT_SECONDS")?,
        })
    }
}

pub enum Conn {
    /// The connection's I/O runs on its own task until the client is dropped.
    Pg(tokio_postgres::Client),
    My {
        conn: mysql::Conn,
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

/// An error with its causes (tokio-postgres puts the server's message in the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
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
    let tls = target.ssl.then(|| s.tls.clone());
    let attempt = async {
        let tcp = net::connect(&target.host, target.port)
            .await
            .map_err(|e| e.to_string())?;
        match target.engine {
            Engine::Postgres => {
                let mut config = tokio_postgres::Config::new();
                config
                    .user(&login.username)
                    .password(login.password.expose())
                    .dbname(target.dbname.as_deref().unwrap_or("postgres"))
                    .application_name("secrets-manager-rotation")
                    // A start-up option outranks the database's and the role's settings, so an
                    // owner's `ALTER DATABASE ... SET search_path` never reaches our statements.
                    .options(format!(
                        "-c statement_timeout={} -c {PG_SEARCH_PATH}",
                        s.statement_timeout.as_millis()
                    ))
                    .ssl_mode(if tls.is_some() {
                        tokio_postgres::config::SslMode::Require
                    } else {
                        tokio_postgres::config::SslMode::Disable
                    });
                let connector = net::PgTls {
                    config: s.tls.clone(),
                    host: target.host.clone(),
                };
                let (client, connection) = config
                    .connect_raw(tcp, connector)
                    .await
                    .map_err(|e| chain(&e))?;
                tokio::spawn(connection);
                Ok::<_, String>(Conn::Pg(client))
            }
            Engine::MySql | Engine::MariaDb => {
                let mut conn = mysql::Conn::login(
                    tcp,
                    mysql::Login {
                        host: &target.host,
                        user: &login.username,
                        password: login.password.expose(),
                        database: target.dbname.as_deref(),
                        tls,
                    },
                )
                .await?;
                let mode = conn.query("SELECT @@SESSION.sql_mode").await?;
                let mode = mode.first().and_then(|r| r.first().cloned().flatten());
                Ok(Conn::My {
                    mariadb: conn.server_version.contains("MariaDB"),
                    no_backslash_escapes: mode.is_some_and(|m| m.contains("NO_BACKSLASH_ESCAPES")),
                    conn,
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

/// The first column of each row, NULLs left out.
fn first_column(rows: Vec<mysql::Row>) -> Vec<String> {
    rows.into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect()
}

async fn pg<T>(f: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, String> {
    f.await.map_err(|e| chain(&e))
}

impl Conn {
    async fn timed<T, E: std::fmt::Display>(
        timeout: Duration,
        what: &str,
        secrets: &[&SecretString],
        f: impl Future<Output = Result<T, E>>,
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
        match self {
            Conn::Pg(c) => Self::timed(
                s.statement_timeout,
                what,
                secrets,
                pg(c.batch_execute(&statement)),
            )
            .await
            .map(drop),
            Conn::My { conn, .. } => {
                Self::timed(s.statement_timeout, what, secrets, conn.query(&statement))
                    .await
                    .map(drop)
            }
        }
    }

    /// PostgreSQL: one statement with typed parameters, in one round trip (no prepare).
    async fn pg_rows(
        &mut self,
        s: &Settings,
        what: &str,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, String> {
        let Conn::Pg(c) = self else {
            unreachable!("PostgreSQL only")
        };
        Self::timed(
            s.statement_timeout,
            what,
            &[],
            pg(c.query_typed(statement, params)),
        )
        .await
    }

    /// MySQL/MariaDB: one statement's rows.
    async fn my_rows(
        &mut self,
        s: &Settings,
        what: &str,
        statement: &str,
    ) -> Result<Vec<mysql::Row>, String> {
        let Conn::My { conn, .. } = self else {
            unreachable!("MySQL only")
        };
        Self::timed(s.statement_timeout, what, &[], conn.query(statement)).await
    }

    /// Proves the login works.
    pub async fn ping(&mut self, s: &Settings) -> Result<(), String> {
        self.run(s, "SELECT 1", "SELECT 1".into(), &[]).await
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
        // Both engines answer the count as text.
        let count: Vec<String> = match self {
            Conn::Pg(_) => self
                .pg_rows(
                    s,
                    what,
                    "SELECT pg_catalog.count(*)::pg_catalog.text FROM pg_catalog.pg_stat_activity \
                     WHERE usename OPERATOR(pg_catalog.=) $1 \
                     AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
                    &[(&user, Type::NAME)],
                )
                .await?
                .iter()
                .filter_map(|r| r.try_get(0).ok())
                .collect(),
            Conn::My { .. } => {
                let q = format!(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = {} AND ID <> CONNECTION_ID()",
                    self.my_literal(user)
                );
                first_column(self.my_rows(s, what, &q).await?)
            }
        };
        count
            .first()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{what}: no count"))
    }

    /// MySQL/MariaDB: the hosts a user has accounts for.
    pub async fn my_user_hosts(&mut self, s: &Settings, user: &str) -> Result<Vec<String>, String> {
        let q = format!(
            "SELECT Host FROM mysql.user WHERE User = {}",
            self.my_literal(user)
        );
        Ok(first_column(
            self.my_rows(s, "listing the user's accounts", &q).await?,
        ))
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
        let lines = first_column(self.my_rows(s, "reading the grants", &shown).await?);
        let q = format!(
            "SELECT CAST(ssl_type AS CHAR), CAST(ssl_cipher AS CHAR), CAST(x509_issuer AS CHAR), \
             CAST(x509_subject AS CHAR) FROM mysql.user WHERE User = {} AND Host = {}",
            self.my_literal(user),
            self.my_literal(host)
        );
        let rows = self.my_rows(s, "reading the account's REQUIRE", &q).await?;
        let Some([ty, cipher, issuer, subject]) = rows.into_iter().next().and_then(|r| {
            <[Option<String>; 4]>::try_from(r)
                .ok()
                .map(|r| r.map(Option::unwrap_or_default))
        }) else {
            return Err(format!("account {user}@{host} not found in mysql.user"));
        };
        let nbe = matches!(
            self,
            Conn::My {
                no_backslash_escapes: true,
                ..
            }
        );
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
        let columns: Vec<String> = PG_ATTRIBUTES
            .iter()
            .map(|(name, _)| format!("{name}::pg_catalog.text"))
            .collect();
        let q = format!(
            "SELECT ARRAY[{}] FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1",
            columns.join(", ")
        );
        let rows = self
            .pg_rows(s, "reading the role", &q, &[(&role, Type::NAME)])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let values: Vec<String> = row.try_get(0).map_err(|e| chain(&e))?;
        let member_of = self
            .pg_rows(
                s,
                "reading the role's memberships",
                "SELECT g.rolname::pg_catalog.text FROM pg_catalog.pg_auth_members m \
                 JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) m.roleid \
                 JOIN pg_catalog.pg_roles u ON u.oid OPERATOR(pg_catalog.=) m.member \
                 WHERE u.rolname OPERATOR(pg_catalog.=) $1",
                &[(&role, Type::NAME)],
            )
            .await?
            .iter()
            .map(|r| r.try_get::<_, String>(0).map_err(|e| chain(&e)))
            .collect::<Result<Vec<_>, _>>()?;
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
