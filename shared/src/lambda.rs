//! The Lambda entry point every rotator binary calls: parse the event, run the step inside a span
//! that names the secret, step and version, and report one summary line and one metric.

use crate::config::Retire;
use crate::event::RotationEvent;
use crate::protocol::{self, Outcome};
use crate::store::{AwsStore, SecretStore};
use crate::target::Target;
use crate::telemetry::StepMetric;
use aws_config::SdkConfig;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// Serves rotation events until the Lambda runtime stops the process.
pub async fn serve(
    rotator: &'static str,
    sdk: &SdkConfig,
    target: impl Target + 'static,
) -> Result<(), lambda_runtime::Error> {
    let retire =
        Retire::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let rotated = crate::rotated::Rotated::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let store = Arc::new(AwsStore::rotating(
        crate::config::secrets_manager(sdk),
        rotated,
    ));
    let target = Arc::new(target);
    let writes = Arc::new(crate::simulate::IamSimulation::new(sdk));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (store, target, writes) = (store.clone(), target.clone(), writes.clone());
        async move {
            let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            if is_preflight(&event.payload) {
                let ctx = Preflight {
                    rotator,
                    function: Some(event.context.invoked_function_arn.as_str()),
                    retire,
                    writes: Some(&*writes),
                };
                return preflight(&*store, &*target, &event.payload, Some(deadline), ctx).await;
            }
            if is_refresh(&event.payload) {
                return refresh(
                    &*store,
                    &*target,
                    rotator,
                    &event.payload,
                    Some(deadline),
                    retire,
                )
                .await
                .map(|_| Value::Null)
                .map_err(|message| Diagnostic {
                    error_type: "RefreshFailed".into(),
                    error_message: message,
                });
            }
            handle(
                &*store,
                &*target,
                rotator,
                &event.payload,
                Some(deadline),
                retire,
            )
            .await
            .map(|_| Value::Null)
        }
    }))
    .await
}

/// `{"Step": "preflight", "SecretId": "..."}`: not one of Secrets Manager's steps.
pub fn is_preflight(payload: &Value) -> bool {
    payload.get("Step").and_then(Value::as_str) == Some("preflight")
}

/// `{"Step": "refresh", "SecretIds": [...]}` or `{"Step": "refresh", "SecretId": "..."}`: a
/// scheduled refresh (`refresh::run`).
pub fn is_refresh(payload: &Value) -> bool {
    payload.get("Step").and_then(Value::as_str) == Some("refresh")
}

/// The secrets a refresh event names (`SecretIds`, or one `SecretId`; duplicates once each) and
/// its `ScheduledTime` (EventBridge Scheduler's `<aws.scheduler.scheduled-time>`), if given.
fn refresh_event(payload: &Value) -> Result<(Vec<&str>, Option<SystemTime>), String> {
    fn valid(v: &Value) -> Option<&str> {
        match v {
            Value::String(s) if !s.trim().is_empty() && !s.chars().any(char::is_control) => Some(s),
            _ => None,
        }
    }
    let mut secrets: Vec<&str> = Vec::new();
    match (payload.get("SecretId"), payload.get("SecretIds")) {
        (Some(one), None) => secrets.extend(valid(one)),
        (None, Some(Value::Array(many))) if !many.is_empty() => {
            for v in many {
                let s = valid(v).ok_or(
                    "invalid refresh event: field `SecretIds` must hold non-empty strings only",
                )?;
                if !secrets.contains(&s) {
                    secrets.push(s);
                }
            }
        }
        _ => {}
    }
    if secrets.is_empty() {
        return Err("invalid refresh event: give `SecretId`, a non-empty string, or `SecretIds`, a non-empty list of them (not both)".into());
    }
    let scheduled = match payload.get("ScheduledTime") {
        None => None,
        Some(v) => {
            let parsed = v.as_str().and_then(|t| {
                aws_sdk_secretsmanager::primitives::DateTime::from_str(
                    t,
                    aws_sdk_secretsmanager::primitives::DateTimeFormat::DateTime,
                )
                .ok()
                .and_then(|t| SystemTime::try_from(t).ok())
            });
            Some(parsed.ok_or(
                "invalid refresh event: field `ScheduledTime` must be a time such as 2026-11-30T12:00:00Z",
            )?)
        }
    };
    Ok((secrets, scheduled))
}

/// Runs a refresh of every secret the event names, one after the other. Each secret gets its
/// share of what is left of the invocation's time (a slow one ends at its share, and what a fast
/// one leaves goes to the rest), and one secret's failure never stops the others: each is logged
/// and measured on its own as the step `refresh` (`refresh finished`/`refresh failed`,
/// `StepSucceeded`/`StepFailed`), and the error names every secret that failed.
pub async fn refresh(
    store: &dyn SecretStore,
    target: &dyn Target,
    rotator: &str,
    payload: &Value,
    deadline: Option<SystemTime>,
    retire: Retire,
) -> Result<Outcome, String> {
    crate::telemetry::set_rotator(rotator);
    let (secrets, scheduled) = refresh_event(payload)?;
    let mut failed = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        let share = deadline.map(|d| share_of(d, secrets.len() - i));
        if let Err(e) = refresh_one(store, target, rotator, secret, share, retire, scheduled).await
        {
            failed.push(e);
        }
    }
    match failed.len() {
        0 => Ok(Outcome::Done),
        _ if secrets.len() == 1 => Err(failed.remove(0)),
        n => Err(format!(
            "the refresh failed for {n} of {} secrets: {}",
            secrets.len(),
            failed.join("; ")
        )),
    }
}

/// The deadline of the next of `remaining` secrets: an equal part of the time left before the
/// step budget's margin (`retry::budget`), plus that margin, so the last one ends at `deadline`.
fn share_of(deadline: SystemTime, remaining: usize) -> SystemTime {
    const MARGIN: Duration = Duration::from_secs(3);
    let now = SystemTime::now();
    let left = deadline
        .duration_since(now)
        .unwrap_or_default()
        .saturating_sub(MARGIN);
    now + left / remaining.max(1) as u32 + MARGIN
}

async fn refresh_one(
    store: &dyn SecretStore,
    target: &dyn Target,
    rotator: &str,
    secret: &str,
    deadline: Option<SystemTime>,
    retire: Retire,
    scheduled: Option<SystemTime>,
) -> Result<Outcome, String> {
    let started = Instant::now();
    let span = tracing::info_span!("refresh", rotator, secret_id = %secret);
    async {
        let result = crate::refresh::run(store, target, secret, deadline, retire, scheduled).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(outcome) => {
                tracing::info!(outcome = outcome.as_str(), duration_ms = ms, "refresh finished");
                report(rotator, "refresh", secret, "", started, None);
            }
            Err(e) => {
                tracing::error!(error = %e, error_kind = e.error.kind(), duration_ms = ms, "refresh failed");
                report(rotator, "refresh", secret, &e.version, started, Some(e.error.kind()));
            }
        }
        result.map_err(|e| e.to_string())
    }
    .instrument(span)
    .await
}

/// Where a pre-flight runs: the rotator's name, the function's ARN (to compare with the secret's
/// rotation function), the retirement setting, and the write-permission simulation if any.
#[derive(Clone, Copy)]
pub struct Preflight<'a> {
    pub rotator: &'a str,
    pub function: Option<&'a str>,
    pub retire: Retire,
    pub writes: Option<&'a dyn crate::preflight::WriteAccess>,
}

/// Runs the read-only pre-flight check and answers with its report. A bad event is an
/// `InvalidPreflight` error; a check still waiting when the time budget runs out (as for a step)
/// is a `StepOutOfTime` error naming the call.
pub async fn preflight(
    store: &dyn SecretStore,
    target: &dyn Target,
    payload: &Value,
    deadline: Option<SystemTime>,
    ctx: Preflight<'_>,
) -> Result<Value, Diagnostic> {
    let secret = match payload.get("SecretId") {
        Some(Value::String(s)) if !s.trim().is_empty() && !s.chars().any(char::is_control) => s,
        _ => {
            return Err(Diagnostic {
                error_type: "InvalidPreflight".into(),
                error_message:
                    "invalid preflight event: field `SecretId` must be a non-empty string".into(),
            });
        }
    };
    let span = tracing::info_span!("preflight", rotator = ctx.rotator, secret_id = %secret);
    async {
        let checks = crate::preflight::run(
            store,
            target,
            secret,
            ctx.function,
            deadline,
            ctx.retire,
            ctx.writes,
        );
        let checks = crate::retry::within_budget(deadline, checks)
            .await
            .map_err(|slow| Diagnostic {
                error_type: crate::Error::OutOfTime(String::new()).error_type().into(),
                error_message: format!("preflight of {secret}: {slow}"),
            })?;
        let failed = checks
            .iter()
            .filter(|c| c.status == crate::preflight::Status::Failed)
            .count();
        tracing::info!(checks = checks.len(), failed, "preflight finished");
        Ok(crate::preflight::report(ctx.rotator, secret, &checks))
    }
    .instrument(span)
    .await
}

/// Handles one invocation. The error's message is the one for Secrets Manager; it names the
/// secret, the step, the version and the field or condition, never a value. Its type is the
/// error's kind (`Error::error_type`, `InvalidEvent` for an event that is not a rotation step).
pub async fn handle(
    store: &dyn SecretStore,
    target: &dyn Target,
    rotator: &str,
    payload: &Value,
    deadline: Option<SystemTime>,
    retire: Retire,
) -> Result<Outcome, Diagnostic> {
    let started = Instant::now();
    crate::telemetry::set_rotator(rotator);
    let event = match RotationEvent::from_value(payload) {
        Ok(event) => event,
        Err(problem) => {
            let message = format!("invalid rotation event: {problem}");
            tracing::error!(rotator, error = %message, "step failed");
            report(rotator, "invalid", "", "", started, Some("event"));
            return Err(Diagnostic {
                error_type: "InvalidEvent".into(),
                error_message: message,
            });
        }
    };
    let span = tracing::info_span!(
        "rotation",
        rotator,
        secret_id = %event.secret_id,
        step = %event.step,
        version = %event.token,
    );
    async {
        let result = protocol::run_step(store, target, &event, deadline, retire).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let step = event.step.as_str();
        match &result {
            Ok(outcome) => {
                tracing::info!(outcome = outcome.as_str(), duration_ms = ms, "step finished");
                report(rotator, step, &event.secret_id, &event.token, started, None);
            }
            Err(e) => {
                tracing::error!(error = %e, error_kind = e.error.kind(), duration_ms = ms, "step failed");
                let kind = e.error.kind();
                report(rotator, step, &event.secret_id, &event.token, started, Some(kind));
            }
        }
        result.map_err(Diagnostic::from)
    }
    .instrument(span)
    .await
}

fn report(
    rotator: &str,
    step: &str,
    secret: &str,
    version: &str,
    started: Instant,
    failure: Option<&str>,
) {
    StepMetric {
        rotator,
        step,
        secret,
        version,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        failure,
    }
    .emit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refresh_event_names_one_secret_or_several() {
        let ids = |v: Value| refresh_event(&v).map(|(s, _)| s.join(" "));
        assert_eq!(
            ids(json!({"Step": "refresh", "SecretId": "a"})).unwrap(),
            "a"
        );
        assert_eq!(
            ids(json!({"Step": "refresh", "SecretIds": ["a", "b", "a"]})).unwrap(),
            "a b"
        );
        for bad in [
            json!({"Step": "refresh"}),
            json!({"Step": "refresh", "SecretIds": []}),
            json!({"Step": "refresh", "SecretIds": ["a", ""]}),
            json!({"Step": "refresh", "SecretIds": "a"}),
            json!({"Step": "refresh", "SecretId": "a", "SecretIds": ["b"]}),
            json!({"Step": "refresh", "SecretIds": ["a"], "ScheduledTime": "<aws.scheduler.scheduled-time>"}),
        ] {
            assert!(
                ids(bad.clone())
                    .unwrap_err()
                    .contains("invalid refresh event"),
                "{bad}"
            );
        }
        let (_, at) = refresh_event(
            &json!({"Step": "refresh", "SecretIds": ["a"], "ScheduledTime": "2026-11-30T12:00:00Z"}),
        )
        .unwrap();
        assert_eq!(
            at.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_796_040_000
        );
    }

    #[test]
    fn each_secret_gets_its_share_of_the_time_left() {
        let deadline = SystemTime::now() + Duration::from_secs(63);
        let first = share_of(deadline, 3)
            .duration_since(SystemTime::now())
            .unwrap();
        // 60 s usable: 20 s each, plus the 3 s margin every step keeps.
        assert!(
            first <= Duration::from_secs(23) && first > Duration::from_secs(22),
            "{first:?}"
        );
        let last = share_of(deadline, 1);
        assert!(
            last <= deadline && deadline.duration_since(last).unwrap() < Duration::from_secs(1)
        );
        // No time left: the deadline is now plus the margin, never before now.
        assert!(share_of(SystemTime::now(), 2) > SystemTime::now());
    }
}
