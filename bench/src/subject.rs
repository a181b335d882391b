//! The rotators under measurement, each with a way to make a fresh secret it can rotate on the
//! local stack.

use aws_sdk_secretsmanager::Client;
use e2e::db::{Kind, unique_user};
use e2e::iam::{self, Admin, PATH};
use e2e::stack;
use serde_json::json;

#[derive(Clone, Copy, Debug)]
pub enum Subject {
    RandomPassword,
    DbPostgres,
    IamAccessKey,
}

impl Subject {
    pub const ALL: [Subject; 3] = [
        Subject::RandomPassword,
        Subject::DbPostgres,
        Subject::IamAccessKey,
    ];

    pub fn binary(self) -> &'static str {
        match self {
            Subject::RandomPassword => "rotate-random-password",
            Subject::DbPostgres => "rotate-db-password",
            Subject::IamAccessKey => "rotate-iam-access-key",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Subject::RandomPassword => "random-password",
            Subject::DbPostgres => "db-password (PostgreSQL)",
            Subject::IamAccessKey => "iam-access-key",
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
        let mut env = vec![("AWS_ENDPOINT_URL".to_string(), endpoint.to_string())];
        match self {
            Subject::RandomPassword => {}
            Subject::DbPostgres => env.push((
                "DB_CA_BUNDLE_FILE".into(),
                std::env::var("TEST_CA_FILE").unwrap(),
            )),
            Subject::IamAccessKey => {
                let admin = Admin::connect().await;
                let name = unique_user("bench_rotator");
                let (key, secret) = admin.rotator(&name, true).await;
                env.push(("AWS_ACCESS_KEY_ID".into(), key));
                env.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
                env.push(("OLD_KEY_ACTION".into(), "delete".into()));
            }
        }
        env
    }

    /// A new secret (and, for the targets, a new user) ready to rotate; returns its ARN.
    pub async fn new_secret(self, client: &Client) -> String {
        let value = match self {
            Subject::RandomPassword => json!({"username": "app", "password": "initial"}),
            Subject::DbPostgres => {
                let user = unique_user("bench");
                Kind::Postgres.create_user(&user, "Initial-pw-1").await;
                Kind::Postgres.secret(&user, "Initial-pw-1")
            }
            Subject::IamAccessKey => {
                let admin = Admin::connect().await;
                let user = unique_user("bench_app");
                let (key, secret) = admin.user(&user, PATH).await;
                json!({"UserName": user, "AccessKeyId": key, "SecretAccessKey": secret})
            }
        };
        stack::create_secret(client, &stack::unique("bench"), &value.to_string()).await
    }
}
