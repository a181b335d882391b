//! #23.8: the Redis rotator's secret parsers never panic, and name the field at fault
//! (`shared::fuzz`, `fuzz::CASES` cases each). `ACL GETUSER` answers: `conn::fuzz_acl`.

use proptest::prelude::*;
use redis_password::elasticache::EcSecret;
use redis_password::secret::RedisSecret;
use serde_json::{Value, json};
use shared::SecretString;
use shared::fuzz;

const FIELDS: &[&str] = &["host", "port", "username", "password", "ssl", "masterarn"];
const EC_FIELDS: &[&str] = &["user_arn", "username", "password", "host", "port", "ssl"];

fn valid() -> Value {
    json!({"host": "cache.example.com", "port": 6379, "username": "app", "password": "hunter2-secret",
           "ssl": true, "masterarn": "arn:aws:secretsmanager:us-east-1:1:secret:admin-x"})
}

fn elasticache() -> Value {
    json!({"user_arn": "arn:aws:elasticache:us-east-1:123456789012:user:app", "username": "app",
           "password": "hunter2-secret", "host": "cache.example.com", "port": 6379, "ssl": true})
}

fn parse(text: String) -> Result<(), String> {
    RedisSecret::parse(&SecretString::new(text), "AWSCURRENT")
        .map(drop)
        .map_err(|e| e.to_string())
}

fn parse_ec(text: String) -> Result<(), String> {
    EcSecret::parse(&SecretString::new(text), "AWSCURRENT")
        .map(drop)
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn any_secret_value_is_parsed_or_refused(raw in fuzz::raw(valid()), ec in fuzz::raw(elasticache())) {
        let _ = parse(raw.clone());
        let _ = RedisSecret::parse_admin(&SecretString::new(raw), "administrator secret");
        let _ = parse_ec(ec);
    }

    #[test]
    fn a_bad_secret_field_is_named(m in fuzz::mutation(FIELDS)) {
        fuzz::check_named(&m, FIELDS, "hunter2-secret", parse(m.apply(&valid()).to_string()))?;
    }

    #[test]
    fn a_bad_elasticache_field_is_named(m in fuzz::mutation(EC_FIELDS)) {
        fuzz::check_named(&m, EC_FIELDS, "hunter2-secret", parse_ec(m.apply(&elasticache()).to_string()))?;
    }
}
