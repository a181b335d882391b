//! The read-only pre-flight check through every real binary: a good, configured secret gets a
//! report with no failed check, and the pre-flight never writes. Every AWS call goes through the
//! counting proxy (only reads may appear), the GitHub stand-in records only GETs, and the
//! database's users and password hashes are the same afterwards.

use e2e::db::{Kind, unique_user};
use e2e::driver::{self, Options};
use e2e::github::{GitHub, Installation};
use e2e::iam::{self, Admin, PATH};
use e2e::redis::Server;
use e2e::runtime_api::Function;
use e2e::stack;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Every call a pre-flight may make: reads.
const READS: &[&str] = &[
    "SecretsManager:DescribeSecret",
    "SecretsManager:GetSecretValue",
    "SecretsManager:ListSecretVersionIds",
    "IAM:GetUser",
    "IAM:ListAccessKeys",
    "IAM:GetAccessKeyLastUsed",
    "IAM:SimulatePrincipalPolicy",
    "IAM:GetRole",
    "STS:GetCallerIdentity",
    "RDS:DescribeDBInstances",
    "RDS:DescribeDBClusters",
];

/// Rotates `arn` once, so rotation is configured for the function.
async fn configure(
    binary: &str,
    client: &aws_sdk_secretsmanager::Client,
    env: &[(String, String)],
    arn: &str,
) {
    let mut f = Function::start(&e2e::workspace_binary(binary), env, false)
        .await
        .unwrap();
    driver::rotate_ok(client, &mut f, arn, &Options::new(binary)).await;
    f.stop().await;
}

/// Runs a pre-flight with every AWS call through the counting proxy; the report and the calls.
async fn preflight(
    binary: &str,
    upstream: String,
    env: Vec<(String, String)>,
    arn: &str,
) -> (Value, BTreeMap<String, u64>) {
    let (proxy, counts) = e2e::proxy::start(upstream).await;
    let mut env = env;
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy));
    let mut f = Function::start(&e2e::workspace_binary(binary), &env, false)
        .await
        .unwrap();
    let report = driver::preflight(&mut f, arn).await.unwrap();
    let calls = counts.take();
    println!("{}", driver::format_report(&report));
    f.stop().await;
    (report, calls)
}

/// No check failed; every named check is there; only reads were made.
fn assert_clean(report: &Value, calls: &BTreeMap<String, u64>, want: &[&str]) {
    assert_eq!(
        report["preflight"],
        "ok",
        "{}",
        driver::format_report(report)
    );
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for w in want {
        assert!(names.contains(w), "no `{w}` check in {names:?}");
    }
    for (op, n) in calls {
        assert!(
            READS.contains(&op.as_str()),
            "the pre-flight called {op} ({n}x): not a read"
        );
    }
    assert!(
        calls.contains_key("SecretsManager:DescribeSecret"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn random_password_preflight_reads_only() {
    let client = stack::client().await;
    let arn =
        stack::create_secret(&client, &stack::unique("pf-random"), r#"{"password": "p"}"#).await;
    configure("rotate-random-password", &client, &[], &arn).await;
    let (report, calls) =
        preflight("rotate-random-password", stack::endpoint(), vec![], &arn).await;
    assert_clean(
        &report,
        &calls,
        &[
            "secret",
            "rotation configured",
            "no rotation in progress",
            "read AWSCURRENT",
            "write permissions",
            "AWSCURRENT value",
        ],
    );
}

/// Snapshot of every user and password hash on the server.
async fn accounts(kind: Kind) -> Vec<String> {
    match kind {
        Kind::Postgres => {
            kind.admin_query("SELECT rolname || ':' || coalesce(rolpassword, '') FROM pg_authid ORDER BY 1")
                .await
        }
        Kind::MariaDb => {
            kind.admin_query("SELECT CONCAT(User, '@', Host, ':', authentication_string) FROM mysql.user ORDER BY 1")
                .await
        }
    }
}

#[tokio::test]
async fn db_password_preflight_reads_only() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let client = stack::client().await;
        let user = unique_user("pf");
        kind.create_user(&user, "App-pw-1").await;
        let (su, sp) = kind.superuser();
        let master = stack::create_secret(
            &client,
            &stack::unique("pf-master"),
            &kind.secret(&su, &sp).to_string(),
        )
        .await;
        let mut value = kind.secret(&user, "App-pw-1");
        value["masterarn"] = json!(master);
        let arn = stack::create_secret(&client, &stack::unique("pf-db"), &value.to_string()).await;
        let env = e2e::db::function_env();
        configure("rotate-db-password", &client, &env, &arn).await;
        let before = accounts(kind).await;
        let (report, calls) = preflight("rotate-db-password", stack::endpoint(), env, &arn).await;
        assert_clean(
            &report,
            &calls,
            &[
                "current credentials",
                "alternating users",
                "master secret",
                "master credentials",
            ],
        );
        assert!(
            accounts(kind).await == before,
            "{}: the pre-flight changed a user",
            kind.engine()
        );
    }
}

#[tokio::test]
async fn iam_access_key_preflight_reads_only() {
    let admin = Admin::connect().await;
    let (key, secret) = admin.rotator(&unique_user("pf_rotator"), true).await;
    let user = unique_user("pf");
    let (k, s) = admin.user(&user, PATH).await;
    let value = json!({"UserName": user, "AccessKeyId": k, "SecretAccessKey": s});
    let arn = stack::create_secret(&admin.sm, &stack::unique("pf-iam"), &value.to_string()).await;
    let env = vec![
        ("AWS_ENDPOINT_URL".to_string(), iam::url()),
        ("AWS_ACCESS_KEY_ID".to_string(), key),
        ("AWS_SECRET_ACCESS_KEY".to_string(), secret),
    ];
    configure("rotate-iam-access-key", &admin.sm, &env, &arn).await;
    let (report, calls) = preflight("rotate-iam-access-key", iam::url(), env, &arn).await;
    // After one rotation the user has two keys; the previous one goes first at the next.
    assert_clean(
        &report,
        &calls,
        &["current key", "current credentials", "key slot"],
    );
    let keys = admin.keys(&user).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let slot = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "key slot")
        .unwrap();
    assert_eq!(slot["status"], "ok", "{slot}");
    // #23.7: the key calls createSecret makes are simulated on the user's ARN, path included
    // (moto has no SimulatePrincipalPolicy, so the check says what it would have simulated).
    let keys = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "service permissions")
        .unwrap_or_else(|| panic!("no `service permissions` check: {report}"));
    assert!(
        keys["message"].as_str().unwrap().starts_with(&format!(
            "iam:CreateAccessKey, iam:DeleteAccessKey on {} are not verified",
            iam::user_arn(&user, PATH)
        )),
        "{keys}"
    );
}

#[tokio::test]
async fn github_token_preflight_reads_only() {
    let read = |var: &str| std::fs::read_to_string(std::env::var(var).unwrap()).unwrap();
    let installation = Installation {
        app_id: 42,
        repos: vec!["acme/api".into()],
        permissions: [("administration", "write"), ("contents", "read")]
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
        suspended: false,
    };
    let gh = GitHub::start(42, &read("TEST_GITHUB_APP_PUB"), vec![(7, installation)]).await;
    let client = stack::client().await;
    let key = stack::create_secret(
        &client,
        &stack::unique("pf-gh-key"),
        &read("TEST_GITHUB_APP_KEY"),
    )
    .await;
    let env = vec![("GITHUB_API_URL".to_string(), gh.url.clone())];
    for value in [
        json!({"kind": "app-installation-token", "app_id": 42, "installation_id": 7,
               "private_key_secret_arn": key, "permissions": {"contents": "read"}}),
        json!({"kind": "deploy-key", "app_id": 42, "installation_id": 7, "owner": "acme",
               "repo": "api", "private_key_secret_arn": key}),
    ] {
        let arn = stack::create_secret(&client, &stack::unique("pf-gh"), &value.to_string()).await;
        e2e::github::tag(
            &client,
            &arn,
            &e2e::github::pin_tags(&value, "contents=read"),
        )
        .await;
        configure("rotate-github-token", &client, &env, &arn).await;
        let rotated = gh.exchanges().len();
        // The templates name the token secrets their schedule refreshes.
        let mut env = env.clone();
        env.push(("GITHUB_TOKEN_SECRET_ARNS".into(), arn.clone()));
        let (report, calls) = preflight("rotate-github-token", stack::endpoint(), env, &arn).await;
        assert_clean(
            &report,
            &calls,
            &["App private key", "installation", "permissions"],
        );
        let after: Vec<_> = gh.exchanges()[rotated..]
            .iter()
            .map(|x| format!("{} {}", x.method, x.path))
            .collect();
        assert!(after.iter().all(|x| x.starts_with("GET ")), "{after:?}");
        assert!(!after.is_empty());
    }
    e2e::github::check_openapi(&gh.exchanges()).unwrap();
}

#[tokio::test]
async fn redis_password_preflight_reads_only() {
    for server in [Server::Redis, Server::Valkey] {
        let client = stack::client().await;
        let user = unique_user("pf");
        server.create_user(&user, "App-pw-1").await;
        let admin = server.admin_secret(&client).await;
        let value = server.secret(&user, "App-pw-1", &admin);
        let arn =
            stack::create_secret(&client, &stack::unique("pf-redis"), &value.to_string()).await;
        let env = e2e::redis::function_env();
        configure("rotate-redis-password", &client, &env, &arn).await;
        let before = server.acl(&user).await;
        let (report, calls) =
            preflight("rotate-redis-password", stack::endpoint(), env, &arn).await;
        assert_clean(&report, &calls, &["AWSCURRENT value", "administrator"]);
        assert_eq!(
            server.acl(&user).await,
            before,
            "{server:?}: the pre-flight changed the user"
        );
    }
}

/// #20 point 3: an installation-token secret that the deployment's refresh schedule does not
/// name (`GITHUB_TOKEN_SECRET_ARNS`, the templates' list) fails the pre-flight, whatever its
/// token's age: its tokens would expire within the hour. Listed (among others, by full ARN), it
/// passes; an entry without the random suffix names no secret.
#[tokio::test]
async fn a_token_secret_the_refresh_schedule_does_not_name_fails_the_preflight() {
    let read = |var: &str| std::fs::read_to_string(std::env::var(var).unwrap()).unwrap();
    let installation = Installation {
        app_id: 42,
        repos: vec!["acme/api".into()],
        permissions: [("contents", "read")]
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
        suspended: false,
    };
    let gh = GitHub::start(42, &read("TEST_GITHUB_APP_PUB"), vec![(7, installation)]).await;
    let client = stack::client().await;
    let key = stack::create_secret(
        &client,
        &stack::unique("pf-gh-key"),
        &read("TEST_GITHUB_APP_KEY"),
    )
    .await;
    let value = json!({"kind": "app-installation-token", "app_id": 42, "installation_id": 7,
                       "private_key_secret_arn": key});
    let arn = stack::create_secret(&client, &stack::unique("pf-gh"), &value.to_string()).await;
    e2e::github::tag(
        &client,
        &arn,
        &e2e::github::pin_tags(&value, "contents=read"),
    )
    .await;
    let env = vec![("GITHUB_API_URL".to_string(), gh.url.clone())];
    // A fresh token: the old check, judging by the token's age, passed it.
    configure("rotate-github-token", &client, &env, &arn).await;
    let other = format!("{}-other-AbCdEf", &arn[..arn.len() - 7]);
    let without_suffix = &arn[..arn.len() - 7];
    for (list, want) in [
        (None, "failed"),
        (Some(other.clone()), "failed"),
        (Some(format!("{other},{arn}")), "ok"),
        // Full ARNs only: without its suffix, an entry would also name a later secret of the name.
        (Some(format!("{other}, {without_suffix}")), "failed"),
    ] {
        let mut env = env.clone();
        env.extend(
            list.clone()
                .map(|l| ("GITHUB_TOKEN_SECRET_ARNS".to_string(), l)),
        );
        let (report, calls) = preflight("rotate-github-token", stack::endpoint(), env, &arn).await;
        let text = driver::format_report(&report);
        let checks = report["checks"].as_array().unwrap();
        let check = checks
            .iter()
            .find(|c| c["check"] == "refresh schedule")
            .unwrap_or_else(|| panic!("no `refresh schedule` check: {text}"));
        assert_eq!(check["status"], want, "{list:?}: {text}");
        if want == "failed" {
            assert!(
                check["message"]
                    .as_str()
                    .unwrap()
                    .contains("has no refresh schedule from this stack"),
                "{text}"
            );
            let failed: Vec<&Value> = checks.iter().filter(|c| c["status"] == "failed").collect();
            assert_eq!(failed.len(), 1, "only the schedule is wrong: {text}");
            assert_eq!(report["preflight"], "failed", "{text}");
        } else {
            assert_clean(
                &report,
                &calls,
                &["refresh schedule", "current credentials"],
            );
        }
    }
}

/// A misconfiguration is reported, naming what is wrong, and the rotation-in-progress rule too.
#[tokio::test]
async fn a_wrong_master_and_a_stuck_rotation_are_reported() {
    let kind = Kind::Postgres;
    let client = stack::client().await;
    let user = unique_user("pf_bad");
    kind.create_user(&user, "App-pw-1").await;
    let master = stack::create_secret(
        &client,
        &stack::unique("pf-master"),
        &kind
            .secret(&unique_user("nobody"), "Wrong-pw-1")
            .to_string(),
    )
    .await;
    let mut value = kind.secret(&user, "App-pw-1");
    value["masterarn"] = json!(master);
    let arn = stack::create_secret(&client, &stack::unique("pf-db"), &value.to_string()).await;
    let env = e2e::db::function_env();
    let token = shared::random::version_id();
    stack::begin_rotation(
        &client,
        &arn,
        &token,
        &stack::function_arn("rotate-db-password"),
    )
    .await
    .unwrap();
    let mut f = Function::start(&e2e::workspace_binary("rotate-db-password"), &env, false)
        .await
        .unwrap();
    let report = driver::preflight(&mut f, &arn).await.unwrap();
    let text = driver::format_report(&report);
    assert_eq!(report["preflight"], "failed", "{text}");
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        status("no rotation in progress")["status"],
        "failed",
        "{text}"
    );
    assert!(
        status("no rotation in progress")["message"]
            .as_str()
            .unwrap()
            .contains(&token),
        "{text}"
    );
    assert_eq!(status("master credentials")["status"], "failed", "{text}");
    assert!(
        status("master credentials")["message"]
            .as_str()
            .unwrap()
            .contains("the master credentials do not log in"),
        "{text}"
    );
    assert_eq!(status("current credentials")["status"], "ok", "{text}");
    assert!(
        !text.contains("Wrong-pw-1") && !text.contains("App-pw-1"),
        "{text}"
    );
    f.assert_no_leak(&["Wrong-pw-1", "App-pw-1"]);
}

/// #23.7: the pre-flight simulates the function's real role, path included (a Lambda session's ARN
/// drops the path; GetRole gives it), and the secret's customer managed key on its ARN, with
/// kms:Decrypt proven by the read. moto has no SimulatePrincipalPolicy, so both end `not verified`
/// naming what they would have simulated (the decisions are unit-tested in shared::preflight).
#[tokio::test]
async fn the_preflight_simulates_the_real_role_and_the_secrets_key() {
    let client = stack::client().await;
    let sdk = shared::config::load().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let role = stack::unique("pf-role");
    let made = iam
        .create_role()
        .role_name(&role)
        .path("/service-role/rotation/")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let role_arn = made.role().unwrap().arn().to_owned();
    assert!(
        role_arn.ends_with(&format!(":role/service-role/rotation/{role}")),
        "{role_arn}"
    );
    // The function runs as a session of that role, as in Lambda.
    let session = aws_sdk_sts::Client::new(&sdk)
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("rotation-fn")
        .send()
        .await
        .unwrap();
    let creds = session.credentials().unwrap();
    let env = vec![
        (
            "AWS_ACCESS_KEY_ID".to_string(),
            creds.access_key_id().to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            creds.secret_access_key().to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN".to_string(),
            creds.session_token().to_owned(),
        ),
    ];
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let arn = client
        .create_secret()
        .name(stack::unique("pf-kms"))
        .kms_key_id(key)
        .secret_string(r#"{"password": "p"}"#)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    configure("rotate-random-password", &client, &env, &arn).await;
    let (report, calls) = preflight("rotate-random-password", stack::endpoint(), env, &arn).await;
    let text = driver::format_report(&report);
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no `{name}` check: {text}"))
    };
    let writes = check("write permissions");
    assert_eq!(writes["status"], "not verified", "{text}");
    assert!(
        writes["message"].as_str().unwrap().contains(&format!(
            "iam:SimulatePrincipalPolicy for {role_arn} failed"
        )),
        "{text}"
    );
    let kms = check("KMS key");
    assert_eq!(kms["status"], "not verified", "{text}");
    let message = kms["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{key}: kms:Decrypt works"))
            && message.contains("kms:GenerateDataKey is not verified"),
        "{text}"
    );
    // Rotation every day: the window is the rest of the UTC day.
    let window = check("rotation window");
    assert_eq!(window["status"], "ok", "{text}");
    assert!(
        window["message"]
            .as_str()
            .unwrap()
            .contains("24h window of every day"),
        "{text}"
    );
    assert!(calls.contains_key("IAM:GetRole"), "{calls:?}");
    for op in calls.keys() {
        assert!(
            READS.contains(&op.as_str()),
            "the pre-flight called {op}: not a read"
        );
    }
}
