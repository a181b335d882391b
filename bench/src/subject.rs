//! The rotators under measurement, each with a way to make a fresh secret it can rotate on the
//! local stack.

use aws_sdk_secretsmanager::Client;
use e2e::db::{Kind, unique_user};
use e2e::github::{GitHub, Installation};
use e2e::iam::{self, Admin, PATH};
use e2e::stack;
use serde_json::json;
use tokio::sync::OnceCell;

/// The GitHub stand-in the GitHub rotator is measured against (one App, one installation on
/// acme/api with administration write), and the secret holding the App's key.
pub struct GitHubStandIn {
    pub gh: GitHub,
    pub key_arn: String,
}

const APP: u64 = 42;
const INSTALLATION: u64 = 7;

pub async fn github() -> &'static GitHubStandIn {
    static GH: OnceCell<GitHubStandIn> = OnceCell::const_new();
    GH.get_or_init(|| async {
        let read = |var: &str| std::fs::read_to_string(std::env::var(var).unwrap()).unwrap();
        let install = Installation {
            app_id: APP,
            repos: vec!["acme/api".into()],
            permissions: [("contents", "read"), ("administration", "write")]
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
            suspended: false,
        };
        let gh = GitHub::start(
            APP,
            &read("TEST_GITHUB_APP_PUB"),
            vec![(INSTALLATION, install)],
        )
        .await;
        let client = stack::client().await;
        let key_arn = stack::create_secret(
            &client,
            &stack::unique("bench-gh-key"),
            &read("TEST_GITHUB_APP_KEY"),
        )
        .await;
        GitHubStandIn { gh, key_arn }
    })
    .await
}

#[derive(Clone, Copy, Debug)]
pub enum Subject {
    RandomPassword,
    DbPostgres,
    DbMariaDb,
    DbMariaDbDual,
    IamAccessKey,
    GitHubToken,
    Redis,
}

/// The administrator secrets the Redis function may use (`REDIS_ADMIN_SECRET_ARNS`).
const REDIS_ADMIN_SECRETS: &str = "arn:aws:secretsmanager:*:*:secret:*redis-admin-*";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run through bench/run"))
}

/// Runs a command on the stack's Redis as its administrator (`redis-cli`, plain port).
fn redis_admin(args: &[&str]) {
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &var("TEST_REDIS_PORT"),
            "--user",
            &var("TEST_REDIS_ADMIN"),
        ])
        .args(["--pass", &var("TEST_REDIS_ADMIN_PASS"), "--no-auth-warning"])
        .args(args)
        .output()
        .expect("redis-cli");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && answer.trim() == "OK",
        "redis-cli {}: {answer}",
        args[0]
    );
}

impl Subject {
    pub const ALL: [Subject; 7] = [
        Subject::RandomPassword,
        Subject::DbPostgres,
        Subject::DbMariaDb,
        Subject::DbMariaDbDual,
        Subject::IamAccessKey,
        Subject::GitHubToken,
        Subject::Redis,
    ];

    pub fn binary(self) -> &'static str {
        match self {
            Subject::RandomPassword => "rotate-random-password",
            Subject::DbPostgres | Subject::DbMariaDb | Subject::DbMariaDbDual => {
                "rotate-db-password"
            }
            Subject::IamAccessKey => "rotate-iam-access-key",
            Subject::GitHubToken => "rotate-github-token",
            Subject::Redis => "rotate-redis-password",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Subject::RandomPassword => "random-password",
            Subject::DbPostgres => "db-password (PostgreSQL)",
            Subject::DbMariaDb => "db-password (MariaDB)",
            Subject::DbMariaDbDual => "db-password (MariaDB, dual password)",
            Subject::IamAccessKey => "iam-access-key",
            Subject::GitHubToken => "github-token (installation token)",
            Subject::Redis => "redis-password (Redis ACL user, TLS)",
        }
    }

    /// Whether the warm rotations rotate one secret again and again rather than a new secret each
    /// time: where a rotation retires the previous credential (a dual password, a Redis user's
    /// password at the next rotation's createSecret), only a secret's second and later rotations
    /// do all the work.
    pub fn rotates_one_secret(self) -> bool {
        matches!(self, Subject::DbMariaDbDual | Subject::Redis)
    }

    /// The database server of a DB subject (single user, TLS verify-full).
    pub fn db_kind(self) -> Option<Kind> {
        match self {
            Subject::DbPostgres => Some(Kind::Postgres),
            Subject::DbMariaDb | Subject::DbMariaDbDual => Some(Kind::MariaDb),
            _ => None,
        }
    }

    /// The Secrets Manager (and IAM/STS) endpoint the function talks to.
    pub fn upstream(self) -> String {
        match self {
            Subject::IamAccessKey => iam::url(),
            _ => stack::endpoint(),
        }
    }

    /// The client the driver uses for this subject's secrets.
    pub async fn client(self) -> Client {
        match self {
            Subject::IamAccessKey => Admin::connect().await.sm,
            _ => stack::client().await,
        }
    }

    /// The function's environment, with AWS calls sent to `endpoint`.
    pub async fn env(self, endpoint: &str) -> Vec<(String, String)> {
        // The level the deployed functions run at (infra/); the test default, `trace`, would
        // measure the logging.
        let mut env = vec![
            ("AWS_ENDPOINT_URL".to_string(), endpoint.to_string()),
            ("LOG_LEVEL".to_string(), "info".to_string()),
        ];
        match self {
            Subject::RandomPassword => {}
            // The test CA, the master secrets a dual password may name, and no minimum age for
            // the previous password (the bench rotates back to back).
            Subject::DbPostgres | Subject::DbMariaDb | Subject::DbMariaDbDual => {
                env.extend(e2e::db::function_env())
            }
            Subject::IamAccessKey => {
                let admin = Admin::connect().await;
                let name = unique_user("bench_rotator");
                let (key, secret) = admin.rotator(&name, true).await;
                env.push(("AWS_ACCESS_KEY_ID".into(), key));
                env.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
                env.push(("RETIRE_PREVIOUS".into(), "finish".into()));
                env.push(("OLD_KEY_ACTION".into(), "delete".into()));
            }
            Subject::GitHubToken => {
                env.push(("GITHUB_API_URL".into(), github().await.gh.url.clone()));
            }
            Subject::Redis => {
                env.push(("REDIS_CA_BUNDLE_FILE".into(), var("TEST_CA_FILE")));
                env.push(("REDIS_ADMIN_SECRET_ARNS".into(), REDIS_ADMIN_SECRETS.into()));
                env.push(("RETIRE_PREVIOUS_MIN_AGE_SECONDS".into(), "0".into()));
            }
        }
        env
    }

    /// A new secret (and, for the targets, a new user) ready to rotate; returns its ARN.
    pub async fn new_secret(self, client: &Client) -> String {
        let value = match self {
            Subject::RandomPassword => json!({"username": "app", "password": "initial"}),
            Subject::DbPostgres | Subject::DbMariaDb => {
                let kind = self.db_kind().unwrap();
                let user = unique_user("bench");
                kind.create_user(&user, "Initial-pw-1").await;
                let mut value = kind.secret(&user, "Initial-pw-1");
                value["ssl"] = json!(true);
                value
            }
            Subject::DbMariaDbDual => {
                let kind = Kind::MariaDb;
                let user = unique_user("bench_dual");
                kind.create_user(&user, "Initial-pw-1").await;
                let (su, sp) = kind.superuser();
                let mut master = kind.secret(&su, &sp);
                master["ssl"] = json!(true);
                // Named as `e2e::db::MASTER_SECRETS` allows.
                let master_arn = stack::create_secret(
                    client,
                    &stack::unique("bench-db-master"),
                    &master.to_string(),
                )
                .await;
                let mut value = kind.secret(&user, "Initial-pw-1");
                value["ssl"] = json!(true);
                value["masterarn"] = json!(master_arn);
                value["dual_password"] = json!(true);
                value
            }
            Subject::IamAccessKey => {
                let admin = Admin::connect().await;
                let user = unique_user("bench_app");
                let (key, secret) = admin.user(&user, PATH).await;
                json!({"UserName": user, "AccessKeyId": key, "SecretAccessKey": secret})
            }
            Subject::GitHubToken => {
                json!({"kind": "app-installation-token", "app_id": APP, "installation_id": INSTALLATION,
                       "private_key_secret_arn": github().await.key_arn})
            }
            Subject::Redis => {
                let user = unique_user("bench_redis");
                redis_admin(&[
                    "ACL",
                    "SETUSER",
                    &user,
                    "reset",
                    "on",
                    ">Initial-pw-1",
                    "~app:*",
                ]);
                redis_admin(&["ACL", "SETUSER", &user, "+get", "+set", "+ping"]);
                let tls = |user: &str, password: &str| {
                    json!({"host": "127.0.0.1", "port": var("TEST_REDIS_TLS_PORT").parse::<u16>().unwrap(),
                           "username": user, "password": password, "ssl": true})
                };
                let admin = tls(&var("TEST_REDIS_ADMIN"), &var("TEST_REDIS_ADMIN_PASS"));
                let admin_arn = stack::create_secret(
                    client,
                    &stack::unique("bench-redis-admin"),
                    &admin.to_string(),
                )
                .await;
                let mut value = tls(&user, "Initial-pw-1");
                value["masterarn"] = json!(admin_arn);
                value
            }
        };
        let arn = stack::create_secret(client, &stack::unique("bench"), &value.to_string()).await;
        if let Subject::GitHubToken = self {
            // The tags that allow what the secret asks for: a token with the installation's
            // permissions.
            let pin = e2e::github::pin_tags(&value, "contents=read administration=write");
            e2e::github::tag(client, &arn, &pin).await;
        }
        arn
    }
}
