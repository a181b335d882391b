//! The four rotation steps, driven the same way for every target.

use crate::config::Retire;
use crate::error::{Error, StepError};
use crate::event::{RotationEvent, Step};
use crate::gate::{self, Gate};
use crate::retry;
use crate::seal;
use crate::store::{AWSCURRENT, AWSPENDING, SecretStore, StoreError};
use crate::target::{Target, TargetKind, Versions};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The step changed something.
    Done,
    /// The step found its work already done (a retry, or a finished rotation).
    AlreadyDone,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::AlreadyDone => "already-done",
        }
    }
}

/// Runs one step of one rotation: one `DescribeSecret` for the gate, then the step. `retire` says
/// when the previous credential is retired (`RETIRE_PREVIOUS`). Every call of the step shares one
/// time budget, so a slow service fails the step with our error before Lambda kills it.
pub async fn run_step(
    store: &dyn SecretStore,
    target: &dyn Target,
    event: &RotationEvent,
    deadline: Option<SystemTime>,
    retire: Retire,
) -> Result<Outcome, StepError> {
    let step = gated_step(store, target, event, deadline, retire);
    retry::within_budget(deadline, step)
        .await
        .unwrap_or_else(|slow| {
            Err(StepError {
                secret: event.secret_id.clone(),
                step: event.step,
                version: event.token.clone(),
                error: Error::OutOfTime(slow),
            })
        })
}

async fn gated_step(
    store: &dyn SecretStore,
    target: &dyn Target,
    event: &RotationEvent,
    deadline: Option<SystemTime>,
    retire: Retire,
) -> Result<Outcome, StepError> {
    let fail = |secret: &str, error: Error| StepError {
        secret: secret.to_owned(),
        step: event.step,
        version: event.token.clone(),
        error,
    };
    let meta = store
        .describe(&event.secret_id)
        .await
        .map_err(|e| fail(&event.secret_id, e.into()))?;
    let arn = meta.arn.clone();
    store
        .may_rotate(&arn)
        .map_err(|e| fail(&arn, Error::Gate(e)))?;
    let gate = gate::check(&meta, &event.token).map_err(|e| fail(&arn, Error::Gate(e)))?;
    let mut versions = Versions::new(store, meta, &event.token, deadline);
    let result = match (event.step, gate) {
        (Step::Finish, _) => finish(store, target, &mut versions, gate, retire).await,
        (_, Gate::AlreadyCurrent) => Ok(Outcome::AlreadyDone),
        (Step::Create, Gate::Pending) => create(store, target, &versions, event, retire).await,
        (Step::Set | Step::Test, Gate::Pending) => {
            let result = sealed_then(target, &versions, event.step).await;
            abandon_if_dead(store, &versions, result)
                .await
                .map(|()| Outcome::Done)
        }
    };
    result.map_err(|e| fail(&arn, e))
}

/// setSecret, testSecret and finishSecret's re-test (`step`), once the pending value's seal is
/// checked: a value without createSecret's valid seal was stored under the rotation's version by
/// someone else, and is dead: it is never set on the service nor promoted. testSecret alone
/// exempts Secrets Manager's probe (a copy of `AWSCURRENT`, which no createSecret made): the
/// service never sends the probe to setSecret or finishSecret, and a writer who stored their own
/// `AWSCURRENT` could plant the same value as a "probe" for setSecret to set.
async fn sealed_then(target: &dyn Target, v: &Versions<'_>, step: Step) -> Result<(), Error> {
    if step != Step::Test || !v.is_probe().await {
        let key = target.seal_key(v).await?;
        seal::verify(&key, v.arn(), v.token(), v.pending().await?).map_err(|broken| {
            Error::dead(format!(
                "the AWSPENDING value has no valid seal ({broken}): createSecret of this function did \
                 not make this value (it was written under the rotation's version by another \
                 writer), so it is neither set nor promoted"
            ))
        })?;
    }
    match step {
        Step::Set => target.set(v).await,
        _ => target.test(v).await,
    }
}

/// setSecret, testSecret and finishSecret's re-test. A pending credential that is provably dead
/// can never pass, and Secrets Manager would retry it forever ("a previous rotation isn't
/// complete") while the current credential ages: take `AWSPENDING` off its version, so the next
/// rotation starts afresh with a new value. `AWSCURRENT` is not touched.
async fn abandon_if_dead(
    store: &dyn SecretStore,
    v: &Versions<'_>,
    result: Result<(), Error>,
) -> Result<(), Error> {
    match result {
        Err(Error::Dead(why)) if v.is_probe().await => Err(Error::dead(format!(
            "{why}; AWSPENDING stays on version {}: it holds a copy of AWSCURRENT, as Secrets \
             Manager's test of the rotation configuration (RotateImmediately=false) does, and the \
             service removes it itself",
            v.token()
        ))),
        Err(Error::Dead(why)) => {
            let (arn, token) = (v.arn(), v.token());
            store
                .move_stage(arn, AWSPENDING, None, Some(token))
                .await
                .map_err(|e| {
                    Error::dead(format!(
                        "{why}; removing AWSPENDING from version {token} failed ({e}), so the next attempt tries again"
                    ))
                })?;
            tracing::warn!(reason = %why, "the pending credential is dead; AWSPENDING removed so the next rotation starts afresh");
            Err(Error::dead(format!(
                "{why}; AWSPENDING was removed from version {token}, so the next rotation starts afresh with a new value (AWSCURRENT is unchanged)"
            )))
        }
        other => other,
    }
}

pub(crate) async fn create(
    store: &dyn SecretStore,
    target: &dyn Target,
    v: &Versions<'_>,
    event: &RotationEvent,
    retire: Retire,
) -> Result<Outcome, Error> {
    let (arn, token) = (v.arn(), v.token());
    match store.get_value(arn, Some(token), AWSPENDING).await {
        Ok(_) => return Ok(Outcome::AlreadyDone),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // The previous rotation's old credential has had a whole rotation period to drain: retire it
    // before minting (which also frees a slot where the service caps credentials).
    if retire == Retire::NextRotation {
        target.retire(v, retire).await?;
    }
    let minted = target.create(v).await?;
    // Sealed, so the later steps can tell it from a value someone else stored under the version.
    let new = match target.seal_key(v).await.and_then(|key| {
        seal::seal(&key, arn, token, &minted).map_err(|broken| {
            Error::value(
                AWSPENDING,
                format!("createSecret made a value that cannot be sealed: {broken}"),
            )
        })
    }) {
        Ok(sealed) => sealed,
        Err(e) => {
            if target.kind() == TargetKind::Issuer
                && let Err(d) = target.discard(v, &minted).await
            {
                tracing::warn!(error = %d, "could not discard the value that was not stored; the next createSecret cleans it up");
            }
            return Err(e);
        }
    };
    let rotation_token = event.rotation_token.as_deref();
    let Err(put_error) = store.put_pending(arn, token, &new, rotation_token).await else {
        return Ok(Outcome::Done);
    };
    if target.kind() == TargetKind::Issuer {
        // The put may have landed with only its answer lost: discard the minted value only when
        // the store provably does not hold it, or the next attempt would find a dead pending value.
        match store.get_value(arn, Some(token), AWSPENDING).await {
            Ok(stored) if stored.value == new => return Ok(Outcome::Done),
            Ok(_) | Err(StoreError::NotFound(_)) => {
                if let Err(e) = target.discard(v, &minted).await {
                    tracing::warn!(error = %e, "could not discard the value that was not stored; the next createSecret cleans it up");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not tell whether the new value was stored; leaving it for the next createSecret");
            }
        }
    }
    Err(put_error.into())
}

async fn finish(
    store: &dyn SecretStore,
    target: &dyn Target,
    v: &mut Versions<'_>,
    gate: Gate,
    retire: Retire,
) -> Result<Outcome, Error> {
    let arn = v.arn().to_owned();
    let token = v.token();
    let mut outcome = Outcome::AlreadyDone;
    if gate == Gate::Pending {
        // Secrets Manager calls finishSecret only after testSecret passed, but a manual or
        // out-of-order invocation must not promote a placeholder or a value that does not work.
        abandon_if_dead(store, v, sealed_then(target, v, Step::Finish).await).await?;
        let current = v
            .labels()
            .version_with(AWSCURRENT)
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::Gate("no version of this secret is labelled AWSCURRENT".into())
            })?;
        // One label call. `AWSPENDING` stays on the new current version, as Secrets Manager
        // documents and its own templates do: the service takes it off once the rotation
        // succeeded, and `AWSPENDING` on `AWSCURRENT` is no rotation in progress. A second call
        // is one more request per rotation, and two back to back were seen to stick on a
        // replicated secret.
        store
            .move_stage(&arn, AWSCURRENT, Some(token), Some(&current))
            .await?;
        v.move_label(AWSCURRENT, Some(token), Some(&current))?;
        outcome = Outcome::Done;
    }
    if retire == Retire::Finish {
        target.retire(v, retire).await?;
    }
    Ok(outcome)
}
