//! `rotate-redis-password` end to end: the real binary, driven through the Lambda Runtime API,
//! against moto and the stack's throwaway Redis 7 (users in an ACL file; plain and TLS ports with
//! the test CA) and Valkey 9 (users in its config file).

use e2e::db::unique_user;
use e2e::driver::{self, Options};
use e2e::redis::{ADMIN_SECRETS, Server, env, text};
use e2e::runtime_api::Function;
use e2e::stack;
use serde_json::{Value, json};
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsStore, SecretStore};
use std::path::PathBuf;
use std::process::Stdio;

const BINARY: &str = "rotate-redis-password";
/// The shared rig (`e2e::rig`) with this rotator's environment.
struct Rig(e2e::rig::Rig);

impl std::ops::Deref for Rig {
    type Target = e2e::rig::Rig;
    fn deref(&self) -> &e2e::rig::Rig {
        &self.0
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut e2e::rig::Rig {
        &mut self.0
    }
}

impl Rig {
    /// `extra` replaces variables of `e2e::redis::function_env()`; an empty value removes one.
    async fn new(extra: &[(&str, &str)]) -> Self {
        let vars = e2e::rig::env_with(e2e::redis::function_env(), extra);
        Self(e2e::rig::Rig::start(BINARY, &vars).await)
    }

    /// The administrator's secret for `server`, named as `ADMIN_SECRETS` allows.
    async fn admin_secret(&self, server: Server) -> String {
        server.admin_secret(&self.client).await
    }

    /// A service user's secret holding `value`, tagged as its owner does (`pin_tags`).
    async fn pinned(&self, name: &str, value: &Value, user_arn: &str, endpoint: bool) -> String {
        let arn = self.secret(name, value).await;
        e2e::github::tag(&self.client, &arn, &pin_tags(user_arn, endpoint)).await;
        arn
    }
}

/// The tags the owner of a service user's secret sets (`secretsmanager:TagResource`, a right a
/// writer of its value need not have): its user and, when `endpoint`, the stack's Redis (plain
/// text) as the only place its passwords go.
fn pin_tags(user_arn: &str, endpoint: bool) -> Vec<(String, String)> {
    let mut tags = vec![(
        redis_password::pin::USER_ARN_TAG.to_string(),
        user_arn.to_string(),
    )];
    if endpoint {
        let at = format!("redis://127.0.0.1:{}", Server::Redis.plain_port());
        tags.push((redis_password::pin::ENDPOINT_TAG.to_string(), at));
    }
    tags
}

fn password(v: &Value) -> String {
    v["password"].as_str().unwrap().to_owned()
}

fn sha256_hex(text: &str) -> String {
    redis_password::conn::password_hash(&shared::SecretString::new(text.into()))
}

/// `redis-cli MONITOR` on `server` until stopped: every command the server runs, as it prints them.
struct Monitor {
    child: tokio::process::Child,
    file: PathBuf,
}

impl Monitor {
    async fn start(server: Server) -> Self {
        let file = std::env::temp_dir().join(format!("monitor-{}", shared::random::version_id()));
        let child = tokio::process::Command::new("redis-cli")
            .args(["-p", &server.plain_port().to_string()])
            .args(["--user", &env("TEST_REDIS_ADMIN"), "--pass"])
            .args([
                env("TEST_REDIS_ADMIN_PASS").as_str(),
                "--no-auth-warning",
                "MONITOR",
            ])
            .stdout(std::fs::File::create(&file).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Self { child, file }
    }

    async fn stop(mut self) -> String {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        self.child.kill().await.ok();
        let text = std::fs::read_to_string(&self.file).unwrap();
        std::fs::remove_file(&self.file).ok();
        text
    }
}

/// Two rotations. With `next-rotation`, a consumer holding the password it read before a rotation
/// keeps working until the next rotation retires it; with `finish`, until finishSecret. A session
/// logged in before any rotation keeps working throughout. No plaintext password reaches the
/// function's output, the ACL file, `SLOWLOG` or `MONITOR`; the user's rules stay as they were.
async fn rotate_twice(server: Server, retire: &str) {
    let user = unique_user("app");
    server.create_user(&user, "Initial-pw-1").await;
    let (rules, _) = server.acl(&user).await;
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS", retire)]).await;
    let admin = rig.admin_secret(server).await;
    let arn = rig
        .secret("redis-app", &server.secret(&user, "Initial-pw-1", &admin))
        .await;
    let mut session = server.login(&user, "Initial-pw-1").await.unwrap();
    let monitor = Monitor::start(server).await;
    let mut seen = vec!["Initial-pw-1".to_string()];
    for round in 1..=2 {
        let r = rig.rotate_ok(&arn).await;
        assert_eq!(r.labels.version_with(AWSPENDING), None);
        let current = rig.value(&arn, AWSCURRENT).await;
        assert_eq!(current["note"], "kept");
        let new = password(&current);
        assert!(!seen.contains(&new));
        server
            .login(&user, &new)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the new password: {e}"));
        let old = seen.last().unwrap().clone();
        assert_eq!(password(&rig.value(&arn, AWSPREVIOUS).await), old);
        let old_works = server.login(&user, &old).await.is_ok();
        assert_eq!(
            old_works,
            retire == "next-rotation",
            "round {round}: the previous password, RETIRE_PREVIOUS={retire}"
        );
        if round == 2 {
            let retired = server.login(&user, &seen[0]).await;
            assert!(
                retired.unwrap_err().contains("WRONGPASS"),
                "the password of two rotations ago"
            );
        }
        let _: String = redis::cmd("PING")
            .query_async(&mut session)
            .await
            .expect("a session logged in before the rotation");
        let (now, hashes) = server.acl(&user).await;
        assert_eq!(now, rules, "round {round}: the user's rules");
        let want = if retire == "next-rotation" { 2 } else { 1 };
        assert_eq!(hashes.len(), want, "round {round}: {hashes:?}");
        assert!(hashes.contains(&format!("#{}", sha256_hex(&new))));
        seen.push(new);
    }
    let watched = monitor.stop().await;
    // MONITOR leaves out administrative commands (ACL); it saw the logins, AUTH redacted.
    assert!(
        watched.contains("\"AUTH\""),
        "MONITOR saw the rotation: {watched}"
    );
    let slowlog = text(&server.admin(&["SLOWLOG", "GET", "100000"]).await);
    assert!(slowlog.to_lowercase().contains("setuser"), "{slowlog}");
    let acl_file = match server {
        Server::Valkey => String::new(),
        _ => std::fs::read_to_string(env("TEST_REDIS_ACL_FILE")).unwrap(),
    };
    if server != Server::Valkey {
        assert!(acl_file.contains(&sha256_hex(&seen[2])), "ACL SAVE ran");
    }
    for pw in &seen[1..] {
        for (place, text) in [
            ("MONITOR", &watched),
            ("SLOWLOG", &slowlog),
            ("the ACL file", &acl_file),
        ] {
            assert!(!text.contains(pw.as_str()), "a password reached {place}");
        }
    }
    let output = rig.function.output().join("\n");
    let no_file = output.contains("the server has no ACL file");
    assert_eq!(no_file, server == Server::Valkey, "{output}");
    let mut secrets: Vec<&str> = seen.iter().map(String::as_str).collect();
    let admin_pass = env("TEST_REDIS_ADMIN_PASS");
    secrets.push(&admin_pass);
    rig.function.assert_no_leak(&secrets);
}

#[tokio::test]
async fn redis_rotates_with_the_previous_password_kept_until_the_next_rotation() {
    rotate_twice(Server::Redis, "next-rotation").await;
}

#[tokio::test]
async fn redis_over_tls_retires_the_previous_password_at_finish() {
    rotate_twice(Server::RedisTls, "finish").await;
}

#[tokio::test]
async fn valkey_with_users_in_its_config_file_rotates() {
    rotate_twice(Server::Valkey, "next-rotation").await;
}

#[tokio::test]
async fn tls_is_verified_against_the_configured_ca() {
    let user = unique_user("app");
    let server = Server::RedisTls;
    server.create_user(&user, "Initial-pw-1").await;
    let mut rig = Rig::new(&[("REDIS_CA_BUNDLE_FILE", &env("TEST_WRONG_CA_FILE"))]).await;
    let admin = rig.admin_secret(server).await;
    let arn = rig
        .secret("redis-app", &server.secret(&user, "Initial-pw-1", &admin))
        .await;
    let error = rig.refused(&arn).await;
    assert!(
        error.contains("TLS") && error.contains("certificate"),
        "{error}"
    );
    assert_eq!(server.acl(&user).await.1.len(), 1);
}

/// A writer who may only call `PutSecretValue` (here: who wrote the value the rotation starts
/// from) never gets the administrator to act on another user, on another server, with another
/// administrator secret, or on a `nopass` user; the victims' ACLs are unchanged.
#[tokio::test]
async fn a_secret_writer_cannot_turn_the_administrator_on_another_user() {
    let server = Server::Redis;
    let mut rig = Rig::new(&[]).await;
    let admin = rig.admin_secret(server).await;
    let victim = unique_user("victim");
    server.create_user(&victim, "Victim-pw-1").await;
    let victim_acl = server.acl(&victim).await;

    // Another user's name with a password the writer does not hold.
    let arn = rig
        .secret("redis-app", &server.secret(&victim, "writer-guess", &admin))
        .await;
    let error = rig.refused(&arn).await;
    assert!(error.contains("must log in as the user"), "{error}");
    assert_eq!(server.acl(&victim).await, victim_acl);

    // The administrator's own name.
    let arn = rig
        .secret(
            "redis-app",
            &server.secret(&env("TEST_REDIS_ADMIN"), "x", &admin),
        )
        .await;
    let error = rig.refused(&arn).await;
    assert!(error.contains("administrator user"), "{error}");

    // The writer's own user, but an administrator secret the function does not allow.
    let own = unique_user("writer");
    server.create_user(&own, "Writer-pw-1").await;
    let other_admin = rig
        .secret(
            "other-admin",
            &json!({"host": "127.0.0.1", "port": server.port(), "username": env("TEST_REDIS_ADMIN"), "password": env("TEST_REDIS_ADMIN_PASS"), "ssl": false}),
        )
        .await;
    let arn = rig
        .secret(
            "redis-app",
            &server.secret(&own, "Writer-pw-1", &other_admin),
        )
        .await;
    let error = rig.refused(&arn).await;
    assert!(
        error.contains("field `masterarn`") && error.contains("REDIS_ADMIN_SECRET_ARNS"),
        "{error}"
    );
    assert_eq!(server.acl(&own).await.1.len(), 1);

    // Another server than the administrator secret's: its password goes nowhere else.
    let arn = rig
        .secret(
            "redis-app",
            &Server::Valkey.secret(&own, "Writer-pw-1", &admin),
        )
        .await;
    let error = rig.refused(&arn).await;
    assert!(error.contains("fields `host` and `port`"), "{error}");

    // A `nopass` user takes any password: a login proves nothing there.
    let open = unique_user("open");
    server
        .admin(&["ACL", "SETUSER", &open, "on", "nopass", "~open:*", "+get"])
        .await;
    let open_acl = server.acl(&open).await;
    let arn = rig
        .secret("redis-app", &server.secret(&open, "anything", &admin))
        .await;
    let error = rig.refused(&arn).await;
    assert!(error.contains("nopass"), "{error}");
    assert_eq!(server.acl(&open).await, open_acl);
    rig.function
        .assert_no_leak(&["Victim-pw-1", "Writer-pw-1", &env("TEST_REDIS_ADMIN_PASS")]);
}

/// Malformed values are refused by createSecret naming the field; nothing changes.
#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let server = Server::Redis;
    let mut rig = Rig::new(&[]).await;
    let admin = rig.admin_secret(server).await;
    let user = unique_user("app");
    server.create_user(&user, "Initial-pw-1").await;
    let good = server.secret(&user, "Initial-pw-1", &admin);
    let cases: &[(&str, Value, &str)] = &[
        ("masterarn", Value::Null, "field `masterarn` is missing"),
        ("port", json!("redis"), "field `port`"),
        ("port", json!(70000), "field `port`"),
        ("ssl", json!("yes"), "field `ssl`"),
        ("username", json!(7), "field `username` must be a string"),
        (
            "username",
            json!("two words"),
            "field `username` contains a space",
        ),
        ("password", json!(""), "field `password` is empty"),
        ("host", Value::Null, "field `host` is missing"),
    ];
    for (field, value, want) in cases {
        let mut v = good.clone();
        v[*field] = value.clone();
        let arn = rig.secret("redis-bad", &v).await;
        let error = rig.refused(&arn).await;
        assert!(
            error.starts_with("createSecret failed")
                && error.contains(want)
                && error.contains("AWSCURRENT"),
            "{field}={value}: {error}"
        );
    }
    let arn = rig.secret("redis-bad", &json!("not an object")).await;
    let error = rig.refused(&arn).await;
    assert!(error.contains("AWSCURRENT value is invalid"), "{error}");
    assert_eq!(server.acl(&user).await.1.len(), 1);
    server.login(&user, "Initial-pw-1").await.unwrap();
}

/// The real binary aborted after every external call (Secrets Manager, each login and ACL
/// command), then retried with the same token as Secrets Manager does: every rotation converges,
/// and `AWSCURRENT` logs in after every crash (the current password stays until retirement).
#[tokio::test]
async fn a_crash_after_every_call_converges() {
    let server = Server::Redis;
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let binary = e2e::workspace_binary(BINARY);
    let opts = |resume| Options {
        resume,
        ..Options::new(BINARY)
    };
    let admin = json!({
        "host": "127.0.0.1",
        "port": server.port(),
        "username": env("TEST_REDIS_ADMIN"),
        "password": env("TEST_REDIS_ADMIN_PASS"),
        "ssl": false,
    });
    let admin =
        stack::create_secret(&client, &stack::unique("redis-admin"), &admin.to_string()).await;
    for n in 1.. {
        let user = unique_user("crash");
        server.create_user(&user, "Initial-pw-1").await;
        let arn = stack::create_secret(
            &client,
            &stack::unique("redis-crash"),
            &server.secret(&user, "Initial-pw-1", &admin).to_string(),
        )
        .await;
        let marker = std::env::temp_dir().join(format!("crash-{}", shared::random::version_id()));
        let env = vec![
            ("REDIS_CA_BUNDLE_FILE".to_string(), env("TEST_CA_FILE")),
            ("REDIS_ADMIN_SECRET_ARNS".to_string(), ADMIN_SECRETS.into()),
            ("RETIRE_PREVIOUS_MIN_AGE_SECONDS".to_string(), "0".into()),
            ("FAULT_CRASH_AFTER".to_string(), n.to_string()),
            ("FAULT_MARKER".to_string(), marker.display().to_string()),
        ];
        let mut f = Function::start(&binary, &env, false).await.unwrap();
        let first = driver::rotate(&client, &mut f, &arn, &opts(false))
            .await
            .unwrap();
        if !marker.exists() {
            assert!(first.succeeded(), "no crash at {n}, yet {:?}", first.steps);
            f.stop().await;
            assert!(n > 10, "only {} calls", n - 1);
            println!("redis: {} crashes injected, all converged", n - 1);
            return;
        }
        let now = stack::json_value(&store, &arn, AWSCURRENT).await;
        server
            .login(&user, &password(&now))
            .await
            .unwrap_or_else(|e| panic!("crash {n}: AWSCURRENT broken: {e}"));
        let mut done = first.succeeded();
        for _ in 0..3 {
            if done {
                break;
            }
            let r = driver::retry(&client, &mut f, &arn, &first.token, &opts(true))
                .await
                .unwrap();
            done = r.succeeded();
        }
        let output = f.output();
        f.stop().await;
        std::fs::remove_file(&marker).ok();
        assert!(done, "crash {n}: the retries did not converge");
        let labels = store.describe(&arn).await.unwrap().labels;
        assert_eq!(labels.version_with(AWSPENDING), None, "crash {n}");
        let current = password(&stack::json_value(&store, &arn, AWSCURRENT).await);
        assert_eq!(
            password(&stack::json_value(&store, &arn, AWSPREVIOUS).await),
            "Initial-pw-1",
            "crash {n}"
        );
        server.login(&user, &current).await.unwrap();
        server.login(&user, "Initial-pw-1").await.unwrap();
        assert_eq!(
            server.acl(&user).await.1.len(),
            2,
            "crash {n}: no stray password"
        );
        if let Some(line) = output.iter().find(|l| l.contains(current.as_str())) {
            panic!("crash {n}: a secret reached the function's output: {line}");
        }
    }
}

/// With `RETIRE_PREVIOUS=finish`, the binary aborted after every external call of a rotation,
/// then retried: after each, the ACL file holds what the server holds. A retirement retried after
/// its `ACL SETUSER` (the password already gone) still runs `ACL SAVE`, else a restart would bring
/// the retired password back.
#[tokio::test]
async fn a_retried_retirement_still_saves_the_acl_file() {
    let server = Server::Redis;
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let binary = e2e::workspace_binary(BINARY);
    let opts = |resume| Options {
        resume,
        ..Options::new(BINARY)
    };
    let admin = server.admin_secret(&client).await;
    for n in 1.. {
        let user = unique_user("crash-save");
        server.create_user(&user, "Initial-pw-1").await;
        let arn = stack::create_secret(
            &client,
            &stack::unique("redis-crash-save"),
            &server.secret(&user, "Initial-pw-1", &admin).to_string(),
        )
        .await;
        let marker = std::env::temp_dir().join(format!("crash-{}", shared::random::version_id()));
        let vars = vec![
            ("REDIS_CA_BUNDLE_FILE".to_string(), env("TEST_CA_FILE")),
            ("REDIS_ADMIN_SECRET_ARNS".to_string(), ADMIN_SECRETS.into()),
            ("RETIRE_PREVIOUS".to_string(), "finish".into()),
            ("FAULT_CRASH_AFTER".to_string(), n.to_string()),
            ("FAULT_MARKER".to_string(), marker.display().to_string()),
        ];
        let mut f = Function::start(&binary, &vars, false).await.unwrap();
        let first = driver::rotate(&client, &mut f, &arn, &opts(false))
            .await
            .unwrap();
        let crashed = marker.exists();
        let mut done = first.succeeded();
        for _ in 0..3 {
            if done {
                break;
            }
            let r = driver::retry(&client, &mut f, &arn, &first.token, &opts(true))
                .await
                .unwrap();
            done = r.succeeded();
        }
        f.stop().await;
        std::fs::remove_file(&marker).ok();
        assert!(done, "crash {n}: the retries did not converge");
        let current = password(&stack::json_value(&store, &arn, AWSCURRENT).await);
        let file = std::fs::read_to_string(env("TEST_REDIS_ACL_FILE")).unwrap();
        let line = file
            .lines()
            .find(|l| l.starts_with(&format!("user {user} ")))
            .unwrap_or_else(|| panic!("crash {n}: user {user} is not in the ACL file"));
        assert!(
            line.contains(&sha256_hex(&current)) && !line.contains(&sha256_hex("Initial-pw-1")),
            "crash {n}: the ACL file holds another password list than the server: {line}"
        );
        if !crashed {
            assert!(n > 10, "only {} calls", n - 1);
            println!(
                "redis: {} crashes injected, the ACL file saved after each",
                n - 1
            );
            return;
        }
    }
}

/// A server that answers every command with a bulk string of 100 MB (hostile), or never answers
/// (silent). The secret's writer picks the host, so both must end the step with our error.
async fn fake_server(hostile: bool) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                if !hostile {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    return;
                }
                let _ = socket.write_all(b"$100000000\r\n").await;
                let chunk = vec![b'a'; 64 * 1024];
                while socket.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    port
}

#[tokio::test]
async fn a_hostile_or_silent_server_fails_the_step_with_our_error() {
    let mut rig = Rig::new(&[("REDIS_TIMEOUT_SECONDS", "1")]).await;
    for hostile in [true, false] {
        let port = fake_server(hostile).await;
        let server = json!({"host": "127.0.0.1", "port": port, "ssl": false});
        let mut admin = server.clone();
        admin["username"] = json!("admin");
        admin["password"] = json!("Admin-pw-1");
        let admin = rig.secret("redis-admin", &admin).await;
        let mut value = server;
        value["username"] = json!("app");
        value["password"] = json!("App-pw-1");
        value["masterarn"] = json!(admin);
        let arn = rig.secret("redis-app", &value).await;
        let started = std::time::Instant::now();
        let error = rig.refused(&arn).await;
        let want = match hostile {
            true => "more than 1024 KiB on one session",
            false => "timed out after 1s",
        };
        assert!(
            error.contains(want) && error.contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
    rig.function.assert_no_leak(&["Admin-pw-1", "App-pw-1"]);
}

/// A pending value written by someone else than createSecret must name the same user and server.
#[tokio::test]
async fn a_pending_value_for_another_user_is_refused() {
    let server = Server::Redis;
    let mut rig = Rig::new(&[]).await;
    let admin = rig.admin_secret(server).await;
    let (user, victim) = (unique_user("app"), unique_user("victim"));
    server.create_user(&user, "Initial-pw-1").await;
    server.create_user(&victim, "Victim-pw-1").await;
    let victim_acl = server.acl(&victim).await;
    let arn = rig
        .secret("redis-app", &server.secret(&user, "Initial-pw-1", &admin))
        .await;
    let token = rig.begin_and_run(&arn, &[]).await;
    rig.client
        .put_secret_value()
        .secret_id(&arn)
        .client_request_token(&token)
        // Sealed as createSecret would, which takes reading AWSCURRENT: the user check behind
        // the seal still refuses it.
        .secret_string(
            stack::sealed(
                &rig.store,
                &arn,
                &token,
                &server.secret(&victim, "Writer-pw-1", &admin).to_string(),
            )
            .await,
        )
        .version_stages(AWSPENDING)
        .send()
        .await
        .unwrap();
    let timeout = std::time::Duration::from_secs(30);
    let error = driver::step(&mut rig.function, shared::Step::Set, &arn, &token, timeout)
        .await
        .unwrap_err();
    assert!(error.contains("field `username` differs"), "{error}");
    assert_eq!(server.acl(&victim).await, victim_acl);
    assert_eq!(server.acl(&user).await.1.len(), 1);
}

/// A writer who may only call PutSecretValue stores their own value under the rotation's version
/// (labelled `AWSPENDING` by RotateSecret) before createSecret runs. createSecret keeps it (a
/// retry must), but it lacks createSecret's seal: setSecret refuses it as dead without touching
/// the server, `AWSPENDING` is removed, the writer's password never logs in, `AWSCURRENT` keeps
/// working and the next rotation succeeds.
#[tokio::test]
async fn a_value_planted_before_create_secret_is_dead() {
    let server = Server::Redis;
    let mut rig = Rig::new(&[]).await;
    let admin = rig.admin_secret(server).await;
    let user = unique_user("app");
    server.create_user(&user, "Initial-pw-1").await;
    let arn = rig
        .secret("redis-app", &server.secret(&user, "Initial-pw-1", &admin))
        .await;
    let before = rig.value(&arn, AWSCURRENT).await;
    let acl = server.acl(&user).await;
    let token = rig.begin_and_run(&arn, &[]).await;
    rig.client
        .put_secret_value()
        .secret_id(&arn)
        .client_request_token(&token)
        .secret_string(server.secret(&user, "Writer-pw-1", &admin).to_string())
        .version_stages(AWSPENDING)
        .send()
        .await
        .unwrap();
    let timeout = std::time::Duration::from_secs(30);
    driver::step(
        &mut rig.function,
        shared::Step::Create,
        &arn,
        &token,
        timeout,
    )
    .await
    .unwrap();
    let error = driver::step(&mut rig.function, shared::Step::Set, &arn, &token, timeout)
        .await
        .unwrap_err();
    for part in [
        "field `createsecret_seal` is missing",
        "createSecret of this function did not make this value",
        "AWSPENDING was removed",
    ] {
        assert!(error.contains(part), "{error} should contain {part}");
    }
    let labels = rig.store.describe(&arn).await.unwrap().labels;
    assert_eq!(labels.version_with(AWSPENDING), None);
    assert_eq!(rig.value(&arn, AWSCURRENT).await, before);
    assert_eq!(server.acl(&user).await, acl, "the user was not changed");
    assert!(server.login(&user, "Writer-pw-1").await.is_err());
    server.login(&user, "Initial-pw-1").await.unwrap();
    rig.rotate_ok(&arn).await;
    let new = password(&rig.value(&arn, AWSCURRENT).await);
    server.login(&user, &new).await.unwrap();
    assert!(server.login(&user, "Writer-pw-1").await.is_err());
    rig.function
        .assert_no_leak(&["Initial-pw-1", "Writer-pw-1", new.as_str()]);
}

/// A stand-in for the user APIs of ElastiCache and MemoryDB, written from their API references:
/// ElastiCache's `DescribeUsers` and `ModifyUser` (query protocol, XML answers) and MemoryDB's
/// `DescribeUsers` and `UpdateUser` (JSON 1.1, `X-Amz-Target: AmazonMemoryDB.*`). The rules are
/// the services' and the same on both: a user is `modifying` for `delay` after a change and
/// refuses another (`InvalidUserState`, `InvalidUserStateFault`); one or two passwords of 16 to
/// 128 characters (`InvalidParameterValue`, `InvalidParameterValueException`); MemoryDB names
/// users `[a-zA-Z][a-zA-Z0-9-]*` and takes passwords only with `Type: password`. Each change is
/// applied to the stack's real Redis when it completes, so logins are real.
mod elasticache {
    use super::{Server, sha256_hex};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use serde_json::{Value, json};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    pub const ACCOUNT_ARN: &str = "arn:aws:elasticache:us-east-1:123456789012:user:";
    pub const MEMORYDB_ARN: &str = "arn:aws:memorydb:us-east-1:123456789012:user/";

    /// Which service's API serves a user.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Api {
        ElastiCache,
        MemoryDb,
    }

    impl Api {
        /// The user's ARN: ElastiCache's by user id, MemoryDB's by name.
        pub fn arn(self, id: &str) -> String {
            match self {
                Api::ElastiCache => format!("{ACCOUNT_ARN}{id}"),
                Api::MemoryDb => format!("{MEMORYDB_ARN}{id}"),
            }
        }
    }

    pub struct User {
        pub api: Api,
        pub name: String,
        pub passwords: usize,
        pub status: String,
        /// When the change under way completes, and the passwords it sets (`None`: a change of
        /// something else, such as the access string).
        pending: Option<(Instant, Option<Vec<String>>)>,
    }

    /// Why a change is refused; each API names it its own way.
    enum Refused {
        NotActive,
        Passwords(&'static str),
    }

    #[derive(Clone, Default)]
    pub struct StandIn {
        pub users: Arc<Mutex<HashMap<String, User>>>,
        pub delay: Duration,
        /// Every call, in order (`Action UserId passwords`).
        pub calls: Arc<Mutex<Vec<String>>>,
        /// How many of the next changes find another change begun just before them (another
        /// administrator's, of the access string): refused as not active, the user `modifying`.
        pub interlopers: Arc<Mutex<usize>>,
    }

    impl StandIn {
        pub async fn start(delay: Duration) -> (Self, String) {
            let me = Self {
                delay,
                ..Self::default()
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let state = me.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, hyper::Error>(state.handle(req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            (me, url)
        }

        /// A user `id` of `api` for the Redis user `name`, which holds one password.
        pub fn add(&self, api: Api, id: &str, name: &str, status: &str) {
            self.users.lock().unwrap().insert(
                id.to_owned(),
                User {
                    api,
                    name: name.to_owned(),
                    passwords: 1,
                    status: status.to_owned(),
                    pending: None,
                },
            );
        }

        /// `ModifyUser` and `UpdateUser` alike: the user must be `active`, and a change of the
        /// passwords sets one or two of 16 to 128 characters.
        fn change(&self, user: &mut User, passwords: Option<Vec<String>>) -> Result<(), Refused> {
            let interloper = {
                let mut n = self.interlopers.lock().unwrap();
                let some = *n > 0 && user.status == "active";
                if some {
                    *n -= 1;
                }
                some
            };
            if interloper {
                user.status = "modifying".into();
                user.pending = Some((Instant::now() + self.delay, None));
            }
            if user.status != "active" {
                return Err(Refused::NotActive);
            }
            if let Some(p) = &passwords {
                if p.is_empty() || p.len() > 2 {
                    return Err(Refused::Passwords("Passwords: one or two."));
                }
                if p.iter().any(|p| !(16..=128).contains(&p.len())) {
                    return Err(Refused::Passwords("Passwords: 16 to 128 characters."));
                }
            }
            user.status = "modifying".into();
            user.pending = Some((Instant::now() + self.delay, passwords));
            Ok(())
        }

        /// Finishes changes whose time has come, on the real Redis.
        async fn settle(&self) {
            let due: Vec<(String, Vec<String>)> = {
                let mut users = self.users.lock().unwrap();
                users
                    .values_mut()
                    .filter(|u| {
                        u.pending
                            .as_ref()
                            .is_some_and(|(at, _)| *at <= Instant::now())
                    })
                    .filter_map(|u| {
                        let (_, passwords) = u.pending.take().unwrap();
                        u.status = "active".into();
                        let passwords = passwords?;
                        u.passwords = passwords.len();
                        Some((u.name.clone(), passwords))
                    })
                    .collect()
            };
            for (name, passwords) in due {
                let rules: Vec<String> = passwords
                    .iter()
                    .map(|p| format!("#{}", sha256_hex(p)))
                    .collect();
                let mut args = vec!["ACL", "SETUSER", &name, "resetpass"];
                args.extend(rules.iter().map(String::as_str));
                Server::Redis.admin(&args).await;
            }
        }

        async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
            let target = req
                .headers()
                .get("x-amz-target")
                .and_then(|t| t.to_str().ok())
                .map(str::to_owned);
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if let Some(target) = target {
                return self.memorydb(&target, &body).await;
            }
            let form: HashMap<String, String> =
                form_urlencoded::parse(&body).into_owned().collect();
            let mut passwords: Vec<(usize, String)> = form
                .iter()
                .filter_map(|(k, v)| {
                    let n = k.strip_prefix("Passwords.member.")?.parse().ok()?;
                    Some((n, v.clone()))
                })
                .collect();
            passwords.sort();
            let passwords: Vec<String> = passwords.into_iter().map(|(_, p)| p).collect();
            let action = form.get("Action").cloned().unwrap_or_default();
            let id = form.get("UserId").cloned().unwrap_or_default();
            self.calls
                .lock()
                .unwrap()
                .push(format!("{action} {id} {}", passwords.len()));
            self.settle().await;
            let mut users = self.users.lock().unwrap();
            let Some(user) = users.get_mut(&id).filter(|u| u.api == Api::ElastiCache) else {
                return error(404, "UserNotFound", &format!("User {id} not found."));
            };
            match action.as_str() {
                "DescribeUsers" => ok(
                    "DescribeUsers",
                    &format!("<Users><member>{}</member></Users>", user_xml(&id, user)),
                ),
                "ModifyUser" => {
                    let passwords = (!passwords.is_empty()).then_some(passwords);
                    match self.change(user, passwords) {
                        Ok(()) => ok("ModifyUser", &user_xml(&id, user)),
                        Err(Refused::NotActive) => {
                            error(400, "InvalidUserState", "User is not in active state.")
                        }
                        Err(Refused::Passwords(why)) => error(400, "InvalidParameterValue", why),
                    }
                }
                _ => error(
                    400,
                    "InvalidAction",
                    &format!("{action} is not offered here."),
                ),
            }
        }

        /// MemoryDB's JSON 1.1 protocol: `DescribeUsers` of one user by name, `UpdateUser`.
        async fn memorydb(&self, target: &str, body: &[u8]) -> Response<Full<Bytes>> {
            let action = target.strip_prefix("AmazonMemoryDB.").unwrap_or(target);
            let Ok(input) = serde_json::from_slice::<Value>(body) else {
                return json_error("SerializationException", "The body is not JSON.");
            };
            let name = input["UserName"].as_str().unwrap_or_default().to_owned();
            let mode = &input["AuthenticationMode"];
            let passwords: Option<Vec<String>> = mode["Passwords"].as_array().map(|list| {
                list.iter()
                    .map(|p| p.as_str().unwrap_or_default().to_owned())
                    .collect()
            });
            self.calls.lock().unwrap().push(format!(
                "{action} {name} {}",
                passwords.as_ref().map_or(0, Vec::len)
            ));
            let mut chars = name.chars();
            let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !well_formed && (action == "UpdateUser" || !name.is_empty()) {
                return json_error(
                    "InvalidParameterValueException",
                    "UserName must match [a-zA-Z][a-zA-Z0-9\\-]*.",
                );
            }
            self.settle().await;
            let mut users = self.users.lock().unwrap();
            let Some(user) = users.get_mut(&name).filter(|u| u.api == Api::MemoryDb) else {
                return json_error("UserNotFoundFault", &format!("User {name} not found."));
            };
            match action {
                "DescribeUsers" => json_ok(json!({"Users": [user_json(&name, user)]})),
                "UpdateUser" => {
                    if mode.is_null() && input["AccessString"].is_null() {
                        return json_error(
                            "InvalidParameterCombinationException",
                            "No modifications were requested.",
                        );
                    }
                    if passwords.is_some() && mode["Type"] != "password" {
                        return json_error(
                            "InvalidParameterCombinationException",
                            "Passwords are taken only with Type password.",
                        );
                    }
                    match self.change(user, passwords) {
                        Ok(()) => json_ok(json!({"User": user_json(&name, user)})),
                        Err(Refused::NotActive) => {
                            json_error("InvalidUserStateFault", "User is not in active state.")
                        }
                        Err(Refused::Passwords(why)) => {
                            json_error("InvalidParameterValueException", why)
                        }
                    }
                }
                _ => json_error(
                    "UnknownOperationException",
                    &format!("{action} is not offered here."),
                ),
            }
        }
    }

    fn user_json(name: &str, u: &User) -> Value {
        json!({
            "Name": name,
            "Status": u.status,
            "AccessString": "on ~* &* +@all",
            "ACLNames": [],
            "MinimumEngineVersion": "6.2",
            "Authentication": {"Type": "password", "PasswordCount": u.passwords},
            "ARN": Api::MemoryDb.arn(name),
        })
    }

    fn json_ok(body: Value) -> Response<Full<Bytes>> {
        Response::builder()
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    fn json_error(code: &str, message: &str) -> Response<Full<Bytes>> {
        Response::builder()
            .status(400)
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from(
                json!({"__type": code, "message": message}).to_string(),
            )))
            .unwrap()
    }

    fn user_xml(id: &str, u: &User) -> String {
        format!(
            "<UserId>{id}</UserId><UserName>{}</UserName><Status>{}</Status><Engine>redis</Engine>\
             <MinimumEngineVersion>6.0</MinimumEngineVersion><AccessString>on ~* +@all</AccessString>\
             <UserGroupIds/><Authentication><Type>password</Type><PasswordCount>{}</PasswordCount>\
             </Authentication><ARN>{ACCOUNT_ARN}{id}</ARN>",
            u.name, u.status, u.passwords
        )
    }

    const NS: &str = "http://elasticache.amazonaws.com/doc/2015-02-02/";

    fn ok(action: &str, result: &str) -> Response<Full<Bytes>> {
        let xml = format!(
            "<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result>\
             <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></{action}Response>"
        );
        Response::builder()
            .header("content-type", "text/xml")
            .body(Full::new(Bytes::from(xml)))
            .unwrap()
    }

    fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
        let xml = format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
        );
        Response::builder()
            .status(status)
            .header("content-type", "text/xml")
            .body(Full::new(Bytes::from(xml)))
            .unwrap()
    }
}

/// What the function needs to change users of `api` through the stand-in at `url`: those named
/// `ec-*` (ElastiCache) or `mdb-*` (MemoryDB) only.
fn service_env(api: elasticache::Api, url: &str) -> [(&'static str, String); 2] {
    match api {
        elasticache::Api::ElastiCache => [
            ("ELASTICACHE_USER_ARNS", api.arn("ec-*")),
            ("AWS_ENDPOINT_URL_ELASTICACHE", url.to_owned()),
        ],
        elasticache::Api::MemoryDb => [
            ("MEMORYDB_USER_ARNS", api.arn("mdb-*")),
            ("AWS_ENDPOINT_URL_MEMORYDB", url.to_owned()),
        ],
    }
}

/// A user of `api` in the stand-in (its id, and the name of the Redis user behind it, which holds
/// `Initial-pw-1234567`). MemoryDB's user id is its name, which takes no `_`.
async fn service_user(
    api: elasticache::Api,
    standin: &elasticache::StandIn,
    status: &str,
) -> (String, String) {
    let (name, id) = match api {
        elasticache::Api::ElastiCache => {
            let name = unique_user("ec");
            let id = name.replace('_', "-");
            (name, id)
        }
        elasticache::Api::MemoryDb => {
            let name = unique_user("mdb").replace('_', "-");
            (name.clone(), name)
        }
    };
    Server::Redis.create_user(&name, "Initial-pw-1234567").await;
    standin.add(api, &id, &name, status);
    (id, name)
}

/// A user of `api` and a function that may change it through the stand-in.
async fn service_rig(
    api: elasticache::Api,
    delay: std::time::Duration,
    status: &str,
    extra: &[(&str, &str)],
) -> (Rig, elasticache::StandIn, String, String) {
    let (standin, url) = elasticache::StandIn::start(delay).await;
    let (id, name) = service_user(api, &standin, status).await;
    let vars = service_env(api, &url);
    let mut env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend(extra);
    let rig = Rig::new(&env).await;
    (rig, standin, id, name)
}

/// An ElastiCache user backed by a Redis user that holds `Initial-pw-1234567`, and a function
/// that may change users `ec-*` through the stand-in.
async fn elasticache_rig(
    delay: std::time::Duration,
    status: &str,
) -> (Rig, elasticache::StandIn, String, String) {
    service_rig(elasticache::Api::ElastiCache, delay, status, &[]).await
}

/// The secret of user `id` of `api` (the JSON of AWS's ElastiCache template), with the stack's
/// Redis as its endpoint or none.
fn user_secret(
    api: elasticache::Api,
    id: &str,
    name: &str,
    password: &str,
    endpoint: bool,
) -> Value {
    let mut v = json!({
        "user_arn": api.arn(id),
        "username": name,
        "password": password,
    });
    if endpoint {
        v["host"] = json!("127.0.0.1");
        v["port"] = json!(Server::Redis.plain_port());
        v["ssl"] = json!(false);
    }
    v
}

fn ec_secret(id: &str, name: &str, password: &str, endpoint: bool) -> Value {
    user_secret(elasticache::Api::ElastiCache, id, name, password, endpoint)
}

/// With an endpoint: `[pending, current]` after each rotation, so the password read before a
/// rotation keeps working until the next one retires it; every change waited out `modifying`, and
/// no call ever asked for more than two passwords.
#[tokio::test]
async fn an_elasticache_user_keeps_two_passwords_then_one() {
    let delay = std::time::Duration::from_millis(700);
    let (mut rig, standin, id, name) = elasticache_rig(delay, "active").await;
    let value = ec_secret(&id, &name, "Initial-pw-1234567", true);
    let user_arn = elasticache::Api::ElastiCache.arn(&id);
    let arn = rig.pinned("redis-ec", &value, &user_arn, true).await;
    let mut seen = vec!["Initial-pw-1234567".to_string()];
    for round in 1..=2 {
        rig.rotate_ok(&arn).await;
        let new = password(&rig.value(&arn, AWSCURRENT).await);
        Server::Redis.login(&name, &new).await.unwrap();
        let old = seen.last().unwrap().clone();
        Server::Redis
            .login(&name, &old)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the previous password: {e}"));
        if round == 2 {
            assert!(Server::Redis.login(&name, &seen[0]).await.is_err());
        }
        assert_eq!(standin.users.lock().unwrap()[&id].passwords, 2);
        seen.push(new);
    }
    let calls = standin.calls.lock().unwrap().clone();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("ModifyUser") && c.ends_with(" 1")),
        "retired: {calls:?}"
    );
    assert!(calls.iter().all(|c| !c.ends_with(" 3")), "{calls:?}");
    let secrets: Vec<&str> = seen.iter().map(String::as_str).collect();
    rig.function.assert_no_leak(&secrets);
}

/// Without an endpoint, and with `KEEP_UNPROVEN_CURRENT_PASSWORD=true`, testSecret waits for
/// `active` as AWS's template does; a user that is `modifying` when the rotation starts (another
/// change) is waited out, not refused.
#[tokio::test]
async fn an_elasticache_user_without_an_endpoint_waits_for_active() {
    let delay = std::time::Duration::from_millis(500);
    let api = elasticache::Api::ElastiCache;
    let keep = [("KEEP_UNPROVEN_CURRENT_PASSWORD", "true")];
    let (mut rig, standin, id, name) = service_rig(api, delay, "active", &keep).await;
    let value = ec_secret(&id, &name, "Initial-pw-1234567", false);
    let arn = rig.pinned("redis-ec", &value, &api.arn(&id), false).await;
    // Another change in progress when the rotation begins.
    standin.users.lock().unwrap().get_mut(&id).unwrap().status = "modifying".into();
    let users = standin.users.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        users.lock().unwrap().get_mut(&id2).unwrap().status = "active".into();
    });
    rig.rotate_ok(&arn).await;
    let new = password(&rig.value(&arn, AWSCURRENT).await);
    Server::Redis.login(&name, &new).await.unwrap();
    Server::Redis
        .login(&name, "Initial-pw-1234567")
        .await
        .unwrap();
}

/// #21: a writer allowed only `PutSecretValue` on a secret this function rotates, while
/// `ELASTICACHE_USER_ARNS` allows many users (`ec-*`). The secret's tags pin its user and its
/// endpoint, so another allowed user's ARN is refused before any call (that user's passwords
/// unchanged), a host of the writer's gets no connection, and without a pinned endpoint the
/// current password cannot be proven, so nothing changes unless the function opts in.
#[tokio::test]
async fn a_secret_writer_gets_no_other_user_and_no_login_at_their_host() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let api = elasticache::Api::ElastiCache;
    let (mut rig, standin, id, name) = elasticache_rig(std::time::Duration::ZERO, "active").await;
    let (other_id, other_name) = service_user(api, &standin, "active").await;
    // The writer's host counts the connections it gets.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let knocks = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = knocks.clone();
    tokio::spawn(async move {
        while trap.accept().await.is_ok() {
            counted.fetch_add(1, SeqCst);
        }
    });
    let planted = "Attacker-chosen-1";
    let another = ec_secret(&other_id, &other_name, planted, false);
    let mut at_trap = ec_secret(&id, &name, planted, false);
    at_trap["host"] = json!("127.0.0.1");
    at_trap["port"] = json!(trap_port);
    at_trap["ssl"] = json!(false);
    let (owner, other_arn) = (api.arn(&id), api.arn(&other_id));
    // (the value written, whether the tags pin an endpoint, what the refusal names)
    let cases: [(Value, bool, Vec<&str>); 5] = [
        (
            another.clone(),
            true,
            vec!["field `user_arn`", &other_arn, "tag redis:user-arn pins"],
        ),
        (
            another,
            false,
            vec!["field `user_arn`", "tag redis:user-arn pins"],
        ),
        (
            at_trap.clone(),
            true,
            vec!["fields `host` and `port`", "tag redis:endpoint pins"],
        ),
        (
            at_trap,
            false,
            vec!["field `host`", "no tag redis:endpoint"],
        ),
        (
            ec_secret(&id, &name, planted, false),
            false,
            vec![
                "no tag redis:endpoint",
                "KEEP_UNPROVEN_CURRENT_PASSWORD=true",
            ],
        ),
    ];
    for (value, endpoint, words) in cases {
        let arn = rig.pinned("redis-ec", &value, &owner, endpoint).await;
        let error = rig.refused(&arn).await;
        for w in words {
            assert!(error.contains(w), "{error} lacks {w}");
        }
    }
    assert_eq!(
        *standin.calls.lock().unwrap(),
        Vec::<String>::new(),
        "no ElastiCache call"
    );
    assert_eq!(knocks.load(SeqCst), 0, "no connection to the writer's host");
    for user in [&name, &other_name] {
        Server::Redis
            .login(user, "Initial-pw-1234567")
            .await
            .unwrap();
        assert!(Server::Redis.login(user, planted).await.is_err());
    }
    rig.function.assert_no_leak(&[planted]);
}

/// The writer of an ElastiCache secret: a user outside `ELASTICACHE_USER_ARNS`, another user's
/// name under an allowed ARN, a password that does not log in. No `ModifyUser` is ever called.
#[tokio::test]
async fn an_elasticache_secret_writer_changes_nothing() {
    let api = elasticache::Api::ElastiCache;
    let keep = [("KEEP_UNPROVEN_CURRENT_PASSWORD", "true")];
    let (mut rig, standin, id, name) =
        service_rig(api, std::time::Duration::ZERO, "active", &keep).await;
    let cases = [
        (
            ec_secret("other-1", &name, "Initial-pw-1234567", false),
            "field `user_arn`",
        ),
        (
            ec_secret(&id, "someone-else", "Initial-pw-1234567", false),
            "field `username`",
        ),
        (
            ec_secret(&id, &name, "Not-the-password-1", true),
            "must log in as the user",
        ),
    ];
    for (value, want) in cases {
        let endpoint = value.get("host").is_some();
        let arn = rig
            .pinned("redis-ec", &value, &api.arn(&id), endpoint)
            .await;
        let error = rig.refused(&arn).await;
        assert!(error.contains(want), "{error}");
    }
    let calls = standin.calls.lock().unwrap().clone();
    assert!(
        calls.iter().all(|c| !c.starts_with("ModifyUser")),
        "{calls:?}"
    );
    Server::Redis
        .login(&name, "Initial-pw-1234567")
        .await
        .unwrap();
}

/// The pre-flight proves what the steps need (the value, the administrator, the user holding the
/// current password) and changes nothing; a disallowed administrator secret is reported by name.
#[tokio::test]
async fn the_preflight_reports_and_changes_nothing() {
    let server = Server::Redis;
    let user = unique_user("app");
    server.create_user(&user, "Initial-pw-1").await;
    let mut rig = Rig::new(&[]).await;
    let admin = rig.admin_secret(server).await;
    let arn = rig
        .secret("redis-app", &server.secret(&user, "Initial-pw-1", &admin))
        .await;
    rig.rotate_ok(&arn).await;
    let before = server.acl(&user).await;
    let report = driver::preflight(&mut rig.function, &arn).await.unwrap();
    let text = driver::format_report(&report);
    assert_eq!(report["preflight"], "ok", "{text}");
    assert!(
        text.contains("administrator") && text.contains(&user),
        "{text}"
    );
    assert_eq!(server.acl(&user).await, before);

    let other = rig
        .secret(
            "other-admin",
            &json!({"host": "127.0.0.1", "port": server.port(), "username": env("TEST_REDIS_ADMIN"), "password": env("TEST_REDIS_ADMIN_PASS"), "ssl": false}),
        )
        .await;
    let arn = rig
        .secret(
            "redis-app",
            &server.secret(&user, &password(&rig.value(&arn, AWSCURRENT).await), &other),
        )
        .await;
    let report = driver::preflight(&mut rig.function, &arn).await.unwrap();
    let text = driver::format_report(&report);
    assert_eq!(report["preflight"], "failed", "{text}");
    assert!(text.contains("REDIS_ADMIN_SECRET_ARNS"), "{text}");
    assert_eq!(server.acl(&user).await, before);
}

/// Back-to-back rotations keep the previous password for its minimum age (#23.3): with the
/// default, the second of two rotations seconds apart fails saying when it can run, and the
/// password a consumer read before the first one still logs in.
#[tokio::test]
async fn back_to_back_rotations_keep_the_previous_password_for_its_minimum_age() {
    let server = Server::Redis;
    let user = unique_user("b2b");
    server.create_user(&user, "Initial-pw-1").await;
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS_MIN_AGE_SECONDS", "")]).await;
    let admin = rig.admin_secret(server).await;
    let arn = rig
        .secret("redis-b2b", &server.secret(&user, "Initial-pw-1", &admin))
        .await;
    rig.rotate_ok(&arn).await;
    let r = rig.rotate(&arn).await;
    let err = r
        .steps
        .iter()
        .find_map(|s| s.result.clone().err())
        .unwrap_or_else(|| panic!("the second rotation ran: {:?}", r.steps));
    assert!(
        err.contains("RETIRE_PREVIOUS_MIN_AGE_SECONDS=7200") && err.contains("can run from"),
        "{err}"
    );
    server
        .login(&user, "Initial-pw-1")
        .await
        .expect("the previous password still logs in");
}

/// MemoryDB (#21): two rotations through `UpdateUser`, with an endpoint. A consumer holding the
/// password it read before a rotation keeps working through it and until the next rotation
/// retires that password, then is refused; the first change finds another begun just before it
/// (`InvalidUserStateFault`) and waits it out; the user never holds more than two passwords.
#[tokio::test]
async fn a_memorydb_user_rotates_with_zero_downtime() {
    let api = elasticache::Api::MemoryDb;
    let delay = std::time::Duration::from_millis(700);
    let (mut rig, standin, id, name) = service_rig(api, delay, "active", &[]).await;
    let value = user_secret(api, &id, &name, "Initial-pw-1234567", true);
    let arn = rig.pinned("redis-mdb", &value, &api.arn(&id), true).await;
    *standin.interlopers.lock().unwrap() = 1;
    let mut seen = vec!["Initial-pw-1234567".to_string()];
    for round in 1..=2 {
        rig.rotate_ok(&arn).await;
        let new = password(&rig.value(&arn, AWSCURRENT).await);
        assert!(!seen.contains(&new));
        Server::Redis
            .login(&name, &new)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the new password: {e}"));
        Server::Redis
            .login(&name, seen.last().unwrap())
            .await
            .unwrap_or_else(|e| panic!("round {round}: the password read before: {e}"));
        if round == 2 {
            let retired = Server::Redis.login(&name, &seen[0]).await;
            assert!(
                retired.unwrap_err().contains("WRONGPASS"),
                "the password of two rotations ago"
            );
        }
        assert_eq!(standin.users.lock().unwrap()[&id].passwords, 2);
        seen.push(new);
    }
    let calls = standin.calls.lock().unwrap().clone();
    let updates: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .filter(|c| c.starts_with("UpdateUser"))
        .collect();
    let (set, retire) = (format!("UpdateUser {id} 2"), format!("UpdateUser {id} 1"));
    // Refused while the other change ran, then set; retired, then set.
    assert_eq!(updates, [&set, &set, &retire, &set], "{calls:?}");
    let secrets: Vec<&str> = seen.iter().map(String::as_str).collect();
    rig.function.assert_no_leak(&secrets);
}

/// The writer of a MemoryDB secret: a user outside `MEMORYDB_USER_ARNS` is refused before any
/// call, though `ELASTICACHE_USER_ARNS` would match its ARN (one list per service);
/// another user's name under an allowed ARN, and a password that does not log in, are refused
/// before any `UpdateUser`.
#[tokio::test]
async fn a_memorydb_secret_writer_changes_nothing() {
    let api = elasticache::Api::MemoryDb;
    let (mut rig, standin, id, name) = service_rig(
        api,
        std::time::Duration::ZERO,
        "active",
        &[
            ("ELASTICACHE_USER_ARNS", "arn:aws:*"),
            ("KEEP_UNPROVEN_CURRENT_PASSWORD", "true"),
        ],
    )
    .await;
    standin.add(api, "victim-1", &name, "active");
    let value = user_secret(api, "victim-1", "victim-1", "Initial-pw-1234567", false);
    let arn = rig
        .pinned("redis-mdb", &value, &api.arn("victim-1"), false)
        .await;
    let error = rig.refused(&arn).await;
    assert!(
        error.contains("field `user_arn`") && error.contains("MEMORYDB_USER_ARNS"),
        "{error}"
    );
    assert_eq!(*standin.calls.lock().unwrap(), Vec::<String>::new());
    let cases = [
        (
            user_secret(api, &id, "someone-else", "Initial-pw-1234567", false),
            "field `username`",
        ),
        (
            user_secret(api, &id, &name, "Not-the-password-1", true),
            "must log in as the user",
        ),
    ];
    for (value, want) in cases {
        let endpoint = value.get("host").is_some();
        let arn = rig
            .pinned("redis-mdb", &value, &api.arn(&id), endpoint)
            .await;
        let error = rig.refused(&arn).await;
        assert!(error.contains(want), "{error}");
    }
    let calls = standin.calls.lock().unwrap().clone();
    assert!(
        calls.iter().all(|c| !c.starts_with("UpdateUser")),
        "{calls:?}"
    );
    Server::Redis
        .login(&name, "Initial-pw-1234567")
        .await
        .unwrap();
}

/// MemoryDB: the real binary aborted after every external call (Secrets Manager, `DescribeUsers`,
/// `UpdateUser`, each login), then retried with the same token as Secrets Manager does: every
/// rotation converges, `AWSCURRENT` logs in after every crash, and the user ends with the new and
/// the previous passwords, no other.
#[tokio::test]
async fn a_memorydb_crash_after_every_call_converges() {
    let api = elasticache::Api::MemoryDb;
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let binary = e2e::workspace_binary(BINARY);
    let opts = |resume| Options {
        resume,
        ..Options::new(BINARY)
    };
    let (standin, url) = elasticache::StandIn::start(std::time::Duration::ZERO).await;
    for n in 1.. {
        let (id, name) = service_user(api, &standin, "active").await;
        let value = user_secret(api, &id, &name, "Initial-pw-1234567", true);
        let arn = stack::create_secret(
            &client,
            &stack::unique("redis-mdb-crash"),
            &value.to_string(),
        )
        .await;
        e2e::github::tag(&client, &arn, &pin_tags(&api.arn(&id), true)).await;
        let marker = std::env::temp_dir().join(format!("crash-{}", shared::random::version_id()));
        let mut env = vec![
            ("REDIS_CA_BUNDLE_FILE".to_string(), env("TEST_CA_FILE")),
            ("RETIRE_PREVIOUS_MIN_AGE_SECONDS".to_string(), "0".into()),
            ("FAULT_CRASH_AFTER".to_string(), n.to_string()),
            ("FAULT_MARKER".to_string(), marker.display().to_string()),
        ];
        env.extend(service_env(api, &url).map(|(k, v)| (k.to_string(), v)));
        let mut f = Function::start(&binary, &env, false).await.unwrap();
        let first = driver::rotate(&client, &mut f, &arn, &opts(false))
            .await
            .unwrap();
        if !marker.exists() {
            assert!(first.succeeded(), "no crash at {n}, yet {:?}", first.steps);
            f.stop().await;
            assert!(n > 10, "only {} calls", n - 1);
            println!("memorydb: {} crashes injected, all converged", n - 1);
            return;
        }
        let now = stack::json_value(&store, &arn, AWSCURRENT).await;
        Server::Redis
            .login(&name, &password(&now))
            .await
            .unwrap_or_else(|e| panic!("crash {n}: AWSCURRENT broken: {e}"));
        let mut done = first.succeeded();
        for _ in 0..3 {
            if done {
                break;
            }
            let r = driver::retry(&client, &mut f, &arn, &first.token, &opts(true))
                .await
                .unwrap();
            done = r.succeeded();
        }
        let output = f.output();
        f.stop().await;
        std::fs::remove_file(&marker).ok();
        assert!(done, "crash {n}: the retries did not converge");
        let labels = store.describe(&arn).await.unwrap().labels;
        assert_eq!(labels.version_with(AWSPENDING), None, "crash {n}");
        let current = password(&stack::json_value(&store, &arn, AWSCURRENT).await);
        assert_eq!(
            password(&stack::json_value(&store, &arn, AWSPREVIOUS).await),
            "Initial-pw-1234567",
            "crash {n}"
        );
        Server::Redis.login(&name, &current).await.unwrap();
        Server::Redis
            .login(&name, "Initial-pw-1234567")
            .await
            .unwrap();
        assert_eq!(Server::Redis.acl(&name).await.1.len(), 2, "crash {n}");
        assert_eq!(standin.users.lock().unwrap()[&id].passwords, 2, "crash {n}");
        if let Some(line) = output.iter().find(|l| l.contains(current.as_str())) {
            panic!("crash {n}: a secret reached the function's output: {line}");
        }
    }
}
