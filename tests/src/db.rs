//! The throwaway database servers the stack started (scripts/stack.sh): administration and
//! login checks for the DB rotator's tests and the demo.

use serde_json::{Value, json};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{AssertSqlSafe, Connection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MariaDb,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts the databases")
    })
}

impl Kind {
    pub fn engine(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::MariaDb => "mariadb",
        }
    }

    pub fn port(self) -> u16 {
        let var = match self {
            Kind::Postgres => "TEST_PG_PORT",
            Kind::MariaDb => "TEST_MARIADB_PORT",
        };
        env(var).parse().unwrap()
    }

    pub fn superuser(self) -> (String, String) {
        match self {
            Kind::Postgres => (env("TEST_PG_SUPERUSER"), env("TEST_PG_SUPERPASS")),
            Kind::MariaDb => (env("TEST_MARIADB_SUPERUSER"), env("TEST_MARIADB_SUPERPASS")),
        }
    }

    /// A secret in the RDS templates' format for this server.
    pub fn secret(self, user: &str, password: &str) -> Value {
        json!({
            "engine": self.engine(),
            "host": "127.0.0.1",
            "port": self.port(),
            "username": user,
            "password": password,
            "dbname": if self == Kind::Postgres { Some("postgres") } else { None },
        })
    }

    /// A table name as the test users reach it (MariaDB users have no default database).
    pub fn table(self, name: &str) -> String {
        match self {
            Kind::Postgres => name.to_owned(),
            Kind::MariaDb => format!("test.{name}"),
        }
    }

    /// Logs in over verified TLS, as a client of the database would.
    pub async fn connect(self, user: &str, password: &str) -> Result<AnyConn, String> {
        let ca = std::fs::read(env("TEST_CA_FILE")).unwrap();
        let conn = match self {
            Kind::Postgres => {
                let o = PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(self.port())
                    .username(user)
                    .password(password)
                    .database("postgres")
                    .ssl_mode(PgSslMode::VerifyFull)
                    .ssl_root_cert_from_pem(ca);
                PgConnection::connect_with(&o).await.map(AnyConn::Pg)
            }
            Kind::MariaDb => {
                let o = MySqlConnectOptions::new()
                    .host("127.0.0.1")
                    .port(self.port())
                    .username(user)
                    .password(password)
                    .ssl_mode(MySqlSslMode::VerifyIdentity)
                    .ssl_ca_from_pem(ca);
                MySqlConnection::connect_with(&o).await.map(AnyConn::My)
            }
        };
        conn.map_err(|e| e.to_string())
    }

    /// Logs in and runs `SELECT 1`.
    pub async fn login(self, user: &str, password: &str) -> Result<(), String> {
        self.connect(user, password).await?.run("SELECT 1").await
    }

    /// Runs statements as the superuser.
    pub async fn admin(self, statements: &[String]) {
        let (user, password) = self.superuser();
        let mut conn = self.connect(&user, &password).await.unwrap();
        for statement in statements {
            conn.run(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }

    /// The first column of every row of a query run as the superuser, as text.
    pub async fn admin_query(self, query: &str) -> Vec<String> {
        let (user, password) = self.superuser();
        let conn = self.connect(&user, &password).await.unwrap();
        let q = AssertSqlSafe(query.to_owned());
        match conn {
            AnyConn::Pg(mut c) => sqlx::query_scalar(q).fetch_all(&mut c).await,
            AnyConn::My(mut c) => sqlx::query_scalar(q).fetch_all(&mut c).await,
        }
        .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// Whether a user (PostgreSQL role, MySQL/MariaDB account on any host) named `user` exists.
    pub async fn user_exists(self, user: &str) -> bool {
        let literal = format!("'{}'", user.replace('\\', "\\\\").replace('\'', "''"));
        let q = match self {
            Kind::Postgres => {
                format!("SELECT rolname::text FROM pg_roles WHERE rolname = {literal}")
            }
            Kind::MariaDb => format!("SELECT User FROM mysql.user WHERE User = {literal}"),
        };
        !self.admin_query(&q).await.is_empty()
    }

    /// PostgreSQL: the first column of every row of a query run as the superuser in `database`.
    pub async fn admin_query_in(self, database: &str, query: &str) -> Vec<String> {
        let (user, password) = self.superuser();
        let ca = std::fs::read(env("TEST_CA_FILE")).unwrap();
        let o = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port())
            .username(&user)
            .password(&password)
            .database(database)
            // The test's own session must not run what it looks for.
            .options([("search_path", "pg_catalog")])
            .ssl_mode(PgSslMode::VerifyFull)
            .ssl_root_cert_from_pem(ca);
        let mut c = PgConnection::connect_with(&o).await.unwrap();
        sqlx::query_scalar(AssertSqlSafe(query.to_owned()))
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// Creates a login user with `password`, quoting the name for hostile-name tests.
    pub async fn create_user(self, user: &str, password: &str) {
        let statement = match self {
            Kind::Postgres => format!(
                "CREATE ROLE {} LOGIN PASSWORD '{}'",
                pg_ident(user),
                password.replace('\'', "''")
            ),
            Kind::MariaDb => format!(
                "CREATE USER '{}'@'%' IDENTIFIED BY '{}'",
                user.replace('\\', "\\\\").replace('\'', "''"),
                password.replace('\\', "\\\\").replace('\'', "''")
            ),
        };
        self.admin(&[statement]).await;
    }

    /// The user as it appears in a GRANT statement.
    pub fn grantee(self, user: &str) -> String {
        match self {
            Kind::Postgres => pg_ident(user),
            Kind::MariaDb => format!("'{}'@'%'", user.replace('\\', "\\\\").replace('\'', "''")),
        }
    }

    /// Whether `user` can read `table`.
    pub async fn can_select(self, user: &str, password: &str, table: &str) -> bool {
        let mut conn = self.connect(user, password).await.unwrap();
        conn.run(&format!("SELECT COUNT(*) FROM {table}"))
            .await
            .is_ok()
    }
}

pub enum AnyConn {
    Pg(PgConnection),
    My(MySqlConnection),
}

impl AnyConn {
    pub async fn run(&mut self, statement: &str) -> Result<(), String> {
        let q = sqlx::raw_sql(AssertSqlSafe(statement.to_owned()));
        match self {
            AnyConn::Pg(c) => q.execute(c).await.map(drop),
            AnyConn::My(c) => q.execute(c).await.map(drop),
        }
        .map_err(|e| e.to_string())
    }
}

pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The master secrets the tests' DB functions may use (`DB_MASTER_SECRET_ARNS`): every test names
/// its master secrets `...master-<unique>`, and no other secret so.
pub const MASTER_SECRETS: &str = "arn:aws:secretsmanager:*:*:secret:*master-*";

/// The DB function's environment in the tests: the test CA, the master secrets it may use, and
/// no minimum age for the previous credential (the tests rotate back to back; one test keeps
/// the default).
pub fn function_env() -> Vec<(String, String)> {
    vec![
        ("DB_CA_BUNDLE_FILE".into(), env("TEST_CA_FILE")),
        ("DB_MASTER_SECRET_ARNS".into(), MASTER_SECRETS.into()),
        ("RETIRE_PREVIOUS_MIN_AGE_SECONDS".into(), "0".into()),
    ]
}

/// A user name no other test uses.
pub fn unique_user(prefix: &str) -> String {
    format!("{prefix}_{}", &shared::random::version_id()[..8])
}
