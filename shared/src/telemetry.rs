//! JSON logs (tracing) and CloudWatch Embedded Metric Format lines.
//!
//! Every log line of a step carries the secret, the step and the version through the step's span;
//! each step ends with one summary line and one EMF line, from which CloudWatch derives the
//! `StepFailed`, `StepSucceeded` and `StepDuration` metrics without any API call.

use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::EnvFilter;

pub const DEFAULT_NAMESPACE: &str = "SecretsRotation";

/// JSON lines on stdout; level from `LOG_LEVEL` (or `RUST_LOG`), `info` by default.
pub fn init() {
    let filter = ["LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|name| crate::config::non_empty_env(name))
        .map(EnvFilter::new)
        .unwrap_or_else(|| EnvFilter::new("info"))
        // Database drivers log statement text, which for a password change holds the password
        // (or its verifier). tokio-postgres logs through `log`, which is not bridged here; this
        // keeps it quiet should a bridge ever be added.
        .add_directive("tokio_postgres=warn".parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_writer(std::io::stdout)
        .try_init();
}

static ROTATOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the rotator in metrics that are not tied to a step's summary.
pub fn set_rotator(name: &str) {
    let _ = ROTATOR.set(name.to_owned());
}

fn namespace() -> String {
    crate::config::non_empty_env("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The EMF document of `PreviousCredentialInUse` (count 1, by `Rotator`).
pub fn previous_in_use_emf(secret: &str, credential: &str) -> serde_json::Value {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_millis(),
            "CloudWatchMetrics": [{
                "Namespace": namespace(),
                "Dimensions": [["Rotator"]],
                "Metrics": [{"Name": "PreviousCredentialInUse", "Unit": "Count"}]
            }]
        },
        "Rotator": ROTATOR.get().map(String::as_str).unwrap_or("unknown"),
        "PreviousCredentialInUse": 1,
        "SecretId": secret,
        "CredentialId": credential,
    })
}

pub fn previous_in_use(secret: &str, credential: &str) {
    println!("{}", previous_in_use_emf(secret, credential));
}

pub struct StepMetric<'a> {
    pub rotator: &'a str,
    pub step: &'a str,
    pub secret: &'a str,
    pub version: &'a str,
    pub duration_ms: f64,
    /// `None` on success, else the error kind.
    pub failure: Option<&'a str>,
}

impl StepMetric<'_> {
    /// The EMF document: metrics by `Rotator` and by `Rotator`+`Step`.
    pub fn to_emf(&self) -> serde_json::Value {
        let namespace = namespace();
        let millis = now_millis();
        let failed = u8::from(self.failure.is_some());
        serde_json::json!({
            "_aws": {
                "Timestamp": millis,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Rotator"], ["Rotator", "Step"]],
                    "Metrics": [
                        {"Name": "StepFailed", "Unit": "Count"},
                        {"Name": "StepSucceeded", "Unit": "Count"},
                        {"Name": "StepDuration", "Unit": "Milliseconds"}
                    ]
                }]
            },
            "Rotator": self.rotator,
            "Step": self.step,
            "StepFailed": failed,
            "StepSucceeded": 1 - failed,
            "StepDuration": self.duration_ms,
            "SecretId": self.secret,
            "Version": self.version,
            "ErrorKind": self.failure,
        })
    }

    pub fn emit(&self) {
        println!("{}", self.to_emf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_its_metrics() {
        let m = StepMetric {
            rotator: "r",
            step: "setSecret",
            secret: "arn:s",
            version: "v",
            duration_ms: 12.5,
            failure: Some("target"),
        };
        let doc = m.to_emf();
        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        for metric in declared["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc.get(name).is_some(), "metric {name} has no value");
        }
        assert_eq!(doc["StepFailed"], 1);
        assert_eq!(doc["StepSucceeded"], 0);
        assert_eq!(doc["Step"], "setSecret");
    }

    #[test]
    fn previous_in_use_declares_its_metric() {
        let doc = previous_in_use_emf("arn:s", "AKIA1");
        let declared = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"];
        assert_eq!(declared, "PreviousCredentialInUse");
        assert_eq!(doc["PreviousCredentialInUse"], 1);
        assert_eq!(doc["CredentialId"], "AKIA1");
    }
}
