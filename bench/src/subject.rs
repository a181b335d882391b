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
    IamAccessKey,
    GitHubToken,
}

impl Subject {
    pub const ALL: [Subject; 5] = [
        Subject::RandomPassword,
        Subject::DbPostgres,
        Subject::DbMariaDb,
        Subject::IamAccessKey,
        Subject::GitHubToken,
    ];

    pub fn binary(self) -> &'static str {
        match self {
            Subject::RandomPassword => "rotate-random-password",
            Subject::DbPostgres | Subject::DbMariaDb => "rotate-db-password",
            Subject::IamAccessKey => "rotate-iam-access-key",
            Subject::GitHubToken => "rotate-github-token",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Subject::RandomPassword => "random-password",
            Subject::DbPostgres => "db-password (PostgreSQL)",
            Subject::DbMariaDb => "db-password (MariaDB)",
            Subject::IamAccessKey => "iam-access-key",
            Subject::GitHubToken => "github-token (installation token)",
        }
    }

    /// The database server of a DB subject (single user, TLS verify-full).
    pub fn db_kind(self) -> Option<Kind> {
        match self {
            Subject::DbPostgres => Some(Kind::Postgres),
            Subject::DbMariaDb => Some(Kind::MariaDb),
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
            Subject::DbPostgres | Subject::DbMariaDb => env.push((
                "DB_CA_BUNDLE_FILE".into(),
                std::env::var("TEST_CA_FILE").unwrap(),
            )),
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
        };
        stack::create_secret(client, &stack::unique("bench"), &value.to_string()).await
    }
}
