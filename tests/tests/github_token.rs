//! `rotate-github-token` end to end: the real binary through the Lambda Runtime API and the local
//! driver, against moto and the GitHub stand-in (`tests/src/github.rs`).

use e2e::driver::{self, Options};
use e2e::github::{GitHub, Installation};
use e2e::runtime_api::Function;
use e2e::stack;
use serde_json::{Map, Value, json};
use shared::Step;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretStore};
use std::time::Duration;

const BINARY: &str = "rotate-github-token";
const APP: u64 = 42;
/// Installed on acme/api, acme/web, acme/docs with administration and contents write.
const FULL: u64 = 7;
/// Installed on acme/readonly with contents read only.
const NARROW: u64 = 8;
/// Suspended: GitHub answers 403.
const SUSPENDED: u64 = 9;
/// Installed on 150 repositories (acme/r000 to acme/r149), administration write: more than one
/// page of anything at GitHub's largest page size.
const MANY: u64 = 10;

fn perms(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

fn read(var: &str) -> String {
    std::fs::read_to_string(
        std::env::var(var).unwrap_or_else(|_| panic!("{var}: run scripts/test")),
    )
    .unwrap()
}

/// The shared rig (`e2e::rig`) with the GitHub stand-in and the App's key.
struct Rig {
    base: e2e::rig::Rig,
    gh: GitHub,
    key_arn: String,
    vars: Vec<(String, String)>,
}

impl std::ops::Deref for Rig {
    type Target = e2e::rig::Rig;
    fn deref(&self) -> &e2e::rig::Rig {
        &self.base
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut e2e::rig::Rig {
        &mut self.base
    }
}

/// Every test's exchanges are checked against GitHub's OpenAPI description when its rig goes.
impl Drop for Rig {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.check_openapi();
        }
    }
}

impl Rig {
    async fn new(env: &[(&str, &str)]) -> Self {
        let installs = vec![
            (
                FULL,
                Installation {
                    app_id: APP,
                    repos: vec!["acme/api".into(), "acme/web".into(), "acme/docs".into()],
                    permissions: perms(&[
                        ("contents", "write"),
                        ("metadata", "read"),
                        ("administration", "write"),
                    ]),
                    suspended: false,
                },
            ),
            (
                NARROW,
                Installation {
                    app_id: APP,
                    repos: vec!["acme/readonly".into()],
                    permissions: perms(&[("contents", "read"), ("metadata", "read")]),
                    suspended: false,
                },
            ),
            (
                MANY,
                Installation {
                    app_id: APP,
                    repos: (0..150).map(|i| format!("acme/r{i:03}")).collect(),
                    permissions: perms(&[
                        ("contents", "read"),
                        ("metadata", "read"),
                        ("administration", "write"),
                    ]),
                    suspended: false,
                },
            ),
            (
                SUSPENDED,
                Installation {
                    app_id: APP,
                    repos: vec!["acme/old".into()],
                    permissions: perms(&[("contents", "read")]),
                    suspended: true,
                },
            ),
        ];
        let gh = GitHub::start(APP, &read("TEST_GITHUB_APP_PUB"), installs).await;
        let client = stack::client().await;
        let key_arn = stack::create_secret(
            &client,
            &stack::unique("gh-app-key"),
            &read("TEST_GITHUB_APP_KEY"),
        )
        .await;
        // No minimum age for the previous credential: the tests rotate back to back (one test
        // keeps the default by giving it empty; an empty value unsets a variable).
        let vars = vec![
            ("GITHUB_API_URL".to_string(), gh.url.clone()),
            (
                "RETIRE_PREVIOUS_MIN_AGE_SECONDS".to_string(),
                "0".to_string(),
            ),
        ];
        let vars = e2e::rig::env_with(vars, env);
        Self {
            base: e2e::rig::Rig::with_client(client, BINARY, &vars).await,
            gh,
            key_arn,
            vars,
        }
    }

    /// Restarts the function with `GITHUB_TOKEN_SECRET_ARNS` naming `arns`, as the templates
    /// fill it from the secrets their refresh schedule names.
    async fn refreshing(&mut self, arns: &[&str]) {
        let vars = e2e::rig::env_with(
            self.vars.clone(),
            &[("GITHUB_TOKEN_SECRET_ARNS", &arns.join(","))],
        );
        let function =
            e2e::runtime_api::Function::start(&e2e::workspace_binary(BINARY), &vars, false)
                .await
                .unwrap();
        std::mem::replace(&mut self.base.function, function)
            .stop()
            .await;
    }

    /// A secret holding `value`, tagged with the pin that allows exactly what it asks for (a
    /// token without `permissions`: its installation's permissions).
    async fn secret(&self, value: Value) -> String {
        let arn = self.untagged(&value).await;
        e2e::github::tag(&self.client, &arn, &self.pin(&value)).await;
        arn
    }

    async fn untagged(&self, value: &Value) -> String {
        stack::create_secret(&self.client, &stack::unique("gh"), &value.to_string()).await
    }

    fn pin(&self, value: &Value) -> Vec<(String, String)> {
        let granted = value["installation_id"]
            .as_u64()
            .and_then(|i| {
                let st = self.gh.state.lock().unwrap();
                st.installations.get(&i).map(|x| x.permissions.clone())
            })
            .unwrap_or_default();
        let ceiling = value["permissions"].as_object().unwrap_or(&granted);
        let ceiling: Vec<String> = ceiling
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        let ceiling = match ceiling.is_empty() {
            true => "contents=read".to_string(),
            false => ceiling.join(" "),
        };
        e2e::github::pin_tags(value, &ceiling)
    }

    /// What a writer with `PutSecretValue` only can do: replace `AWSCURRENT`.
    async fn put_current(&self, arn: &str, value: &Value) {
        self.client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value.to_string())
            .send()
            .await
            .unwrap();
    }

    /// How many installation tokens GitHub minted so far.
    fn minted(&self) -> usize {
        self.gh
            .exchanges()
            .iter()
            .filter(|x| x.method == "POST" && x.path.ends_with("/access_tokens") && x.status == 201)
            .count()
    }

    fn token_secret(&self, installation: u64) -> Value {
        json!({"kind": "app-installation-token", "app_id": APP, "installation_id": installation,
               "private_key_secret_arn": self.key_arn, "team": "ci"})
    }

    fn key_secret(&self, repo: &str) -> Value {
        json!({"kind": "deploy-key", "app_id": APP, "installation_id": FULL, "owner": "acme", "repo": repo,
               "private_key_secret_arn": self.key_arn})
    }

    /// Every request the rotator sent and every answer it got match GitHub's OpenAPI description.
    fn check_openapi(&self) {
        match e2e::github::check_openapi(&self.gh.exchanges()) {
            Ok(summary) => println!("{summary}"),
            Err(report) => {
                panic!("the exchanges do not match GitHub's OpenAPI description:\n{report}")
            }
        }
    }

    /// A rotation that fails must leave AWSCURRENT as it was; returns the failing step's error.
    async fn fails(&mut self, arn: &str) -> String {
        self.refused(arn).await
    }
}

/// `RETIRE_PREVIOUS=next-rotation` (the default): a consumer that read the token just before a
/// rotation keeps a working token until the next rotation, which revokes it first.
#[tokio::test]
async fn installation_tokens_stay_valid_until_the_next_rotation() {
    let mut rig = Rig::new(&[]).await;
    let arn = rig.secret(rig.token_secret(FULL)).await;
    let mut tokens = Vec::new();
    for round in 0..3 {
        let r = rig.rotate_ok(&arn).await;
        assert_eq!(r.labels.version_with(AWSPENDING), None);
        let current = rig.value(&arn, AWSCURRENT).await;
        assert_eq!(current["team"], "ci");
        assert!(current["expires_at"].as_str().unwrap().ends_with('Z'));
        tokens.push(current["token"].as_str().unwrap().to_owned());
        let state = rig.gh.state.lock().unwrap();
        assert!(state.token_is_live(&tokens[round]));
        if round >= 1 {
            assert!(
                state.token_is_live(&tokens[round - 1]),
                "round {round}: the token a consumer cached before this rotation was revoked"
            );
        }
        if round >= 2 {
            assert!(
                !state.token_is_live(&tokens[round - 2]),
                "round {round}: the token two rotations old was not revoked"
            );
        }
        assert!(
            state.live_tokens() <= 2,
            "round {round}: {} live",
            state.live_tokens()
        );
    }
    let secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    rig.function.assert_no_leak(&secrets);
    rig.function
        .assert_no_leak(&[&read("TEST_GITHUB_APP_KEY")[40..120]]);
}

/// #20/#23.3 for installation tokens: rotations back to back (a manual or scheduled rotation
/// minutes after a refresh) never revoke the token that was current seconds earlier, which
/// consumers may still cache; the rotation goes on and the token expires on its own within the
/// hour. The tag `rotation:retire-previous-now` naming its version revokes it at once.
#[tokio::test]
async fn back_to_back_rotations_leave_the_previous_token_working() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS_MIN_AGE_SECONDS", "7200")]).await;
    let arn = rig.secret(rig.token_secret(FULL)).await;
    let token = |v: Value| v["token"].as_str().unwrap().to_owned();
    rig.rotate_ok(&arn).await;
    let t1 = token(rig.value(&arn, AWSCURRENT).await);
    rig.rotate_ok(&arn).await;
    let t2 = token(rig.value(&arn, AWSCURRENT).await);
    // The third rotation would revoke t1, current until seconds ago.
    let r = rig.rotate_ok(&arn).await;
    let t3 = token(rig.value(&arn, AWSCURRENT).await);
    {
        let state = rig.gh.state.lock().unwrap();
        for (name, t) in [("t1", &t1), ("t2", &t2), ("t3", &t3)] {
            assert!(state.token_is_live(t), "{name} was revoked");
        }
    }
    assert!(
        rig.function
            .output()
            .iter()
            .any(|l| l.contains("the previous token is not revoked")),
        "the skipped revoke is logged"
    );
    let previous = r.labels.version_with(AWSPREVIOUS).unwrap().to_owned();
    e2e::github::tag(
        &rig.client,
        &arn,
        &[(shared::target::RETIRE_NOW_TAG.to_string(), previous)],
    )
    .await;
    rig.rotate_ok(&arn).await;
    let t4 = token(rig.value(&arn, AWSCURRENT).await);
    let state = rig.gh.state.lock().unwrap();
    assert!(
        !state.token_is_live(&t2),
        "the tagged previous token is revoked"
    );
    assert!(state.token_is_live(&t3) && state.token_is_live(&t4));
}

/// A GitHub answer is read up to 1 MiB: a longer one (a broken server or proxy) ends the step
/// naming the call, and the function never holds it whole.
#[tokio::test]
async fn an_oversized_github_answer_is_refused_naming_the_call() {
    let rig = Rig::new(&[]).await;
    let arn = rig.secret(rig.token_secret(FULL)).await;
    // Every answer padded past the limit with whitespace, which still parses as the same JSON.
    let pad: e2e::proxy::Rewrite = std::sync::Arc::new(|_: &str, body: hyper::body::Bytes| {
        let mut padded = body.to_vec();
        padded.resize(padded.len() + (2 << 20), b' ');
        padded.into()
    });
    let (url, _) = e2e::proxy::start_with(rig.gh.url.clone(), Some(pad)).await;
    let env = [("GITHUB_API_URL".to_string(), url)];
    let mut f = Function::start(&e2e::workspace_binary(BINARY), &env, false)
        .await
        .unwrap();
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.client, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    let err = driver::step(&mut f, Step::Create, &arn, &token, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        err.contains(&format!(
            "GitHub POST /app/installations/{FULL}/access_tokens: the answer is longer than 1 MiB"
        )),
        "{err}"
    );
    f.stop().await;
}

/// `RETIRE_PREVIOUS=finish`: finishSecret revokes the previous token at once.
#[tokio::test]
async fn retire_previous_finish_revokes_the_previous_token_at_once() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS", "finish")]).await;
    let arn = rig.secret(rig.token_secret(FULL)).await;
    rig.rotate_ok(&arn).await;
    let t1 = rig.value(&arn, AWSCURRENT).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    rig.rotate_ok(&arn).await;
    let t2 = rig.value(&arn, AWSCURRENT).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = rig.gh.state.lock().unwrap();
    assert!(state.token_is_live(&t2));
    assert!(
        !state.token_is_live(&t1),
        "the previous token was not revoked"
    );
    assert_eq!(state.live_tokens(), 1, "no other token is left alive");
}

/// `REVOKE_PREVIOUS` is folded into `RETIRE_PREVIOUS`: the function refuses to start and says what
/// to set instead.
#[tokio::test]
async fn revoke_previous_says_what_to_set_instead() {
    let mut f = Function::start(
        &e2e::workspace_binary(BINARY),
        &[("REVOKE_PREVIOUS".to_string(), "false".to_string())],
        false,
    )
    .await
    .unwrap();
    let event = json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t"});
    assert!(f.invoke(&event, Duration::from_secs(10)).await.is_err());
    let out = f.output().join("\n");
    assert!(
        out.contains("REVOKE_PREVIOUS (`false`) is replaced by RETIRE_PREVIOUS"),
        "{out}"
    );
}

/// A pending token that expired during a GitHub outage can never pass testSecret: once GitHub is
/// back, testSecret says so and takes AWSPENDING off the version (while GitHub was down, the
/// failure proved nothing and the version was kept). AWSCURRENT is never touched; the next
/// rotation starts afresh and converges.
#[tokio::test]
async fn a_pending_token_that_expired_in_an_outage_is_abandoned() {
    let mut rig = Rig::new(&[]).await;
    let arn = rig.secret(rig.token_secret(FULL)).await;
    rig.rotate_ok(&arn).await;
    let current = rig.value(&arn, AWSCURRENT).await;
    let token = rig.begin_and_run(&arn, &[Step::Create, Step::Set]).await;
    rig.gh.state.lock().unwrap().outage = true;
    let err = driver::step(
        &mut rig.function,
        Step::Test,
        &arn,
        &token,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("HTTP 503") && !err.contains("AWSPENDING was removed"),
        "{err}"
    );
    let labels = rig.store.describe(&arn).await.unwrap().labels;
    assert!(labels.has(&token, AWSPENDING), "an outage proves nothing");
    // The outage outlasts the pending token's hour.
    {
        let mut st = rig.gh.state.lock().unwrap();
        st.clock_ahead = Duration::from_secs(2 * 3600);
        st.outage = false;
    }
    let err = driver::step(
        &mut rig.function,
        Step::Test,
        &arn,
        &token,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    for part in [
        "HTTP 401",
        "expired or revoked",
        "AWSPENDING was removed",
        token.as_str(),
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    let labels = rig.store.describe(&arn).await.unwrap().labels;
    assert_eq!(labels.version_with(AWSPENDING), None);
    assert_eq!(
        rig.value(&arn, AWSCURRENT).await,
        current,
        "AWSCURRENT untouched"
    );
    // Secrets Manager's next rotation mints afresh with the App's JWT.
    let r = rig.rotate_ok(&arn).await;
    assert_ne!(r.token, token);
    let t = rig.value(&arn, AWSCURRENT).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(rig.gh.state.lock().unwrap().token_is_live(&t));
}

/// A deploy key that became AWSPREVIOUS and that GitHub saw used afterwards is reported when the
/// next rotation retires it: one warning naming the key and the `PreviousCredentialInUse` metric.
#[tokio::test]
async fn a_previous_deploy_key_used_late_is_reported() {
    let mut rig = Rig::new(&[]).await;
    let arn = rig.secret(rig.key_secret("web")).await;
    rig.rotate_ok(&arn).await;
    rig.rotate_ok(&arn).await;
    let previous = rig.value(&arn, AWSPREVIOUS).await;
    let body = previous["public_key"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    // GitHub dates uses to the second, and the version's creation is dated to the second too.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let id = {
        let mut st = rig.gh.state.lock().unwrap();
        let k = st
            .keys
            .get_mut("acme/web")
            .unwrap()
            .iter_mut()
            .find(|k| k.key.contains(&body))
            .expect("the previous key is still registered until the next rotation");
        // A consumer cloned with it just now, after it stopped being current.
        k.last_used = Some(e2e::github::iso_now());
        k.id
    };
    assert!(
        !rig.function
            .output()
            .iter()
            .any(|l| l.contains("PreviousCredentialInUse"))
    );
    rig.rotate_ok(&arn).await;
    let out = rig.function.output();
    let warning = out
        .iter()
        .find(|l| l.contains("the previous credential was used after it stopped being current"))
        .unwrap_or_else(|| panic!("no warning:\n{}", out.join("\n")));
    assert!(warning.contains(&format!("deploy key {id}")), "{warning}");
    assert!(
        out.iter()
            .any(|l| l.contains("\"PreviousCredentialInUse\":1"))
    );
    let st = rig.gh.state.lock().unwrap();
    assert!(
        !st.keys["acme/web"].iter().any(|k| k.id == id),
        "retired all the same"
    );
}

#[tokio::test]
async fn a_scoped_token_reaches_only_its_repositories() {
    let mut rig = Rig::new(&[]).await;
    let mut value = rig.token_secret(FULL);
    value["repositories"] = json!(["api", "docs"]);
    value["permissions"] = json!({"contents": "read"});
    let arn = rig.secret(value).await;
    rig.rotate_ok(&arn).await;
    let current = rig.value(&arn, AWSCURRENT).await;
    assert_eq!(current["granted_permissions"], json!({"contents": "read"}));
    assert_eq!(current["repositories"], json!(["api", "docs"]));
}

#[tokio::test]
async fn deploy_keys_rotate_twice_and_only_the_current_key_stays() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS", "finish")]).await;
    let arn = rig.secret(rig.key_secret("api")).await;
    for round in 1..=2 {
        let r = rig.rotate_ok(&arn).await;
        let current = rig.value(&arn, AWSCURRENT).await;
        let private =
            ssh_key::PrivateKey::from_openssh(current["private_key"].as_str().unwrap()).unwrap();
        assert_eq!(private.algorithm(), ssh_key::Algorithm::Ed25519);
        let public = private.public_key().to_openssh().unwrap();
        let keys = rig.gh.state.lock().unwrap().keys["acme/api"].clone();
        assert_eq!(
            keys.len(),
            1,
            "round {round}: {:?}",
            keys.iter().map(|k| &k.title).collect::<Vec<_>>()
        );
        assert_eq!(keys[0].title, github_token::title(&arn, &r.token));
        assert!(keys[0].read_only);
        assert_eq!(
            keys[0].key.split_whitespace().nth(1),
            public.split_whitespace().nth(1)
        );
        rig.function
            .assert_no_leak(&[current["private_key"].as_str().unwrap()]);
    }
}

#[tokio::test]
async fn deploy_key_steps_twice_are_harmless_and_other_keys_are_untouched() {
    let mut rig = Rig::new(&[]).await;
    rig.gh
        .state
        .lock()
        .unwrap()
        .keys
        .get_mut("acme/web")
        .unwrap()
        .push(e2e::github::DeployKey {
            id: 1,
            title: "a human's key".into(),
            key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
                .into(),
            read_only: true,
            last_used: None,
        });
    let arn = rig.secret(rig.key_secret("web")).await;
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.client, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    for step in Step::ALL {
        for _ in 0..2 {
            let reply = driver::step(
                &mut rig.function,
                step,
                &arn,
                &token,
                Duration::from_secs(30),
            )
            .await;
            assert!(reply.is_ok(), "{step}: {reply:?}");
        }
    }
    let keys = rig.gh.state.lock().unwrap().keys["acme/web"].clone();
    let titles: Vec<_> = keys.iter().map(|k| k.title.clone()).collect();
    assert_eq!(
        titles,
        vec![
            "a human's key".to_string(),
            github_token::title(&arn, &token)
        ]
    );
}

/// GitHub's refusals end the step with the status and message, and change nothing.
#[tokio::test]
async fn github_errors_are_clear_and_change_nothing() {
    let mut rig = Rig::new(&[]).await;
    let other_key = stack::create_secret(
        &rig.client,
        &stack::unique("gh-other"),
        &read("TEST_GITHUB_OTHER_KEY"),
    )
    .await;
    let mut wrong_key = rig.token_secret(FULL);
    wrong_key["private_key_secret_arn"] = json!(other_key);
    let mut too_much = rig.token_secret(NARROW);
    too_much["permissions"] = json!({"contents": "write"});
    let mut foreign_repo = rig.token_secret(FULL);
    foreign_repo["repositories"] = json!(["not-ours"]);
    let cases = [
        (wrong_key, "HTTP 401"),
        (
            rig.token_secret(SUSPENDED),
            "HTTP 403 This installation has been suspended",
        ),
        (rig.token_secret(404_404), "HTTP 404"),
        (too_much, "HTTP 422"),
        (foreign_repo, "HTTP 422"),
        (rig.key_secret("readonly"), "HTTP 422"),
    ];
    for (value, want) in cases {
        let arn = rig.secret(value).await;
        let err = rig.fails(&arn).await;
        assert!(
            err.contains("GitHub POST /app/installations/") && err.contains(want),
            "{err} should contain {want}"
        );
    }
    assert_eq!(
        rig.gh.state.lock().unwrap().live_tokens(),
        0,
        "no token was minted"
    );
}

#[tokio::test]
async fn a_missing_or_malformed_private_key_is_named() {
    let mut rig = Rig::new(&[]).await;
    let not_a_key = stack::create_secret(
        &rig.client,
        &stack::unique("gh-bad-key"),
        "hunter2, not a key",
    )
    .await;
    let json_without =
        stack::create_secret(&rig.client, &stack::unique("gh-bad-key"), r#"{"pem": "x"}"#).await;
    let cases = [
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf".to_string(),
            "cannot be read: Secrets Manager not found",
        ),
        (not_a_key, "the private key secret value is invalid: "),
        (json_without, "the private key secret value is invalid: "),
    ];
    let problems = [
        "",
        "it holds no private key in PEM form",
        "field `private_key` is missing",
    ];
    for ((key_arn, want), problem) in cases.into_iter().zip(problems) {
        let mut value = rig.token_secret(FULL);
        value["private_key_secret_arn"] = json!(key_arn);
        let arn = rig.secret(value).await;
        let err = rig.fails(&arn).await;
        assert!(
            err.contains(want) && err.contains(problem),
            "{err} should contain {want} and {problem}"
        );
        // The field that points at the key secret, and its ARN, are named.
        assert!(
            err.contains("field `private_key_secret_arn`") && err.contains(&key_arn),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// Crash anywhere, converge: the binary aborts after its Nth external call (store or GitHub) for
/// every N, the driver retries with the same token, and the rotation must converge with the old
/// credential working until then and, at the end, only the new one alive.
async fn crash_everywhere(deploy_key: bool) -> usize {
    let dir = std::env::temp_dir();
    for n in 1.. {
        let marker = dir.join(format!("gh-crash-{}", shared::random::version_id()));
        let crash = [
            ("FAULT_CRASH_AFTER", n.to_string()),
            ("FAULT_MARKER", marker.display().to_string()),
            // The old credential is judged retired at the end of the rotation.
            ("RETIRE_PREVIOUS", "finish".to_string()),
        ];
        let env: Vec<(&str, &str)> = crash.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut rig = Rig::new(&env).await;
        // A starting value that works: a live token, or a registered key titled for its version.
        let mut value = if deploy_key {
            rig.key_secret("api")
        } else {
            rig.token_secret(FULL)
        };
        let (private, public) = {
            let mut seed = [0u8; 32];
            shared::random::fill(&mut seed);
            let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
            let key =
                ssh_key::PrivateKey::new(ssh_key::private::KeypairData::Ed25519(pair), "seed")
                    .unwrap();
            (
                key.to_openssh(ssh_key::LineEnding::LF).unwrap().to_string(),
                key.public_key().to_openssh().unwrap(),
            )
        };
        if deploy_key {
            value["private_key"] = json!(private);
            value["public_key"] = json!(public);
        } else {
            value["token"] = json!(rig.gh.seed_token(FULL));
        }
        let arn = rig.secret(value).await;
        let first_version = rig
            .store
            .describe(&arn)
            .await
            .unwrap()
            .labels
            .version_with(AWSCURRENT)
            .unwrap()
            .to_owned();
        if deploy_key {
            rig.gh.seed_key(
                "acme/api",
                &github_token::title(&arn, &first_version),
                &public,
            );
        }
        let old = rig.value(&arn, AWSCURRENT).await;
        let works = |rig: &Rig, v: &Value, version: &str| -> bool {
            let st = rig.gh.state.lock().unwrap();
            if deploy_key {
                let title = github_token::title(&arn, version);
                let body = v["public_key"]
                    .as_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .nth(1)
                    .map(str::to_owned);
                st.keys["acme/api"].iter().any(|k| {
                    k.title == title && k.key.split_whitespace().nth(1).map(str::to_owned) == body
                })
            } else {
                st.token_is_live(v["token"].as_str().unwrap_or_default())
            }
        };
        let first = rig.rotate(&arn).await;
        if !marker.exists() {
            assert!(
                first.succeeded() && n > 1,
                "no crash at {n}: {:?}",
                first.steps
            );
            return n - 1;
        }
        // The marker stays until the end of this case, so each case crashes exactly once.
        let labels = rig.store.describe(&arn).await.unwrap().labels;
        let current_version = labels.version_with(AWSCURRENT).unwrap().to_owned();
        let now = rig.value(&arn, AWSCURRENT).await;
        assert!(
            works(&rig, &now, &current_version),
            "crash {n}: AWSCURRENT stopped working"
        );
        let mut done = first.succeeded();
        for _ in 0..3 {
            if !done {
                let r = rig
                    .retry(&arn, &first.token, &Options::new(BINARY).resuming())
                    .await;
                done = r.succeeded();
            }
        }
        assert!(done, "crash {n}: the retries did not converge");
        let labels = rig.store.describe(&arn).await.unwrap().labels;
        assert_eq!(
            labels.stages_of(&first.token),
            Some(&[AWSCURRENT.to_string()][..]),
            "crash {n}"
        );
        assert_eq!(rig.value(&arn, AWSPREVIOUS).await, old, "crash {n}");
        let current = rig.value(&arn, AWSCURRENT).await;
        assert!(
            works(&rig, &current, &first.token),
            "crash {n}: the new credential does not work"
        );
        assert!(
            !works(&rig, &old, &first_version),
            "crash {n}: the old credential was not retired"
        );
        let st = rig.gh.state.lock().unwrap();
        if deploy_key {
            let ours = st.keys["acme/api"]
                .iter()
                .filter(|k| k.title.starts_with(github_token::TITLE_PREFIX))
                .count();
            assert_eq!(ours, 1, "crash {n}: deploy keys of ours left behind");
        } else {
            // A token minted by an attempt that died before storing it cannot be revoked (no API
            // lists installation tokens); it expires within the hour. At most one such orphan.
            let steps: Vec<String> = rig
                .function
                .output()
                .into_iter()
                .filter(|l| l.contains("\"message\":\"step"))
                .collect();
            let calls: Vec<String> = st
                .exchanges
                .iter()
                .map(|e| format!("{} {} {}", e.method, e.path, e.status))
                .collect();
            assert!(
                st.live_tokens() <= 2,
                "crash {n}: {} live tokens; {calls:?}\n{}",
                st.live_tokens(),
                steps.join("\n")
            );
        }
        drop(st);
        std::fs::remove_file(&marker).ok();
    }
    unreachable!()
}

#[tokio::test]
async fn installation_tokens_survive_a_crash_after_every_call() {
    let n = crash_everywhere(false).await;
    assert!(n >= 12, "{n}");
    println!("installation token: {n} crashes injected and survived");
}

#[tokio::test]
async fn deploy_keys_survive_a_crash_after_every_call() {
    let n = crash_everywhere(true).await;
    assert!(n >= 15, "{n}");
    println!("deploy key: {n} crashes injected and survived");
}

/// GitHub pages every list (30 by default, at most 100 per page). A token scoped to 120 of an
/// installation's 150 repositories passes testSecret only if every page is read; a repository
/// with 130 other deploy keys still has exactly one of ours after two rotations.
#[tokio::test]
async fn lists_longer_than_a_page_are_read_whole() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS", "finish")]).await;
    let mut value = rig.token_secret(MANY);
    let scope: Vec<String> = (0..120).map(|i| format!("r{i:03}")).collect();
    value["repositories"] = json!(scope);
    let arn = rig.secret(value).await;
    rig.rotate_ok(&arn).await;

    for i in 0..130 {
        let (_, public) = ed25519_public(i);
        rig.gh
            .seed_key("acme/r007", &format!("someone's key {i}"), &public);
    }
    let mut value = rig.key_secret("r007");
    value["installation_id"] = json!(MANY);
    let arn = rig.secret(value).await;
    for _ in 0..2 {
        rig.rotate_ok(&arn).await;
    }
    let keys = rig.gh.state.lock().unwrap().keys["acme/r007"].clone();
    let ours: Vec<_> = keys
        .iter()
        .filter(|k| k.title.starts_with(github_token::TITLE_PREFIX))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "{:?}",
        ours.iter().map(|k| &k.title).collect::<Vec<_>>()
    );
    assert_eq!(keys.len(), 131, "every other key is still there");
    let pages = rig
        .gh
        .exchanges()
        .iter()
        .filter(|x| x.path == "/repos/acme/r007/keys" && x.method == "GET")
        .count();
    assert!(pages >= 4, "{pages} list requests");
}

/// A distinct, valid OpenSSH Ed25519 public key per seed.
fn ed25519_public(seed: u8) -> (ssh_key::PrivateKey, String) {
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
    let private =
        ssh_key::PrivateKey::new(ssh_key::private::KeypairData::Ed25519(pair), "seed").unwrap();
    let public = private.public_key().to_openssh().unwrap();
    (private, public)
}

/// Two secrets rotating deploy keys on one repository (a read-only CI key and a write key) never
/// delete each other's keys.
#[tokio::test]
async fn two_secrets_on_one_repository_keep_their_own_keys() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS", "finish")]).await;
    let ci = rig.secret(rig.key_secret("api")).await;
    let mut write = rig.key_secret("api");
    write["read_only"] = json!(false);
    let write = rig.secret(write).await;
    for arn in [&ci, &write, &ci, &write, &ci] {
        rig.rotate_ok(arn).await;
    }
    let keys = rig.gh.state.lock().unwrap().keys["acme/api"].clone();
    for arn in [&ci, &write] {
        let current = rig.value(arn, AWSCURRENT).await;
        let body = current["public_key"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .nth(1);
        assert!(
            keys.iter().any(|k| k.key.split_whitespace().nth(1) == body),
            "{arn}'s current key was deleted"
        );
    }
    assert_eq!(
        keys.len(),
        2,
        "{:?}",
        keys.iter().map(|k| &k.title).collect::<Vec<_>>()
    );
}

/// Rate limits: a primary (403, x-ratelimit-reset) or secondary (429, Retry-After) limit that
/// lifts within the invocation is waited out; one that does not fails cleanly, naming the limit,
/// and changes nothing.
#[tokio::test]
async fn rate_limits_are_waited_out_or_named() {
    for secondary in [false, true] {
        let mut rig = Rig::new(&[]).await;
        let arn = rig.secret(rig.token_secret(FULL)).await;
        let limit = |secs: u64| e2e::github::RateLimit {
            until: std::time::SystemTime::now() + Duration::from_secs(secs),
            secondary,
        };
        rig.gh.state.lock().unwrap().rate_limit = Some(limit(2));
        rig.rotate_ok(&arn).await;
        assert!(
            rig.gh.state.lock().unwrap().limited > 0,
            "the limit was never hit"
        );

        rig.gh.state.lock().unwrap().rate_limit = Some(limit(600));
        let err = rig.fails(&arn).await;
        let want = if secondary { "HTTP 429" } else { "HTTP 403" };
        assert!(
            err.contains("rate limited") && err.contains(want) && err.contains("resets in"),
            "{err}"
        );
    }
}

/// GitHub's own detail (`errors[].message`) reaches the step's error.
#[tokio::test]
async fn a_key_already_in_use_is_named() {
    let mut rig = Rig::new(&[]).await;
    let arn = rig.secret(rig.key_secret("docs")).await;
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.client, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    driver::step(
        &mut rig.function,
        Step::Create,
        &arn,
        &token,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let pending = stack::json_value(&rig.store, &arn, AWSPENDING).await;
    // Someone registered the same public key by hand, under another title.
    rig.gh.seed_key(
        "acme/docs",
        "copied by hand",
        pending["public_key"].as_str().unwrap(),
    );
    let err = driver::step(
        &mut rig.function,
        Step::Set,
        &arn,
        &token,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("HTTP 422 Validation Failed: key is already in use"),
        "{err}"
    );
}

/// #20 point 2: a writer who may only call `PutSecretValue` cannot choose the App, installation,
/// key secret, repositories or permissions: the secret's tags pin them (`TagResource` is another
/// right). A value asking for more is refused naming the field, and nothing is minted.
#[tokio::test]
async fn a_writer_cannot_mint_more_than_the_tags_allow() {
    let mut rig = Rig::new(&[]).await;
    let other_key = stack::create_secret(
        &rig.client,
        &stack::unique("gh-other"),
        &read("TEST_GITHUB_OTHER_KEY"),
    )
    .await;
    let mut token = rig.token_secret(FULL);
    token["repositories"] = json!(["api"]);
    token["permissions"] = json!({"contents": "read"});
    let key = rig.key_secret("api");
    let with = |base: &Value, k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let attacks = [
        (
            &token,
            with(&token, "permissions", json!({"administration": "write"})),
            "field `permissions` asks for `administration: write`",
        ),
        (
            &token,
            with(&token, "permissions", json!({"contents": "write"})),
            "field `permissions` asks for `contents: write`",
        ),
        (
            &token,
            with(&token, "repositories", json!(["api", "web"])),
            "field `repositories` asks for repository `web`",
        ),
        (
            &token,
            with(&token, "installation_id", json!(MANY)),
            "field `installation_id` asks for installation 10",
        ),
        (
            &token,
            with(&token, "private_key_secret_arn", json!(other_key)),
            "field `private_key_secret_arn`",
        ),
        (
            &key,
            with(&key, "repo", json!("web")),
            "field `repo` asks for `web`",
        ),
        (
            &key,
            with(&key, "read_only", json!(false)),
            "field `read_only` asks for a key with write access",
        ),
    ];
    for (good, attack, want) in attacks {
        let arn = rig.secret(good.clone()).await;
        rig.put_current(&arn, &attack).await;
        let minted = rig.minted();
        let err = rig.fails(&arn).await;
        assert!(
            err.contains(want) && err.contains("createSecret") && err.contains(&arn),
            "{err} should contain {want}"
        );
        assert_eq!(rig.minted(), minted, "{want}: a token was minted");
    }
    // Without the tags, nothing is minted at all.
    let arn = rig.untagged(&token).await;
    let minted = rig.minted();
    let err = rig.fails(&arn).await;
    assert!(err.contains("no tag `github:app-id`"), "{err}");
    assert_eq!(rig.minted(), minted);
    assert!(rig.gh.state.lock().unwrap().keys["acme/web"].is_empty());
}

/// #20 point 3: GitHub may answer 401 for a token minted a moment ago. With every new token
/// refused for its first 3 s, tokens and deploy keys still rotate (testSecret, the deploy-key
/// steps and the revocations wait it out), and no token is left alive but the current one.
#[tokio::test]
async fn a_token_refused_in_its_first_seconds_is_not_dead() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS", "finish")]).await;
    rig.gh.state.lock().unwrap().token_warmup = Duration::from_secs(3);
    let token = rig.secret(rig.token_secret(FULL)).await;
    let key = rig.secret(rig.key_secret("docs")).await;
    for arn in [&token, &key, &token, &key] {
        rig.rotate_ok(arn).await;
    }
    let refused = rig
        .gh
        .exchanges()
        .iter()
        .filter(|x| x.status == 401)
        .count();
    assert!(refused > 0, "the warm-up was never hit");
    let current = rig.value(&token, AWSCURRENT).await;
    let st = rig.gh.state.lock().unwrap();
    assert!(st.token_is_live(current["token"].as_str().unwrap()));
    assert_eq!(st.live_tokens(), 1, "a young token was taken as revoked");
    assert_eq!(st.keys["acme/docs"].len(), 1);
}

/// #20 point 6: keys titled the old way (`secrets-manager-rotation <version>`, no tag) belong to
/// no deployment of this function, so they are never touched, even holding this secret's
/// previous key: only titles with this secret's tag are ours.
#[tokio::test]
async fn an_untagged_key_is_never_deleted() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS", "finish")]).await;
    let (private, public) = ed25519_public(7);
    let mut value = rig.key_secret("web");
    value["private_key"] = json!(
        private
            .to_openssh(ssh_key::LineEnding::LF)
            .unwrap()
            .to_string()
    );
    value["public_key"] = json!(public);
    let arn = rig.secret(value).await;
    let old_title = format!(
        "{}{}",
        github_token::TITLE_PREFIX,
        shared::random::version_id()
    );
    rig.gh.seed_key("acme/web", &old_title, &public);
    rig.rotate_ok(&arn).await;
    rig.rotate_ok(&arn).await;
    let titles: Vec<String> = rig.gh.state.lock().unwrap().keys["acme/web"]
        .iter()
        .map(|k| k.title.clone())
        .collect();
    assert!(titles.contains(&old_title), "{titles:?}");
    assert_eq!(titles.len(), 2, "{titles:?}");
}

/// #20 point 3: one failure never keeps the next refresh from starting. A rotation that died in
/// testSecret (GitHub 503) leaves `AWSPENDING` on its version, and Secrets Manager refuses every
/// `RotateSecret` until it is gone; the templates' schedule sends `{"Step": "refresh"}` instead,
/// which drops it and stores a fresh token. A refresh while GitHub is down fails and changes
/// nothing but that label; the next one succeeds.
#[tokio::test]
async fn a_failed_refresh_never_blocks_the_next() {
    use e2e::runtime_api::Reply;
    let mut rig = Rig::new(&[]).await;
    let arn = rig.secret(rig.token_secret(FULL)).await;
    rig.rotate_ok(&arn).await;
    rig.refreshing(&[&arn]).await;
    let stuck = rig.begin_and_run(&arn, &[Step::Create, Step::Set]).await;
    rig.gh.state.lock().unwrap().outage = true;
    driver::step(
        &mut rig.function,
        Step::Test,
        &arn,
        &stuck,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    let before = rig.value(&arn, AWSCURRENT).await;
    let refresh = json!({"Step": "refresh", "SecretId": arn});
    let reply = rig
        .function
        .invoke(&refresh, Duration::from_secs(60))
        .await
        .unwrap();
    match reply {
        Reply::Error(e) => assert!(e.contains("HTTP 503") && e.contains(&arn), "{e}"),
        Reply::Response(v) => panic!("a refresh while GitHub is down succeeded: {v}"),
    }
    assert_eq!(rig.value(&arn, AWSCURRENT).await, before);
    rig.gh.state.lock().unwrap().outage = false;
    let reply = rig
        .function
        .invoke(&refresh, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(reply, Reply::Response(_)), "{reply:?}");
    let labels = rig.store.describe(&arn).await.unwrap().labels;
    assert_eq!(labels.version_with(AWSPENDING), None, "{labels:?}");
    let after = rig.value(&arn, AWSCURRENT).await;
    assert_ne!(after["token"], before["token"]);
    assert!(
        rig.gh
            .state
            .lock()
            .unwrap()
            .token_is_live(after["token"].as_str().unwrap())
    );
    assert_eq!(rig.value(&arn, AWSPREVIOUS).await, before);
    // Secrets Manager's own rotation is free to run again.
    rig.rotate_ok(&arn).await;
}

/// A writer who puts a value under the rotation's own version before createSecret runs (the
/// moment between `RotateSecret` and createSecret) gets nothing: without createSecret's seal the
/// value is dead on arrival. Their key pair is never registered, their token never promoted, and
/// `AWSPENDING` is removed so the next rotation starts afresh. The writer here also reads
/// `AWSCURRENT`, as a token's consumers do, and seals with it (the shared seal's default key):
/// GitHub's seal is keyed by the App's private key (`seal_key`), so setSecret still refuses it.
#[tokio::test]
async fn a_value_planted_under_the_rotation_is_never_used() {
    let mut rig = Rig::new(&[]).await;
    let key_arn = rig.secret(rig.key_secret("api")).await;
    let token_arn = rig.secret(rig.token_secret(FULL)).await;
    let (private, public) = ed25519_public(9);
    let mut planted_key = rig.key_secret("api");
    planted_key["private_key"] = json!(
        private
            .to_openssh(ssh_key::LineEnding::LF)
            .unwrap()
            .to_string()
    );
    planted_key["public_key"] = json!(public);
    let mut planted_token = rig.token_secret(FULL);
    // A live token the writer holds, of another installation.
    planted_token["token"] = json!(rig.gh.seed_token(NARROW));
    for (arn, planted) in [(&key_arn, planted_key), (&token_arn, planted_token)] {
        let before = rig.value(arn, AWSCURRENT).await;
        let token = shared::random::version_id();
        stack::begin_rotation(&rig.client, arn, &token, &stack::function_arn(BINARY))
            .await
            .unwrap();
        let planted = stack::sealed(&rig.store, arn, &token, &planted.to_string()).await;
        let value = shared::SecretString::from(planted.as_str());
        rig.store
            .put_pending(arn, &token, &value, None)
            .await
            .unwrap();
        let mut failed = None;
        for step in Step::ALL {
            let reply = driver::step(
                &mut rig.function,
                step,
                arn,
                &token,
                Duration::from_secs(30),
            );
            if let Err(e) = reply.await {
                failed = Some(e);
                break;
            }
        }
        let err = failed.expect("the planted value went through every step");
        assert!(err.starts_with("setSecret failed"), "{err}");
        for part in [
            "field `createsecret_seal` does not match",
            "AWSPENDING was removed",
        ] {
            assert!(err.contains(part), "{err} should contain {part}");
        }
        assert_eq!(rig.value(arn, AWSCURRENT).await, before);
        let labels = rig.store.describe(arn).await.unwrap().labels;
        assert_eq!(labels.version_with(AWSPENDING), None);
    }
    let body = public.split_whitespace().nth(1).unwrap();
    let keys = rig.gh.state.lock().unwrap().keys["acme/api"].clone();
    assert!(
        !keys.iter().any(|k| k.key.contains(body)),
        "the planted key was registered"
    );
    // A rotation made by the function itself still converges.
    rig.rotate_ok(&key_arn).await;
    rig.rotate_ok(&token_arn).await;
}

/// #23.2: Secrets Manager's configuration test for `RotateImmediately=false` (testSecret alone on
/// a copy of `AWSCURRENT` labelled `AWSPENDING`) passes for both kinds, before and after a first
/// rotation, and changes nothing: no key is added or deleted, no token minted or revoked, and the
/// label stays for the service to remove.
#[tokio::test]
async fn a_configuration_test_probe_passes_and_changes_nothing() {
    let mut rig = Rig::new(&[]).await;
    for (value, rotated) in [
        (rig.key_secret("web"), false),
        (rig.key_secret("web"), true),
        (rig.token_secret(FULL), false),
        (rig.token_secret(FULL), true),
    ] {
        let arn = rig.secret(value).await;
        if rotated {
            rig.rotate_ok(&arn).await;
        }
        let keys = |rig: &Rig| {
            let st = rig.gh.state.lock().unwrap();
            let keys: Vec<_> = st.keys["acme/web"]
                .iter()
                .map(|k| (k.id, k.key.clone()))
                .collect();
            (keys, st.live_tokens())
        };
        let before = (keys(&rig), rig.minted());
        let probe = stack::begin_probe(&rig.client, &arn, &stack::function_arn(BINARY)).await;
        driver::step(
            &mut rig.function,
            Step::Test,
            &arn,
            &probe,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("rotated {rotated}: {e}"));
        // Deploy keys list with a read-only management token, minted and revoked at once.
        let minted = usize::from(value_kind(&rig, &arn).await == "deploy-key");
        assert_eq!((keys(&rig), rig.minted()), (before.0, before.1 + minted));
        let labels = rig.store.describe(&arn).await.unwrap().labels;
        assert!(labels.has(&probe, AWSPENDING), "{labels:?}");
    }
}

async fn value_kind(rig: &Rig, arn: &str) -> String {
    rig.value(arn, AWSCURRENT).await["kind"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// #23.3 for deploy keys: rotations back to back never delete the key that was current seconds
/// earlier. With the default minimum age, the rotation that would retire it fails saying when it
/// can run, and both keys stay; the tag `rotation:retire-previous-now` naming its version retires
/// it at once.
#[tokio::test]
async fn back_to_back_rotations_keep_the_previous_deploy_key_for_its_minimum_age() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS_MIN_AGE_SECONDS", "")]).await;
    let arn = rig.secret(rig.key_secret("docs")).await;
    // The starting value holds no key, so the second rotation has no previous key to retire.
    let first = rig.rotate_ok(&arn).await.token;
    let second = rig.rotate_ok(&arn).await.token;
    let titles = |rig: &Rig| {
        let st = rig.gh.state.lock().unwrap();
        let mut t: Vec<String> = st.keys["acme/docs"]
            .iter()
            .map(|k| k.title.clone())
            .collect();
        t.sort();
        t
    };
    let both = {
        let mut t = vec![
            github_token::title(&arn, &first),
            github_token::title(&arn, &second),
        ];
        t.sort();
        t
    };
    assert_eq!(titles(&rig), both);
    let r = rig.rotate(&arn).await;
    assert_eq!(r.steps.len(), 1, "{:?}", r.steps);
    let err = r.steps[0].result.clone().unwrap_err();
    assert!(
        err.starts_with(&format!("createSecret failed for secret {arn}"))
            && err.contains("deleting the previous deploy key")
            && err.contains("RETIRE_PREVIOUS_MIN_AGE_SECONDS=7200")
            && err.contains("this rotation can run from 20"),
        "{err}"
    );
    assert_eq!(
        rig.function.error_types().last().map(String::as_str),
        Some("PreviousCredentialTooYoung")
    );
    assert_eq!(titles(&rig), both, "the key current seconds ago is kept");

    e2e::github::tag(
        &rig.client,
        &arn,
        &[(shared::target::RETIRE_NOW_TAG.to_string(), first.clone())],
    )
    .await;
    let r = rig
        .rotate_with(&arn, &Options::new(BINARY).resuming())
        .await;
    assert!(r.succeeded(), "{:?}", r.steps);
    let mut want = vec![
        github_token::title(&arn, &second),
        github_token::title(&arn, &r.token),
    ];
    want.sort();
    assert_eq!(titles(&rig), want, "the tagged previous key is deleted");
}

/// #23.4 for GitHub: a GitHub that stalls with the connection open ends the step with our error
/// naming the call it was waiting for, before the invocation's deadline.
#[tokio::test]
async fn a_stalled_github_ends_the_step_naming_the_call() {
    let rig = Rig::new(&[]).await;
    let arn = rig.secret(rig.token_secret(FULL)).await;
    let (url, stall) = e2e::proxy::start_stalling(rig.gh.url.clone()).await;
    let env = [("GITHUB_API_URL".to_string(), url)];
    let mut f = Function::start(&e2e::workspace_binary(BINARY), &env, false)
        .await
        .unwrap();
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.client, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = Duration::from_secs(8);
    let started = std::time::Instant::now();
    let err = driver::step(&mut f, Step::Create, &arn, &token, deadline)
        .await
        .unwrap_err();
    assert!(
        err.contains("time budget ran out")
            && err.ends_with(&format!(
                "while waiting for GitHub POST /app/installations/{FULL}/access_tokens"
            )),
        "{err}"
    );
    assert_eq!(f.error_types(), ["StepOutOfTime"]);
    assert!(started.elapsed() < deadline - Duration::from_secs(2));
    f.stop().await;
}

/// #20 point 3: the templates' one schedule refreshes every token secret in one invocation
/// (`SecretIds`). One secret failing (GitHub answering 503 for its installation only) stops none
/// of the others: they get fresh tokens, the failure is logged and measured for that secret
/// alone, and the invocation's error names it, so Lambda retries the event. The retry carries
/// the same `ScheduledTime` and refreshes only the secret that failed.
#[tokio::test]
async fn one_refresh_event_refreshes_every_secret_and_one_failure_stops_none() {
    use e2e::runtime_api::Reply;
    let mut rig = Rig::new(&[]).await;
    let healthy = [
        rig.secret(rig.token_secret(FULL)).await,
        rig.secret(rig.token_secret(FULL)).await,
    ];
    let failing = rig.secret(rig.token_secret(NARROW)).await;
    rig.refreshing(&[&healthy[0], &healthy[1], &failing]).await;
    for arn in healthy.iter().chain([&failing]) {
        rig.rotate_ok(arn).await;
    }
    let token = |v: Value| v["token"].as_str().unwrap().to_owned();
    let mut before = Vec::new();
    for arn in healthy.iter().chain([&failing]) {
        before.push(token(rig.value(arn, AWSCURRENT).await));
    }
    // The schedule's time, after every version so far (Secrets Manager's dates have seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let scheduled = e2e::github::iso_now();
    rig.gh.state.lock().unwrap().outage_for.insert(NARROW);
    let event = json!({"Step": "refresh", "SecretIds": [healthy[0], failing, healthy[1]],
                       "ScheduledTime": scheduled});
    let minted = rig.minted();
    let reply = rig
        .function
        .invoke(&event, Duration::from_secs(60))
        .await
        .unwrap();
    let Reply::Error(e) = reply else {
        panic!("a refresh with a failed secret succeeded: {reply:?}")
    };
    assert!(
        e.contains("1 of 3 secrets") && e.contains(&failing) && e.contains("HTTP 503"),
        "{e}"
    );
    assert!(healthy.iter().all(|h| !e.contains(h.as_str())), "{e}");
    assert_eq!(rig.minted(), minted + 2);
    let mut after = Vec::new();
    for arn in healthy.iter().chain([&failing]) {
        after.push(token(rig.value(arn, AWSCURRENT).await));
    }
    assert_ne!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_eq!(
        after[2], before[2],
        "the failed secret's AWSCURRENT changed"
    );
    {
        let st = rig.gh.state.lock().unwrap();
        assert!(st.token_is_live(&after[0]) && st.token_is_live(&after[1]));
    }
    // Per secret: a log line and a metric, the failure only for the secret that failed.
    let lines: Vec<Value> = rig
        .function
        .output()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let logged = |message: &str, arn: &str| {
        lines
            .iter()
            .any(|l| l["message"] == message && l["span"]["secret_id"] == arn)
    };
    assert!(logged("refresh failed", &failing));
    assert!(
        healthy
            .iter()
            .all(|h| logged("refresh finished", h) && !logged("refresh failed", h))
    );
    let metric = |arn: &str, field: &str| {
        lines
            .iter()
            .filter(|l| l["Step"] == "refresh" && l["SecretId"] == arn)
            .map(|l| l[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(metric(&failing, "StepFailed"), 1);
    for h in &healthy {
        assert_eq!(
            (metric(h, "StepSucceeded"), metric(h, "StepFailed")),
            (1, 0)
        );
    }

    // Lambda's retry of the same event, GitHub back: only the failed secret is refreshed.
    rig.gh.state.lock().unwrap().outage_for.clear();
    let minted = rig.minted();
    let reply = rig
        .function
        .invoke(&event, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(reply, Reply::Response(_)), "{reply:?}");
    assert_eq!(rig.minted(), minted + 1);
    assert_eq!(token(rig.value(&healthy[0], AWSCURRENT).await), after[0]);
    assert_eq!(token(rig.value(&healthy[1], AWSCURRENT).await), after[1]);
    let fixed = token(rig.value(&failing, AWSCURRENT).await);
    assert_ne!(fixed, before[2]);
    assert!(rig.gh.state.lock().unwrap().token_is_live(&fixed));
}

/// A finishSecret run by hand on a `RotateImmediately=false` probe (a copy of AWSCURRENT that no
/// createSecret sealed) promotes nothing: Secrets Manager sends the probe to testSecret alone, and
/// the same exemption in finishSecret would let a writer promote a value of their own. AWSCURRENT
/// stays, and once the service takes the probe's label off, the next rotation keeps the live
/// deploy key as the previous one.
#[tokio::test]
async fn a_finish_on_a_probe_promotes_nothing_and_keeps_the_live_deploy_key() {
    let mut rig = Rig::new(&[]).await;
    let arn = rig.secret(rig.key_secret("docs")).await;
    rig.rotate_ok(&arn).await;
    let ids = |rig: &Rig| -> Vec<u64> {
        let st = rig.gh.state.lock().unwrap();
        st.keys["acme/docs"].iter().map(|k| k.id).collect()
    };
    let live = ids(&rig);
    assert_eq!(live.len(), 1, "{live:?}");
    let before = rig.store.get_value(&arn, None, AWSCURRENT).await.unwrap();
    let probe = stack::begin_probe(&rig.client, &arn, &stack::function_arn(BINARY)).await;
    let timeout = Duration::from_secs(30);
    driver::step(&mut rig.function, Step::Test, &arn, &probe, timeout)
        .await
        .unwrap_or_else(|e| panic!("testSecret on the probe: {e}"));
    let error = driver::step(&mut rig.function, Step::Finish, &arn, &probe, timeout)
        .await
        .unwrap_err();
    assert!(error.contains("createsecret_seal"), "{error}");
    let after = rig.store.get_value(&arn, None, AWSCURRENT).await.unwrap();
    assert_eq!(after.version_id, before.version_id, "{error}");
    rig.store
        .move_stage(&arn, AWSPENDING, None, Some(&probe))
        .await
        .unwrap();
    rig.rotate_ok(&arn).await;
    let after = ids(&rig);
    assert!(
        after.contains(&live[0]),
        "the key AWSCURRENT held was deleted: {live:?} -> {after:?}"
    );
    assert_eq!(after.len(), 2, "{after:?}");
}

/// A refresh serves only the installation-token secrets the stack's schedule names
/// (`GITHUB_TOKEN_SECRET_ARNS`): a refresh drops an in-flight `AWSPENDING`, so one sent by anyone
/// who may invoke the function, naming a deploy key mid-rotation or an unlisted token secret, is
/// refused naming the variable and changes nothing, while a listed secret in the same event is
/// refreshed.
#[tokio::test]
async fn a_refresh_serves_only_the_token_secrets_of_the_schedule() {
    use e2e::runtime_api::Reply;
    let mut rig = Rig::new(&[]).await;
    let key = rig.secret(rig.key_secret("web")).await;
    let unlisted = rig.secret(rig.token_secret(FULL)).await;
    let listed = rig.secret(rig.token_secret(FULL)).await;
    rig.refreshing(&[&listed]).await;
    for arn in [&key, &unlisted, &listed] {
        rig.rotate_ok(arn).await;
    }
    let in_flight = rig.begin_and_run(&key, &[Step::Create, Step::Set]).await;
    let before = [
        rig.value(&key, AWSCURRENT).await,
        rig.value(&unlisted, AWSCURRENT).await,
        rig.value(&listed, AWSCURRENT).await,
    ];
    let event = json!({"Step": "refresh", "SecretIds": [key, unlisted, listed]});
    let Reply::Error(e) = rig
        .function
        .invoke(&event, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("a refresh naming unlisted secrets succeeded")
    };
    for part in [
        key.as_str(),
        unlisted.as_str(),
        "GITHUB_TOKEN_SECRET_ARNS does not name this secret",
        "2 of 3",
    ] {
        assert!(e.contains(part), "{e} should contain {part}");
    }
    let labels = rig.store.describe(&key).await.unwrap().labels;
    assert_eq!(
        labels.version_with(AWSPENDING),
        Some(in_flight.as_str()),
        "{labels:?}"
    );
    assert_eq!(rig.value(&key, AWSCURRENT).await, before[0]);
    assert_eq!(rig.value(&unlisted, AWSCURRENT).await, before[1]);
    assert_ne!(
        rig.value(&listed, AWSCURRENT).await["token"],
        before[2]["token"]
    );
    // The deploy key's own rotation goes on.
    let opts = rig.options().resuming();
    let r = rig.retry(&key, &in_flight, &opts).await;
    assert!(r.succeeded(), "{:?}", r.steps);
}

/// `GetSecretValue` calls per step, each secret read once (`Versions` caches): createSecret reads
/// the pending version (absent), AWSCURRENT, AWSPREVIOUS (to retire it) and the App's key; the
/// other steps AWSCURRENT, the pending value and the App's key. The seal's key is that App key
/// read (`seal_key`), so sealing adds no call but to an installation token's setSecret.
#[tokio::test]
async fn each_step_reads_each_secret_once() {
    let (url, counts) = e2e::proxy::start(stack::endpoint()).await;
    let mut rig = Rig::new(&[("AWS_ENDPOINT_URL", &url)]).await;
    for value in [rig.token_secret(FULL), rig.key_secret("web")] {
        let arn = rig.secret(value).await;
        rig.rotate_ok(&arn).await;
        let token = shared::random::version_id();
        stack::begin_rotation(&rig.client, &arn, &token, &stack::function_arn(BINARY))
            .await
            .unwrap();
        counts.take();
        let mut reads = Vec::new();
        for step in Step::ALL {
            driver::step(
                &mut rig.function,
                step,
                &arn,
                &token,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
            let c = counts.take();
            reads.push(c.get("SecretsManager:GetSecretValue").copied().unwrap_or(0));
        }
        let kind = value_kind(&rig, &arn).await;
        assert_eq!(reads, [4, 3, 3, 3], "{kind}");
    }
}
