//! #23.8: the GitHub rotator's parsers of outside input never panic, and name the field at fault
//! (`shared::fuzz`, `fuzz::CASES` cases each): both kinds of secret value, the pin tags, and
//! GitHub's times (`expires_at`, `last_used`). GitHub's answers: `api::fuzz_answers`.

use github_token::api::parse_time;
use github_token::pin::{self, Pin};
use github_token::secret::GhSecret;
use proptest::prelude::*;
use serde_json::{Value, json};
use shared::SecretString;
use shared::fuzz;

const TOKEN_FIELDS: &[&str] = &[
    "kind",
    "app_id",
    "installation_id",
    "private_key_secret_arn",
    "repositories",
    "permissions",
    "token",
    "expires_at",
];
const KEY_FIELDS: &[&str] = &[
    "kind",
    "app_id",
    "installation_id",
    "private_key_secret_arn",
    "owner",
    "repo",
    "read_only",
    "private_key",
    "public_key",
];

const TAGS: &[&str] = &[
    pin::APP_ID,
    pin::INSTALLATION_ID,
    pin::KEY_SECRET,
    pin::PERMISSIONS,
    pin::REPOSITORIES,
    pin::REPOSITORY,
    pin::KEY_ACCESS,
];

fn token() -> Value {
    json!({"kind": "app-installation-token", "app_id": 42, "installation_id": 7,
           "private_key_secret_arn": "arn:k", "repositories": ["api"], "permissions": {"contents": "read"},
           "token": "hunter2-secret", "expires_at": "2026-11-30T12:00:00Z"})
}

fn key() -> Value {
    json!({"kind": "deploy-key", "app_id": 42, "installation_id": 7, "private_key_secret_arn": "arn:k",
           "owner": "acme", "repo": "api", "read_only": true, "private_key": "hunter2-secret",
           "public_key": "ssh-ed25519 AAAA"})
}

fn parse(text: String) -> Result<(), String> {
    GhSecret::parse(&SecretString::new(text), "AWSCURRENT")
        .map(drop)
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn any_secret_value_is_parsed_or_refused(raw in fuzz::raw(key()), other in fuzz::raw(token())) {
        let _ = parse(raw);
        let _ = parse(other);
    }

    #[test]
    fn a_bad_token_field_is_named(m in fuzz::mutation(TOKEN_FIELDS)) {
        fuzz::check_named(&m, TOKEN_FIELDS, "hunter2-secret", parse(m.apply(&token()).to_string()))?;
    }

    #[test]
    fn a_bad_deploy_key_field_is_named(m in fuzz::mutation(KEY_FIELDS)) {
        fuzz::check_named(&m, KEY_FIELDS, "hunter2-secret", parse(m.apply(&key()).to_string()))?;
    }

    /// The pin: any tags, and any value checked against them.
    #[test]
    fn any_tags_are_read_or_refused(
        tags in proptest::collection::vec((prop_oneof![
            proptest::sample::select(TAGS).prop_map(str::to_owned), fuzz::text()], fuzz::text()), 0..8),
        m in fuzz::mutation(KEY_FIELDS),
    ) {
        let tag = |k: &str| tags.iter().rev().find(|(t, _)| t == k).map(|(_, v)| v.as_str());
        if let Ok(pin) = Pin::from_tags(tag)
            && let Ok(s) = GhSecret::parse(&SecretString::new(m.apply(&key()).to_string()), "AWSCURRENT")
        {
            let _ = pin.allows(&s, "AWSCURRENT");
        }
    }

    #[test]
    fn any_time_is_read_or_refused(text in prop_oneof![
        fuzz::text(),
        "[0-9+-]{1,14}-[0-9]{1,4}-[0-9]{1,4}T[0-9]{1,4}:[0-9]{1,4}:[0-9]{1,4}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
    ]) {
        let _ = parse_time(&text);
    }
}
