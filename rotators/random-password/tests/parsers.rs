//! #23.8: testSecret reads any pending value without a panic, and names `password` when it is
//! wrong (`shared::fuzz`, `fuzz::CASES` cases each).

use proptest::prelude::*;
use random_password::{FIELD, RandomPassword};
use serde_json::{Value, json};
use shared::store::{MemoryStore, SecretStore};
use shared::{SecretString, Target, Versions, fuzz};

/// testSecret of a rotation whose pending value is `value`.
fn test(value: String) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = MemoryStore::new();
        let arn = store.create_secret("fuzz", r#"{"password": "p0"}"#);
        store.begin_rotation(&arn, "t1").unwrap();
        store
            .put_pending(&arn, "t1", &SecretString::new(value), None)
            .await
            .unwrap();
        let meta = store.describe(&arn).await.unwrap();
        let v = Versions::new(&store, meta, "t1", None);
        let target = RandomPassword {
            policy: shared::password::PasswordPolicy::default(),
        };
        target.test(&v).await.map_err(|e| e.to_string())
    })
}

fn valid() -> Value {
    json!({"password": "hunter2-secret", "user": "app"})
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn any_pending_value_is_tested_or_refused(raw in fuzz::raw(valid())) {
        let _ = test(raw);
    }

    #[test]
    fn a_bad_password_field_is_named(m in fuzz::mutation(&[FIELD])) {
        fuzz::check_named(&m, &[FIELD], "hunter2-secret", test(m.apply(&valid()).to_string()))?;
    }
}
