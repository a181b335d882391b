//! The authenticating moto server (scripts/stack.sh): every request is signed and checked against
//! IAM policies, so a wrong, deleted or unauthorised key is really refused.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_iam::types::StatusType;
use aws_sdk_sts::config::Credentials;
use serde_json::json;

pub const ACCOUNT: &str = "123456789012";
/// The path of the users the test rotator may rotate (its policy's resource).
pub const PATH: &str = "/rotated/";

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test"))
}

pub fn url() -> String {
    env("TEST_MOTO_AUTH_URL")
}

/// SDK configuration signed with one access key, against the authenticating moto.
pub async fn sdk(key_id: &str, secret: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url())
        .region("us-east-1")
        .credentials_provider(Credentials::new(key_id, secret, None, None, "test"))
        .load()
        .await
}

pub struct Admin {
    pub iam: aws_sdk_iam::Client,
    pub sm: aws_sdk_secretsmanager::Client,
}

impl Admin {
    pub async fn connect() -> Self {
        let sdk = sdk(
            &env("TEST_MOTO_ADMIN_KEY_ID"),
            &env("TEST_MOTO_ADMIN_SECRET"),
        )
        .await;
        Self {
            iam: aws_sdk_iam::Client::new(&sdk),
            sm: aws_sdk_secretsmanager::Client::new(&sdk),
        }
    }

    /// A user with one access key; returns (key id, secret key).
    pub async fn user(&self, name: &str, path: &str) -> (String, String) {
        self.iam
            .create_user()
            .user_name(name)
            .path(path)
            .send()
            .await
            .unwrap();
        self.key(name).await
    }

    pub async fn key(&self, user: &str) -> (String, String) {
        let out = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        let k = out.access_key().unwrap();
        (
            k.access_key_id().to_owned(),
            k.secret_access_key().to_owned(),
        )
    }

    /// The rotation function's own user, allowed what `infra/template.yaml` allows it; `put`
    /// false withholds `PutSecretValue` to make createSecret fail after minting.
    pub async fn rotator(&self, name: &str, put: bool) -> (String, String) {
        self.iam.create_user().user_name(name).send().await.unwrap();
        self.rotator_policy(name, put).await;
        self.key(name).await
    }

    pub async fn rotator_policy(&self, name: &str, put: bool) {
        let mut sm = vec![
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:ListSecretVersionIds",
        ];
        if put {
            sm.push("secretsmanager:PutSecretValue");
        }
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": sm, "Resource": "*"},
                // moto authorises every IAM action against the resource "*", so the path
                // condition of infra/ (user/rotated/*) cannot be checked here.
                {
                    "Effect": "Allow",
                    "Action": ["iam:ListAccessKeys", "iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:GetUser", "iam:GetAccessKeyLastUsed"],
                    "Resource": "*"
                }
            ]
        });
        self.iam
            .put_user_policy()
            .user_name(name)
            .policy_name("rotation")
            .policy_document(policy.to_string())
            .send()
            .await
            .unwrap();
    }

    /// The user's keys as (id, active).
    pub async fn delete_key(&self, user: &str, key: &str) {
        self.iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(key)
            .send()
            .await
            .unwrap();
    }

    pub async fn deactivate(&self, user: &str, key: &str) {
        self.iam
            .update_access_key()
            .user_name(user)
            .access_key_id(key)
            .status(StatusType::Inactive)
            .send()
            .await
            .unwrap();
    }

    pub async fn keys(&self, user: &str) -> Vec<(String, bool)> {
        let out = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<_> = out
            .access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.access_key_id().unwrap().to_owned(),
                    k.status() == Some(&StatusType::Active),
                )
            })
            .collect();
        keys.sort();
        keys
    }
}

/// Who a key signs in as (`sts:GetCallerIdentity`), or why it was refused.
pub async fn caller(key_id: &str, secret: &str) -> Result<String, String> {
    let sts = aws_sdk_sts::Client::new(&sdk(key_id, secret).await);
    match sts.get_caller_identity().send().await {
        Ok(out) => Ok(out.arn().unwrap_or_default().to_owned()),
        Err(e) => Err(aws_sdk_sts::error::DisplayErrorContext(e).to_string()),
    }
}

pub fn user_arn(name: &str, path: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user{path}{name}")
}

/// Removes each `<member>` of an IAM `ListAccessKeys` answer whose key id `drop` says.
fn drop_keys(text: &str, mut drop: impl FnMut(&str) -> bool) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("<member>") {
        let close = rest[open..]
            .find("</member>")
            .map_or(rest.len(), |c| open + c + 9);
        let member = &rest[open..close];
        out.push_str(&rest[..open]);
        if !key_id(member).is_some_and(&mut drop) {
            out.push_str(member);
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

fn key_id(s: &str) -> Option<&str> {
    let start = s.find("<AccessKeyId>")? + "<AccessKeyId>".len();
    s[start..].split('<').next()
}

/// IAM as it really is, eventually consistent: a proxy to the authenticating moto that leaves a
/// key out of `ListAccessKeys` until `lag` after it was first seen (in `CreateAccessKey`'s
/// answer). Returns the URL to give the function as `AWS_ENDPOINT_URL`.
pub async fn lagging(lag: std::time::Duration) -> String {
    use hyper::body::Bytes;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let rewrite: crate::proxy::Rewrite = Arc::new(move |op: &str, body: Bytes| {
        let text = String::from_utf8_lossy(&body).into_owned();
        let mut seen = seen.lock().unwrap();
        if op == "IAM:CreateAccessKey" {
            if let Some(id) = key_id(&text) {
                seen.insert(id.to_owned(), Instant::now());
            }
            return body;
        }
        if op != "IAM:ListAccessKeys" {
            return body;
        }
        // Drop each key younger than the lag.
        Bytes::from(drop_keys(&text, |id| {
            seen.get(id).is_some_and(|t| t.elapsed() < lag)
        }))
    });
    crate::proxy::start_with(url(), Some(rewrite)).await.0
}

/// A proxy to the authenticating moto whose answers can be bent the way the real services bend
/// them: an IAM replica that misses a key in `ListAccessKeys` (eventual consistency), and a
/// rotation that began long ago (`ListSecretVersionIds` dating a version back, as after a stall).
pub struct Tamper {
    /// What to give the function as `AWS_ENDPOINT_URL`.
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<TamperState>>,
}

#[derive(Default)]
struct TamperState {
    /// Key id -> how many more `ListAccessKeys` answers leave it out.
    hidden: std::collections::HashMap<String, usize>,
    /// Version id -> how much earlier than its real date it is reported.
    backdated: std::collections::HashMap<String, std::time::Duration>,
}

impl Tamper {
    pub async fn start() -> Self {
        use hyper::body::Bytes;
        let state: std::sync::Arc<std::sync::Mutex<TamperState>> = Default::default();
        let shared = state.clone();
        let rewrite: crate::proxy::Rewrite = std::sync::Arc::new(move |op: &str, body: Bytes| {
            let mut state = shared.lock().unwrap();
            match op {
                "IAM:ListAccessKeys" if !state.hidden.is_empty() => {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    Bytes::from(drop_keys(&text, |id| match state.hidden.get_mut(id) {
                        Some(0) | None => false,
                        Some(n) => {
                            *n -= 1;
                            true
                        }
                    }))
                }
                "SecretsManager:ListSecretVersionIds" if !state.backdated.is_empty() => {
                    let mut answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    for v in answer["Versions"].as_array_mut().into_iter().flatten() {
                        let by = v["VersionId"]
                            .as_str()
                            .and_then(|id| state.backdated.get(id));
                        if let (Some(by), Some(created)) = (by, v["CreatedDate"].as_f64()) {
                            v["CreatedDate"] = json!(created - by.as_secs_f64());
                        }
                    }
                    Bytes::from(answer.to_string())
                }
                _ => body,
            }
        });
        Self {
            url: crate::proxy::start_with(url(), Some(rewrite)).await.0,
            state,
        }
    }

    /// The next `times` `ListAccessKeys` answers that hold `key` leave it out.
    pub fn hide(&self, key: &str, times: usize) {
        self.state
            .lock()
            .unwrap()
            .hidden
            .insert(key.to_owned(), times);
    }

    /// `ListSecretVersionIds` reports `version` as created `by` earlier than it was.
    pub fn backdate(&self, version: &str, by: std::time::Duration) {
        self.state
            .lock()
            .unwrap()
            .backdated
            .insert(version.to_owned(), by);
    }
}
