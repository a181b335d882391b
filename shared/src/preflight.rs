//! The read-only pre-flight check: invoked with `{"Step": "preflight", "SecretId": "..."}`, a
//! function proves, without changing anything, what the four steps will need, and answers with a
//! report: one entry per check, `ok`, `failed` or `not verified`, with a message that names the
//! field, host or permission, never a value. The protocol checks the Secrets Manager side (the
//! secret, rotation configured for this function, no rotation in progress, the schedule, reading
//! `AWSCURRENT`, the write permissions); the target's `check` hook checks its service.

use crate::config::Retire;
use crate::error::Error;
use crate::store::{SecretMeta, SecretStore};
use crate::target::{Target, Versions};
use serde_json::{Value, json};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
    NotVerified,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::NotVerified => "not verified",
        }
    }
}

/// One check of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub message: String,
}

impl Check {
    pub fn ok(name: &str, message: impl Into<String>) -> Self {
        Self::new(name, Status::Ok, message)
    }

    pub fn failed(name: &str, message: impl Into<String>) -> Self {
        Self::new(name, Status::Failed, message)
    }

    pub fn not_verified(name: &str, message: impl Into<String>) -> Self {
        Self::new(name, Status::NotVerified, message)
    }

    /// `ok` with `message`, or `failed` with the error the failing step would give.
    pub fn of<T>(name: &str, message: impl Into<String>, result: Result<T, Error>) -> Self {
        match result {
            Ok(_) => Self::ok(name, message),
            Err(e) => Self::failed(name, e.to_string()),
        }
    }

    fn new(name: &str, status: Status, message: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"check": self.name, "status": self.status.as_str(), "message": self.message})
    }
}

/// The `AWSCURRENT` value parsed by the target's own parser, or the failed check that reports it
/// with the message the failing step would give.
pub async fn current_as<T>(
    v: &Versions<'_>,
    parse: impl FnOnce(&crate::SecretString, &'static str) -> Result<T, Error>,
) -> Result<T, Check> {
    v.current()
        .await
        .and_then(|c| parse(c, crate::store::AWSCURRENT))
        .map_err(|e| Check::failed("AWSCURRENT value", e.to_string()))
}

/// What the protocol's checks need beyond the store: whether the function may make the write
/// calls (`iam:SimulatePrincipalPolicy`), when the deployment can tell.
#[async_trait::async_trait]
pub trait WriteAccess: Send + Sync {
    /// For each action: allowed, or why not. `Err`: the simulation itself could not run.
    async fn simulate(
        &self,
        actions: &[&str],
        resource: &str,
        function_arn: Option<&str>,
    ) -> Result<Vec<(String, bool, String)>, String>;
}

/// The report: `result` is `failed` when any check failed.
pub fn report(rotator: &str, secret: &str, checks: &[Check]) -> Value {
    let failed = checks.iter().any(|c| c.status == Status::Failed);
    json!({
        "preflight": if failed { "failed" } else { "ok" },
        "rotator": rotator,
        "secret": secret,
        "checks": checks.iter().map(Check::to_json).collect::<Vec<_>>(),
    })
}

/// Runs every check against the secret; reads only.
pub async fn run(
    store: &dyn SecretStore,
    target: &dyn Target,
    secret_id: &str,
    function_arn: Option<&str>,
    deadline: Option<SystemTime>,
    retire: Retire,
    writes: Option<&dyn WriteAccess>,
) -> Vec<Check> {
    let meta = match store.describe(secret_id).await {
        Ok(meta) => meta,
        Err(e) => {
            let e = Error::from(e);
            return vec![Check::failed("secret", e.to_string())];
        }
    };
    let mut checks = vec![Check::ok(
        "secret",
        format!("DescribeSecret {} works", meta.arn),
    )];
    checks.extend(rotation_checks(&meta, function_arn));
    let arn = meta.arn.clone();
    // The version a rotation would create: none yet, so the target sees AWSCURRENT and
    // AWSPREVIOUS only.
    let v = Versions::new(store, meta, "preflight", deadline);
    let current = v.current().await.map(drop);
    let readable = current.is_ok();
    checks.push(Check::of(
        "read AWSCURRENT",
        "GetSecretValue AWSCURRENT works",
        current,
    ));
    checks.push(match writes {
        None => Check::not_verified(
            "write permissions",
            "PutSecretValue and UpdateSecretVersionStage are not verified (a pre-flight never writes)",
        ),
        Some(w) => write_check(w, &arn, function_arn).await,
    });
    if readable {
        checks.extend(target.check(&v, retire).await);
    }
    checks
}

/// Rotation configured for this function, no rotation in progress, the schedule.
fn rotation_checks(meta: &SecretMeta, function_arn: Option<&str>) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match (&meta.rotation_enabled, &meta.rotation_lambda_arn, function_arn) {
        (false, _, _) => Check::not_verified(
            "rotation configured",
            "rotation is not enabled yet: turn it on with `aws secretsmanager rotate-secret --rotation-lambda-arn` this function's ARN",
        ),
        (true, Some(theirs), Some(ours)) if theirs != ours => Check::failed(
            "rotation configured",
            format!("rotation is enabled with the function {theirs}, not this function {ours}"),
        ),
        (true, _, _) => Check::ok("rotation configured", "rotation is enabled with this function"),
    });
    checks.push(match meta.labels.rotation_in_progress() {
        Some(v) => Check::failed(
            "no rotation in progress",
            format!(
                "AWSPENDING is on version {v}: a rotation is in progress or stuck, and rotate-secret refuses a new one \
                 until it completes (Secrets Manager retries it) or AWSPENDING is removed from that version"
            ),
        ),
        None => Check::ok("no rotation in progress", "no version but AWSCURRENT's carries AWSPENDING"),
    });
    checks.push(match &meta.rotation_schedule {
        Some(s) => Check::ok("schedule", format!("rotates on the schedule {s}")),
        None => Check::not_verified("schedule", "no rotation schedule is set"),
    });
    checks
}

async fn write_check(w: &dyn WriteAccess, arn: &str, function_arn: Option<&str>) -> Check {
    const NAME: &str = "write permissions";
    let actions = [
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    ];
    match w.simulate(&actions, arn, function_arn).await {
        Err(why) => Check::not_verified(
            NAME,
            format!("PutSecretValue and UpdateSecretVersionStage are not verified: {why}"),
        ),
        Ok(results) => {
            let denied: Vec<String> = results
                .iter()
                .filter(|(_, allowed, _)| !allowed)
                .map(|(action, _, why)| format!("{action} ({why})"))
                .collect();
            if denied.is_empty() {
                Check::ok(
                    NAME,
                    format!(
                        "the function's role may call {} on the secret",
                        actions.join(" and ")
                    ),
                )
            } else {
                Check::failed(
                    NAME,
                    format!("the function's role may not call {}", denied.join(", ")),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Labels;

    fn meta(enabled: bool, lambda: Option<&str>, pending_elsewhere: bool) -> SecretMeta {
        let mut labels = Labels::default();
        labels.label_new_version("v1", &["AWSCURRENT"]);
        if pending_elsewhere {
            labels.label_new_version("v2", &["AWSPENDING"]);
        }
        SecretMeta {
            arn: "arn:s".into(),
            rotation_enabled: enabled,
            rotation_lambda_arn: lambda.map(str::to_owned),
            rotation_schedule: None,
            labels,
            tags: vec![],
        }
    }

    #[test]
    fn rotation_settings_are_judged() {
        let status = |m: &SecretMeta| {
            rotation_checks(m, Some("arn:f"))
                .iter()
                .map(|c| c.status)
                .collect::<Vec<_>>()
        };
        use Status::*;
        assert_eq!(
            status(&meta(false, None, false)),
            [NotVerified, Ok, NotVerified]
        );
        assert_eq!(
            status(&meta(true, Some("arn:f"), false)),
            [Ok, Ok, NotVerified]
        );
        assert_eq!(
            status(&meta(true, Some("arn:other"), false)),
            [Failed, Ok, NotVerified]
        );
        let stuck = rotation_checks(&meta(true, Some("arn:f"), true), Some("arn:f"));
        assert_eq!(stuck[1].status, Failed);
        assert!(stuck[1].message.contains("version v2"), "{:?}", stuck[1]);
    }

    #[test]
    fn the_report_fails_when_a_check_failed() {
        let r = report(
            "r",
            "arn:s",
            &[Check::ok("a", "fine"), Check::not_verified("b", "?")],
        );
        assert_eq!(r["preflight"], "ok");
        let r = report("r", "arn:s", &[Check::failed("a", "field `x` is missing")]);
        assert_eq!(r["preflight"], "failed");
        assert_eq!(r["checks"][0]["status"], "failed");
    }
}
