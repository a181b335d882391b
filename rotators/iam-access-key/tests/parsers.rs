//! #23.8: the IAM rotator's secret parser never panics, and names the field at fault
//! (`shared::fuzz`, `fuzz::CASES` cases each). IAM's and STS's answers are read by the AWS SDK.

use iam_access_key::secret::KeySecret;
use proptest::prelude::*;
use serde_json::{Value, json};
use shared::SecretString;
use shared::fuzz;

const FIELDS: &[&str] = &["UserName", "AccessKeyId", "SecretAccessKey"];

fn valid() -> Value {
    json!({"UserName": "app", "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "hunter2-secret"})
}

fn parse(text: String) -> Result<(), String> {
    KeySecret::parse(&SecretString::new(text), "AWSCURRENT")
        .map(drop)
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn any_secret_value_is_parsed_or_refused(raw in fuzz::raw(valid())) {
        let _ = parse(raw);
    }

    #[test]
    fn a_bad_secret_field_is_named(m in fuzz::mutation(FIELDS)) {
        fuzz::check_named(&m, FIELDS, "hunter2-secret", parse(m.apply(&valid()).to_string()))?;
    }
}
