//! The secret's JSON. `kind` picks the credential:
//!
//! - `app-installation-token`: `app_id`, `installation_id`, `private_key_secret_arn`, optional
//!   `repositories` (names) and `permissions` (name to `read`/`write`) to scope the token down,
//!   and the `token` with its `expires_at` (absent before the first rotation);
//! - `deploy-key`: `app_id`, `installation_id`, `private_key_secret_arn`, `owner`, `repo`,
//!   optional `read_only` (default true), and the `private_key`/`public_key` (OpenSSH).
//!
//! Unknown fields are kept. The App's private key lives in its own secret, never in this one.

use serde_json::{Map, Value};
use shared::{Error, SecretString};

/// The field of the seal this rotator kept before it used the shared one (`shared::seal`).
const RETIRED_SEAL: &str = "rotation_seal";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    InstallationToken,
    DeployKey,
}

/// `Debug` shows the App and installation only: other fields are part of the secret value.
#[derive(Clone)]
pub struct GhSecret {
    pub kind: Kind,
    pub app_id: u64,
    pub installation_id: u64,
    pub private_key_secret_arn: String,
    /// `app-installation-token`: the token; `deploy-key`: the private key.
    pub credential: Option<SecretString>,
    /// Every field but the credential, to write back unchanged.
    fields: Map<String, Value>,
}

impl std::fmt::Debug for GhSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhSecret")
            .field("kind", &self.kind)
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

impl GhSecret {
    pub fn parse(value: &SecretString, stage: &'static str) -> Result<Self, Error> {
        let bad = |p: String| Error::value(stage, p);
        let mut fields = value.json_object().map_err(bad)?;
        let kind = match fields.get("kind") {
            Some(Value::String(k)) if k == "app-installation-token" => Kind::InstallationToken,
            Some(Value::String(k)) if k == "deploy-key" => Kind::DeployKey,
            Some(Value::String(k)) => {
                return Err(bad(format!(
                    "field `kind` is `{}`, expected app-installation-token or deploy-key",
                    k.escape_debug()
                )));
            }
            Some(_) => return Err(bad("field `kind` must be a string".into())),
            None => return Err(bad("field `kind` is missing".into())),
        };
        let id = |name: &str| match fields.get(name) {
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("field `{name}` must be a positive integer"))),
            Some(Value::String(s)) => s
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("field `{name}` must be a positive integer"))),
            Some(_) => Err(bad(format!("field `{name}` must be a positive integer"))),
            None => Err(bad(format!("field `{name}` is missing"))),
        };
        let (app_id, installation_id) = (id("app_id")?, id("installation_id")?);
        let private_key_secret_arn = text(&fields, "private_key_secret_arn", stage)?
            .ok_or_else(|| bad("field `private_key_secret_arn` is missing".into()))?;
        match kind {
            Kind::InstallationToken => {
                if let Some(r) = fields.get("repositories")
                    && !r.as_array().is_some_and(|a| {
                        !a.is_empty() && a.iter().all(|n| n.as_str().is_some_and(valid_repo_name))
                    })
                {
                    // `owner/repo` is how repositories are usually named, but the token API takes
                    // bare names (the installation's account is the owner): say so.
                    let with_owner = r
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|n| n.as_str())
                        .find(|n| n.contains('/'));
                    return Err(bad(match with_owner {
                        Some(n) => format!(
                            "field `repositories` names `{n}`: give each repository's name without \
                             its owner (`{}`); the installation's account is the owner",
                            n.rsplit('/').next().unwrap_or_default()
                        ),
                        None => "field `repositories` must be a non-empty list of repository names"
                            .into(),
                    }));
                }
                if let Some(p) = fields.get("permissions")
                    && !p.as_object().is_some_and(|m| {
                        m.values()
                            .all(|v| matches!(v.as_str(), Some("read" | "write")))
                    })
                {
                    return Err(bad(
                        "field `permissions` must map permission names to \"read\" or \"write\""
                            .into(),
                    ));
                }
            }
            Kind::DeployKey => {
                text(&fields, "owner", stage)?
                    .ok_or_else(|| bad("field `owner` is missing".into()))?;
                let repo = text(&fields, "repo", stage)?
                    .ok_or_else(|| bad("field `repo` is missing".into()))?;
                if !valid_repo_name(&repo) {
                    return Err(bad("field `repo` is not a valid repository name".into()));
                }
                if fields.get("read_only").is_some_and(|v| !v.is_boolean()) {
                    return Err(bad("field `read_only` must be true or false".into()));
                }
            }
        }
        let secret_field = match kind {
            Kind::InstallationToken => "token",
            Kind::DeployKey => "private_key",
        };
        let credential = match fields.remove(secret_field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(SecretString::new(s)),
            Some(_) => return Err(bad(format!("field `{secret_field}` must be a string"))),
        };
        Ok(Self {
            kind,
            app_id,
            installation_id,
            private_key_secret_arn,
            credential,
            fields,
        })
    }

    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    pub fn str_field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn read_only(&self) -> bool {
        self.fields
            .get("read_only")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// This secret with a new credential and other updated fields.
    pub fn with(&self, credential: &str, updates: &[(&str, Value)]) -> SecretString {
        let mut fields = self.fields.clone();
        // The seal earlier versions added; the shared `createsecret_seal` replaced it and nothing
        // reads it, so it goes with the next rotation instead of riding along for ever.
        fields.remove(RETIRED_SEAL);
        for (k, v) in updates {
            fields.insert((*k).into(), v.clone());
        }
        let secret_field = match self.kind {
            Kind::InstallationToken => "token",
            Kind::DeployKey => "private_key",
        };
        fields.insert(secret_field.into(), credential.into());
        SecretString::from_json(&fields)
    }
}

fn text(
    fields: &Map<String, Value>,
    name: &str,
    stage: &'static str,
) -> Result<Option<String>, Error> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && !s.chars().any(char::is_control) => {
            Ok(Some(s.clone()))
        }
        Some(Value::String(_)) => Err(Error::value(
            stage,
            format!("field `{name}` is empty or has control characters"),
        )),
        Some(_) => Err(Error::value(
            stage,
            format!("field `{name}` must be a string"),
        )),
    }
}

/// GitHub's rule for repository and owner names: letters, digits, `-`, `_`, `.`, at most 100.
pub fn valid_repo_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<GhSecret, String> {
        GhSecret::parse(&SecretString::new(v.to_string()), "AWSCURRENT").map_err(|e| e.to_string())
    }

    #[test]
    fn every_bad_field_is_named() {
        let base = serde_json::json!({"kind": "deploy-key", "app_id": 1, "installation_id": 2,
            "private_key_secret_arn": "arn:k", "owner": "o", "repo": "r", "private_key": "hidden-key"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        for (value, want) in [
            (with("kind", "pat".into()), "field `kind` is `pat`"),
            (
                with("app_id", "x".into()),
                "field `app_id` must be a positive integer",
            ),
            (
                with("installation_id", 0.into()),
                "field `installation_id` must be a positive integer",
            ),
            (
                with("repo", "a b\"; drop".into()),
                "field `repo` is not a valid repository name",
            ),
            (
                with("read_only", "yes".into()),
                "field `read_only` must be true or false",
            ),
            (with("owner", Value::Null), "field `owner` is missing"),
            (
                with("private_key", 5.into()),
                "field `private_key` must be a string",
            ),
        ] {
            let err = parse(value).unwrap_err();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("hidden-key"), "{err}");
        }
        assert!(parse(base).unwrap().read_only());
    }

    #[test]
    fn a_new_value_keeps_unknown_fields_but_the_retired_seal() {
        let v = serde_json::json!({"kind": "app-installation-token", "app_id": 1, "installation_id": 2,
            "private_key_secret_arn": "arn:k", "team": "ci", RETIRED_SEAL: "00"});
        let new = parse(v)
            .unwrap()
            .with("ghs_new", &[])
            .json_object()
            .unwrap();
        assert_eq!(new["team"], "ci");
        assert_eq!(new["token"], "ghs_new");
        assert!(!new.contains_key(RETIRED_SEAL));
    }

    #[test]
    fn token_scope_is_checked() {
        let base = serde_json::json!({"kind": "app-installation-token", "app_id": 1, "installation_id": 2,
            "private_key_secret_arn": "arn:k"});
        let mut b = base.clone();
        b["repositories"] = serde_json::json!([]);
        assert!(parse(b).unwrap_err().contains("field `repositories`"));
        let mut b = base.clone();
        b["repositories"] = serde_json::json!(["acme/app"]);
        let err = parse(b).unwrap_err();
        assert!(
            err.contains("`acme/app`") && err.contains("without its owner (`app`)"),
            "{err}"
        );
        let mut b = base.clone();
        b["permissions"] = serde_json::json!({"contents": "admin"});
        assert!(parse(b).unwrap_err().contains("field `permissions`"));
        assert!(
            parse(base).unwrap().credential.is_none(),
            "no token before the first rotation"
        );
    }
}
