//! #23.8: the DB rotator's parsers of outside input never panic, and name the field at fault
//! (`shared::fuzz`, `fuzz::CASES` cases each). The MySQL/MariaDB server's answers have their own
//! property test (`mysql_wire::tests::no_answer_makes_the_client_panic`).

use db_password::master::MasterAllowList;
use db_password::rds;
use db_password::secret::DbSecret;
use proptest::prelude::*;
use serde_json::{Value, json};
use shared::SecretString;
use shared::fuzz;

const FIELDS: &[&str] = &[
    "engine",
    "host",
    "port",
    "username",
    "password",
    "dbname",
    "ssl",
    "dual_password",
    "masterarn",
];

fn valid() -> Value {
    json!({"engine": "postgres", "host": "db.example.com", "port": 5432, "username": "app",
           "password": "hunter2-secret", "dbname": "app", "ssl": true,
           "masterarn": "arn:aws:secretsmanager:us-east-1:1:secret:master-x"})
}

fn parse(text: String) -> Result<(), String> {
    DbSecret::parse(&SecretString::new(text), "AWSCURRENT")
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

    /// `DB_MASTER_SECRET_ARNS` and an RDS-managed secret's tags and shape.
    #[test]
    fn any_master_configuration_is_read_or_refused(
        list in fuzz::text(),
        tags in proptest::collection::vec((fuzz::text(), fuzz::text()), 0..4),
        value in fuzz::json(),
    ) {
        let _ = MasterAllowList::parse(&list);
        let _ = rds::primary_from_tags(&tags);
        if let Value::Object(map) = value {
            let _ = rds::is_managed_shape(&map);
        }
    }
}
