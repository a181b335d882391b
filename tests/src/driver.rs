//! The local rotate-secret driver: does what Secrets Manager does on `rotate-secret`, against moto
//! and a real function binary.

use crate::runtime_api::{Function, Reply};
use crate::stack;
use aws_sdk_secretsmanager::Client;
use serde_json::json;
use shared::Step;
use shared::store::{AWSCURRENT, AWSPENDING, AwsStore, Labels, SecretStore};
use std::time::{Duration, Instant};

pub struct Options {
    /// Retry the rotation already in progress (same token) instead of refusing, as Secrets
    /// Manager does when it retries a failed rotation.
    pub resume: bool,
    pub lambda_arn: String,
    pub step_timeout: Duration,
}

#[derive(Debug)]
pub struct StepReport {
    pub step: Step,
    pub result: Result<(), String>,
    pub millis: f64,
}

#[derive(Debug)]
pub struct Rotation {
    pub token: String,
    pub steps: Vec<StepReport>,
    pub labels: Labels,
}

impl Options {
    /// What Secrets Manager uses for `binary`'s function: its ARN, a minute per step, no resume.
    pub fn new(binary: &str) -> Self {
        Self {
            resume: false,
            lambda_arn: stack::function_arn(binary),
            step_timeout: Duration::from_secs(60),
        }
    }

    pub fn resuming(self) -> Self {
        Self {
            resume: true,
            ..self
        }
    }
}

impl Rotation {
    pub fn succeeded(&self) -> bool {
        self.steps.len() == 4 && self.steps.iter().all(|s| s.result.is_ok())
    }
}

/// Starts (or resumes) a rotation and runs the four steps, stopping at the first failure.
/// `Err` means the rotation could not start; step failures are in the report.
pub async fn rotate(
    client: &Client,
    function: &mut Function,
    secret_id: &str,
    opts: &Options,
) -> Result<Rotation, String> {
    let store = AwsStore::new(client.clone());
    let meta = store.describe(secret_id).await.map_err(|e| e.to_string())?;
    let token = match meta.labels.rotation_in_progress() {
        Some(pending) if opts.resume => pending.to_owned(),
        Some(pending) => {
            return Err(format!(
                "a previous rotation of {} isn't complete (AWSPENDING is on version {pending}); \
                 rerun with --resume to retry it",
                meta.arn
            ));
        }
        None => {
            let token = shared::random::version_id();
            stack::begin_rotation(client, &meta.arn, &token, &opts.lambda_arn).await?;
            token
        }
    };
    retry(client, function, &meta.arn, &token, opts).await
}

/// Rotates and panics, with the steps and the function's output, unless all four steps succeeded.
pub async fn rotate_ok(
    client: &Client,
    function: &mut Function,
    secret_id: &str,
    opts: &Options,
) -> Rotation {
    let r = rotate(client, function, secret_id, opts).await.unwrap();
    assert!(
        r.succeeded(),
        "{:?}\n{}",
        r.steps,
        function.output().join("\n")
    );
    r
}

/// Begins a rotation (as `RotateSecret` does) and runs `steps` of it, each of which must succeed;
/// returns the rotation's token.
pub async fn begin_and_run(
    client: &Client,
    function: &mut Function,
    arn: &str,
    lambda_arn: &str,
    steps: &[Step],
) -> String {
    let token = shared::random::version_id();
    stack::begin_rotation(client, arn, &token, lambda_arn)
        .await
        .unwrap();
    for s in steps {
        step(function, *s, arn, &token, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    token
}

/// Invokes the function's read-only pre-flight check for a secret; its report.
pub async fn preflight(
    function: &mut Function,
    secret_id: &str,
) -> Result<serde_json::Value, String> {
    function.ensure_running().await.map_err(|e| e.to_string())?;
    let event = json!({"Step": "preflight", "SecretId": secret_id});
    match function.invoke(&event, Duration::from_secs(60)).await {
        Ok(Reply::Response(report)) => Ok(report),
        Ok(Reply::Error(message)) => Err(message),
        Err(e) => Err(e.to_string()),
    }
}

/// The report as lines: one per check, status first.
pub fn format_report(report: &serde_json::Value) -> String {
    let mut out = format!(
        "preflight of {}: {}\n",
        report["secret"].as_str().unwrap_or_default(),
        report["preflight"].as_str().unwrap_or_default()
    );
    for c in report["checks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<13} {:<24} {}\n",
            c["status"].as_str().unwrap_or_default(),
            c["check"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        ));
    }
    out
}

/// Invokes one step for `token` as Secrets Manager does (with a `RotationToken`); `Err` is the
/// function's error message, or why it gave none.
pub async fn step(
    function: &mut Function,
    step: Step,
    arn: &str,
    token: &str,
    timeout: Duration,
) -> Result<(), String> {
    let event = json!({
        "Step": step.as_str(),
        "SecretId": arn,
        "ClientRequestToken": token,
        "RotationToken": shared::random::version_id(),
    });
    match function.invoke(&event, timeout).await {
        Ok(Reply::Response(_)) => Ok(()),
        Ok(Reply::Error(message)) => Err(message),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the four steps for a known token, as Secrets Manager does when it retries a failed
/// rotation: it remembers the token even after the labels moved.
pub async fn retry(
    client: &Client,
    function: &mut Function,
    arn: &str,
    token: &str,
    opts: &Options,
) -> Result<Rotation, String> {
    let mut steps = Vec::new();
    for step in Step::ALL {
        let started = Instant::now();
        function.ensure_running().await.map_err(|e| e.to_string())?;
        let result = self::step(function, step, arn, token, opts.step_timeout).await;
        let failed = result.is_err();
        steps.push(StepReport {
            step,
            result,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        });
        if failed {
            break;
        }
    }
    let store = AwsStore::new(client.clone());
    if steps.len() == Step::ALL.len() && steps.iter().all(|s| s.result.is_ok()) {
        end_rotation(&store, arn, token).await?;
    }
    let labels = store.describe(arn).await.map_err(|e| e.to_string())?.labels;
    Ok(Rotation {
        token: token.to_owned(),
        steps,
        labels,
    })
}

/// What Secrets Manager does once finishSecret succeeded: takes `AWSPENDING` off the new current
/// version, where finishSecret leaves it. moto does not, and would then see the next rotation as
/// one in progress.
pub async fn end_rotation(store: &AwsStore, arn: &str, token: &str) -> Result<(), String> {
    let labels = store.describe(arn).await.map_err(|e| e.to_string())?.labels;
    if labels.has(token, AWSCURRENT) && labels.has(token, AWSPENDING) {
        store
            .move_stage(arn, AWSPENDING, None, Some(token))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The label map as a small table, one version a line.
pub fn format_labels(labels: &Labels) -> String {
    let mut rows: Vec<_> = labels.0.iter().filter(|(_, s)| !s.is_empty()).collect();
    rows.sort_by_key(|(_, s)| s.iter().map(|l| label_rank(l)).min());
    rows.iter()
        .map(|(id, stages)| format!("  {id}  {}", stages.join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn label_rank(label: &str) -> u8 {
    match label {
        "AWSCURRENT" => 0,
        "AWSPENDING" => 1,
        "AWSPREVIOUS" => 2,
        _ => 3,
    }
}
