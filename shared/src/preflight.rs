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
use std::time::{Duration, SystemTime};

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
    /// For each action on `resource`, with the request's condition keys `context`: allowed, or
    /// why not. `Err`: the simulation itself could not run.
    async fn simulate(
        &self,
        actions: &[&str],
        resource: &str,
        context: &[(&str, &str)],
    ) -> Result<Vec<(String, bool, String)>, String>;
}

/// What a simulation cannot see, said wherever one decides a check.
const UNSEEN: &str = "the simulation sees the role's policies, its permissions boundary and the \
    organization's service control policies, not resource policies, resource control policies or \
    VPC endpoint policies";

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
    // A pre-flight starts as it is invoked: the time left is the function's time limit.
    let time_limit = deadline.and_then(|d| d.duration_since(SystemTime::now()).ok());
    let mut checks = vec![Check::ok(
        "secret",
        format!("DescribeSecret {} works", meta.arn),
    )];
    // Nothing more of a secret this function does not rotate: its checks would act (read other
    // secrets, call the service) for whoever pointed the secret here.
    if let Err(why) = store.may_rotate(&meta.arn) {
        checks.push(Check::failed("rotated secrets", why));
        return checks;
    }
    checks.push(Check::ok(
        "rotated secrets",
        format!("{} names this secret", crate::rotated::ENV),
    ));
    checks.extend(rotation_checks(&meta, function_arn));
    checks.push(window_check(&meta, time_limit));
    let arn = meta.arn.clone();
    let key = meta.kms_key_id.clone();
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
    checks.push(kms_check(writes, &arn, key.as_deref(), readable).await);
    if readable {
        checks.extend(target.check(&v, retire).await);
        if let Some(w) = writes {
            checks.extend(service_write_checks(w, target, &v, retire).await);
        }
    }
    checks
}

/// The four steps at the function's time limit against the rotation window Secrets Manager
/// rotates within (`RotationRules`: `Duration`, else an hour for a schedule in hours and the rest
/// of the UTC day for one in days).
fn window_check(meta: &SecretMeta, time_limit: Option<Duration>) -> Check {
    const NAME: &str = "rotation window";
    let Some(schedule) = meta.rotation_schedule.as_deref() else {
        return Check::not_verified(NAME, "no rotation schedule is set");
    };
    let window = match meta.rotation_window.as_deref() {
        Some(d) => match d.strip_suffix('h').and_then(|h| h.parse::<u64>().ok()) {
            Some(h) => Duration::from_secs(h * 3600),
            None => return Check::not_verified(NAME, format!("the window {d:?} is not in hours")),
        },
        None if schedule.starts_with("rate(") && schedule.contains("hour") => {
            Duration::from_secs(3600)
        }
        None if schedule.starts_with("rate(") || schedule.starts_with("every ") => {
            Duration::from_secs(24 * 3600)
        }
        None => {
            return Check::not_verified(
                NAME,
                format!("{schedule} sets no Duration; its default window is not computed here"),
            );
        }
    };
    let Some(limit) = time_limit else {
        return Check::not_verified(
            NAME,
            "the function's time limit is unknown here (the invocation has no deadline)",
        );
    };
    let limit = Duration::from_secs(limit.as_secs_f64().ceil() as u64);
    let steps = limit * 4;
    let say = |d: Duration| match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    };
    if steps > window {
        Check::failed(
            NAME,
            format!(
                "the {} window of {schedule} is shorter than the four steps at the function's time limit (4 x {}): \
                 a rotation started late in the window runs past it; raise RotationRules.Duration or lower the timeout",
                say(window),
                say(limit)
            ),
        )
    } else {
        Check::ok(
            NAME,
            format!(
                "the {} window of {schedule} holds the four steps at the function's time limit (4 x {})",
                say(window),
                say(limit)
            ),
        )
    }
}

/// The secret's customer managed key: `GetSecretValue` decrypting `AWSCURRENT` proved
/// `kms:Decrypt`; `PutSecretValue` needs `kms:GenerateDataKey`, simulated for the role through
/// Secrets Manager (`kms:ViaService`). The key policy is not part of the simulation.
async fn kms_check(
    writes: Option<&dyn WriteAccess>,
    secret_arn: &str,
    key: Option<&str>,
    read: bool,
) -> Check {
    const NAME: &str = "KMS key";
    let key = match key {
        None | Some("alias/aws/secretsmanager") => {
            return Check::ok(
                NAME,
                "the secret uses the AWS managed key aws/secretsmanager, which every principal of the account may use through Secrets Manager",
            );
        }
        Some(k) => k,
    };
    // arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME
    let parts: Vec<&str> = secret_arn.splitn(6, ':').collect();
    let [_, partition, _, region, account, _] = parts[..] else {
        return Check::not_verified(NAME, format!("{secret_arn} is not a secret ARN"));
    };
    let key_arn = if key.starts_with("arn:") && key.contains(":key/") {
        key.to_owned()
    } else if key.contains("alias/") {
        return Check::not_verified(
            NAME,
            format!(
                "the secret names its key by the alias {key}; the simulation needs the key's ARN (kms:DescribeKey is not granted)"
            ),
        );
    } else {
        format!("arn:{partition}:kms:{region}:{account}:key/{key}")
    };
    let decrypt = if read {
        "kms:Decrypt works (GetSecretValue decrypted AWSCURRENT)"
    } else {
        "kms:Decrypt is not proven (AWSCURRENT was not read)"
    };
    let Some(w) = writes else {
        return Check::not_verified(
            NAME,
            format!(
                "{key_arn}: {decrypt}; kms:GenerateDataKey, which PutSecretValue needs, is not verified"
            ),
        );
    };
    let via = format!("secretsmanager.{region}.amazonaws.com");
    let actions = ["kms:GenerateDataKey"];
    match w
        .simulate(&actions, &key_arn, &[("kms:ViaService", via.as_str())])
        .await
    {
        Err(why) => Check::not_verified(
            NAME,
            format!("{key_arn}: {decrypt}; kms:GenerateDataKey is not verified: {why}"),
        ),
        Ok(results) => match results.iter().find(|(_, allowed, _)| !allowed) {
            Some((action, _, why)) => Check::failed(
                NAME,
                format!(
                    "the function's role may not call {action} on {key_arn} through Secrets Manager ({why}), so PutSecretValue will fail"
                ),
            ),
            None => Check::ok(
                NAME,
                format!(
                    "{key_arn}: {decrypt}; the role's policies allow kms:GenerateDataKey through Secrets Manager. \
                     The key policy must allow it too: {UNSEEN}"
                ),
            ),
        },
    }
}

/// The calls the target makes on its own AWS service (e.g. `iam:CreateAccessKey`), simulated.
async fn service_write_checks(
    w: &dyn WriteAccess,
    target: &dyn Target,
    v: &Versions<'_>,
    retire: Retire,
) -> Vec<Check> {
    const NAME: &str = "service permissions";
    let calls = match target.aws_writes(v, retire).await {
        Ok(calls) => calls,
        Err(why) => return vec![Check::not_verified(NAME, why)],
    };
    let mut checks = Vec::new();
    for (actions, resource) in calls {
        checks.push(match w.simulate(&actions, &resource, &[]).await {
            Err(why) => Check::not_verified(
                NAME,
                format!(
                    "{} on {resource} are not verified: {why}",
                    actions.join(", ")
                ),
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
                            "the function's role may call {} on {resource}; {UNSEEN}",
                            actions.join(", ")
                        ),
                    )
                } else {
                    Check::failed(
                        NAME,
                        format!(
                            "the function's role may not call {} on {resource}",
                            denied.join(", ")
                        ),
                    )
                }
            }
        });
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
    let context: Vec<(&str, &str)> = function_arn
        .map(|f| ("secretsmanager:resource/AllowRotationLambdaArn", f))
        .into_iter()
        .collect();
    match w.simulate(&actions, arn, &context).await {
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
            rotation_window: None,
            kms_key_id: None,
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

    /// IAM's answer for a role whose policies allow `allowed` and whose organization's service
    /// control policies deny the rest (moto has no SimulatePrincipalPolicy); records each request.
    struct Simulated {
        allowed: Vec<&'static str>,
        asked: std::sync::Mutex<Vec<(String, String)>>,
    }

    #[async_trait::async_trait]
    impl WriteAccess for Simulated {
        async fn simulate(
            &self,
            actions: &[&str],
            resource: &str,
            context: &[(&str, &str)],
        ) -> Result<Vec<(String, bool, String)>, String> {
            self.asked
                .lock()
                .unwrap()
                .push((resource.to_owned(), format!("{context:?}")));
            Ok(actions
                .iter()
                .map(|a| {
                    let allowed = self.allowed.contains(a);
                    let why = if allowed {
                        "allowed"
                    } else {
                        "explicitDeny by a service control policy"
                    };
                    (a.to_string(), allowed, why.to_owned())
                })
                .collect())
        }
    }

    fn simulated(allowed: &[&'static str]) -> Simulated {
        Simulated {
            allowed: allowed.to_vec(),
            asked: Default::default(),
        }
    }

    const SECRET: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-AbCdEf";

    /// #23.7: a customer key is simulated for the role on the key's ARN through Secrets Manager
    /// (the condition the templates grant it under); the read proves kms:Decrypt; the message
    /// says what the simulation cannot see; an alias cannot be simulated and says so.
    #[tokio::test]
    async fn a_customer_key_is_simulated_through_secrets_manager() {
        let key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let w = simulated(&["kms:GenerateDataKey"]);
        let c = kms_check(
            Some(&w),
            SECRET,
            Some("1234abcd-12ab-34cd-56ef-1234567890ab"),
            true,
        )
        .await;
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(
            c.message.contains(key) && c.message.contains("kms:Decrypt works"),
            "{c:?}"
        );
        assert!(c.message.contains("not resource policies"), "{c:?}");
        let asked = w.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].0, key);
        assert!(
            asked[0]
                .1
                .contains("(\"kms:ViaService\", \"secretsmanager.eu-west-1.amazonaws.com\")"),
            "{asked:?}"
        );

        let c = kms_check(Some(&simulated(&[])), SECRET, Some(key), true).await;
        assert_eq!(c.status, Status::Failed, "{c:?}");
        assert!(
            c.message.contains("kms:GenerateDataKey")
                && c.message.contains("service control policy"),
            "{c:?}"
        );
        let c = kms_check(Some(&w), SECRET, Some("alias/orders"), true).await;
        assert_eq!(c.status, Status::NotVerified, "{c:?}");
        let c = kms_check(None, SECRET, Some(key), false).await;
        assert_eq!(c.status, Status::NotVerified, "{c:?}");
        assert!(c.message.contains("kms:Decrypt is not proven"), "{c:?}");
        let c = kms_check(Some(&w), SECRET, None, true).await;
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.message.contains("aws/secretsmanager"), "{c:?}");
    }

    /// #23.7: the rotation window against the four steps at the function's time limit.
    #[test]
    fn the_rotation_window_must_hold_the_four_steps() {
        let with = |schedule: Option<&str>, window: Option<&str>| {
            let mut m = meta(true, Some("arn:f"), false);
            m.rotation_schedule = schedule.map(str::to_owned);
            m.rotation_window = window.map(str::to_owned);
            m
        };
        let minute = Some(Duration::from_secs(60));
        let c = window_check(&with(Some("rate(4 hours)"), None), minute);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(
            c.message.contains("1h window") && c.message.contains("4 x 1 min"),
            "{c:?}"
        );
        // Lambda's longest time limit, 15 minutes, just fits the shortest window.
        let c = window_check(
            &with(Some("rate(4 hours)"), None),
            Some(Duration::from_millis(899_400)),
        );
        assert_eq!(c.status, Status::Ok, "{c:?}");
        let c = window_check(
            &with(Some("rate(4 hours)"), Some("1h")),
            Some(Duration::from_secs(901)),
        );
        assert_eq!(c.status, Status::Failed, "{c:?}");
        assert!(c.message.contains("RotationRules.Duration"), "{c:?}");
        let c = window_check(&with(Some("cron(0 8 * * ? *)"), Some("2h")), minute);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.message.contains("2h window"), "{c:?}");
        for (schedule, window, limit) in [
            (Some("cron(0 8 * * ? *)"), None, minute),
            (None, None, minute),
            (Some("rate(4 hours)"), None, None),
        ] {
            let c = window_check(&with(schedule, window), limit);
            assert_eq!(c.status, Status::NotVerified, "{c:?}");
        }
        let c = window_check(&with(Some("every 30 days"), None), minute);
        assert_eq!(c.status, Status::Ok, "{c:?}");
    }

    /// The write check asks about the secret with the function as its rotation function.
    #[tokio::test]
    async fn the_write_check_names_this_function_as_the_rotation_function() {
        let w = simulated(&["secretsmanager:PutSecretValue"]);
        let c = write_check(&w, SECRET, Some("arn:f")).await;
        assert_eq!(c.status, Status::Failed, "{c:?}");
        assert!(
            c.message.contains(
                "secretsmanager:UpdateSecretVersionStage (explicitDeny by a service control policy)"
            ),
            "{c:?}"
        );
        let asked = w.asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            [(
                SECRET.to_owned(),
                "[(\"secretsmanager:resource/AllowRotationLambdaArn\", \"arn:f\")]".to_owned()
            )]
        );
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
