//! A refresh outside Secrets Manager's rotation, for credentials that expire on their own (GitHub
//! installation tokens live an hour; Secrets Manager schedules a rotation at most every four).
//! A schedule invokes the function with `{"Step": "refresh", "SecretIds": [...]}` (or one
//! `SecretId`), and the function runs the four steps itself for a version of its own, secret by
//! secret (`lambda::refresh`).
//!
//! Why not `RotateSecret` on a schedule: while a failed rotation leaves `AWSPENDING` on a version,
//! Secrets Manager refuses every new one, so one GitHub 5xx or one Lambda timeout could let the
//! current credential expire. A refresh first drops such a leftover `AWSPENDING` (for these
//! targets a pending value serves nobody and dies on its own), so one failure never keeps the
//! next refresh from starting. Everything else is the protocol's own steps.

use crate::config::Retire;
use crate::error::{Error, StepError};
use crate::event::{RotationEvent, Step};
use crate::protocol::{self, Outcome};
use crate::store::{AWSCURRENT, AWSPENDING, SecretStore, move_label};
use crate::target::{Target, Versions};
use std::time::SystemTime;

/// One refresh of `secret_id`; the error names the secret, the step and the version. The whole
/// refresh runs under the time budget `deadline` gives, as every step does.
///
/// `scheduled`: the schedule's time this refresh is for. A secret whose `AWSCURRENT` version was
/// made at or after it is already fresh (an earlier attempt of the same event refreshed it before
/// another secret failed, and Lambda retries the whole event), so it is left alone
/// (`AlreadyDone`): refreshing it again would retire a token consumers got minutes ago.
pub async fn run(
    store: &dyn SecretStore,
    target: &dyn Target,
    secret_id: &str,
    deadline: Option<SystemTime>,
    retire: Retire,
    scheduled: Option<SystemTime>,
) -> Result<Outcome, StepError> {
    let token = crate::random::version_id();
    let steps = refresh(
        store, target, secret_id, &token, deadline, retire, scheduled,
    );
    crate::retry::within_budget(deadline, steps)
        .await
        .unwrap_or_else(|slow| {
            Err(StepError {
                secret: secret_id.to_owned(),
                step: Step::Create,
                version: token.clone(),
                error: Error::OutOfTime(slow),
            })
        })
}

async fn refresh(
    store: &dyn SecretStore,
    target: &dyn Target,
    secret_id: &str,
    token: &str,
    deadline: Option<SystemTime>,
    retire: Retire,
    scheduled: Option<SystemTime>,
) -> Result<Outcome, StepError> {
    let fail = |secret: &str, step: Step, error: Error| StepError {
        secret: secret.to_owned(),
        step,
        version: token.to_owned(),
        error,
    };
    let mut meta = store
        .describe(secret_id)
        .await
        .map_err(|e| fail(secret_id, Step::Create, e.into()))?;
    let arn = meta.arn.clone();
    store
        .may_rotate(&arn)
        .map_err(|e| fail(&arn, Step::Create, Error::Gate(e)))?;
    target
        .refreshable(&arn)
        .map_err(|e| fail(&arn, Step::Create, Error::Gate(e)))?;
    if !meta.rotation_enabled {
        return Err(fail(
            &arn,
            Step::Create,
            Error::Gate("rotation is not enabled for this secret".into()),
        ));
    }
    if let (Some(scheduled), Some(current)) = (scheduled, meta.labels.version_with(AWSCURRENT)) {
        let made = store
            .version_created(&arn, current)
            .await
            .map_err(|e| fail(&arn, Step::Create, e.into()))?;
        if made.is_some_and(|made| made >= scheduled) {
            tracing::info!(
                version = %current,
                "AWSCURRENT was made after this refresh's scheduled time: already fresh, left alone"
            );
            return Ok(Outcome::AlreadyDone);
        }
    }
    if let Some(stuck) = meta.labels.rotation_in_progress().map(str::to_owned) {
        store
            .move_stage(&arn, AWSPENDING, None, Some(&stuck))
            .await
            .map_err(|e| fail(&arn, Step::Create, e.into()))?;
        move_label(&mut meta.labels, AWSPENDING, None, Some(&stuck))
            .map_err(|e| fail(&arn, Step::Create, e.into()))?;
        tracing::warn!(
            version = %stuck,
            "an earlier rotation left AWSPENDING on a version; removed it so this refresh can run"
        );
    }
    let versions = Versions::new(store, meta, token, deadline);
    let event = RotationEvent::new(Step::Create, &arn, token);
    protocol::create(store, target, &versions, &event, retire)
        .await
        .map_err(|e| fail(&arn, Step::Create, e))?;
    for step in [Step::Set, Step::Test, Step::Finish] {
        let event = RotationEvent::new(step, &arn, token);
        protocol::run_step(store, target, &event, deadline, retire).await?;
    }
    // finishSecret leaves `AWSPENDING` on the new current version for Secrets Manager to remove
    // after a rotation; a refresh is its own rotation, so it ends it as the service would.
    store
        .move_stage(&arn, AWSPENDING, None, Some(token))
        .await
        .map_err(|e| fail(&arn, Step::Finish, e.into()))?;
    Ok(Outcome::Done)
}
