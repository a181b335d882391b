//! `SecretString`: the one type that holds a credential in memory.
//!
//! It prints as `[redacted]` in `Debug` and `Display`, so a secret cannot reach a log line or an
//! error message by accident, and its buffer is zeroed when dropped.

use std::fmt;
use zeroize::Zeroizing;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The plaintext. Call it only where the value leaves for the service or the store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Parses the value as a JSON object; the error names the problem, never the content.
    pub fn json_object(&self) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        match serde_json::from_str::<serde_json::Value>(self.expose()) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err("the secret value is JSON but not an object".into()),
            // serde_json's message carries only line and column, not the input.
            Err(e) => Err(format!("the secret value is not valid JSON ({e})")),
        }
    }

    /// Serialises a JSON object into a new secret value.
    pub fn from_json(map: &serde_json::Map<String, serde_json::Value>) -> Self {
        Self::new(serde_json::Value::Object(map.clone()).to_string())
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = SecretString::from("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn json_errors_do_not_echo_the_value() {
        let s = SecretString::from("{\"password\": \"hunter2\"");
        let err = s.json_object().unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let s = SecretString::from("[\"hunter2\"]");
        assert!(s.json_object().unwrap_err().contains("not an object"));
    }
}
