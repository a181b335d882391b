//! The protocol against the in-memory store: scenarios, fault injection, random step sequences,
//! and the Lambda handler's error messages.

use proptest::prelude::*;
use shared::config::Retire;
use shared::event::{RotationEvent, Step};
use shared::store::{AWSCURRENT, AWSPENDING, MemoryStore};
use shared::testkit::{self, Admin, Faults, KeyService};
use shared::{lambda, run_step};

#[tokio::test]
async fn full_rotation_twice() {
    testkit::full_rotation_twice(&MemoryStore::new(), "twice").await;
}

#[tokio::test]
async fn every_step_twice_is_harmless() {
    testkit::every_step_twice(&MemoryStore::new(), "twice-each").await;
}

#[tokio::test]
async fn crash_after_every_call_converges() {
    let injected = testkit::crash_after_every_call(&MemoryStore::new(), "crash").await;
    assert!(injected >= 10, "only {injected} faults injected");
    println!("faults injected and survived: {injected}");
}

#[tokio::test]
async fn previous_works_until_the_next_rotation() {
    testkit::previous_works_until_the_next_rotation(&MemoryStore::new(), "grace").await;
}

#[tokio::test]
async fn dead_pending_is_abandoned() {
    testkit::dead_pending_is_abandoned(&MemoryStore::new(), "dead").await;
}

#[tokio::test]
async fn foreign_token_changes_nothing() {
    testkit::foreign_token_changes_nothing(&MemoryStore::new(), "foreign").await;
}

#[tokio::test]
async fn finished_rotation_steps_are_noops() {
    testkit::finished_rotation_steps_are_noops(&MemoryStore::new(), "finished").await;
}

#[tokio::test]
async fn rotation_disabled_is_refused_and_changes_nothing() {
    let store = MemoryStore::new();
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let arn = store.create_secret("disabled", &service.seed());
    store.begin_rotation(&arn, "t1").unwrap();
    store.set_rotation_enabled(&arn, false);
    let before = store.labels(&arn);
    let err = run_step(
        &store,
        &service,
        &RotationEvent::new(Step::Create, &arn, "t1"),
        None,
        Retire::Finish,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("rotation is not enabled"), "{err}");
    assert!(
        err.contains(&arn) && err.contains("createSecret") && err.contains("t1"),
        "{err}"
    );
    assert_eq!(store.labels(&arn), before);
}

#[tokio::test]
async fn a_malformed_current_value_fails_create_with_the_field_and_changes_nothing() {
    let store = MemoryStore::new();
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let arn = store.create_secret("malformed", "{\"kee\": \"hunter2\"}");
    store.begin_rotation(&arn, "t1").unwrap();
    let before = store.labels(&arn);
    let err = run_step(
        &store,
        &service,
        &RotationEvent::new(Step::Create, &arn, "t1"),
        None,
        Retire::Finish,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("AWSCURRENT value is invalid: field `key` is missing"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(store.labels(&arn), before);
    assert!(service.keys().is_empty(), "nothing was minted");
}

#[tokio::test]
async fn the_handler_names_the_bad_event_field() {
    let store = MemoryStore::new();
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let event =
        serde_json::json!({"Step": "rotateSecret", "SecretId": "s", "ClientRequestToken": "t"});
    let err = lambda::handle(&store, &service, "test", &event, None, Retire::Finish)
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
    let err = err.error_message;
    assert!(
        err.starts_with("invalid rotation event: field `Step` is `rotateSecret`"),
        "{err}"
    );
}

#[tokio::test]
async fn the_handler_runs_a_step_and_reports_it() {
    let store = MemoryStore::new();
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let arn = store.create_secret("handler", &service.seed());
    store.begin_rotation(&arn, "t1").unwrap();
    let event =
        serde_json::json!({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": "t1"});
    let outcome = lambda::handle(&store, &service, "test", &event, None, Retire::Finish)
        .await
        .unwrap();
    assert_eq!(outcome, shared::Outcome::Done);
    assert!(store.value_of(&arn, AWSPENDING).is_some());
}

/// #23.2: with `RotateImmediately=false`, Secrets Manager tests the configuration by labelling a
/// copy of `AWSCURRENT` `AWSPENDING` and running testSecret alone. Even when testSecret finds that
/// value dead, the label stays: the probe is the service's, not a pending credential to abandon.
#[tokio::test]
async fn the_dead_pending_rule_never_takes_the_label_off_a_probe() {
    let store = MemoryStore::new();
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let seed = service.seed();
    let arn = store.create_secret("probe", &seed);
    store.set_rotation_enabled(&arn, true);
    let current = shared::SecretString::from(seed.as_str());
    shared::store::SecretStore::put_pending(&store, &arn, "probe", &current, None)
        .await
        .unwrap();
    service.revoke(&seed);
    let event = RotationEvent::new(Step::Test, &arn, "probe");
    let err = run_step(&store, &service, &event, None, Retire::NextRotation)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AWSPENDING stays on version probe"), "{err}");
    assert!(store.labels(&arn).has("probe", AWSPENDING));
    assert_eq!(store.value_of(&arn, AWSCURRENT), Some(seed));
}

/// A value someone else stored under the rotation's version before createSecret (which keeps
/// it, as a retry must) lacks createSecret's seal (`shared::seal`): setSecret, testSecret and
/// finishSecret refuse it as dead, `AWSPENDING` is removed, `AWSCURRENT` stays, and the next
/// rotation succeeds. The planted key is one the service accepts, so only the seal stops it.
#[tokio::test]
async fn a_value_planted_before_create_is_never_set_or_promoted() {
    let store = MemoryStore::new();
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let seed = service.seed();
    let arn = store.create_secret("planted", &seed);
    for (step, token) in [(Step::Set, "t1"), (Step::Test, "t2"), (Step::Finish, "t3")] {
        store.begin_rotation(&arn, token).unwrap();
        let planted = shared::SecretString::from(service.seed());
        shared::store::SecretStore::put_pending(&store, &arn, token, &planted, None)
            .await
            .unwrap();
        let (store, service, arn) = (&store, &service, &arn);
        let run = |step| {
            let event = RotationEvent::new(step, arn, token);
            async move { run_step(store, service, &event, None, Retire::Finish).await }
        };
        assert_eq!(
            run(Step::Create).await.unwrap(),
            shared::Outcome::AlreadyDone
        );
        let err = run(step).await.unwrap_err();
        assert_eq!(err.error.kind(), "dead-pending", "{step}: {err}");
        let err = err.to_string();
        for part in [
            "field `createsecret_seal` is missing",
            "createSecret of this function did not make this value",
            "AWSPENDING was removed",
        ] {
            assert!(err.contains(part), "{step}: {err} should contain {part}");
        }
        assert!(!store.labels(arn).has(token, AWSPENDING), "{step}");
        assert_eq!(
            store.value_of(arn, AWSCURRENT),
            Some(seed.clone()),
            "{step}"
        );
    }
    store.begin_rotation(&arn, "t4").unwrap();
    testkit::attempt(&store, &service, &arn, "t4")
        .await
        .unwrap();
    assert_ne!(store.value_of(&arn, AWSCURRENT), Some(seed));
}

/// What happens to a rotation: a step invoked (repeated, out of order), or someone outside the
/// rotation revoking the pending key.
#[derive(Clone, Copy, Debug)]
enum Action {
    Run(Step),
    KillPending,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => prop::sample::select(Step::ALL.to_vec()).prop_map(Action::Run),
        1 => Just(Action::KillPending),
    ]
}

fn retire() -> impl Strategy<Value = Retire> {
    prop::sample::select(vec![Retire::Finish, Retire::NextRotation])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any sequence of repeated and out-of-order steps, with the pending key killed at any point,
    /// under either retirement, keeps the invariants; the four steps in order afterwards always
    /// converge (with a new token when the pending version was abandoned).
    #[test]
    fn random_step_sequences_keep_the_invariants(
        actions in prop::collection::vec(action(), 0..16),
        retire in retire(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build().unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            let faults = Faults::default();
            let service = KeyService::new(&faults);
            let arn = Admin::create_secret(&store, "prop", &service.seed()).await;
            let old = store.labels(&arn).version_with(AWSCURRENT).unwrap().to_owned();
            let token = "tok-1";
            store.begin_rotation(&arn, token).unwrap();
            for a in &actions {
                match a {
                    // Out-of-order steps may fail; they must never break the invariants.
                    Action::Run(s) => {
                        let _ = run_step(&store, &service, &RotationEvent::new(*s, &arn, token), None, retire).await;
                    }
                    // Only a pending key that is not current yet: after finishSecret the
                    // `AWSPENDING` left on `AWSCURRENT` names the current key.
                    Action::KillPending if store.labels(&arn).rotation_in_progress().is_some() => {
                        if let Some(v) = store.value_of(&arn, AWSPENDING) {
                            service.revoke(&v);
                        }
                    }
                    Action::KillPending => {}
                }
                testkit::check_invariants(&store, &service, &arn, token).await
                    .unwrap_or_else(|e| panic!("after {actions:?}: {e}"));
            }
            let labels = store.labels(&arn);
            let token = match labels.stages_of(token) {
                Some(stages) if !stages.is_empty() => token.to_owned(),
                // Abandoned (its key died): Secrets Manager's next rotation has a new token.
                _ => {
                    let next = "tok-2".to_owned();
                    store.begin_rotation(&arn, &next).unwrap();
                    next
                }
            };
            let first = testkit::attempt_with(&store, &service, &arn, &token, retire).await;
            if first.is_err() {
                // The pending key died before the first test: abandoned now; a new rotation converges.
                prop_assert!(store.labels(&arn).version_with(AWSPENDING).is_none(), "{first:?}");
                let next = "tok-3";
                store.begin_rotation(&arn, next).unwrap();
                testkit::attempt_with(&store, &service, &arn, next, retire).await
                    .unwrap_or_else(|e| panic!("after {actions:?}: {e}"));
            } else if token == "tok-1" {
                testkit::check_converged_with(&store, &service, &arn, &token, &old, retire).await
                    .unwrap_or_else(|e| panic!("after {actions:?}: {e}"));
            }
            Ok(())
        })?;
    }
}

/// A step reads another secret (a master or private-key secret) from the store once, however
/// often its target asks.
#[tokio::test]
async fn other_secrets_are_read_once_per_step() {
    let store = MemoryStore::new();
    let arn = store.create_secret("reads", "v1");
    let master = store.create_secret("master", "m1");
    let faults = Faults::default();
    let counting = testkit::FaultyStore {
        inner: &store,
        faults: &faults,
    };
    let meta = shared::store::SecretStore::describe(&store, &arn)
        .await
        .unwrap();
    let v = shared::Versions::new(&counting, meta, "t", None);
    faults.arm(0);
    for _ in 0..3 {
        assert_eq!(v.other_secret(&master).await.unwrap().expose(), "m1");
    }
    assert_eq!(faults.calls(), 1);
}
