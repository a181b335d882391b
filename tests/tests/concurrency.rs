//! Concurrency against the local stack and the throwaway PostgreSQL: two rotations of one secret
//! at once, the same step twice at once, and many secrets rotated in parallel on one database.

use e2e::db::{Kind, unique_user};
use e2e::driver::{self, Options};
use e2e::runtime_api::{Function, Reply};
use e2e::stack;
use serde_json::{Value, json};
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsStore, SecretStore};
use std::time::Duration;

const BINARY: &str = "rotate-db-password";

fn options() -> Options {
    Options::new(BINARY)
}

async fn function() -> Function {
    let env = e2e::db::function_env();
    Function::start(&e2e::workspace_binary(BINARY), &env, false)
        .await
        .unwrap()
}

async fn password(store: &AwsStore, arn: &str, stage: &str) -> String {
    let v: Value = serde_json::from_str(
        store
            .get_value(arn, None, stage)
            .await
            .unwrap()
            .value
            .expose(),
    )
    .unwrap();
    v["password"].as_str().unwrap().to_owned()
}

/// Two rotations of one secret started at once: whatever the interleaving, nothing is lost: at
/// least one completes, the secret ends clean, and its AWSCURRENT password is the one that works.
#[tokio::test]
async fn two_rotations_of_one_secret_at_once() {
    let pg = Kind::Postgres;
    let user = unique_user("race");
    pg.create_user(&user, "Initial-pw-1").await;
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let arn = stack::create_secret(
        &client,
        &stack::unique("race"),
        &pg.secret(&user, "Initial-pw-1").to_string(),
    )
    .await;
    let (mut a, mut b) = (function().await, function().await);
    let opts = options();
    let (ra, rb) = tokio::join!(
        driver::rotate(&client, &mut a, &arn, &opts),
        driver::rotate(&client, &mut b, &arn, &opts),
    );
    a.stop().await;
    b.stop().await;
    let done: Vec<_> = [ra, rb]
        .into_iter()
        .filter_map(Result::ok)
        .filter(|r| r.succeeded())
        .collect();
    assert!(!done.is_empty(), "neither rotation completed");
    let labels = store.describe(&arn).await.unwrap().labels;
    let current = labels.version_with(AWSCURRENT).unwrap().to_owned();
    assert!(
        done.iter().any(|r| r.token == current),
        "AWSCURRENT is no completed rotation's version"
    );
    if labels
        .version_with(AWSPENDING)
        .is_some_and(|p| p != current)
    {
        // The loser left its version pending: the next rotate-secret must resume and finish it.
        let mut c = function().await;
        let r = driver::rotate(
            &client,
            &mut c,
            &arn,
            &Options {
                resume: true,
                ..options()
            },
        )
        .await
        .unwrap();
        c.stop().await;
        assert!(r.succeeded(), "{:?}", r.steps);
    }
    let labels = store.describe(&arn).await.unwrap().labels;
    assert_eq!(labels.version_with(AWSPENDING), None);
    pg.login(&user, &password(&store, &arn, AWSCURRENT).await)
        .await
        .expect("AWSCURRENT works");
    assert!(
        pg.login(&user, &password(&store, &arn, AWSPREVIOUS).await)
            .await
            .is_err()
    );
}

/// The same step delivered twice at once (two function instances): the rotation still converges
/// on one value that works.
#[tokio::test]
async fn the_same_step_twice_at_once() {
    let pg = Kind::Postgres;
    let user = unique_user("dup");
    pg.create_user(&user, "Initial-pw-1").await;
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let arn = stack::create_secret(
        &client,
        &stack::unique("dup"),
        &pg.secret(&user, "Initial-pw-1").to_string(),
    )
    .await;
    let token = shared::random::version_id();
    stack::begin_rotation(&client, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    let (mut a, mut b) = (function().await, function().await);
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let event = json!({"Step": step, "SecretId": arn, "ClientRequestToken": token});
        let (x, y) = tokio::join!(
            a.invoke(&event, Duration::from_secs(30)),
            b.invoke(&event, Duration::from_secs(30))
        );
        let ok = [x.unwrap(), y.unwrap()]
            .iter()
            .filter(|r| matches!(r, Reply::Response(_)))
            .count();
        if ok == 0 {
            // Both lost a race (e.g. the label moved under one of them): Secrets Manager would
            // retry the step; so do we, once.
            let again = a.invoke(&event, Duration::from_secs(30)).await.unwrap();
            assert!(matches!(again, Reply::Response(_)), "{step}: {again:?}");
        }
    }
    a.stop().await;
    b.stop().await;
    driver::end_rotation(&store, &arn, &token).await.unwrap();
    let labels = store.describe(&arn).await.unwrap().labels;
    assert_eq!(
        labels.stages_of(&token),
        Some(&[AWSCURRENT.to_string()][..])
    );
    pg.login(&user, &password(&store, &arn, AWSCURRENT).await)
        .await
        .expect("AWSCURRENT works");
    assert!(pg.login(&user, "Initial-pw-1").await.is_err());
}

/// Twenty secrets of twenty users on one database, rotated in parallel, each by its own function.
#[tokio::test]
async fn many_secrets_on_one_database_in_parallel() {
    let pg = Kind::Postgres;
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let mut jobs = tokio::task::JoinSet::new();
    let mut users = Vec::new();
    for _ in 0..20 {
        let user = unique_user("many");
        pg.create_user(&user, "Initial-pw-1").await;
        let arn = stack::create_secret(
            &client,
            &stack::unique("many"),
            &pg.secret(&user, "Initial-pw-1").to_string(),
        )
        .await;
        let mut f = function().await;
        let client = client.clone();
        let job_arn = arn.clone();
        jobs.spawn(async move {
            let r = driver::rotate(&client, &mut f, &job_arn, &options())
                .await
                .unwrap();
            f.stop().await;
            r
        });
        users.push((user, arn));
    }
    while let Some(r) = jobs.join_next().await {
        let r = r.unwrap();
        assert!(r.succeeded(), "{:?}", r.steps);
    }
    for (user, arn) in users {
        pg.login(&user, &password(&store, &arn, AWSCURRENT).await)
            .await
            .expect("new password works");
        assert!(
            pg.login(&user, "Initial-pw-1").await.is_err(),
            "{user}: old password still works"
        );
    }
}
