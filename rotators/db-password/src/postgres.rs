//! PostgreSQL through tokio-postgres, over a socket the function opened (`connect_raw`).
//!
//! A database's owner may create schemas, functions, views and operators, and set the database's
//! `search_path`: every session pins `search_path` at start-up (a start-up option outranks
//! `ALTER DATABASE/ROLE ... SET`), and every catalog object, function, cast and operator below is
//! schema-qualified, so nothing the owner made runs in our sessions.

use crate::db::{Clock, Session, Settings};
use crate::net;
use crate::net::Bounded;
use crate::privileges::{self, PG_ATTRIBUTES, PgRole};
use crate::secret::DbSecret;
use crate::sql;
use async_trait::async_trait;
use shared::SecretString;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_postgres::types::{ToSql, Type};

/// Every session's `search_path`: the catalog, then the session's own temporary schema last.
pub const SEARCH_PATH: &str = "search_path=pg_catalog,pg_temp";

pub struct PgSession {
    client: tokio_postgres::Client,
    clock: Clock,
    statement_timeout: Duration,
    /// Set by any error or timeout: the session is not used again.
    broken: bool,
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

pub async fn login(
    tcp: Bounded<TcpStream>,
    target: &DbSecret,
    login: &DbSecret,
    s: &Settings,
    clock: Clock,
) -> Result<Box<dyn Session>, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(&login.username)
        .password(login.password.expose())
        .dbname(target.dbname.as_deref().unwrap_or("postgres"))
        .application_name("secrets-manager-rotation")
        .options(format!(
            "-c statement_timeout={} -c {SEARCH_PATH}",
            s.statement_timeout.as_millis()
        ))
        .ssl_mode(if target.ssl {
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
    Ok(Box::new(PgSession {
        client,
        clock,
        statement_timeout: s.statement_timeout,
        broken: false,
    }))
}

impl PgSession {
    /// A utility statement through the simple protocol (they cannot be prepared).
    async fn run(
        &mut self,
        what: &str,
        statement: String,
        secrets: &[&SecretString],
    ) -> Result<(), String> {
        crate::db::usable(self.broken, what)?;
        let client = &self.client;
        let result = self
            .clock
            .run(self.statement_timeout, what, secrets, async {
                client
                    .batch_execute(&statement)
                    .await
                    .map_err(|e| chain(&e))
            })
            .await;
        self.broken |= result.is_err();
        result
    }

    /// One statement with typed parameters, in one round trip (no prepare).
    async fn rows(
        &mut self,
        what: &str,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, String> {
        crate::db::usable(self.broken, what)?;
        let client = &self.client;
        let result = self
            .clock
            .run(self.statement_timeout, what, &[], async {
                client
                    .query_typed(statement, params)
                    .await
                    .map_err(|e| chain(&e))
            })
            .await;
        self.broken |= result.is_err();
        result
    }

    /// A role's attributes and direct memberships, or `None` when it does not exist. The catalog
    /// is readable by every role, so any login can ask.
    async fn role(&mut self, role: &str) -> Result<Option<PgRole>, String> {
        let columns: Vec<String> = PG_ATTRIBUTES
            .iter()
            .map(|(name, _)| format!("{name}::pg_catalog.text"))
            .collect();
        let q = format!(
            "SELECT ARRAY[{}] FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1",
            columns.join(", ")
        );
        let rows = self
            .rows("reading the role", &q, &[(&role, Type::NAME)])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let values: Vec<String> = row.try_get(0).map_err(|e| chain(&e))?;
        let member_of = self
            .rows(
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

    /// The role a user's sessions switch to at login (`ALTER ROLE ... SET role`), if any.
    async fn acts_as(&mut self, role: &str) -> Result<Option<String>, String> {
        let rows = self
            .rows(
                "reading the role's settings",
                "SELECT pg_catalog.unnest(s.setconfig) FROM pg_catalog.pg_db_role_setting s \
                 JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) s.setrole \
                 WHERE r.rolname OPERATOR(pg_catalog.=) $1 \
                 AND s.setdatabase OPERATOR(pg_catalog.=) '0'::pg_catalog.oid",
                &[(&role, Type::NAME)],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok())
            .find_map(|setting| setting.strip_prefix("role=").map(str::to_owned)))
    }

    async fn pair(&mut self, original: &str, clone: &str) -> Result<(PgRole, PgRole), String> {
        match (self.role(original).await?, self.role(clone).await?) {
            (Some(o), Some(c)) => Ok((o, c)),
            _ => Err(format!("role `{original}` or `{clone}` does not exist")),
        }
    }
}

#[async_trait]
impl Session for PgSession {
    async fn ping(&mut self) -> Result<(), String> {
        self.run("SELECT 1", "SELECT 1".into(), &[]).await
    }

    async fn sessions_of(&mut self, user: &str) -> Result<i64, String> {
        let what = "counting the user's sessions";
        let rows = self
            .rows(
                what,
                "SELECT pg_catalog.count(*)::pg_catalog.text FROM pg_catalog.pg_stat_activity \
                 WHERE usename OPERATOR(pg_catalog.=) $1 \
                 AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
                &[(&user, Type::NAME)],
            )
            .await?;
        rows.first()
            .and_then(|r| r.try_get::<_, String>(0).ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{what}: no count"))
    }

    /// The password goes as a SCRAM verifier computed here, so the plaintext never reaches the
    /// server or its logs.
    async fn set_own_password(
        &mut self,
        user: &str,
        password: &SecretString,
    ) -> Result<(), String> {
        self.set_password(user, password, None).await
    }

    /// A missing clone is created as a member of the original, which gives it the original's
    /// privileges, now and later.
    async fn set_password(
        &mut self,
        role: &str,
        password: &SecretString,
        clone_of: Option<&str>,
    ) -> Result<(), String> {
        let create_in = match clone_of {
            Some(original) if self.role(role).await?.is_none() => Some(original),
            _ => None,
        };
        let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
        let statement = match create_in {
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
        self.run("setting the password", statement, &[password])
            .await
    }

    /// Makes `clone` a member of `original` (idempotent) and gives it the attributes of
    /// `original` that a `CREATEROLE` role may set.
    async fn copy_privileges(&mut self, original: &str, clone: &str) -> Result<(), String> {
        let (o, c) = self.pair(original, clone).await?;
        if !c.member_of.contains(original) {
            let grant = format!(
                "GRANT {} TO {}",
                sql::pg_ident(original),
                sql::pg_ident(clone)
            );
            self.run("granting the original role", grant, &[]).await?;
        }
        let changes: Vec<&str> = PG_ATTRIBUTES
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
            self.run("copying role attributes", alter, &[]).await?;
        }
        // One owner: the clone's sessions act as the original, so what either user creates
        // belongs to the original and stays readable whichever user is current.
        if self.acts_as(clone).await?.as_deref() != Some(original) {
            let alter = format!(
                "ALTER ROLE {} SET role = {}",
                sql::pg_ident(clone),
                sql::pg_literal(original)
            );
            self.run("making the clone act as the original", alter, &[])
                .await?;
        }
        Ok(())
    }

    async fn differences(&mut self, original: &str, clone: &str) -> Result<Vec<String>, String> {
        Ok(
            match (self.role(original).await?, self.role(clone).await?) {
                (Some(o), Some(c)) => privileges::pg_differences(original, clone, &o, &c),
                _ => vec![format!("role `{original}` or `{clone}` does not exist")],
            },
        )
    }

    async fn clone_extras(&mut self, original: &str, clone: &str) -> Result<Vec<String>, String> {
        let Some(c) = self.role(clone).await? else {
            return Ok(Vec::new());
        };
        let o = self
            .role(original)
            .await?
            .ok_or_else(|| format!("role `{original}` does not exist"))?;
        Ok(privileges::pg_extras(original, clone, &o, &c))
    }

    async fn owner_differences(
        &mut self,
        original: &str,
        clone: &str,
    ) -> Result<Vec<String>, String> {
        Ok(match self.acts_as(clone).await? {
            Some(role) if role == original => Vec::new(),
            other => vec![format!(
                "`{clone}`'s sessions act as {} instead of `{original}` (ALTER ROLE ... SET role), so objects it creates would not belong to `{original}`",
                other.map_or("itself".to_string(), |r| format!("`{r}`"))
            )],
        })
    }
}
