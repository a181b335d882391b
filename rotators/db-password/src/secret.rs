//! The secret's JSON: the same shape as AWS's RDS rotation templates, so existing secrets work
//! as they are. Unknown fields are kept through every rotation.

use serde_json::{Map, Value};
use shared::{Error, SecretString};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MySql,
    MariaDb,
}

impl Engine {
    /// The engine names AWS's templates accept and RDS reports: Aurora PostgreSQL speaks
    /// PostgreSQL, Aurora MySQL (`aurora-mysql`, and `aurora` for the 5.6-compatible edition) MySQL.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "postgres" | "aurora-postgresql" => Some(Engine::Postgres),
            "mysql" | "aurora-mysql" | "aurora" => Some(Engine::MySql),
            "mariadb" => Some(Engine::MariaDb),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
            Engine::MariaDb => "mariadb",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::MySql | Engine::MariaDb => 3306,
        }
    }

    /// Longest user name the engine keeps intact: PostgreSQL truncates identifiers past 63 bytes,
    /// MySQL allows 32 characters, MariaDB 80.
    pub fn max_user_len(self) -> usize {
        match self {
            Engine::Postgres => 63,
            Engine::MySql => 32,
            Engine::MariaDb => 80,
        }
    }

    pub fn is_postgres(self) -> bool {
        self == Engine::Postgres
    }
}

/// One version of a database secret. Its `Debug` shows where and who, never the other fields:
/// they are part of the secret value.
#[derive(Clone)]
pub struct DbSecret {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: SecretString,
    pub dbname: Option<String>,
    /// Set: alternating users, with the master secret's credentials.
    pub masterarn: Option<String>,
    /// TLS is on unless the secret says `"ssl": false` (or `"false"`, as the templates accept).
    pub ssl: bool,
    /// `"dual_password": true` with a master: one user whose account keeps the current password
    /// beside the pending one until the previous credential is retired (MySQL/MariaDB).
    pub dual_password: bool,
    /// Every field but the password, to write back unchanged.
    others: Map<String, Value>,
}

impl std::fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSecret")
            .field("engine", &self.engine)
            .field("endpoint", &self.endpoint())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl DbSecret {
    /// Parses one version; `which` names it in errors (`AWSCURRENT`, `the master secret`, ...).
    pub fn parse(value: &SecretString, which: &'static str) -> Result<Self, Error> {
        let bad = |problem: String| Error::value(which, problem);
        let mut others = value.json_object().map_err(bad)?;
        let password = match others.remove("password") {
            Some(Value::String(p)) if !p.is_empty() => SecretString::new(p),
            Some(Value::String(_)) => return Err(bad("field `password` is empty".into())),
            Some(_) => return Err(bad("field `password` must be a string".into())),
            None => return Err(bad("field `password` is missing".into())),
        };
        let text = |name: &str| -> Result<Option<String>, Error> {
            match others.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => {
                    Err(bad(format!("field `{name}` is empty")))
                }
                Some(Value::String(s)) if s.chars().any(char::is_control) => {
                    Err(bad(format!("field `{name}` contains a control character")))
                }
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(format!("field `{name}` must be a string"))),
            }
        };
        let required =
            |name: &str| text(name)?.ok_or_else(|| bad(format!("field `{name}` is missing")));
        let engine_name = required("engine")?;
        let engine = Engine::parse(&engine_name).ok_or_else(|| {
            bad(format!(
                "field `engine` is `{}`, expected postgres, aurora-postgresql, mysql, aurora-mysql, aurora or mariadb",
                engine_name.escape_debug()
            ))
        })?;
        let port = match others.get("port") {
            None | Some(Value::Null) => engine.default_port(),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("field `port` must be a port number from 1 to 65535".into()))?,
            Some(Value::String(s)) => {
                s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    bad("field `port` must be a port number from 1 to 65535".into())
                })?
            }
            Some(_) => return Err(bad("field `port` must be a number".into())),
        };
        let flag = |name: &str, default: bool| -> Result<bool, Error> {
            match others.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
                Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
                Some(_) => Err(bad(format!(
                    "field `{name}` must be true or false (a boolean or the string \"true\"/\"false\")"
                ))),
            }
        };
        let ssl = flag("ssl", true)?;
        let dual_password = flag("dual_password", false)?;
        let username = required("username")?;
        if username.len() > engine.max_user_len() {
            return Err(bad(format!(
                "field `username` is longer than {} bytes, the most {} keeps",
                engine.max_user_len(),
                engine.name()
            )));
        }
        let host = required("host")?;
        if host.len() > 253 {
            return Err(bad(
                "field `host` is longer than 253 characters, the most a host name has".into(),
            ));
        }
        let masterarn = text("masterarn")?;
        if dual_password && engine.is_postgres() {
            return Err(bad(
                "field `dual_password`: PostgreSQL keeps one password per role; use alternating users (`masterarn` without `dual_password`) for rotations without downtime".into(),
            ));
        }
        if dual_password && masterarn.is_none() {
            return Err(bad(
                "field `dual_password` needs `masterarn`: giving an account a second password takes the CREATE USER privilege".into(),
            ));
        }
        Ok(Self {
            engine,
            host,
            port,
            username,
            password,
            dbname: text("dbname")?,
            masterarn,
            ssl,
            dual_password,
            others,
        })
    }

    /// This secret with another user name and password, every other field kept.
    pub fn with_credentials(&self, username: &str, password: &SecretString) -> SecretString {
        let mut fields = self.others.clone();
        fields.insert("username".into(), username.into());
        fields.insert("password".into(), password.expose().into());
        SecretString::from_json(&fields)
    }

    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The user the next rotation sets a password on, when this is the current value: the same
    /// user in single-user mode, its partner (`user` <-> `user_clone`) with a master. The one
    /// place this rule lives; every step asks here.
    pub fn pending_user(&self) -> Result<String, String> {
        match self.masterarn {
            Some(_) if !self.dual_password => partner(&self.username, self.engine),
            _ => Ok(self.username.clone()),
        }
    }

    /// Alternating users: the master rotates the partner of the current user.
    pub fn alternating(&self) -> bool {
        self.masterarn.is_some() && !self.dual_password
    }
}

const CLONE_SUFFIX: &str = "_clone";

/// The other user of an alternating pair, derived from the current user's name alone: `name` and
/// `name_clone` are partners. Never read from another version, so a value written to the secret
/// cannot point the master's credentials at another user. A name whose clone would not fit the
/// engine's limit is refused (as the templates do) rather than cut, so the pairing stays
/// reversible.
pub fn partner(user: &str, engine: Engine) -> Result<String, String> {
    if let Some(base) = user.strip_suffix(CLONE_SUFFIX)
        && !base.is_empty()
    {
        return Ok(base.to_owned());
    }
    let clone = format!("{user}{CLONE_SUFFIX}");
    if clone.len() > engine.max_user_len() {
        return Err(format!(
            "field `username` is too long for alternating users: `{user}` plus `{CLONE_SUFFIX}` exceeds the {} bytes {} keeps",
            engine.max_user_len(),
            engine.name()
        ));
    }
    Ok(clone)
}

/// The pair in the order (original, clone).
pub fn pair(user: &str, engine: Engine) -> Result<(String, String), String> {
    let other = partner(user, engine)?;
    Ok(
        if other.ends_with(CLONE_SUFFIX) && other.len() > user.len() {
            (user.to_owned(), other)
        } else {
            (other, user.to_owned())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<DbSecret, String> {
        DbSecret::parse(&SecretString::from(json), "AWSCURRENT").map_err(|e| e.to_string())
    }

    #[test]
    fn parses_an_rds_secret_and_keeps_unknown_fields() {
        let s = parse(
            r#"{"engine":"postgres","host":"db.example","username":"app","password":"pw","dbname":"orders","proxy":"x"}"#,
        )
        .unwrap();
        assert_eq!((s.engine, s.port, s.ssl), (Engine::Postgres, 5432, true));
        assert_eq!(s.dbname.as_deref(), Some("orders"));
        let debug = format!("{s:?}");
        assert!(
            debug.contains("db.example") && !debug.contains("proxy") && !debug.contains("pw"),
            "{debug}"
        );
        let again = s.with_credentials("app_clone", &SecretString::from("new"));
        let v: Value = serde_json::from_str(again.expose()).unwrap();
        assert_eq!(v["proxy"], "x");
        assert_eq!(v["username"], "app_clone");
        assert_eq!(v["password"], "new");
        assert_eq!(v["host"], "db.example");
    }

    #[test]
    fn every_bad_field_is_named_and_the_password_never_shown() {
        let cases = [
            (
                r#"{"engine":"postgres","host":"h","username":"u"}"#,
                "field `password` is missing",
            ),
            (
                r#"{"engine":"postgres","host":"h","username":"u","password":7}"#,
                "field `password` must be a string",
            ),
            (
                r#"{"engine":"oracle","host":"h","username":"u","password":"hunter2"}"#,
                "field `engine` is `oracle`",
            ),
            (
                r#"{"host":"h","username":"u","password":"hunter2"}"#,
                "field `engine` is missing",
            ),
            (
                r#"{"engine":"mysql","username":"u","password":"hunter2"}"#,
                "field `host` is missing",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":"u","password":"hunter2","port":70000}"#,
                "field `port` must be a port number",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":"u","password":"hunter2","port":[1]}"#,
                "field `port` must be a number",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":"u","password":"hunter2","ssl":"no"}"#,
                "field `ssl` must be true or false",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":"u","password":"hunter2","ssl":1}"#,
                "field `ssl` must be true or false",
            ),
            (
                r#"{"engine":"aurora-oracle","host":"h","username":"u","password":"hunter2"}"#,
                "field `engine` is `aurora-oracle`",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":5,"password":"hunter2"}"#,
                "field `username` must be a string",
            ),
            (
                r#"{"engine":"mysql","host":"h","username":"a-very-long-user-name-for-mysql-xx","password":"hunter2"}"#,
                "field `username` is longer than 32 bytes",
            ),
            (
                "{\"engine\":\"mysql\",\"host\":\"h\",\"username\":\"u\\u0000\",\"password\":\"hunter2\"}",
                "control character",
            ),
            ("[1,2]", "not an object"),
            (
                r#"{"engine":"postgres","host":"h","username":"u","password":"hunter2","masterarn":"m","dual_password":true}"#,
                "field `dual_password`: PostgreSQL keeps one password per role",
            ),
            (
                r#"{"engine":"mariadb","host":"h","username":"u","password":"hunter2","dual_password":"true"}"#,
                "field `dual_password` needs `masterarn`",
            ),
            (
                r#"{"engine":"mariadb","host":"h","username":"u","password":"hunter2","masterarn":"m","dual_password":1}"#,
                "field `dual_password` must be true or false",
            ),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
            assert!(err.contains("AWSCURRENT"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn port_may_be_a_string_and_ssl_may_be_off() {
        let s = parse(r#"{"engine":"mariadb","host":"h","username":"u","password":"p","port":"3307","ssl":false}"#).unwrap();
        assert_eq!((s.port, s.ssl), (3307, false));
    }

    #[test]
    fn partners_pair_up_both_ways_and_must_fit() {
        assert_eq!(partner("app", Engine::Postgres).unwrap(), "app_clone");
        assert_eq!(partner("app_clone", Engine::Postgres).unwrap(), "app");
        assert_eq!(partner("_clone", Engine::Postgres).unwrap(), "_clone_clone");
        assert_eq!(
            pair("app_clone", Engine::MySql).unwrap(),
            ("app".to_string(), "app_clone".to_string())
        );
        assert_eq!(
            pair("app", Engine::MySql).unwrap(),
            ("app".to_string(), "app_clone".to_string())
        );
        let fits = "u".repeat(26);
        assert_eq!(partner(&fits, Engine::MySql).unwrap().len(), 32);
        let err = partner(&"u".repeat(27), Engine::MySql).unwrap_err();
        assert!(err.contains("field `username` is too long"), "{err}");
    }

    /// Every secret shape and setting AWS's RDS templates document, parsed as they use it.
    #[test]
    fn every_shape_the_templates_accept() {
        let base = |extra: &str| {
            format!(r#"{{"host":"db.example","username":"app","password":"pw"{extra}}}"#)
        };
        // (extra fields, engine, port, ssl)
        let cases: &[(&str, Engine, u16, bool)] = &[
            (r#","engine":"postgres""#, Engine::Postgres, 5432, true),
            (
                r#","engine":"aurora-postgresql""#,
                Engine::Postgres,
                5432,
                true,
            ),
            (r#","engine":"mysql""#, Engine::MySql, 3306, true),
            (r#","engine":"aurora-mysql""#, Engine::MySql, 3306, true),
            (r#","engine":"aurora""#, Engine::MySql, 3306, true),
            (r#","engine":"mariadb""#, Engine::MariaDb, 3306, true),
            (
                r#","engine":"postgres","port":5433"#,
                Engine::Postgres,
                5433,
                true,
            ),
            (
                r#","engine":"mysql","port":"3307""#,
                Engine::MySql,
                3307,
                true,
            ),
            (
                r#","engine":"postgres","ssl":true"#,
                Engine::Postgres,
                5432,
                true,
            ),
            (
                r#","engine":"postgres","ssl":false"#,
                Engine::Postgres,
                5432,
                false,
            ),
            (
                r#","engine":"postgres","ssl":"true""#,
                Engine::Postgres,
                5432,
                true,
            ),
            (
                r#","engine":"postgres","ssl":"FALSE""#,
                Engine::Postgres,
                5432,
                false,
            ),
            (
                r#","engine":"mysql","ssl":"False""#,
                Engine::MySql,
                3306,
                false,
            ),
            (
                r#","engine":"postgres","dbname":"orders""#,
                Engine::Postgres,
                5432,
                true,
            ),
            (
                r#","engine":"postgres","dbname":null"#,
                Engine::Postgres,
                5432,
                true,
            ),
            (
                r#","engine":"postgres","masterarn":"arn:aws:secretsmanager:us-east-1:1:secret:m""#,
                Engine::Postgres,
                5432,
                true,
            ),
            (
                r#","engine":"postgres","dbInstanceIdentifier":"db1""#,
                Engine::Postgres,
                5432,
                true,
            ),
        ];
        for (extra, engine, port, ssl) in cases {
            let json = base(extra);
            let s = parse(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!((s.engine, s.port, s.ssl), (*engine, *port, *ssl), "{json}");
            assert_eq!(
                (s.host.as_str(), s.username.as_str()),
                ("db.example", "app")
            );
            // The engine name and every other field are written back as they were.
            let again: Value =
                serde_json::from_str(s.with_credentials("x", &SecretString::from("y")).expose())
                    .unwrap();
            let before: Value = serde_json::from_str(&json).unwrap();
            for (k, v) in before.as_object().unwrap() {
                if k != "username" && k != "password" {
                    assert_eq!(&again[k], v, "{json}: {k}");
                }
            }
        }
        assert_eq!(
            parse(&base(r#","engine":"aurora-postgresql","masterarn":"m""#))
                .unwrap()
                .masterarn
                .as_deref(),
            Some("m")
        );
    }
}
