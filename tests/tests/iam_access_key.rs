//! `rotate-iam-access-key` end to end: the real binary through the Lambda Runtime API and the
//! local driver, against a moto server that checks signatures and IAM policies. The function runs
//! with its own IAM user, allowed what `infra/` allows it.
//!
//! moto gap: an *inactive* key still authenticates in moto, so deactivation is checked through
//! `ListAccessKeys`; a deleted key is really refused.

use e2e::driver::{self, Options, Rotation};
use e2e::iam::{self, Admin, PATH, Tamper};
use e2e::runtime_api::Function;
use e2e::stack;
use serde_json::{Value, json};
use shared::Step;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretStore};
use std::time::Duration;

const BINARY: &str = "rotate-iam-access-key";

/// The shared rig (`e2e::rig`) with the function's own IAM user, and the administrator that made it.
struct Rig {
    base: e2e::rig::Rig,
    admin: Admin,
    rotator: String,
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

impl Rig {
    /// `retire`: `next-rotation`, or `finish:deactivate` / `finish:delete` (`RETIRE_PREVIOUS` and
    /// `OLD_KEY_ACTION`).
    async fn new(retire: &str) -> Self {
        Self::with_put(retire, true).await
    }

    async fn with_put(retire: &str, put: bool) -> Self {
        Self::at(retire, put, iam::url()).await
    }

    /// The function talks to IAM (and Secrets Manager) at `endpoint`.
    async fn at(retire: &str, put: bool, endpoint: String) -> Self {
        Self::with_env(retire, put, endpoint, &[]).await
    }

    async fn with_env(retire: &str, put: bool, endpoint: String, extra: &[(&str, &str)]) -> Self {
        let admin = Admin::connect().await;
        let rotator = e2e::db::unique_user("rotator");
        let (key, secret) = admin.rotator(&rotator, put).await;
        let mut env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let (when, action) = retire.split_once(':').unwrap_or((retire, ""));
        env.push(("RETIRE_PREVIOUS".into(), when.into()));
        if !action.is_empty() {
            env.push(("OLD_KEY_ACTION".into(), action.into()));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self {
            base: e2e::rig::Rig::with_client(admin.sm.clone(), BINARY, &env).await,
            admin,
            rotator,
        }
    }

    /// A user under the rotatable path with one key, and a secret holding that key.
    async fn user_and_secret(&self) -> (String, String, String, String) {
        let user = e2e::db::unique_user("app");
        let (key, secret_key) = self.admin.user(&user, PATH).await;
        let value = json!({"UserName": user, "AccessKeyId": key, "SecretAccessKey": secret_key, "Team": "payments"});
        // IAM dates keys to the second: a key put in by hand predates its secret's first version,
        // so no rule takes it for one a rotation minted.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let arn =
            stack::create_secret(&self.admin.sm, &stack::unique("iam"), &value.to_string()).await;
        (user, arn, key, secret_key)
    }

    /// A value sealed as createSecret would (which takes reading `AWSCURRENT`), stored under the
    /// rotation's version `token` before createSecret runs.
    async fn plant_sealed(&self, arn: &str, token: &str, value: &Value) {
        let store = shared::store::AwsStore::new(self.admin.sm.clone());
        let sealed = stack::sealed(&store, arn, token, &value.to_string()).await;
        self.admin
            .sm
            .put_secret_value()
            .secret_id(arn)
            .client_request_token(token)
            .secret_string(sealed)
            .version_stages(AWSPENDING)
            .send()
            .await
            .unwrap();
    }

    /// testSecret on version `token` while IAM leaves `key` out of every listing: its error.
    async fn test_with_key_hidden(
        &mut self,
        tamper: &Tamper,
        arn: &str,
        token: &str,
        key: &str,
    ) -> String {
        tamper.hide(key, usize::MAX);
        let err = driver::step(
            &mut self.function,
            Step::Test,
            arn,
            token,
            Duration::from_secs(8),
        )
        .await
        .unwrap_err();
        tamper.hide(key, 0);
        err
    }

    async fn rotate(&mut self, arn: &str, resume: bool) -> Rotation {
        let opts = Options {
            resume,
            ..Options::new(BINARY)
        };
        self.rotate_with(arn, &opts).await
    }

    async fn current_key(&self, arn: &str) -> (String, String) {
        let v = self.value(arn, AWSCURRENT).await;
        (
            v["AccessKeyId"].as_str().unwrap().to_owned(),
            v["SecretAccessKey"].as_str().unwrap().to_owned(),
        )
    }

    /// What a writer allowed only `PutSecretValue` on the secret does: a new `AWSCURRENT`.
    /// moto gap: its `PutSecretValue` moves `AWSCURRENT` off a stale "default" version after a
    /// rotation moved the label, leaving two versions labelled `AWSCURRENT`; so the value is put
    /// under a label of its own and `AWSCURRENT` moved onto it, which AWS's put does in one call.
    async fn write(&self, arn: &str, value: &Value) {
        let token = shared::random::version_id();
        let sm = &self.admin.sm;
        let current = self.store.describe(arn).await.unwrap().labels;
        let current = current.version_with(AWSCURRENT).unwrap();
        sm.put_secret_value()
            .secret_id(arn)
            .client_request_token(&token)
            .secret_string(value.to_string())
            .version_stages("WRITTEN")
            .send()
            .await
            .unwrap();
        sm.update_secret_version_stage()
            .secret_id(arn)
            .version_stage(AWSCURRENT)
            .move_to_version_id(&token)
            .remove_from_version_id(current)
            .send()
            .await
            .unwrap();
        sm.update_secret_version_stage()
            .secret_id(arn)
            .version_stage("WRITTEN")
            .remove_from_version_id(&token)
            .send()
            .await
            .unwrap();
    }

    /// Pins the secret's user with the tag `iam:user-name` (takes `secretsmanager:TagResource`).
    async fn pin(&self, arn: &str, user: &str) {
        let tag = aws_sdk_secretsmanager::types::Tag::builder()
            .key(iam_access_key::USER_TAG)
            .value(user)
            .build();
        self.admin
            .sm
            .tag_resource()
            .secret_id(arn)
            .tags(tag)
            .send()
            .await
            .unwrap();
    }

    /// Begins a rotation and runs createSecret and setSecret; returns the token and the pending
    /// key id.
    async fn create_and_set(&mut self, arn: &str) -> (String, String) {
        let token = self.begin_and_run(arn, &[Step::Create, Step::Set]).await;
        let pending = stack::json_value(&self.store, arn, AWSPENDING).await;
        (token, pending["AccessKeyId"].as_str().unwrap().to_owned())
    }
}

/// The first createSecret step's error, after checking it is the only step that ran.
fn create_refused(r: &Rotation) -> String {
    assert_eq!(r.steps.len(), 1, "{:?}", r.steps);
    assert_eq!(r.steps[0].step, Step::Create);
    r.steps[0].result.clone().unwrap_err()
}

#[tokio::test]
async fn two_rotations_deactivate_then_replace_the_old_key() {
    let tamper = Tamper::start().await;
    let mut rig = Rig::at("finish:deactivate", true, tamper.url.clone()).await;
    let (user, arn, k0, s0) = rig.user_and_secret().await;
    rig.rotate_ok(&arn).await;
    let (k1, s1) = rig.current_key(&arn).await;
    assert_ne!(k1, k0);
    assert_eq!(
        iam::caller(&k1, &s1).await.unwrap(),
        iam::user_arn(&user, PATH)
    );
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0.clone(), false), (k1.clone(), true)])
    );
    assert_eq!(
        rig.value(&arn, AWSPREVIOUS).await["AccessKeyId"],
        k0.as_str()
    );
    assert_eq!(
        rig.value(&arn, AWSCURRENT).await["Team"],
        "payments",
        "other fields are kept"
    );

    // The first key was put in by hand, not minted by a rotation: once inactive, nothing proves
    // this secret held it, so it is left for a person to delete.
    let r = rig.rotate(&arn, false).await;
    let err = create_refused(&r);
    for part in [
        k0.as_str(),
        "AWSPREVIOUS, inactive",
        "no rotation of this secret minted",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0.clone(), false), (k1.clone(), true)])
    );
    rig.admin.delete_key(&user, &k0).await;
    // The person took more than createSecret's window: the retry mints long after the version.
    tamper.backdate(&r.token, Duration::from_secs(16 * 60));
    let r = rig.rotate(&arn, true).await;
    assert!(r.succeeded(), "{:?}", r.steps);
    let (k2, s2) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k1.clone(), false), (k2.clone(), true)])
    );
    assert!(
        iam::caller(&k0, &s0).await.is_err(),
        "the deleted key is refused"
    );

    // Keys minted by the rotations that made their versions: deleted to make room, the one the
    // late retry minted too.
    let r = rig.rotate_ok(&arn).await;
    assert_eq!(r.labels.version_with(AWSPENDING), None);
    let (k3, s3) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k2.clone(), false), (k3.clone(), true)])
    );
    rig.rotate_ok(&arn).await;
    let (k4, s4) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k3.clone(), false), (k4.clone(), true)])
    );
    assert_eq!(
        iam::caller(&k4, &s4).await.unwrap(),
        iam::user_arn(&user, PATH)
    );
    rig.assert_no_leak(&[&s0, &s1, &s2, &s3, &s4]);
}

fn sorted(mut v: Vec<(String, bool)>) -> Vec<(String, bool)> {
    v.sort();
    v
}

#[tokio::test]
async fn old_key_action_delete_removes_the_old_key() {
    let mut rig = Rig::new("finish:delete").await;
    let (user, arn, k0, s0) = rig.user_and_secret().await;
    for _ in 0..2 {
        rig.rotate_ok(&arn).await;
    }
    let (k2, _) = rig.current_key(&arn).await;
    assert_eq!(rig.admin.keys(&user).await, vec![(k2, true)]);
    assert!(iam::caller(&k0, &s0).await.is_err());
}

/// `RETIRE_PREVIOUS=next-rotation` (the default): a consumer that read AWSCURRENT just before a
/// rotation keeps a working key until the next rotation, which deletes it first (freeing the
/// slot); a late use of the previous key is reported by a warning and the
/// `PreviousCredentialInUse` metric, and the rotation goes on.
#[tokio::test]
async fn next_rotation_keeps_the_previous_key_until_the_next_rotation() {
    // Rotations seconds apart: no minimum age here (`back_to_back_rotations_...` tests it).
    let min_age = [("RETIRE_PREVIOUS_MIN_AGE_SECONDS", "0")];
    let mut rig = Rig::with_env("next-rotation", true, iam::url(), &min_age).await;
    let (user, arn, k0, s0) = rig.user_and_secret().await;
    // The consumer cached (k0, s0). The rotation runs; the cached key still works.
    rig.rotate_ok(&arn).await;
    let (k1, s1) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0.clone(), true), (k1.clone(), true)])
    );
    iam::caller(&k0, &s0)
        .await
        .expect("the cached previous key still works");
    assert!(
        !rig.function
            .output()
            .iter()
            .any(|l| l.contains("PreviousCredentialInUse")),
        "nothing to report yet"
    );
    // The next rotation retires k0 first (it was used after it stopped being current: reported).
    rig.rotate_ok(&arn).await;
    let (k2, _) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k1.clone(), true), (k2, true)])
    );
    assert!(iam::caller(&k0, &s0).await.is_err(), "k0 is deleted");
    iam::caller(&k1, &s1)
        .await
        .expect("k1, now AWSPREVIOUS, works until the next rotation");
    let out = rig.function.output();
    let warning = out
        .iter()
        .find(|l| l.contains("the previous credential was used after it stopped being current"))
        .unwrap_or_else(|| panic!("no warning:\n{}", out.join("\n")));
    assert!(
        warning.contains(&k0) && warning.contains("WARN") && warning.contains(&arn),
        "{warning}"
    );
    let metric = out
        .iter()
        .find(|l| l.contains("\"PreviousCredentialInUse\":1"))
        .unwrap_or_else(|| panic!("no metric:\n{}", out.join("\n")));
    assert!(
        metric.contains(&k0) && metric.contains("iam-access-key"),
        "{metric}"
    );
    rig.assert_no_leak(&[&s0, &s1]);
}

/// #23.3: rotations back to back (a manual rotation seconds after a scheduled one, a retry) never
/// delete the key that was current seconds earlier: IAM's two-key limit blocks the second, which
/// fails saying when it can run, and the key keeps working. For a leak, the tag
/// `rotation:retire-previous-now` naming that key's version retires it at once.
#[tokio::test]
async fn back_to_back_rotations_keep_the_previous_key_for_its_minimum_age() {
    let mut rig = Rig::new("next-rotation").await;
    let (user, arn, k0, s0) = rig.user_and_secret().await;
    rig.rotate_ok(&arn).await;
    let (k1, _) = rig.current_key(&arn).await;
    let r = rig.rotate(&arn, false).await;
    assert_eq!(r.steps.len(), 1, "{:?}", r.steps);
    let err = r.steps[0].result.clone().unwrap_err();
    assert!(
        err.starts_with(&format!("createSecret failed for secret {arn}"))
            && err.contains(&format!("deleting the previous access key {k0}"))
            && err.contains("RETIRE_PREVIOUS_MIN_AGE_SECONDS=7200")
            && err.contains("this rotation can run from 20"),
        "{err}"
    );
    assert_eq!(
        rig.function.error_types().last().map(String::as_str),
        Some("PreviousCredentialTooYoung")
    );
    iam::caller(&k0, &s0)
        .await
        .expect("the key current seconds ago still works");
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0.clone(), true), (k1.clone(), true)])
    );

    let previous = r.labels.version_with(AWSPREVIOUS).unwrap().to_owned();
    rig.admin
        .sm
        .tag_resource()
        .secret_id(&arn)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(shared::target::RETIRE_NOW_TAG)
                .value(&previous)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let r = rig.rotate(&arn, true).await;
    assert!(r.succeeded(), "{:?}", r.steps);
    assert!(
        iam::caller(&k0, &s0).await.is_err(),
        "the leaked key is deleted"
    );
    let (k2, _) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k1, true), (k2, true)])
    );
}

/// #23.2: Secrets Manager's configuration test for `RotateImmediately=false` (testSecret alone on
/// a copy of `AWSCURRENT` labelled `AWSPENDING`) passes, and the user's keys do not change.
#[tokio::test]
async fn a_configuration_test_probe_passes_and_changes_no_key() {
    let mut rig = Rig::new("next-rotation").await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let probe = stack::begin_probe(&rig.admin.sm, &arn, &stack::function_arn(BINARY)).await;
    driver::step(
        &mut rig.function,
        Step::Test,
        &arn,
        &probe,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(rig.admin.keys(&user).await, vec![(k0, true)]);
}

/// A probe whose key (`AWSCURRENT`'s) IAM does not list for the whole step fails testSecret, and
/// the key is not deleted: no createSecret of ours minted it, and IAM may only be hiding it.
#[tokio::test]
async fn a_probe_whose_key_is_not_listed_deletes_nothing() {
    let tamper = Tamper::start().await;
    let mut rig = Rig::at("next-rotation", true, tamper.url.clone()).await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let probe = stack::begin_probe(&rig.admin.sm, &arn, &stack::function_arn(BINARY)).await;
    let err = rig.test_with_key_hidden(&tamper, &arn, &probe, &k0).await;
    assert!(
        err.contains(k0.as_str()) && err.contains("not deleted"),
        "{err}"
    );
    assert_eq!(rig.admin.keys(&user).await, vec![(k0, true)]);
}

/// A writer who holds the working key can name a deactivated key of the user in `AWSPREVIOUS`
/// (two puts); an inactive key cannot sign in, and no rotation minted it, so it is not deleted.
#[tokio::test]
async fn a_deactivated_key_a_writer_names_as_previous_is_kept() {
    let mut rig = Rig::new("finish:deactivate").await;
    let (user, arn, k0, s0) = rig.user_and_secret().await;
    let (kept, _) = rig.admin.key(&user).await;
    rig.admin.deactivate(&user, &kept).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let current = rig.value(&arn, AWSCURRENT).await;
    rig.write(
        &arn,
        &json!({"UserName": user, "AccessKeyId": kept, "SecretAccessKey": "sk-junk-hidden"}),
    )
    .await;
    rig.write(&arn, &current).await;
    let before = rig.admin.keys(&user).await;
    let err = create_refused(&rig.rotate(&arn, false).await);
    for part in [
        kept.as_str(),
        "no rotation of this secret minted",
        "not deleted",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert_eq!(
        rig.admin.keys(&user).await,
        before,
        "the deactivated key was kept"
    );
    assert_eq!(rig.current_key(&arn).await, (k0, s0));
}

/// A reader of `AWSCURRENT` can seal a pending value that names the current key (one field
/// changed, so it is no probe): were IAM to hide that key for the whole step, it is still not
/// deleted, since this rotation did not mint it.
#[tokio::test]
async fn a_sealed_pending_value_naming_the_current_key_deletes_nothing() {
    let tamper = Tamper::start().await;
    let mut rig = Rig::at("next-rotation", true, tamper.url.clone()).await;
    let (user, arn, k0, s0) = rig.user_and_secret().await;
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.admin.sm, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    let copy = json!({"UserName": user, "AccessKeyId": k0, "SecretAccessKey": s0, "note": "x"});
    rig.plant_sealed(&arn, &token, &copy).await;
    let err = rig.test_with_key_hidden(&tamper, &arn, &token, &k0).await;
    assert!(
        err.contains(k0.as_str()) && err.contains("not deleted"),
        "{err}"
    );
    assert_eq!(rig.admin.keys(&user).await, vec![(k0, true)]);
}

/// The tag `iam:user-name` pins the user on Secrets Manager's probe too: a probe (a copy of an
/// `AWSCURRENT` a writer rewrote) naming another user is refused before IAM is asked anything.
#[tokio::test]
async fn a_probe_naming_another_user_than_the_tag_is_refused() {
    let mut rig = Rig::new("next-rotation").await;
    let (user, arn, k0, s0) = rig.user_and_secret().await;
    rig.pin(&arn, &user).await;
    let victim = e2e::db::unique_user("victim");
    let (vk, _) = rig.admin.user(&victim, PATH).await;
    rig.write(
        &arn,
        &json!({"UserName": victim, "AccessKeyId": vk, "SecretAccessKey": s0}),
    )
    .await;
    let probe = stack::begin_probe(&rig.admin.sm, &arn, &stack::function_arn(BINARY)).await;
    let err = driver::step(
        &mut rig.function,
        Step::Test,
        &arn,
        &probe,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    for part in ["field `UserName`", &format!("pins user \"{user}\"")] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert_eq!(rig.admin.keys(&user).await, vec![(k0, true)]);
}

/// `OLD_KEY_ACTION=keep` is folded into `RETIRE_PREVIOUS`: the function refuses to start and says
/// what to set instead.
#[tokio::test]
async fn old_key_action_keep_says_what_to_set_instead() {
    let env = vec![
        ("AWS_ENDPOINT_URL".to_string(), iam::url()),
        ("OLD_KEY_ACTION".to_string(), "keep".to_string()),
    ];
    let mut f = Function::start(&e2e::workspace_binary(BINARY), &env, false)
        .await
        .unwrap();
    let event = json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t"});
    assert!(f.invoke(&event, Duration::from_secs(10)).await.is_err());
    let out = f.output().join("\n");
    assert!(
        out.contains("OLD_KEY_ACTION=keep is replaced by RETIRE_PREVIOUS=next-rotation"),
        "{out}"
    );
}

/// A pending key deleted between createSecret and testSecret can never work: testSecret says so
/// and takes AWSPENDING off its version; AWSCURRENT is untouched and works; the next rotation
/// starts afresh and converges.
#[tokio::test]
async fn a_deleted_pending_key_is_abandoned_and_the_next_rotation_converges() {
    let mut rig = Rig::new("finish:deactivate").await;
    let (user, arn, k0, s0) = rig.user_and_secret().await;
    let token = rig.begin_and_run(&arn, &[Step::Create, Step::Set]).await;
    let pending = stack::json_value(&rig.store, &arn, AWSPENDING).await;
    let doomed = pending["AccessKeyId"].as_str().unwrap().to_owned();
    rig.admin.delete_key(&user, &doomed).await;
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
        doomed.as_str(),
        "was deleted",
        "AWSPENDING was removed",
        token.as_str(),
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    let labels = rig.store.describe(&arn).await.unwrap().labels;
    assert_eq!(labels.version_with(AWSPENDING), None);
    assert_eq!(rig.current_key(&arn).await.0, k0);
    iam::caller(&k0, &s0).await.expect("AWSCURRENT still works");
    // Secrets Manager's next rotation (not a resume: nothing is in progress any more).
    let r = rig.rotate_ok(&arn).await;
    assert_ne!(r.token, token);
    let (k1, _) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0, false), (k1, true)])
    );
}

/// A key of the user that no version holds and that predates the rotation may be another
/// system's: it is never deleted, active or not (an inactive key may be kept to be switched back
/// on); the step names it, its age and what to do. Once its owner deletes it, there is room.
#[tokio::test]
async fn a_key_of_unknown_owner_is_refused_active_or_inactive() {
    let mut rig = Rig::new("finish:deactivate").await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let (unknown, _) = rig.admin.key(&user).await;
    // IAM dates keys to the second; a key from the rotation's first second counts as its own.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = rig.admin.keys(&user).await;
    let r = rig.rotate(&arn, false).await;
    assert_eq!(r.steps.len(), 1);
    let err = r.steps[0].result.clone().unwrap_err();
    for part in [
        "createSecret failed",
        "already has two access keys",
        unknown.as_str(),
        "an active key created",
        "seconds ago",
        "no version of this secret holds",
        "delete",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert_eq!(rig.admin.keys(&user).await, before, "no key was touched");
    assert_eq!(rig.current_key(&arn).await.0, k0);

    rig.admin.deactivate(&user, &unknown).await;
    let before = rig.admin.keys(&user).await;
    let r = rig.rotate(&arn, true).await;
    assert_eq!(r.steps.len(), 1);
    let err = r.steps[0].result.clone().unwrap_err();
    for part in [
        unknown.as_str(),
        "an inactive key created",
        "no version of this secret holds",
        "not deleted",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert_eq!(
        rig.admin.keys(&user).await,
        before,
        "the inactive key was kept"
    );

    rig.admin.delete_key(&user, &unknown).await;
    let r = rig.rotate(&arn, true).await;
    assert!(r.succeeded(), "{:?}", r.steps);
    let (k1, _) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0, false), (k1, true)])
    );
}

/// Two createSecrets of two rotations racing: the second must not delete the key the first
/// just minted (it predates the second rotation and no version holds it yet).
#[tokio::test]
async fn a_key_minted_before_this_rotation_began_is_not_an_orphan() {
    let mut rig = Rig::new("finish:deactivate").await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let (other, _) = rig.admin.key(&user).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.admin.sm, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    let err = driver::step(
        &mut rig.function,
        Step::Create,
        &arn,
        &token,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains(&other) && err.contains("no version of this secret holds"),
        "{err}"
    );
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0, true), (other, true)])
    );
}

/// A process that dies between CreateAccessKey and PutSecretValue leaves an orphan key; the retry
/// (same token) deletes it and mints once more, so keys never pile up.
#[tokio::test]
async fn a_crash_after_minting_is_cleaned_up_on_retry() {
    let mut rig = Rig::new("finish:deactivate").await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.admin.sm, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    let (orphan, _) = rig.admin.key(&user).await; // what the crashed attempt minted
    let r = rig.rotate(&arn, true).await;
    assert!(r.succeeded(), "{:?}", r.steps);
    assert_eq!(r.token, token);
    let (k1, _) = rig.current_key(&arn).await;
    assert_ne!(k1, orphan);
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0, false), (k1, true)])
    );
}

/// When PutSecretValue fails after minting, the minted key is deleted at once and AWSCURRENT is
/// untouched; once the store accepts writes, the retry converges.
#[tokio::test]
async fn a_failed_store_discards_the_minted_key() {
    let mut rig = Rig::with_put("finish:deactivate", false).await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let r = rig.rotate(&arn, false).await;
    assert_eq!(r.steps.len(), 1);
    let err = r.steps[0].result.clone().unwrap_err();
    assert!(err.contains("PutSecretValue"), "{err}");
    assert_eq!(
        rig.admin.keys(&user).await,
        vec![(k0.clone(), true)],
        "the minted key was deleted"
    );
    assert_eq!(rig.current_key(&arn).await.0, k0);
    rig.admin.rotator_policy(&rig.rotator, true).await;
    let r = rig.rotate(&arn, true).await;
    assert!(r.succeeded(), "{:?}", r.steps);
    assert_eq!(rig.admin.keys(&user).await.len(), 2);
}

#[tokio::test]
async fn malformed_secrets_and_missing_users_change_nothing() {
    let mut rig = Rig::new("finish:deactivate").await;
    let ghost = e2e::db::unique_user("ghost");
    let cases = [
        (
            json!({"AccessKeyId": "AKIAX", "SecretAccessKey": "sk-hidden-1"}),
            "field `UserName` is missing".to_string(),
        ),
        (
            json!({"UserName": 7, "AccessKeyId": "AKIAX", "SecretAccessKey": "sk-hidden-1"}),
            "field `UserName` must be a string".into(),
        ),
        (
            json!({"UserName": ghost, "AccessKeyId": "AKIAX", "SecretAccessKey": "sk-hidden-1"}),
            format!("GetUser \"{ghost}\": NoSuchEntity"),
        ),
    ];
    for (value, want) in cases {
        let arn =
            stack::create_secret(&rig.admin.sm, &stack::unique("iam-bad"), &value.to_string())
                .await;
        let r = rig.rotate(&arn, false).await;
        let err = r.steps[0].result.clone().unwrap_err();
        assert!(err.contains(&want), "{err} should contain {want}");
        assert!(!err.contains("sk-hidden-1"), "{err}");
        assert_eq!(rig.value(&arn, AWSCURRENT).await, value);
    }
    let arn = stack::create_secret(&rig.admin.sm, &stack::unique("iam-bad"), "{not json").await;
    let r = rig.rotate(&arn, false).await;
    assert!(
        r.steps[0]
            .result
            .clone()
            .unwrap_err()
            .contains("not valid JSON")
    );
}

#[tokio::test]
async fn a_pending_value_for_another_user_is_refused() {
    let mut rig = Rig::new("finish:deactivate").await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let other = e2e::db::unique_user("other");
    let (ok, os) = rig.admin.user(&other, PATH).await;
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.admin.sm, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    let foreign = json!({"UserName": other, "AccessKeyId": ok, "SecretAccessKey": os});
    // Sealed as createSecret would, which takes reading AWSCURRENT: the user check behind the
    // seal still refuses it.
    rig.plant_sealed(&arn, &token, &foreign).await;
    for step in [Step::Set, Step::Test, Step::Finish] {
        let reply = driver::step(
            &mut rig.function,
            step,
            &arn,
            &token,
            Duration::from_secs(30),
        )
        .await;
        let Err(err) = reply else {
            panic!("{step}: {reply:?}")
        };
        assert!(
            err.contains("field `UserName`") && err.contains("cannot change"),
            "{step}: {err}"
        );
    }
    assert_eq!(rig.current_key(&arn).await.0, k0);
    assert_eq!(rig.admin.keys(&user).await, vec![(k0, true)]);
}

/// Without the IAM permissions the function fails cleanly and changes nothing.
#[tokio::test]
async fn a_function_without_iam_permissions_changes_nothing() {
    let mut rig = Rig::new("finish:deactivate").await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    rig.admin
        .iam
        .delete_user_policy()
        .user_name(&rig.rotator)
        .policy_name("rotation")
        .send()
        .await
        .unwrap();
    let r = rig.rotate(&arn, false).await;
    let err = r.steps[0].result.clone().unwrap_err();
    assert!(err.contains("AccessDenied"), "{err}");
    assert_eq!(rig.admin.keys(&user).await, vec![(k0.clone(), true)]);
    assert_eq!(rig.current_key(&arn).await.0, k0);
}

/// IAM is eventually consistent: a key just minted may be missing from `ListAccessKeys` for a few
/// seconds. setSecret keeps looking within the invocation's deadline instead of failing.
#[tokio::test]
async fn set_waits_for_a_new_key_to_show_in_iam() {
    let lag = Duration::from_secs(2);
    let mut rig = Rig::at("finish:deactivate", true, iam::lagging(lag).await).await;
    let (_, arn, _, _) = rig.user_and_secret().await;
    let r = rig.rotate_ok(&arn).await;
    let set = r.steps.iter().find(|s| s.step == Step::Set).unwrap();
    assert!(
        set.millis >= 1000.0,
        "setSecret took {} ms: the lagging stand-in did not hide the new key",
        set.millis
    );
}

/// Threat: a writer who may only `PutSecretValue` their own secret names another user in
/// `AWSCURRENT` and keeps their own working key. The key signs in as the writer, not as the
/// named user: refused naming the secret, the user and the reason; no key minted or deleted.
#[tokio::test]
async fn a_writer_naming_another_user_with_their_own_key_gets_nothing() {
    let mut rig = Rig::new("next-rotation").await;
    let (writer, arn, wk, ws) = rig.user_and_secret().await;
    let victim = e2e::db::unique_user("victim");
    let (vk, _) = rig.admin.user(&victim, PATH).await;
    rig.write(
        &arn,
        &json!({"UserName": victim, "AccessKeyId": wk, "SecretAccessKey": ws}),
    )
    .await;
    let err = create_refused(&rig.rotate(&arn, false).await);
    for part in [
        arn.as_str(),
        &format!("signs in as {}", iam::user_arn(&writer, PATH)),
        &format!("not as user \"{victim}\""),
        "nothing was minted",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert_eq!(rig.admin.keys(&victim).await, vec![(vk, true)]);
    assert_eq!(rig.admin.keys(&writer).await, vec![(wk, true)]);
    rig.assert_no_leak(&[&ws]);
}

/// Threat: the writer names another user with a key that does not work, after first writing a
/// version with the victim's real key id (so `AWSPREVIOUS` names it and `next-rotation` would
/// retire it). No working key and no tag naming the user: refused before anything is deleted.
#[tokio::test]
async fn a_writer_naming_another_user_with_a_junk_key_gets_nothing() {
    let mut rig = Rig::new("next-rotation").await;
    let (writer, arn, wk, _) = rig.user_and_secret().await;
    let victim = e2e::db::unique_user("victim");
    let (vk, _) = rig.admin.user(&victim, PATH).await;
    for key in [vk.as_str(), "AKIAJUNKJUNKJUNKJUNK"] {
        rig.write(
            &arn,
            &json!({"UserName": victim, "AccessKeyId": key, "SecretAccessKey": "sk-junk-hidden"}),
        )
        .await;
    }
    let err = create_refused(&rig.rotate(&arn, false).await);
    for part in [
        arn.as_str(),
        &format!("does not sign in as user \"{victim}\""),
        "without the secret's tag iam:user-name",
        "nothing was minted",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert!(!err.contains("sk-junk-hidden"), "{err}");
    assert_eq!(
        rig.admin.keys(&victim).await,
        vec![(vk, true)],
        "victim's key untouched"
    );
    assert_eq!(rig.admin.keys(&writer).await, vec![(wk, true)]);
}

/// #20 threat: a writer who may only `PutSecretValue` names, in a version that becomes
/// `AWSPREVIOUS`, another active key of the secret's own user that no version ever held (a
/// break-glass key). Whether the current key then signs in (an owner restored it) or only the tag
/// pins the user (the writer's junk key), the next rotation never retires that key: the
/// `AWSPREVIOUS` value does not sign in with it, and a tag-only proof never retires.
#[tokio::test]
async fn a_writer_naming_another_key_of_the_user_as_previous_gets_it_not_retired() {
    let min_age = [("RETIRE_PREVIOUS_MIN_AGE_SECONDS", "0")];
    for restored in [false, true] {
        let mut rig = Rig::with_env("next-rotation", true, iam::url(), &min_age).await;
        let (user, arn, k0, s0) = rig.user_and_secret().await;
        rig.pin(&arn, &user).await;
        let (glass, glass_secret) = rig.admin.key(&user).await;
        // IAM dates keys to the second: the break-glass key predates the rotation.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let named =
            json!({"UserName": user, "AccessKeyId": glass, "SecretAccessKey": "sk-junk-hidden"});
        rig.write(&arn, &named).await;
        let current = if restored {
            json!({"UserName": user, "AccessKeyId": k0, "SecretAccessKey": s0})
        } else {
            json!({"UserName": user, "AccessKeyId": "AKIAJUNKJUNKJUNKJUNK", "SecretAccessKey": "sk-junk-hidden"})
        };
        rig.write(&arn, &current).await;
        assert_eq!(rig.value(&arn, AWSPREVIOUS).await["AccessKeyId"], glass);
        let r = rig.rotate(&arn, false).await;
        // The user has two active keys, neither of them retired: no room for a third.
        let err = create_refused(&r);
        assert!(
            err.contains("already has two access keys"),
            "restored {restored}: {err}"
        );
        assert_eq!(
            rig.admin.keys(&user).await,
            sorted(vec![(k0.clone(), true), (glass.clone(), true)]),
            "restored {restored}: no key deleted or deactivated"
        );
        iam::caller(&glass, &glass_secret)
            .await
            .expect("the break-glass key still works");
        let out = rig.function.output().join("\n");
        let why = if restored {
            "the AWSPREVIOUS value does not sign in with key"
        } else {
            "only the tag pins the user"
        };
        assert!(
            out.contains(why),
            "restored {restored}: no {why:?} in\n{out}"
        );
        assert!(!out.contains("sk-junk-hidden"));
        rig.assert_no_leak(&[&s0, &glass_secret]);
    }
}

/// The tag `iam:user-name` pins the user: a new user's first key is minted although the secret
/// holds no working key yet, and a value naming another user is refused.
#[tokio::test]
async fn the_tag_pins_the_user_serving_a_first_key_and_refusing_another_user() {
    let mut rig = Rig::new("next-rotation").await;
    let user = e2e::db::unique_user("fresh");
    rig.admin
        .iam
        .create_user()
        .user_name(&user)
        .path(PATH)
        .send()
        .await
        .unwrap();
    let placeholder =
        json!({"UserName": user, "AccessKeyId": "none-yet", "SecretAccessKey": "none-yet"});
    let arn = stack::create_secret(
        &rig.admin.sm,
        &stack::unique("iam-pinned"),
        &placeholder.to_string(),
    )
    .await;
    // Untagged, nothing proves whose secret this is.
    let err = create_refused(&rig.rotate(&arn, false).await);
    assert!(err.contains("without the secret's tag"), "{err}");
    assert!(rig.admin.keys(&user).await.is_empty());
    rig.pin(&arn, &user).await;
    let r = rig.rotate(&arn, true).await;
    assert!(r.succeeded(), "{:?}", r.steps);
    let (k1, s1) = rig.current_key(&arn).await;
    assert_eq!(
        iam::caller(&k1, &s1).await.unwrap(),
        iam::user_arn(&user, PATH)
    );

    // The writer keeps the working key but names another user: the tag refuses it.
    let victim = e2e::db::unique_user("victim");
    let (vk, _) = rig.admin.user(&victim, PATH).await;
    rig.write(
        &arn,
        &json!({"UserName": victim, "AccessKeyId": k1, "SecretAccessKey": s1}),
    )
    .await;
    let err = create_refused(&rig.rotate(&arn, false).await);
    for part in [
        arn.as_str(),
        "field `UserName`",
        &format!("pins user \"{user}\""),
        "nothing was minted",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert_eq!(rig.admin.keys(&victim).await, vec![(vk, true)]);
    assert_eq!(rig.admin.keys(&user).await, vec![(k1, true)]);
    rig.assert_no_leak(&[&s1]);
}

/// IAM is eventually consistent: a `ListAccessKeys` that misses the pending key once (after
/// setSecret saw it) is not proof it is gone; testSecret looks again and the rotation goes on.
#[tokio::test]
async fn a_listing_that_misses_the_pending_key_once_abandons_nothing() {
    let tamper = Tamper::start().await;
    let mut rig = Rig::at("finish:deactivate", true, tamper.url.clone()).await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let (token, pending) = rig.create_and_set(&arn).await;
    tamper.hide(&pending, 1);
    for step in [Step::Test, Step::Finish] {
        driver::step(
            &mut rig.function,
            step,
            &arn,
            &token,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    assert_eq!(rig.current_key(&arn).await.0, pending);
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0, false), (pending, true)])
    );
}

/// A pending key no listing shows for the whole step budget is dead: its version is abandoned
/// and, since the version provably holds it, the key is deleted too (were IAM only hiding it, a
/// live key no version holds would jam every later createSecret). The next rotation converges.
#[tokio::test]
async fn a_pending_key_never_listed_again_is_deleted_with_its_version() {
    let tamper = Tamper::start().await;
    let mut rig = Rig::at("finish:deactivate", true, tamper.url.clone()).await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let (token, pending) = rig.create_and_set(&arn).await;
    tamper.hide(&pending, usize::MAX);
    let started = std::time::Instant::now();
    let err = driver::step(
        &mut rig.function,
        Step::Test,
        &arn,
        &token,
        Duration::from_secs(8),
    )
    .await
    .unwrap_err();
    let waited = started.elapsed();
    tamper.hide(&pending, 0);
    assert_eq!(
        rig.admin.keys(&user).await,
        vec![(k0.clone(), true)],
        "the hidden key was deleted"
    );
    for part in [
        pending.as_str(),
        "was deleted",
        "listings over",
        "AWSPENDING was removed",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert!(
        waited >= Duration::from_secs(3),
        "listed for the step's budget, not once"
    );
    let r = rig.rotate_ok(&arn).await;
    assert_ne!(r.token, token);
    let (k1, _) = rig.current_key(&arn).await;
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0, false), (k1, true)])
    );
}

/// A key made long after a stalled rotation began (a break-glass key two days in) is not that
/// rotation's orphan: its createSecret could not have minted it. Refused, named; nothing deleted.
#[tokio::test]
async fn a_break_glass_key_made_during_a_stall_is_not_an_orphan() {
    let tamper = Tamper::start().await;
    let mut rig = Rig::at("finish:deactivate", true, tamper.url.clone()).await;
    let (user, arn, k0, _) = rig.user_and_secret().await;
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.admin.sm, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    tamper.backdate(&token, Duration::from_secs(2 * 86_400));
    let (break_glass, _) = rig.admin.key(&user).await;
    let err = driver::step(
        &mut rig.function,
        Step::Create,
        &arn,
        &token,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains(&break_glass) && err.contains("no version of this secret holds"),
        "{err}"
    );
    assert_eq!(
        rig.admin.keys(&user).await,
        sorted(vec![(k0, true), (break_glass, true)])
    );
}

/// A secret of one's own, tagged to name another user under the path and pointed at this
/// function, is refused before any IAM call: the function rotates only the secrets its
/// configuration names (`ROTATED_SECRET_ARNS`), which a secret's creator cannot change. Its
/// pre-flight stops at the same check, and a listed secret of the same shape still rotates.
#[tokio::test]
async fn a_secret_the_function_does_not_rotate_is_refused_before_any_call() {
    let admin = Admin::connect().await;
    let fresh_user_and_secret = async |name: &str| {
        let user = e2e::db::unique_user("fresh");
        admin
            .iam
            .create_user()
            .user_name(&user)
            .path(PATH)
            .send()
            .await
            .unwrap();
        let placeholder =
            json!({"UserName": user, "AccessKeyId": "none-yet", "SecretAccessKey": "none-yet"});
        let arn = stack::create_secret(&admin.sm, name, &placeholder.to_string()).await;
        let tag = aws_sdk_secretsmanager::types::Tag::builder()
            .key(iam_access_key::USER_TAG)
            .value(&user)
            .build();
        admin
            .sm
            .tag_resource()
            .secret_id(&arn)
            .tags(tag)
            .send()
            .await
            .unwrap();
        (user, arn)
    };
    let (victim, mine) = fresh_user_and_secret(&stack::unique("iam-mine")).await;
    let (user, ours) = fresh_user_and_secret(&stack::unique("iam-listed")).await;
    // The listed secret by its full ARN, as the templates ask.
    let mut rig = Rig::with_env(
        "next-rotation",
        true,
        iam::url(),
        &[(shared::rotated::ENV, &ours)],
    )
    .await;

    let err = create_refused(&rig.rotate(&mine, false).await);
    for part in [
        mine.as_str(),
        shared::rotated::ENV,
        "does not name",
        "nothing was read or changed",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    assert!(rig.admin.keys(&victim).await.is_empty());
    let report = rig.preflight(&mine).await;
    let rotated = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "rotated secrets")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(rotated["status"], "failed", "{report}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 2, "{report}");

    let r = rig.rotate(&ours, false).await;
    assert!(r.succeeded(), "{:?}", r.steps);
    assert_eq!(rig.admin.keys(&user).await.len(), 1);
    assert!(rig.admin.keys(&victim).await.is_empty());
}
