//! What a secret may mint, pinned by its tags. The value is writable by anyone with
//! `PutSecretValue` on the secret, and a token cannot prove its own permissions, so the App, the
//! installation, the App's key secret, the repositories and the permission ceiling come from the
//! secret's tags: changing them takes `secretsmanager:TagResource`, a separate right, and the
//! gate's `DescribeSecret` already returns them. The value may ask for less than the pin, never
//! more; a value that asks for more is refused naming the field, before anything is minted.

use crate::secret::{GhSecret, Kind, valid_repo_name};
use serde_json::{Map, Value, json};
use shared::Error;

pub const APP_ID: &str = "github:app-id";
pub const INSTALLATION_ID: &str = "github:installation-id";
pub const KEY_SECRET: &str = "github:private-key-secret-arn";
/// Installation tokens: the permission ceiling, `name=read|write` separated by spaces (required).
pub const PERMISSIONS: &str = "github:permissions";
/// Installation tokens: the repositories a token may reach, names separated by spaces (optional:
/// without it, any of the pinned installation's repositories).
pub const REPOSITORIES: &str = "github:repositories";
/// Deploy keys: the one repository, `owner/repo` (required).
pub const REPOSITORY: &str = "github:repository";
/// Deploy keys: `read-only` (the default) or `read-write`.
pub const KEY_ACCESS: &str = "github:deploy-key-access";

/// What the tags allow. Built from the tags alone, so a bad tag is reported whatever the value.
#[derive(Debug, PartialEq, Eq)]
pub struct Pin {
    pub app_id: u64,
    pub installation_id: u64,
    pub key_secret: String,
    permissions: Option<Map<String, Value>>,
    repositories: Option<Vec<String>>,
    repository: Option<(String, String)>,
    write_key: bool,
}

fn missing(tag: &str, what: &str) -> Error {
    Error::target(format!(
        "the secret has no tag `{tag}` ({what}); the GitHub rotator mints only what the secret's tags allow, \
         because anyone who may write the value could otherwise ask for more"
    ))
}

fn bad_tag(tag: &str, value: &str, expected: &str) -> Error {
    Error::target(format!(
        "the secret's tag `{tag}` is `{}`: expected {expected}",
        value.escape_debug()
    ))
}

impl Pin {
    /// Reads the pin from `tag` (the secret's tags by key).
    pub fn from_tags<'t>(tag: impl Fn(&str) -> Option<&'t str>) -> Result<Self, Error> {
        let id = |name: &str, what: &str| {
            let text = tag(name).ok_or_else(|| missing(name, what))?;
            text.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad_tag(name, text, "a positive integer"))
        };
        let app_id = id(APP_ID, "the App's id")?;
        let installation_id = id(INSTALLATION_ID, "the installation's id")?;
        let key_secret = tag(KEY_SECRET)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing(KEY_SECRET, "the ARN of the secret holding the App's key"))?
            .to_owned();
        let permissions = match tag(PERMISSIONS) {
            None => None,
            Some(text) => {
                let expected = "`name=read` or `name=write` pairs separated by spaces";
                let mut map = Map::new();
                for pair in text.split_whitespace() {
                    match pair.split_once('=') {
                        Some((name, level @ ("read" | "write"))) if !name.is_empty() => {
                            map.insert(name.to_owned(), json!(level));
                        }
                        _ => return Err(bad_tag(PERMISSIONS, text, expected)),
                    }
                }
                if map.is_empty() {
                    return Err(bad_tag(PERMISSIONS, text, expected));
                }
                Some(map)
            }
        };
        let repositories = match tag(REPOSITORIES) {
            None => None,
            Some(text) => {
                let names: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
                if names.is_empty() || !names.iter().all(|n| valid_repo_name(n)) {
                    return Err(bad_tag(
                        REPOSITORIES,
                        text,
                        "repository names separated by spaces",
                    ));
                }
                Some(names)
            }
        };
        let repository = match tag(REPOSITORY) {
            None => None,
            Some(text) => match text.trim().split_once('/') {
                Some((o, r)) if valid_repo_name(o) && valid_repo_name(r) => {
                    Some((o.to_owned(), r.to_owned()))
                }
                _ => return Err(bad_tag(REPOSITORY, text, "`owner/repo`")),
            },
        };
        let write_key = match tag(KEY_ACCESS).map(str::trim) {
            None | Some("read-only") => false,
            Some("read-write") => true,
            Some(other) => return Err(bad_tag(KEY_ACCESS, other, "`read-only` or `read-write`")),
        };
        Ok(Self {
            app_id,
            installation_id,
            key_secret,
            permissions,
            repositories,
            repository,
            write_key,
        })
    }

    /// Whether `s` (the value labelled `stage`) asks for no more than the pin allows. For an
    /// installation token, the scope to mint: the value's repositories and permissions, or the
    /// pin's where the value names none (never the installation's whole grant).
    pub fn allows(&self, s: &GhSecret, stage: &'static str) -> Result<Value, Error> {
        let over = |field: &str, asked: String, tag: &str, allowed: String| {
            Error::value(
                stage,
                format!(
                    "field `{field}` asks for {asked}, which the secret's tag `{tag}` does not allow (it allows {allowed}); nothing is minted"
                ),
            )
        };
        if s.app_id != self.app_id {
            return Err(over(
                "app_id",
                format!("App {}", s.app_id),
                APP_ID,
                format!("App {}", self.app_id),
            ));
        }
        if s.installation_id != self.installation_id {
            return Err(over(
                "installation_id",
                format!("installation {}", s.installation_id),
                INSTALLATION_ID,
                format!("installation {}", self.installation_id),
            ));
        }
        if s.private_key_secret_arn != self.key_secret {
            return Err(over(
                "private_key_secret_arn",
                format!("the key secret {}", s.private_key_secret_arn),
                KEY_SECRET,
                format!("only {}", self.key_secret),
            ));
        }
        match s.kind {
            Kind::InstallationToken => {
                let ceiling = self.permissions.as_ref().ok_or_else(|| {
                    missing(PERMISSIONS, "the most an installation token may be granted")
                })?;
                let mut scope = json!({});
                let permissions = match s.field("permissions").and_then(Value::as_object) {
                    None => ceiling.clone(),
                    Some(asked) => {
                        for (name, level) in asked {
                            let allowed = ceiling.get(name).and_then(Value::as_str);
                            let ok = matches!(
                                (allowed, level.as_str()),
                                (Some("write"), Some(_)) | (Some("read"), Some("read"))
                            );
                            if !ok {
                                return Err(over(
                                    "permissions",
                                    format!("`{name}: {}`", level.as_str().unwrap_or("?")),
                                    PERMISSIONS,
                                    describe(ceiling),
                                ));
                            }
                        }
                        asked.clone()
                    }
                };
                scope["permissions"] = Value::Object(permissions);
                let asked: Option<Vec<&str>> = s
                    .field("repositories")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect());
                match (&self.repositories, asked) {
                    (None, None) => {}
                    (None, Some(asked)) => scope["repositories"] = json!(asked),
                    (Some(pinned), None) => scope["repositories"] = json!(pinned),
                    (Some(pinned), Some(asked)) => {
                        if let Some(extra) = asked.iter().find(|a| !pinned.iter().any(|p| p == *a))
                        {
                            return Err(over(
                                "repositories",
                                format!("repository `{extra}`"),
                                REPOSITORIES,
                                pinned.join(", "),
                            ));
                        }
                        scope["repositories"] = json!(asked);
                    }
                }
                Ok(scope)
            }
            Kind::DeployKey => {
                let (owner, repo) = self.repository.as_ref().ok_or_else(|| {
                    missing(
                        REPOSITORY,
                        "the repository whose deploy key this secret holds",
                    )
                })?;
                for (field, pinned) in [("owner", owner), ("repo", repo)] {
                    if s.str_field(field) != pinned {
                        return Err(over(
                            field,
                            format!("`{}`", s.str_field(field).escape_debug()),
                            REPOSITORY,
                            format!("{owner}/{repo}"),
                        ));
                    }
                }
                if !s.read_only() && !self.write_key {
                    return Err(over(
                        "read_only",
                        "a key with write access".into(),
                        KEY_ACCESS,
                        "read-only keys".into(),
                    ));
                }
                Ok(Value::Null)
            }
        }
    }
}

fn describe(permissions: &Map<String, Value>) -> String {
    permissions
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::SecretString;

    fn pin(tags: &[(&str, &str)]) -> Result<Pin, String> {
        let base = [
            (APP_ID, "42"),
            (INSTALLATION_ID, "7"),
            (KEY_SECRET, "arn:key"),
        ];
        let all: Vec<(&str, &str)> = base.iter().chain(tags).copied().collect();
        Pin::from_tags(|k| all.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| *v))
            .map_err(|e| e.to_string())
    }

    fn secret(extra: Value) -> GhSecret {
        let mut v = json!({"kind": "app-installation-token", "app_id": 42, "installation_id": 7,
                           "private_key_secret_arn": "arn:key"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        GhSecret::parse(&SecretString::new(v.to_string()), "AWSCURRENT").unwrap()
    }

    /// (tags beyond the identity, the value's fields, the scope minted or part of the refusal).
    type Row<'a> = (&'a [(&'a str, &'a str)], Value, Result<Value, &'a str>);

    #[test]
    fn a_value_gets_at_most_what_the_tags_allow() {
        let ceiling: &[(&str, &str)] = &[(PERMISSIONS, "contents=read issues=write")];
        let scoped: &[(&str, &str)] = &[(PERMISSIONS, "contents=read"), (REPOSITORIES, "api docs")];
        let key: &[(&str, &str)] = &[(REPOSITORY, "acme/api")];
        let rows: Vec<Row> = vec![
            // Nothing asked: the ceiling, not the installation's whole grant.
            (
                ceiling,
                json!({}),
                Ok(json!({"permissions": {"contents": "read", "issues": "write"}})),
            ),
            (
                ceiling,
                json!({"permissions": {"issues": "read"}}),
                Ok(json!({"permissions": {"issues": "read"}})),
            ),
            (
                ceiling,
                json!({"permissions": {"administration": "write"}}),
                Err("field `permissions` asks for `administration: write`"),
            ),
            (
                ceiling,
                json!({"permissions": {"contents": "write"}}),
                Err("field `permissions` asks for `contents: write`"),
            ),
            (&[], json!({}), Err("no tag `github:permissions`")),
            (
                scoped,
                json!({}),
                Ok(json!({"permissions": {"contents": "read"}, "repositories": ["api", "docs"]})),
            ),
            (
                scoped,
                json!({"repositories": ["docs"]}),
                Ok(json!({"permissions": {"contents": "read"}, "repositories": ["docs"]})),
            ),
            (
                scoped,
                json!({"repositories": ["api", "secret-stuff"]}),
                Err("field `repositories` asks for repository `secret-stuff`"),
            ),
            (
                ceiling,
                json!({"app_id": 43}),
                Err("field `app_id` asks for App 43"),
            ),
            (
                ceiling,
                json!({"installation_id": 8}),
                Err("field `installation_id` asks for installation 8"),
            ),
            (
                ceiling,
                json!({"private_key_secret_arn": "arn:other"}),
                Err("field `private_key_secret_arn` asks for the key secret arn:other"),
            ),
            (
                key,
                json!({"kind": "deploy-key", "owner": "acme", "repo": "api"}),
                Ok(Value::Null),
            ),
            (
                key,
                json!({"kind": "deploy-key", "owner": "acme", "repo": "infra"}),
                Err("field `repo` asks for `infra`"),
            ),
            (
                key,
                json!({"kind": "deploy-key", "owner": "evil", "repo": "api"}),
                Err("field `owner` asks for `evil`"),
            ),
            (
                key,
                json!({"kind": "deploy-key", "owner": "acme", "repo": "api", "read_only": false}),
                Err("field `read_only` asks for a key with write access"),
            ),
            (
                &[(REPOSITORY, "acme/api"), (KEY_ACCESS, "read-write")],
                json!({"kind": "deploy-key", "owner": "acme", "repo": "api", "read_only": false}),
                Ok(Value::Null),
            ),
            (
                ceiling,
                json!({"kind": "deploy-key", "owner": "acme", "repo": "api"}),
                Err("no tag `github:repository`"),
            ),
        ];
        for (tags, fields, want) in rows {
            let got = pin(tags)
                .unwrap()
                .allows(&secret(fields.clone()), "AWSCURRENT")
                .map_err(|e| e.to_string());
            match (&want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{fields}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{fields}: {g} should contain {w}"),
                _ => panic!("{tags:?} {fields}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn bad_or_missing_tags_are_named() {
        let none = Pin::from_tags(|_| None).unwrap_err().to_string();
        assert!(none.contains("no tag `github:app-id`"), "{none}");
        for (tags, want) in [
            (&[(APP_ID, "x")][..], "tag `github:app-id` is `x`"),
            (
                &[(PERMISSIONS, "contents=admin")],
                "tag `github:permissions`",
            ),
            (&[(REPOSITORIES, "a,b")], "tag `github:repositories`"),
            (&[(REPOSITORY, "api")], "tag `github:repository`"),
            (&[(KEY_ACCESS, "yes")], "tag `github:deploy-key-access`"),
        ] {
            let err = pin(tags).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
