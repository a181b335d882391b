//! Test support: a fake key-issuing service, fault injection, a driver that retries the way
//! Secrets Manager does, and protocol scenarios. The scenarios run against the in-memory store in
//! this crate's tests and against moto, through the AWS SDK, in the end-to-end crate.

use crate::config::Retire;
use crate::error::Error;
use crate::event::{RotationEvent, Step};
use crate::protocol::run_step;
use crate::secret::SecretString;
use crate::store::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, MemoryStore, SecretMeta, SecretStore, SecretValue,
    StoreError,
};
use crate::target::{Target, TargetKind, Versions};
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts external calls and fails the armed one *after* it took effect, as a crash or a lost
/// answer would.
#[derive(Default)]
pub struct Faults {
    calls: AtomicUsize,
    fail_at: AtomicUsize,
}

impl Faults {
    /// Fails the `n`th call from now (1-based); 0 disarms.
    pub fn arm(&self, n: usize) {
        self.calls.store(0, Ordering::SeqCst);
        self.fail_at.store(n, Ordering::SeqCst);
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn after(&self, what: &str) -> Result<(), String> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(format!("injected fault after call {n} ({what})"));
        }
        Ok(())
    }
}

/// A store whose calls count towards `Faults`.
pub struct FaultyStore<'a> {
    pub inner: &'a dyn SecretStore,
    pub faults: &'a Faults,
}

impl FaultyStore<'_> {
    fn tick<T>(&self, what: &str, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.faults.after(what).map_err(StoreError::Service)?;
        r
    }
}

#[async_trait]
impl SecretStore for FaultyStore<'_> {
    fn may_rotate(&self, arn: &str) -> Result<(), String> {
        self.inner.may_rotate(arn)
    }

    async fn describe(&self, secret_id: &str) -> Result<SecretMeta, StoreError> {
        let r = self.inner.describe(secret_id).await;
        self.tick("DescribeSecret", r)
    }

    async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<SecretValue, StoreError> {
        let r = self.inner.get_value(secret_id, version_id, stage).await;
        self.tick("GetSecretValue", r)
    }

    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
        rotation_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = self
            .inner
            .put_pending(secret_id, token, value, rotation_token)
            .await;
        self.tick("PutSecretValue", r)
    }

    async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<std::time::SystemTime>, StoreError> {
        let r = self.inner.version_created(secret_id, version_id).await;
        self.tick("ListSecretVersionIds", r)
    }

    async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = self.inner.move_stage(secret_id, stage, to, from).await;
        self.tick("UpdateSecretVersionStage", r)
    }
}

/// What the scenarios need beyond the protocol's calls: making secrets and starting rotations.
#[async_trait]
pub trait Admin: SecretStore {
    /// Creates a secret with one `AWSCURRENT` version; returns its ARN.
    async fn create_secret(&self, name: &str, value: &str) -> String;
    /// What `RotateSecret` does before it invokes the function.
    async fn begin_rotation(&self, secret_id: &str, token: &str) -> Result<(), String>;
}

#[async_trait]
impl Admin for MemoryStore {
    async fn create_secret(&self, name: &str, value: &str) -> String {
        MemoryStore::create_secret(self, name, value)
    }

    async fn begin_rotation(&self, secret_id: &str, token: &str) -> Result<(), String> {
        MemoryStore::begin_rotation(self, secret_id, token).map_err(|e| e.to_string())
    }
}

/// An issuer whose service holds a set of valid keys: every minted key works until retired, like
/// IAM access keys. The secret value is `{"key": "..."}`. Its calls count towards `Faults`.
pub struct KeyService<'a> {
    keys: Mutex<BTreeSet<String>>,
    faults: &'a Faults,
}

impl<'a> KeyService<'a> {
    pub fn new(faults: &'a Faults) -> Self {
        Self {
            keys: Mutex::default(),
            faults,
        }
    }

    /// Mints a key outside any rotation and returns a secret value holding it.
    pub fn seed(&self) -> String {
        let key = format!("k-{}", crate::random::version_id());
        self.keys.lock().unwrap().insert(key.clone());
        serde_json::json!({ "key": key }).to_string()
    }

    pub fn accepts(&self, value: &str) -> bool {
        key_in(value).is_some_and(|k| self.keys.lock().unwrap().contains(&k))
    }

    pub fn keys(&self) -> BTreeSet<String> {
        self.keys.lock().unwrap().clone()
    }

    /// Deletes the key a secret value holds, as someone outside the rotation might.
    pub fn revoke(&self, value: &str) {
        if let Some(k) = key_in(value) {
            self.keys.lock().unwrap().remove(&k);
        }
    }

    fn call(&self, what: &str) -> Result<(), Error> {
        self.faults.after(what).map_err(Error::Target)
    }
}

fn key_in(value: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(value).ok()?;
    v["key"].as_str().map(str::to_owned)
}

fn key_of(value: &SecretString, stage: &'static str) -> Result<String, Error> {
    key_in(value.expose()).ok_or_else(|| Error::value(stage, "field `key` is missing"))
}

#[async_trait]
impl Target for KeyService<'_> {
    fn kind(&self) -> TargetKind {
        TargetKind::Issuer
    }

    async fn create(&self, v: &Versions<'_>) -> Result<SecretString, Error> {
        let mut live = BTreeSet::from([key_of(v.current().await?, AWSCURRENT)?]);
        if let Some(previous) = v.previous().await? {
            live.insert(key_of(previous, AWSPREVIOUS)?);
        }
        let orphans: Vec<String> = self.keys().difference(&live).cloned().collect();
        for orphan in orphans {
            self.keys.lock().unwrap().remove(&orphan);
            self.call("delete orphan key")?;
        }
        let key = format!("k-{}", crate::random::version_id());
        self.keys.lock().unwrap().insert(key.clone());
        self.call("mint key")?;
        Ok(SecretString::new(
            serde_json::json!({ "key": key }).to_string(),
        ))
    }

    async fn discard(&self, _v: &Versions<'_>, minted: &SecretString) -> Result<(), Error> {
        let key = key_of(minted, AWSPENDING)?;
        self.keys.lock().unwrap().remove(&key);
        self.call("delete key")
    }

    async fn set(&self, v: &Versions<'_>) -> Result<(), Error> {
        self.test(v).await
    }

    async fn test(&self, v: &Versions<'_>) -> Result<(), Error> {
        // Reading AWSCURRENT here, as real targets do, catches values cached across label moves.
        key_of(v.current().await?, AWSCURRENT)?;
        let key = key_of(v.pending().await?, AWSPENDING)?;
        let ok = self.keys.lock().unwrap().contains(&key);
        self.call("authenticate")?;
        if ok {
            Ok(())
        } else {
            // The service's key set is authoritative: a key it does not hold is provably dead.
            Err(Error::dead("the service no longer holds the pending key"))
        }
    }

    async fn check(&self, v: &Versions<'_>, _retire: Retire) -> Vec<crate::preflight::Check> {
        let key = match v.current().await {
            Ok(c) => key_of(c, AWSCURRENT),
            Err(e) => Err(e),
        };
        let works = key.map(|k| self.keys.lock().unwrap().contains(&k));
        vec![match works {
            Ok(true) => {
                crate::preflight::Check::ok("current key", "the service accepts the AWSCURRENT key")
            }
            Ok(false) => crate::preflight::Check::failed(
                "current key",
                "the service refuses the AWSCURRENT key",
            ),
            Err(e) => crate::preflight::Check::failed("current key", e.to_string()),
        }]
    }

    async fn retire(&self, v: &Versions<'_>, _when: Retire) -> Result<(), Error> {
        let current = key_of(v.current().await?, AWSCURRENT)?;
        if let Some(previous) = v.previous().await? {
            let previous = key_of(previous, AWSPREVIOUS)?;
            if previous != current {
                self.keys.lock().unwrap().remove(&previous);
                self.call("delete previous key")?;
            }
        }
        Ok(())
    }
}

/// Runs the four steps once, retiring at finishSecret; the first failure ends the attempt.
pub async fn attempt(
    store: &dyn SecretStore,
    target: &dyn Target,
    secret: &str,
    token: &str,
) -> Result<(), String> {
    attempt_with(store, target, secret, token, Retire::Finish).await
}

/// Runs the four steps once with the given retirement; the first failure ends the attempt.
pub async fn attempt_with(
    store: &dyn SecretStore,
    target: &dyn Target,
    secret: &str,
    token: &str,
    retire: Retire,
) -> Result<(), String> {
    for step in Step::ALL {
        run_step(
            store,
            target,
            &RotationEvent::new(step, secret, token),
            None,
            retire,
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// While a rotation runs: exactly one `AWSCURRENT`, its key works on the service, and no version
/// other than the token carries `AWSPENDING`.
pub async fn check_invariants(
    admin: &dyn Admin,
    service: &KeyService<'_>,
    secret: &str,
    token: &str,
) -> Result<(), String> {
    let meta = admin.describe(secret).await.map_err(|e| e.to_string())?;
    let holders = |stage: &str| -> Vec<&String> {
        meta.labels
            .0
            .iter()
            .filter(|(_, s)| s.iter().any(|x| x == stage))
            .map(|(id, _)| id)
            .collect()
    };
    if holders(AWSCURRENT).len() != 1 {
        return Err(format!("AWSCURRENT on {:?}", holders(AWSCURRENT)));
    }
    if let Some(stray) = holders(AWSPENDING).into_iter().find(|id| *id != token) {
        return Err(format!("AWSPENDING on {stray}, not on the token {token}"));
    }
    let current = admin
        .get_value(secret, None, AWSCURRENT)
        .await
        .map_err(|e| e.to_string())?;
    if !service.accepts(current.value.expose()) {
        return Err("the AWSCURRENT key does not work on the service".into());
    }
    Ok(())
}

/// After a rotation: the token is the only `AWSCURRENT`, `old` is `AWSPREVIOUS`, no other version
/// carries `AWSPENDING` (finishSecret leaves it on the token for Secrets Manager to remove), and
/// the service holds the current key and nothing else.
pub async fn check_converged(
    admin: &dyn Admin,
    service: &KeyService<'_>,
    secret: &str,
    token: &str,
    old: &str,
) -> Result<(), String> {
    check_converged_with(admin, service, secret, token, old, Retire::Finish).await
}

/// `check_converged`; with `Retire::NextRotation` the service also still holds the previous key.
pub async fn check_converged_with(
    admin: &dyn Admin,
    service: &KeyService<'_>,
    secret: &str,
    token: &str,
    old: &str,
    retire: Retire,
) -> Result<(), String> {
    let labels = admin
        .describe(secret)
        .await
        .map_err(|e| e.to_string())?
        .labels;
    let finished = |stages: &[String]| {
        stages.iter().any(|s| s == AWSCURRENT)
            && stages.iter().all(|s| s == AWSCURRENT || s == AWSPENDING)
    };
    if !labels.stages_of(token).is_some_and(finished) {
        return Err(format!("token labels {:?}", labels.stages_of(token)));
    }
    if labels.version_with(AWSPREVIOUS) != Some(old) {
        return Err(format!(
            "AWSPREVIOUS on {:?}, want {old}",
            labels.version_with(AWSPREVIOUS)
        ));
    }
    if let Some(p) = labels.version_with(AWSPENDING).filter(|p| *p != token) {
        return Err(format!("AWSPENDING left on {p}"));
    }
    let current = admin
        .get_value(secret, None, AWSCURRENT)
        .await
        .map_err(|e| e.to_string())?;
    let mut want = BTreeSet::from([key_in(current.value.expose()).unwrap_or_default()]);
    if retire == Retire::NextRotation {
        let previous = admin
            .get_value(secret, None, AWSPREVIOUS)
            .await
            .map_err(|e| e.to_string())?;
        want.insert(key_in(previous.value.expose()).unwrap_or_default());
    }
    if service.keys() != want {
        return Err(format!(
            "service keys {:?}, want only {want:?}",
            service.keys()
        ));
    }
    Ok(())
}

async fn current_version(admin: &dyn Admin, secret: &str) -> String {
    let labels = admin.describe(secret).await.unwrap().labels;
    labels.version_with(AWSCURRENT).unwrap().to_owned()
}

/// Rotates a fresh secret twice; each rotation converges and retires the old key.
pub async fn full_rotation_twice(admin: &dyn Admin, name: &str) {
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let arn = admin.create_secret(name, &service.seed()).await;
    for _ in 0..2 {
        let old = current_version(admin, &arn).await;
        let token = crate::random::version_id();
        admin.begin_rotation(&arn, &token).await.unwrap();
        attempt(admin, &service, &arn, &token).await.unwrap();
        check_converged(admin, &service, &arn, &token, &old)
            .await
            .unwrap();
    }
}

/// With `RETIRE_PREVIOUS=next-rotation`: after a rotation the previous key still works (a consumer
/// that cached it keeps working); the next rotation retires it before minting.
pub async fn previous_works_until_the_next_rotation(admin: &dyn Admin, name: &str) {
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let first = service.seed();
    let arn = admin.create_secret(name, &first).await;
    let mut cached = first;
    for round in 0..3 {
        let old = current_version(admin, &arn).await;
        let token = crate::random::version_id();
        admin.begin_rotation(&arn, &token).await.unwrap();
        attempt_with(admin, &service, &arn, &token, Retire::NextRotation)
            .await
            .unwrap();
        check_converged_with(admin, &service, &arn, &token, &old, Retire::NextRotation)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(
            service.accepts(&cached),
            "round {round}: the value read before the rotation stopped working"
        );
        cached = admin
            .get_value(&arn, None, AWSCURRENT)
            .await
            .unwrap()
            .value
            .expose()
            .to_owned();
        assert_eq!(
            service.keys().len(),
            2,
            "round {round}: at most current + previous"
        );
    }
}

/// A pending key that dies before testSecret (revoked outside the rotation) is abandoned: the step
/// that finds it fails saying so and takes `AWSPENDING` off the version; `AWSCURRENT` is untouched and keeps
/// working; the next rotation, with a new token, converges.
pub async fn dead_pending_is_abandoned(admin: &dyn Admin, name: &str) {
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let arn = admin.create_secret(name, &service.seed()).await;
    let old = current_version(admin, &arn).await;
    let token = crate::random::version_id();
    admin.begin_rotation(&arn, &token).await.unwrap();
    for step in [Step::Create, Step::Set] {
        run_step(
            admin,
            &service,
            &RotationEvent::new(step, &arn, &token),
            None,
            Retire::Finish,
        )
        .await
        .unwrap();
    }
    let pending = admin
        .get_value(&arn, Some(&token), AWSPENDING)
        .await
        .unwrap();
    service.revoke(pending.value.expose());
    let err = run_step(
        admin,
        &service,
        &RotationEvent::new(Step::Test, &arn, &token),
        None,
        Retire::Finish,
    )
    .await
    .unwrap_err()
    .to_string();
    for part in [
        "testSecret",
        "no longer holds the pending key",
        "AWSPENDING was removed",
        &token,
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    let labels = admin.describe(&arn).await.unwrap().labels;
    assert_eq!(labels.version_with(AWSPENDING), None);
    assert_eq!(labels.version_with(AWSCURRENT), Some(old.as_str()));
    check_invariants(admin, &service, &arn, &token)
        .await
        .unwrap();
    // Secrets Manager's retry of the abandoned token now fails at the gate and changes nothing.
    assert!(attempt(admin, &service, &arn, &token).await.is_err());
    let next = crate::random::version_id();
    admin.begin_rotation(&arn, &next).await.unwrap();
    attempt(admin, &service, &arn, &next).await.unwrap();
    check_converged(admin, &service, &arn, &next, &old)
        .await
        .unwrap();
}

/// Every step invoked twice in a row changes nothing the second time.
pub async fn every_step_twice(admin: &dyn Admin, name: &str) {
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let arn = admin.create_secret(name, &service.seed()).await;
    let old = current_version(admin, &arn).await;
    let token = crate::random::version_id();
    admin.begin_rotation(&arn, &token).await.unwrap();
    for step in Step::ALL {
        for round in 0..2 {
            run_step(
                admin,
                &service,
                &RotationEvent::new(step, &arn, &token),
                None,
                Retire::Finish,
            )
            .await
            .unwrap_or_else(|e| panic!("{step} round {round}: {e}"));
            check_invariants(admin, &service, &arn, &token)
                .await
                .unwrap();
        }
    }
    check_converged(admin, &service, &arn, &token, &old)
        .await
        .unwrap();
}

/// For every external call of a rotation (store and service), fail right after it, retry from
/// createSecret with the same token as Secrets Manager does, and check the invariants after every
/// attempt and convergence at the end. Returns how many faults were injected.
pub async fn crash_after_every_call(admin: &dyn Admin, name: &str) -> usize {
    // One clean rotation tells how many calls there are to fail.
    let faults = Faults::default();
    let total = {
        let service = KeyService::new(&faults);
        let arn = admin
            .create_secret(&format!("{name}-count"), &service.seed())
            .await;
        let token = crate::random::version_id();
        admin.begin_rotation(&arn, &token).await.unwrap();
        faults.arm(0);
        let store = FaultyStore {
            inner: admin,
            faults: &faults,
        };
        attempt(&store, &service, &arn, &token).await.unwrap();
        faults.calls()
    };
    assert!(
        total >= 8,
        "a rotation makes at least 8 calls, counted {total}"
    );
    for n in 1..=total {
        let service = KeyService::new(&faults);
        let arn = admin
            .create_secret(&format!("{name}-{n}"), &service.seed())
            .await;
        let old = current_version(admin, &arn).await;
        let token = crate::random::version_id();
        admin.begin_rotation(&arn, &token).await.unwrap();
        faults.arm(n);
        let store = FaultyStore {
            inner: admin,
            faults: &faults,
        };
        let first = attempt(&store, &service, &arn, &token).await;
        assert!(faults.calls() >= n, "fault {n} of {total} was not reached");
        check_invariants(admin, &service, &arn, &token)
            .await
            .unwrap_or_else(|e| panic!("after fault {n}: {e}"));
        // A fault the step could prove harmless (a lost PutSecretValue answer) needs no retry.
        if first.is_err() {
            attempt(&store, &service, &arn, &token)
                .await
                .unwrap_or_else(|e| panic!("retry after fault {n}: {e}"));
        }
        check_converged(admin, &service, &arn, &token, &old)
            .await
            .unwrap_or_else(|e| panic!("after fault {n}: {e}"));
    }
    total
}

/// A token that is not a version of the secret is refused by every step with a message naming
/// the secret, the step and the version; nothing changes.
pub async fn foreign_token_changes_nothing(admin: &dyn Admin, name: &str) {
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let arn = admin.create_secret(name, &service.seed()).await;
    let token = crate::random::version_id();
    admin.begin_rotation(&arn, &token).await.unwrap();
    let before = admin.describe(&arn).await.unwrap().labels;
    for step in Step::ALL {
        let err = run_step(
            admin,
            &service,
            &RotationEvent::new(step, &arn, "not-a-version"),
            None,
            Retire::Finish,
        )
        .await
        .unwrap_err()
        .to_string();
        for part in [
            step.as_str(),
            arn.as_str(),
            "not-a-version",
            "not a version of this secret",
        ] {
            assert!(err.contains(part), "{err} should name {part}");
        }
    }
    assert_eq!(admin.describe(&arn).await.unwrap().labels, before);
    assert_eq!(service.keys().len(), 1, "nothing was minted");
}

/// Steps for a token that is already `AWSCURRENT` are no-ops, except that finishSecret still
/// retires the previous key (a finish that crashed after moving the label).
pub async fn finished_rotation_steps_are_noops(admin: &dyn Admin, name: &str) {
    let faults = Faults::default();
    let service = KeyService::new(&faults);
    let arn = admin.create_secret(name, &service.seed()).await;
    let old = current_version(admin, &arn).await;
    let token = crate::random::version_id();
    admin.begin_rotation(&arn, &token).await.unwrap();
    attempt(admin, &service, &arn, &token).await.unwrap();
    let keys = service.keys();
    for step in Step::ALL {
        let outcome = run_step(
            admin,
            &service,
            &RotationEvent::new(step, &arn, &token),
            None,
            Retire::Finish,
        )
        .await
        .unwrap();
        assert_eq!(outcome, crate::protocol::Outcome::AlreadyDone, "{step}");
    }
    assert_eq!(service.keys(), keys);
    check_converged(admin, &service, &arn, &token, &old)
        .await
        .unwrap();
}
