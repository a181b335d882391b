//! Crash anywhere, converge: each rotator binary (built with `shared/fault-injection`) is made to
//! abort right after its Nth external call, for every N a rotation makes. After the crash
//! `AWSCURRENT` must still hold a working credential; the driver then retries with the same token,
//! as Secrets Manager does, and the rotation must end with the new value as the only
//! `AWSCURRENT`, the old one as `AWSPREVIOUS`, no `AWSPENDING`, and no orphan on the service.

use aws_sdk_secretsmanager::Client;
use e2e::db::{Kind, unique_user};
use e2e::driver::{self, Options};
use e2e::iam::{self, Admin, PATH};
use e2e::runtime_api::Function;
use e2e::stack;
use serde_json::{Value, json};
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsStore, SecretStore};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug)]
enum Case {
    RandomPassword,
    PostgresSingle,
    PostgresAlternating,
    MariaDbSingle,
    MariaDbAlternating,
    IamDeleteOld,
}

/// One secret to rotate and what is needed to judge it.
struct Setup {
    arn: String,
    user: String,
}

impl Case {
    fn binary(self) -> &'static str {
        match self {
            Case::RandomPassword => "rotate-random-password",
            Case::PostgresSingle
            | Case::PostgresAlternating
            | Case::MariaDbSingle
            | Case::MariaDbAlternating => "rotate-db-password",
            Case::IamDeleteOld => "rotate-iam-access-key",
        }
    }

    async fn client(self) -> Client {
        match self {
            Case::IamDeleteOld => Admin::connect().await.sm,
            _ => stack::client().await,
        }
    }

    async fn env(self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        match self {
            Case::RandomPassword => {}
            Case::PostgresSingle
            | Case::PostgresAlternating
            | Case::MariaDbSingle
            | Case::MariaDbAlternating => {
                env.extend(e2e::db::function_env());
            }
            Case::IamDeleteOld => {
                let admin = Admin::connect().await;
                let (key, secret) = admin.rotator(&unique_user("crash_rotator"), true).await;
                env.push(("AWS_ENDPOINT_URL".into(), iam::url()));
                env.push(("AWS_ACCESS_KEY_ID".into(), key));
                env.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
                env.push(("RETIRE_PREVIOUS".into(), "finish".into()));
                env.push(("OLD_KEY_ACTION".into(), "delete".into()));
            }
        }
        env
    }

    async fn setup(self, client: &Client) -> Setup {
        let user = unique_user("crash");
        let value = match self {
            Case::RandomPassword => json!({"password": "initial-value"}),
            Case::PostgresSingle | Case::MariaDbSingle => {
                let kind = self.kind();
                kind.create_user(&user, "Initial-pw-1").await;
                kind.secret(&user, "Initial-pw-1")
            }
            Case::PostgresAlternating | Case::MariaDbAlternating => {
                // A table only the original user may read: the clone must get to it too.
                let kind = self.kind();
                kind.create_user(&user, "Initial-pw-1").await;
                let table = kind.table(&user);
                kind.admin(&[
                    format!("CREATE TABLE {table} (id int)"),
                    format!("GRANT SELECT ON {table} TO {}", kind.grantee(&user)),
                ])
                .await;
                let (su, sp) = kind.superuser();
                let master = stack::create_secret(
                    client,
                    &stack::unique("crash-master"),
                    &kind.secret(&su, &sp).to_string(),
                )
                .await;
                let mut v = kind.secret(&user, "Initial-pw-1");
                v["masterarn"] = json!(master);
                v
            }
            Case::IamDeleteOld => {
                let (key, secret) = Admin::connect().await.user(&user, PATH).await;
                json!({"UserName": user, "AccessKeyId": key, "SecretAccessKey": secret})
            }
        };
        let arn = stack::create_secret(client, &stack::unique("crash"), &value.to_string()).await;
        Setup { arn, user }
    }

    fn single_user(self) -> bool {
        matches!(self, Case::PostgresSingle | Case::MariaDbSingle)
    }

    fn kind(self) -> Kind {
        match self {
            Case::MariaDbSingle | Case::MariaDbAlternating => Kind::MariaDb,
            _ => Kind::Postgres,
        }
    }

    /// Whether a stored value is a working credential on the service.
    async fn works(self, value: &Value) -> Result<(), String> {
        match self {
            Case::RandomPassword => value["password"]
                .as_str()
                .map(drop)
                .ok_or("no password".into()),
            Case::PostgresSingle
            | Case::PostgresAlternating
            | Case::MariaDbSingle
            | Case::MariaDbAlternating => {
                let (u, p) = (
                    value["username"].as_str().unwrap(),
                    value["password"].as_str().unwrap(),
                );
                self.kind().login(u, p).await
            }
            Case::IamDeleteOld => {
                let (k, s) = (
                    value["AccessKeyId"].as_str().unwrap(),
                    value["SecretAccessKey"].as_str().unwrap(),
                );
                iam::caller(k, s).await.map(drop)
            }
        }
    }

    /// No credential left behind on the service beyond what the configuration keeps.
    async fn no_orphans(
        self,
        setup: &Setup,
        current: &Value,
        previous: &Value,
    ) -> Result<(), String> {
        match self {
            Case::RandomPassword => Ok(()),
            Case::PostgresSingle | Case::MariaDbSingle => {
                match self
                    .kind()
                    .login(&setup.user, previous["password"].as_str().unwrap())
                    .await
                {
                    Ok(()) => Err("the old password still logs in".into()),
                    Err(_) => Ok(()),
                }
            }
            Case::PostgresAlternating | Case::MariaDbAlternating => {
                // Both users of the pair work and read the original's table; nothing else was
                // created.
                self.works(previous).await?;
                let table = self.kind().table(&setup.user);
                for who in [current, previous] {
                    let (u, p) = (
                        who["username"].as_str().unwrap(),
                        who["password"].as_str().unwrap(),
                    );
                    if !self.kind().can_select(u, p, &table).await {
                        return Err(format!("{u} cannot read the original user's table"));
                    }
                }
                let users = [setup.user.clone(), format!("{}_clone", setup.user)];
                for who in [current, previous] {
                    let name = who["username"].as_str().unwrap().to_owned();
                    if !users.contains(&name) {
                        return Err(format!("unexpected user {name}"));
                    }
                }
                Ok(())
            }
            Case::IamDeleteOld => {
                let keys = Admin::connect().await.keys(&setup.user).await;
                let want = vec![(current["AccessKeyId"].as_str().unwrap().to_owned(), true)];
                if keys == want {
                    Ok(())
                } else {
                    Err(format!("keys {keys:?}, want {want:?}"))
                }
            }
        }
    }
}

async fn value(store: &AwsStore, arn: &str, stage: &str) -> Value {
    stack::json_value(store, arn, stage).await
}

/// Returns how many crashes were injected (one per external call of a rotation).
async fn crash_everywhere(case: Case) -> usize {
    let client = case.client().await;
    let store = AwsStore::new(client.clone());
    let base_env = case.env().await;
    let opts = |resume| Options {
        resume,
        ..Options::new(case.binary())
    };
    let dir = std::env::temp_dir();
    let mut single_user_windows = 0;
    let binary = e2e::workspace_binary(case.binary());
    for n in 1.. {
        let setup = case.setup(&client).await;
        let old = value(&store, &setup.arn, AWSCURRENT).await;
        let marker: PathBuf = dir.join(format!("crash-{}", shared::random::version_id()));
        let mut env = base_env.clone();
        env.push(("FAULT_CRASH_AFTER".into(), n.to_string()));
        env.push(("FAULT_MARKER".into(), marker.display().to_string()));
        let mut f = Function::start(&binary, &env, false).await.unwrap();
        let first = driver::rotate(&client, &mut f, &setup.arn, &opts(false))
            .await
            .unwrap();
        if !marker.exists() {
            assert!(
                first.succeeded(),
                "{case:?}: no crash at {n}, yet {:?}",
                first.steps
            );
            f.stop().await;
            println!(
                "{case:?}: {} crashes injected, {single_user_windows} in the single-user window",
                n - 1
            );
            return n - 1;
        }
        // The marker stays until the end of this case, so each case crashes exactly once.
        let now = value(&store, &setup.arn, AWSCURRENT).await;
        if let Err(e) = case.works(&now).await {
            // A single user has one password: between setSecret and finishSecret only the
            // pending value logs in (the window AWS documents for single-user rotation; use
            // alternating users to avoid it). The pending value must work then.
            assert!(
                case.single_user(),
                "{case:?} crash {n}: AWSCURRENT broken: {e}"
            );
            let pending = store
                .get_value(&setup.arn, Some(&first.token), AWSPENDING)
                .await
                .unwrap();
            let pending: Value = serde_json::from_str(pending.value.expose()).unwrap();
            case.works(&pending).await.unwrap_or_else(|e2| {
                panic!("{case:?} crash {n}: neither AWSCURRENT ({e}) nor AWSPENDING ({e2}) works")
            });
            single_user_windows += 1;
        }
        let mut done = first.succeeded();
        for _ in 0..3 {
            if done {
                break;
            }
            let r = driver::retry(&client, &mut f, &setup.arn, &first.token, &opts(true))
                .await
                .unwrap();
            done = r.succeeded();
        }
        let output = f.output();
        f.stop().await;
        assert!(done, "{case:?} crash {n}: the retries did not converge");
        let labels = store.describe(&setup.arn).await.unwrap().labels;
        assert_eq!(labels.version_with(AWSPENDING), None, "{case:?} crash {n}");
        let current = value(&store, &setup.arn, AWSCURRENT).await;
        let previous = value(&store, &setup.arn, AWSPREVIOUS).await;
        assert_eq!(
            previous, old,
            "{case:?} crash {n}: AWSPREVIOUS is not the old value"
        );
        assert_ne!(current, old, "{case:?} crash {n}");
        case.works(&current)
            .await
            .unwrap_or_else(|e| panic!("{case:?} crash {n}: new value: {e}"));
        case.no_orphans(&setup, &current, &previous)
            .await
            .unwrap_or_else(|e| panic!("{case:?} crash {n}: {e}"));
        std::fs::remove_file(&marker).ok();
        // Every log line of every process, crashed or not, at trace level: no secret in any.
        for secret in [&old, &current]
            .iter()
            .filter_map(|v| v["password"].as_str().or(v["SecretAccessKey"].as_str()))
        {
            if let Some(line) = output.iter().find(|l| l.contains(secret)) {
                panic!("{case:?} crash {n}: a secret reached the function's output: {line}");
            }
        }
    }
    unreachable!()
}

#[tokio::test]
async fn random_password_survives_a_crash_after_every_call() {
    let n = crash_everywhere(Case::RandomPassword).await;
    assert!(n >= 10, "{n}");
}

#[tokio::test]
async fn postgres_single_user_survives_a_crash_after_every_call() {
    let n = crash_everywhere(Case::PostgresSingle).await;
    assert!(n >= 15, "{n}");
}

#[tokio::test]
async fn postgres_alternating_users_survive_a_crash_after_every_call() {
    let n = crash_everywhere(Case::PostgresAlternating).await;
    assert!(n >= 15, "{n}");
}

#[tokio::test]
async fn mariadb_single_user_survives_a_crash_after_every_call() {
    let n = crash_everywhere(Case::MariaDbSingle).await;
    assert!(n >= 15, "{n}");
}

#[tokio::test]
async fn mariadb_alternating_users_survive_a_crash_after_every_call() {
    let n = crash_everywhere(Case::MariaDbAlternating).await;
    assert!(n >= 15, "{n}");
}

#[tokio::test]
async fn iam_access_key_survives_a_crash_after_every_call() {
    let n = crash_everywhere(Case::IamDeleteOld).await;
    assert!(n >= 15, "{n}");
}
