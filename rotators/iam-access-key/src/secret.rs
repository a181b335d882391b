//! The secret's JSON: `{"UserName", "AccessKeyId", "SecretAccessKey"}`; other fields are kept.

use serde_json::{Map, Value};
use shared::{Error, SecretString};

/// `Debug` shows the user and key id only: other fields are part of the secret value.
#[derive(Clone)]
pub struct KeySecret {
    pub user: String,
    pub key_id: String,
    pub secret_key: SecretString,
    /// Every field but the secret key, to write back unchanged.
    others: Map<String, Value>,
}

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySecret")
            .field("user", &self.user)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KeySecret {
    pub fn parse(value: &SecretString, stage: &'static str) -> Result<Self, Error> {
        let bad = |problem: String| Error::value(stage, problem);
        let mut others = value.json_object().map_err(bad)?;
        let secret_key = match others.remove("SecretAccessKey") {
            Some(Value::String(s)) if !s.is_empty() => SecretString::new(s),
            Some(Value::String(_)) => return Err(bad("field `SecretAccessKey` is empty".into())),
            Some(_) => return Err(bad("field `SecretAccessKey` must be a string".into())),
            None => return Err(bad("field `SecretAccessKey` is missing".into())),
        };
        let text = |name: &str| match others.get(name) {
            Some(Value::String(s)) if !s.is_empty() && !s.chars().any(char::is_control) => {
                Ok(s.clone())
            }
            Some(Value::String(_)) => Err(bad(format!(
                "field `{name}` is empty or has control characters"
            ))),
            Some(_) => Err(bad(format!("field `{name}` must be a string"))),
            None => Err(bad(format!("field `{name}` is missing"))),
        };
        Ok(Self {
            user: text("UserName")?,
            key_id: text("AccessKeyId")?,
            secret_key,
            others,
        })
    }

    /// This secret with another key, every other field kept.
    pub fn with_key(&self, key_id: &str, secret_key: &str) -> SecretString {
        let mut fields = self.others.clone();
        fields.insert("AccessKeyId".into(), key_id.into());
        fields.insert("SecretAccessKey".into(), secret_key.into());
        SecretString::from_json(&fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_other_fields_and_names_bad_ones() {
        let s = KeySecret::parse(
            &SecretString::from(
                r#"{"UserName":"u","AccessKeyId":"AK1","SecretAccessKey":"sk1","Team":"x"}"#,
            ),
            "AWSCURRENT",
        )
        .unwrap();
        let v: Value = serde_json::from_str(s.with_key("AK2", "sk2").expose()).unwrap();
        assert_eq!(
            (
                v["UserName"].as_str(),
                v["AccessKeyId"].as_str(),
                v["Team"].as_str()
            ),
            (Some("u"), Some("AK2"), Some("x"))
        );
        for (json, want) in [
            (
                r#"{"AccessKeyId":"AK1","SecretAccessKey":"sk-hidden"}"#,
                "field `UserName` is missing",
            ),
            (
                r#"{"UserName":1,"AccessKeyId":"AK1","SecretAccessKey":"sk-hidden"}"#,
                "field `UserName` must be a string",
            ),
            (
                r#"{"UserName":"u","SecretAccessKey":"sk-hidden"}"#,
                "field `AccessKeyId` is missing",
            ),
            (
                r#"{"UserName":"u","AccessKeyId":"AK1"}"#,
                "field `SecretAccessKey` is missing",
            ),
            (
                r#"{"UserName":"u","AccessKeyId":"AK1","SecretAccessKey":"sk-hidden""#,
                "not valid JSON",
            ),
        ] {
            let err = KeySecret::parse(&SecretString::from(json), "AWSCURRENT")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(want) && err.contains("AWSCURRENT"),
                "{json}: {err}"
            );
            assert!(!err.contains("sk-hidden"), "{err}");
        }
    }
}
