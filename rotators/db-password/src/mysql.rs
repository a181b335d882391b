//! MySQL and MariaDB through the function's own protocol client (`mysql_wire.rs`). Statements
//! that cannot take bind parameters get names and passwords through `sql::my_literal`, quoted for
//! the session's `sql_mode`. MySQL/MariaDB have no object owners and no inheritance between the
//! two users of a pair: privileges are copied, account by account.

use crate::db::{self, Clock, Session, Settings};
use crate::mysql_wire::{self, Failure, Row};
use crate::net::Bounded;
use crate::privileges::{self, MyAccount};
use crate::secret::DbSecret;
use crate::sql;
use async_trait::async_trait;
use shared::SecretString;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::TcpStream;

pub struct MySession {
    conn: mysql_wire::Conn,
    /// From `VERSION()` once logged in (over TLS when the secret asks), not the greeting.
    mariadb: bool,
    no_backslash_escapes: bool,
    clock: Clock,
    statement_timeout: Duration,
    /// Set when the connection broke or a statement timed out: the session is not used again.
    broken: bool,
}

/// The first column of each row, NULLs left out.
fn first_column(rows: Vec<Row>) -> Vec<String> {
    rows.into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect()
}

pub async fn login(
    tcp: Bounded<TcpStream>,
    target: &DbSecret,
    login: &DbSecret,
    s: &Settings,
    clock: Clock,
) -> Result<Box<dyn Session>, String> {
    let conn = mysql_wire::Conn::login(
        tcp,
        mysql_wire::Login {
            host: &target.host,
            user: &login.username,
            password: login.password.expose(),
            database: target.dbname.as_deref(),
            tls: target.ssl.then(|| s.tls.clone()),
        },
    )
    .await?;
    let mut session = MySession {
        conn,
        mariadb: false,
        no_backslash_escapes: false,
        clock,
        statement_timeout: s.statement_timeout,
        broken: false,
    };
    let rows = session
        .rows(
            "reading the server's version",
            "SELECT @@SESSION.sql_mode, VERSION()",
        )
        .await?;
    let row = rows.into_iter().next().unwrap_or_default();
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    session.no_backslash_escapes = text(0).contains("NO_BACKSLASH_ESCAPES");
    session.mariadb = text(1).contains("MariaDB");
    Ok(Box::new(session))
}

impl MySession {
    async fn query(
        &mut self,
        what: &str,
        statement: &str,
        secrets: &[&SecretString],
    ) -> Result<Vec<Row>, String> {
        db::usable(self.broken, what)?;
        let mut answered = false;
        let conn = &mut self.conn;
        let result = self
            .clock
            .run(self.statement_timeout, what, secrets, async {
                conn.query(statement).await.inspect_err(|f: &Failure| {
                    answered = f.server;
                })
            })
            .await;
        // A refusal the server answered leaves the session in step; anything else does not.
        self.broken |= result.is_err() && !answered;
        result
    }

    async fn rows(&mut self, what: &str, statement: &str) -> Result<Vec<Row>, String> {
        self.query(what, statement, &[]).await
    }

    async fn run(
        &mut self,
        what: &str,
        statement: String,
        secrets: &[&SecretString],
    ) -> Result<(), String> {
        self.query(what, &statement, secrets).await.map(drop)
    }

    fn literal(&self, text: &str) -> String {
        sql::my_literal(text, self.no_backslash_escapes)
    }

    fn account(&self, user: &str, host: &str) -> String {
        format!("{}@{}", self.literal(user), self.literal(host))
    }

    /// The hosts a user has accounts for (needs read access to `mysql.user`).
    async fn user_hosts(&mut self, user: &str) -> Result<Vec<String>, String> {
        let q = format!(
            "SELECT Host FROM mysql.user WHERE User = {}",
            self.literal(user)
        );
        Ok(first_column(
            self.rows("listing the user's accounts", &q).await?,
        ))
    }

    /// One account's grants (as `SHOW GRANTS` prints them) and `REQUIRE` clause.
    async fn account_state(
        &mut self,
        user: &str,
        host: &str,
    ) -> Result<(Vec<String>, String), String> {
        let shown = format!("SHOW GRANTS FOR {}", self.account(user, host));
        let lines = first_column(self.rows("reading the grants", &shown).await?);
        let q = format!(
            "SELECT CAST(ssl_type AS CHAR), CAST(ssl_cipher AS CHAR), CAST(x509_issuer AS CHAR), \
             CAST(x509_subject AS CHAR) FROM mysql.user WHERE User = {} AND Host = {}",
            self.literal(user),
            self.literal(host)
        );
        let rows = self.rows("reading the account's REQUIRE", &q).await?;
        let Some([ty, cipher, issuer, subject]) = rows.into_iter().next().and_then(|r| {
            <[Option<String>; 4]>::try_from(r)
                .ok()
                .map(|r| r.map(Option::unwrap_or_default))
        }) else {
            return Err(format!("account {user}@{host} not found in mysql.user"));
        };
        let nbe = self.no_backslash_escapes;
        let require =
            privileges::my_require(&ty, &cipher, &issuer, &subject, |v| sql::my_literal(v, nbe));
        Ok((lines, require))
    }

    /// Every account of `user`, host by host, with its normalised grants and `REQUIRE`.
    async fn accounts(&mut self, user: &str) -> Result<BTreeMap<String, MyAccount>, String> {
        let mut by_host = BTreeMap::new();
        for host in self.user_hosts(user).await? {
            let (lines, require) = self.account_state(user, &host).await?;
            let grants = privileges::my_normalise(&lines, user, &host);
            by_host.insert(host, MyAccount { grants, require });
        }
        Ok(by_host)
    }
}

#[async_trait]
impl Session for MySession {
    async fn ping(&mut self) -> Result<(), String> {
        self.run("SELECT 1", "SELECT 1".into(), &[]).await
    }

    /// The process list, which the master may read.
    async fn sessions_of(&mut self, user: &str) -> Result<i64, String> {
        let what = "counting the user's sessions";
        let q = format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = {} AND ID <> CONNECTION_ID()",
            self.literal(user)
        );
        first_column(self.rows(what, &q).await?)
            .first()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{what}: no count"))
    }

    /// Changing one's own password needs no privilege, but changes only the account the login
    /// matched. When the user can see its accounts and has several (`'app'@'10.0.1.%'` and
    /// `'app'@'%'`), consumers matching the others would break: refused before any change.
    async fn set_own_password(
        &mut self,
        user: &str,
        password: &SecretString,
    ) -> Result<(), String> {
        let q = format!(
            "SELECT Host FROM mysql.user WHERE User = {}",
            self.literal(user)
        );
        match self.rows("listing the user's accounts", &q).await {
            Ok(rows) => {
                let hosts = first_column(rows);
                if hosts.len() > 1 {
                    return Err(format!(
                        "user `{user}` has {} accounts (hosts {}); a single-user rotation can change only the one it logs in as, so clients of the others would break. Nothing was changed: use alternating users (the master sets every account), or keep one account",
                        hosts.len(),
                        hosts
                            .iter()
                            .map(|h| format!("`{h}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            // Most users may not read `mysql.user`: then only the matched account is visible.
            Err(e) => tracing::info!(error = %e, "cannot list the user's accounts"),
        }
        let literal = self.literal(password.expose());
        let statement = if self.mariadb {
            format!("SET PASSWORD = PASSWORD({literal})")
        } else {
            format!("ALTER USER CURRENT_USER() IDENTIFIED BY {literal}")
        };
        self.run("setting the password", statement, &[password])
            .await
    }

    /// On every host the original has an account for; a clone's accounts are created there first.
    async fn set_password(
        &mut self,
        user: &str,
        password: &SecretString,
        clone_of: Option<&str>,
    ) -> Result<(), String> {
        let original = clone_of.unwrap_or(user);
        let hosts = self.user_hosts(original).await?;
        if hosts.is_empty() {
            return Err(format!(
                "the original user {original:?} has no account to copy"
            ));
        }
        let literal = self.literal(password.expose());
        for host in &hosts {
            let account = self.account(user, host);
            if clone_of.is_some() {
                let create = format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {literal}");
                self.run("creating the user", create, &[password]).await?;
            }
            let alter = format!("ALTER USER {account} IDENTIFIED BY {literal}");
            self.run("setting the password", alter, &[password]).await?;
        }
        Ok(())
    }

    /// Every grant, role, default role and the `REQUIRE` clause of each of the original's
    /// accounts, onto the clone's account on the same host. Grants are only added: testSecret
    /// reports any extra.
    async fn copy_privileges(&mut self, original: &str, clone: &str) -> Result<(), String> {
        for host in self.user_hosts(original).await? {
            let (lines, require) = self.account_state(original, &host).await?;
            let account = self.account(clone, &host);
            self.run(
                "copying REQUIRE",
                format!("ALTER USER {account} REQUIRE {require}"),
                &[],
            )
            .await?;
            let from_shown = sql::my_account_shown(original, &host);
            for line in lines {
                if let Some(grant) = sql::regrant(&line, &from_shown, &account) {
                    self.run("copying a grant", grant, &[]).await?;
                }
            }
        }
        Ok(())
    }

    /// MariaDB: both passwords as `mysql_native_password` hashes (the account must use that
    /// plugin); MySQL: `RETAIN CURRENT PASSWORD`, skipped on an account that already has a
    /// secondary password (the retirement before every setSecret discards it, so one there means
    /// this step already ran: running it again would replace the secondary with the new one).
    async fn add_password(
        &mut self,
        user: &str,
        password: &SecretString,
        keep: &SecretString,
    ) -> Result<(), String> {
        let hosts = self.user_hosts(user).await?;
        if hosts.is_empty() {
            return Err(format!("user {user:?} has no account"));
        }
        let new_hash = mysql_wire::native_password_hash(password.expose().as_bytes());
        let keep_hash = mysql_wire::native_password_hash(keep.expose().as_bytes());
        for host in &hosts {
            let account = self.account(user, host);
            let (who, at) = (self.literal(user), self.literal(host));
            let statement = if self.mariadb {
                let q = format!("SELECT plugin FROM mysql.user WHERE User = {who} AND Host = {at}");
                let plugin = first_column(self.rows("reading the account's plugin", &q).await?);
                let plugin = plugin.first().map(String::as_str).unwrap_or_default();
                if !["", "mysql_native_password"].contains(&plugin) {
                    return Err(format!(
                        "account {user}@{host} authenticates with {plugin}; dual passwords are set as mysql_native_password hashes, so its plugin would change: refused"
                    ));
                }
                sql::mariadb_identified_by_hashes(&account, &[&new_hash, &keep_hash])
            } else {
                let q = format!(
                    "SELECT JSON_CONTAINS_PATH(User_attributes, 'one', '$.additional_password') \
                     FROM mysql.user WHERE User = {who} AND Host = {at}"
                );
                let has = first_column(self.rows("reading the account's passwords", &q).await?);
                if has.first().map(String::as_str) == Some("1") {
                    continue;
                }
                sql::mysql_retain_current(&account, &self.literal(password.expose()))
            };
            self.run("adding the new password", statement, &[password, keep])
                .await?;
        }
        Ok(())
    }

    async fn keep_only_password(
        &mut self,
        user: &str,
        password: &SecretString,
    ) -> Result<(), String> {
        let hash = mysql_wire::native_password_hash(password.expose().as_bytes());
        for host in self.user_hosts(user).await? {
            let account = self.account(user, &host);
            let statement = match self.mariadb {
                true => sql::mariadb_identified_by_hashes(&account, &[&hash]),
                false => sql::mysql_discard_old(&account),
            };
            self.run("retiring the previous password", statement, &[password])
                .await?;
        }
        Ok(())
    }

    /// Giving another account a second password takes `CREATE USER` (or all privileges).
    async fn dual_password_privilege(&mut self) -> Result<String, String> {
        let lines = first_column(
            self.rows("reading the master's grants", "SHOW GRANTS")
                .await?,
        );
        let global = |l: &String| l.contains(" ON *.* ");
        match lines
            .iter()
            .filter(|l| global(l))
            .any(|l| l.contains("ALL PRIVILEGES") || l.contains("CREATE USER"))
        {
            true => Ok("the master holds CREATE USER".into()),
            false => Err(
                "the master lacks CREATE USER, which giving an account a second password takes"
                    .into(),
            ),
        }
    }

    async fn clone_extras(&mut self, original: &str, clone: &str) -> Result<Vec<String>, String> {
        let c = self.accounts(clone).await?;
        if c.is_empty() {
            return Ok(Vec::new());
        }
        let o = self.accounts(original).await?;
        Ok(privileges::my_extras(original, clone, &o, &c))
    }

    async fn differences(&mut self, original: &str, clone: &str) -> Result<Vec<String>, String> {
        let o = self.accounts(original).await?;
        let c = self.accounts(clone).await?;
        Ok(privileges::my_differences(original, clone, &o, &c))
    }
}
