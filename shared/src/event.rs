//! The rotation event Secrets Manager sends, parsed into our own type.
//!
//! `aws_lambda_events` has no `RotationToken`, and its serde errors do not say which field is wrong,
//! so the parsing here is by hand and every error names the field.

use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Create,
    Set,
    Test,
    Finish,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Create, Step::Set, Step::Test, Step::Finish];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "createSecret",
            Step::Set => "setSecret",
            Step::Test => "testSecret",
            Step::Finish => "finishSecret",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub step: Step,
    pub secret_id: String,
    /// `ClientRequestToken`: the version id of the secret being rotated to.
    pub token: String,
    /// Passed on to `PutSecretValue` when Secrets Manager sends it.
    pub rotation_token: Option<String>,
}

impl RotationEvent {
    pub fn new(step: Step, secret_id: &str, token: &str) -> Self {
        Self {
            step,
            secret_id: secret_id.to_owned(),
            token: token.to_owned(),
            rotation_token: None,
        }
    }

    pub fn from_value(event: &Value) -> Result<Self, String> {
        let Value::Object(map) = event else {
            return Err("the event is not a JSON object".into());
        };
        let field = |name: &str, required: bool| -> Result<Option<String>, String> {
            match map.get(name) {
                None | Some(Value::Null) if required => Err(format!("field `{name}` is missing")),
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => check_printable(name, s).map(|_| Some(s.clone())),
                Some(_) => Err(format!("field `{name}` must be a string")),
            }
        };
        let step_name = field("Step", true)?.unwrap_or_default();
        let step = Step::parse(&step_name).ok_or_else(|| {
            format!(
                "field `Step` is `{}`, expected one of createSecret, setSecret, testSecret, finishSecret",
                step_name.escape_debug()
            )
        })?;
        Ok(Self {
            step,
            secret_id: field("SecretId", true)?.unwrap_or_default(),
            token: field("ClientRequestToken", true)?.unwrap_or_default(),
            rotation_token: field("RotationToken", false)?,
        })
    }
}

fn check_printable(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("field `{name}` is empty"));
    }
    if value.len() > 2048 {
        return Err(format!("field `{name}` is longer than 2048 bytes"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(format!("field `{name}` contains a non-printable character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_full_event() {
        let e = RotationEvent::from_value(&json!({
            "Step": "setSecret", "SecretId": "arn:x", "ClientRequestToken": "t1", "RotationToken": "r1"
        }))
        .unwrap();
        assert_eq!(e.step, Step::Set);
        assert_eq!(e.secret_id, "arn:x");
        assert_eq!(e.token, "t1");
        assert_eq!(e.rotation_token.as_deref(), Some("r1"));
    }

    #[test]
    fn rotation_token_is_optional() {
        let e = RotationEvent::from_value(
            &json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t"}),
        )
        .unwrap();
        assert_eq!(e.rotation_token, None);
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (json!([]), "not a JSON object"),
            (
                json!({"SecretId": "s", "ClientRequestToken": "t"}),
                "`Step` is missing",
            ),
            (
                json!({"Step": "dropSecret", "SecretId": "s", "ClientRequestToken": "t"}),
                "`Step` is `dropSecret`",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "", "ClientRequestToken": "t"}),
                "`SecretId` is empty",
            ),
            (
                json!({"Step": "setSecret", "SecretId": 7, "ClientRequestToken": "t"}),
                "`SecretId` must be a string",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s"}),
                "`ClientRequestToken` is missing",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "t\u{7}"}),
                "`ClientRequestToken` contains a non-printable",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": ""}),
                "`RotationToken` is empty",
            ),
        ];
        for (event, expected) in cases {
            let err = RotationEvent::from_value(&event).unwrap_err();
            assert!(
                err.contains(expected),
                "{event}: got `{err}`, want `{expected}`"
            );
        }
    }
}
