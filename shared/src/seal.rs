//! createSecret's seal: proof that this function made the `AWSPENDING` value.
//!
//! `RotateSecret` labels the rotation's version `AWSPENDING` before createSecret runs, and
//! createSecret keeps a value already stored there (a retry after a crash must). A party who may
//! only call `PutSecretValue` could store their own value under that version first, and setSecret
//! would give the user a password they chose. So createSecret adds a field [`FIELD`], an
//! HMAC-SHA-256 over the secret's ARN, the version and the value without that field, keyed by what
//! the target names (`Target::seal_key`, by default the `AWSCURRENT` value, which such a writer
//! cannot read); setSecret, testSecret and finishSecret refuse a value without a valid one. A MAC
//! reveals nothing of its key, so it may sit in the value.

use crate::secret::SecretString;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The field of the pending JSON object that holds the seal (hex).
pub const FIELD: &str = "createsecret_seal";

/// Why a value carries no valid seal. Messages name the field, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    NotAnObject,
    Missing,
    Wrong,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Broken::NotAnObject => "the value is not a JSON object, so it has no field `",
            Broken::Missing => "the field `",
            Broken::Wrong => "the field `",
        })?;
        f.write_str(FIELD)?;
        f.write_str(match self {
            Broken::NotAnObject => "`",
            Broken::Missing => "` is missing",
            Broken::Wrong => "` does not match",
        })
    }
}

/// `value` with its seal set (any seal it carried is replaced). `Err`: `value` is not a JSON
/// object, so it cannot carry one.
pub fn seal(
    key: &SecretString,
    arn: &str,
    version: &str,
    value: &SecretString,
) -> Result<SecretString, Broken> {
    let mut map = value.json_object().map_err(|_| Broken::NotAnObject)?;
    map.remove(FIELD);
    let tag = mac(key, arn, version, &map).finalize().into_bytes();
    map.insert(FIELD.into(), Value::String(hex(&tag)));
    Ok(SecretString::from_json(&map))
}

/// Whether `value` carries a valid seal for this secret and version, compared in constant time.
pub fn verify(
    key: &SecretString,
    arn: &str,
    version: &str,
    value: &SecretString,
) -> Result<(), Broken> {
    let mut map = value.json_object().map_err(|_| Broken::NotAnObject)?;
    let given = match map.remove(FIELD) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(Broken::Wrong),
        None => return Err(Broken::Missing),
    };
    let bytes = unhex(&given).ok_or(Broken::Wrong)?;
    mac(key, arn, version, &map)
        .verify_slice(&bytes)
        .map_err(|_| Broken::Wrong)
}

/// Each part length-prefixed, so no two inputs share an encoding; the value in a canonical form:
/// serde_json's compact text of its map, whose keys are sorted at every depth (the workspace does
/// not enable `preserve_order`), so a re-serialisation that reorders keys keeps the seal valid.
fn mac(
    key: &SecretString,
    arn: &str,
    version: &str,
    value: &serde_json::Map<String, Value>,
) -> Hmac<Sha256> {
    // It holds the password: wiped on drop, as `SecretString` is.
    let canonical = zeroize::Zeroizing::new(
        serde_json::to_string(value).expect("a JSON map always serialises"),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    for part in [arn, version, canonical.as_str()] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app-AbCdEf";
    const VERSION: &str = "11111111-2222-3333-4444-555555555555";

    fn key() -> SecretString {
        SecretString::from(r#"{"username":"app","password":"current-secret"}"#)
    }

    fn value() -> SecretString {
        SecretString::from(
            r#"{"username":"app","password":"new-secret","port":6379,"extra":{"b":[1,2],"a":true}}"#,
        )
    }

    fn sealed() -> SecretString {
        seal(&key(), ARN, VERSION, &value()).unwrap()
    }

    fn with(map: impl FnOnce(&mut serde_json::Map<String, Value>)) -> SecretString {
        let mut m = sealed().json_object().unwrap();
        map(&mut m);
        SecretString::from_json(&m)
    }

    #[test]
    fn a_sealed_value_verifies_and_keeps_every_field() {
        let s = sealed();
        assert_eq!(verify(&key(), ARN, VERSION, &s), Ok(()));
        let mut m = s.json_object().unwrap();
        assert_eq!(m.remove(FIELD).unwrap().as_str().unwrap().len(), 64);
        assert_eq!(m, value().json_object().unwrap());
        // Sealing again (a value that already carries a seal) replaces it.
        let again = seal(&key(), ARN, VERSION, &s).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn another_key_version_or_secret_does_not_verify() {
        let s = sealed();
        let other = SecretString::from(r#"{"username":"app","password":"writer-knows"}"#);
        assert_eq!(verify(&other, ARN, VERSION, &s), Err(Broken::Wrong));
        assert_eq!(verify(&key(), ARN, "other-version", &s), Err(Broken::Wrong));
        assert_eq!(verify(&key(), "arn:other", VERSION, &s), Err(Broken::Wrong));
        // Moving bytes between the parts changes the MAC (length prefixes).
        assert_eq!(
            verify(&key(), &format!("{ARN}1"), &VERSION[1..], &s),
            Err(Broken::Wrong)
        );
    }

    #[test]
    fn a_tampered_value_does_not_verify() {
        let cases = [
            with(|m| {
                m.insert("password".into(), "writer-chose".into());
            }),
            with(|m| {
                m.insert("added".into(), Value::Null);
            }),
            with(|m| {
                m.remove("port");
            }),
            with(|m| {
                m["extra"]["b"] = serde_json::json!([2, 1]);
            }),
            with(|m| {
                m.insert(FIELD.into(), "00".repeat(32).into());
            }),
            with(|m| {
                m.insert(FIELD.into(), "not hex".into());
            }),
            with(|m| {
                m.insert(FIELD.into(), 7.into());
            }),
        ];
        for case in cases {
            assert_eq!(verify(&key(), ARN, VERSION, &case), Err(Broken::Wrong));
        }
    }

    #[test]
    fn a_missing_seal_or_a_value_that_is_no_object_is_named() {
        let missing = with(|m| {
            m.remove(FIELD);
        });
        assert_eq!(verify(&key(), ARN, VERSION, &missing), Err(Broken::Missing));
        let not_object = SecretString::from("plain-password");
        assert_eq!(
            verify(&key(), ARN, VERSION, &not_object),
            Err(Broken::NotAnObject)
        );
        assert_eq!(
            seal(&key(), ARN, VERSION, &not_object),
            Err(Broken::NotAnObject)
        );
        for b in [Broken::Missing, Broken::Wrong, Broken::NotAnObject] {
            let text = b.to_string();
            assert!(text.contains(&format!("`{FIELD}`")), "{text}");
        }
    }

    #[test]
    fn reordered_keys_and_whitespace_keep_the_seal() {
        let s = sealed();
        let m = s.json_object().unwrap();
        // The same object written by hand in another order, with other spacing.
        let mut text = String::from("{ ");
        let mut keys: Vec<&String> = m.keys().collect();
        keys.reverse();
        for (i, k) in keys.into_iter().enumerate() {
            if i > 0 {
                text.push_str(" ,\n ");
            }
            let v = if k == "extra" {
                r#"{"a": true, "b": [1, 2]}"#.to_owned()
            } else {
                m[k].to_string()
            };
            text.push_str(&format!("{} : {v}", Value::String(k.clone())));
        }
        text.push_str(" }");
        assert!(text.find("\"port\"").unwrap() < text.find("\"password\"").unwrap());
        assert_eq!(
            verify(&key(), ARN, VERSION, &SecretString::from(text.as_str())),
            Ok(())
        );
    }
}
