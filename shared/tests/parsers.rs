//! #23.8: the parsers of outside input never panic, and their errors name the field at fault:
//! Lambda events (rotation steps, refresh, pre-flight) and secret values, over any JSON and over
//! valid documents mutated one field at a time (`shared::fuzz`, `fuzz::CASES` cases each).

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::SecretString;
use shared::config::Retire;
use shared::event::RotationEvent;
use shared::fuzz;
use shared::lambda;
use shared::store::MemoryStore;
use shared::testkit::{Faults, KeyService};

const EVENT_FIELDS: &[&str] = &["Step", "SecretId", "ClientRequestToken", "RotationToken"];

fn valid_event() -> Value {
    json!({"Step": "setSecret", "SecretId": "arn:aws:secretsmanager:us-east-1:1:secret:s-AbCdEf",
           "ClientRequestToken": "5f0c3b1e-1", "RotationToken": "r-1"})
}

/// Runs `payload` through the entry point `lambda::serve` would pick, against an empty store.
fn answer(payload: &Value) {
    let store = MemoryStore::new();
    let faults = Faults::default();
    let target = KeyService::new(&faults);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let retire = Retire::NextRotation;
        if lambda::is_preflight(payload) {
            let ctx = lambda::Preflight {
                rotator: "fuzz",
                function: None,
                retire,
                writes: None,
            };
            let _ = lambda::preflight(&store, &target, payload, None, ctx).await;
        } else if lambda::is_refresh(payload) {
            let _ = lambda::refresh(&store, &target, "fuzz", payload, None, retire).await;
        } else {
            let _ = lambda::handle(&store, &target, "fuzz", payload, None, retire).await;
        }
    });
}

proptest! {
    #![proptest_config(fuzz::config())]

    /// Any JSON as a rotation event: parsed or refused, never a panic.
    #[test]
    fn any_event_is_parsed_or_refused(event in fuzz::json()) {
        let _ = RotationEvent::from_value(&event);
    }

    /// A valid event with one field changed: accepted, or refused naming that field; a field the
    /// contract does not know changes nothing.
    #[test]
    fn a_bad_event_field_is_named(m in fuzz::mutation(EVENT_FIELDS)) {
        let event = m.apply(&valid_event());
        match RotationEvent::from_value(&event) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.contains(&format!("`{}`", m.field())), "{m:?}: {e}"),
        }
        if !EVENT_FIELDS.contains(&m.field()) {
            prop_assert!(RotationEvent::from_value(&event).is_ok(), "{m:?}");
        }
    }

    /// Every entry point (a step, `refresh` with `SecretId`/`SecretIds`/`ScheduledTime`,
    /// `preflight`) answers any payload without a panic.
    #[test]
    fn every_entry_point_answers_any_payload(
        step in prop_oneof![Just("refresh"), Just("preflight"), Just("createSecret")],
        m in fuzz::mutation(&["SecretId", "SecretIds", "ScheduledTime", "ClientRequestToken", "Step"]),
        anything in fuzz::json(),
    ) {
        let valid = json!({"Step": step, "SecretId": "s", "SecretIds": ["a", "b"],
                           "ScheduledTime": "2026-11-30T12:00:00Z", "ClientRequestToken": "t"});
        answer(&m.apply(&valid));
        answer(&anything);
    }

    /// Any text as a secret value: a JSON object or an error that never echoes the value.
    #[test]
    fn any_secret_value_is_an_object_or_a_clean_error(raw in fuzz::raw(json!({"password": "hunter2-secret"}))) {
        if let Err(e) = SecretString::new(raw.clone()).json_object() {
            prop_assert!(raw.len() < 8 || !e.contains(&raw), "{e}");
            prop_assert!(!e.contains("hunter2-secret"), "{e}");
        }
    }
}
