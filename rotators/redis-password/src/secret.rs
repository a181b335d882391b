//! The secret's JSON: `host`, `port` (default 6379; a number or a string), `username`,
//! `password`, `ssl` (TLS unless `false`), `masterarn` (the administrator's secret). Unknown
//! fields are kept through every rotation. The administrator's secret has `host`, `port`,
//! `username`, `password` and optional `ssl`.

use serde_json::{Map, Value};
use shared::{Error, SecretString};

pub const DEFAULT_PORT: u16 = 6379;

/// One version of a Redis secret, or an administrator's secret (then `masterarn` is `None`). Its
/// `Debug` shows where and who, never the password.
#[derive(Clone)]
pub struct RedisSecret {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: SecretString,
    /// TLS is on unless the secret says `"ssl": false` (or `"false"`).
    pub ssl: bool,
    pub masterarn: Option<String>,
    /// Every field but the password, to write back unchanged.
    others: Map<String, Value>,
}

impl std::fmt::Debug for RedisSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSecret")
            .field("endpoint", &self.endpoint())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl RedisSecret {
    /// A rotated secret: every field checked, `masterarn` required (`ACL SETUSER` is an
    /// administrator's command). `which` names the version in errors.
    pub fn parse(value: &SecretString, which: &'static str) -> Result<Self, Error> {
        let s = Self::parse_any(value, which)?;
        if s.masterarn.is_none() {
            return Err(Error::value(
                which,
                "field `masterarn` is missing: it names the secret of the administrator user that runs ACL SETUSER",
            ));
        }
        Ok(s)
    }

    /// An administrator's secret: the same fields, `masterarn` ignored.
    pub fn parse_admin(value: &SecretString, which: &'static str) -> Result<Self, Error> {
        let mut s = Self::parse_any(value, which)?;
        s.masterarn = None;
        Ok(s)
    }

    fn parse_any(value: &SecretString, which: &'static str) -> Result<Self, Error> {
        let mut others = value.json_object().map_err(|e| Error::value(which, e))?;
        let password = take_password(&mut others, which)?;
        let f = Fields {
            map: &others,
            which,
        };
        Ok(Self {
            host: f.required("host", 253)?,
            port: f.port()?,
            username: f.required("username", 512)?,
            password,
            ssl: f.ssl()?,
            masterarn: f.text("masterarn", 2048)?,
            others,
        })
    }

    /// Where and as whom to log in, for a secret of another shape (an ElastiCache endpoint).
    pub fn login_at(
        host: &str,
        port: u16,
        ssl: bool,
        username: &str,
        password: &SecretString,
    ) -> Self {
        Self {
            host: host.to_owned(),
            port,
            username: username.to_owned(),
            password: password.clone(),
            ssl,
            masterarn: None,
            others: Map::new(),
        }
    }

    /// This secret with another password, every other field kept.
    pub fn with_password(&self, password: &SecretString) -> SecretString {
        let mut fields = self.others.clone();
        fields.insert("password".into(), password.expose().into());
        SecretString::from_json(&fields)
    }

    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Whether `other` names the same server and user (what a rotation may not change).
    pub fn same_user(&self, other: &RedisSecret) -> bool {
        self.host == other.host && self.port == other.port && self.username == other.username
    }
}

/// Removes and checks the `password` field.
pub(crate) fn take_password(
    others: &mut Map<String, Value>,
    which: &'static str,
) -> Result<SecretString, Error> {
    let bad = |problem: &str| Error::value(which, format!("field `password` {problem}"));
    match others.remove("password") {
        Some(Value::String(p)) if p.is_empty() => Err(bad("is empty")),
        // AUTH takes any bytes, but a line break would not survive redis-cli or a config file.
        Some(Value::String(p)) if p.chars().any(char::is_control) => {
            Err(bad("contains a control character"))
        }
        Some(Value::String(p)) => Ok(SecretString::new(p)),
        Some(_) => Err(bad("must be a string")),
        None => Err(bad("is missing")),
    }
}

/// The other fields of one version; errors name the version and the field.
pub(crate) struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    pub which: &'static str,
}

impl Fields<'_> {
    fn bad(&self, problem: String) -> Error {
        Error::value(self.which, problem)
    }

    pub fn text(&self, name: &str, max: usize) -> Result<Option<String>, Error> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(self.bad(format!("field `{name}` is empty")))
            }
            Some(Value::String(s)) if s.chars().any(|c| c.is_control() || c == ' ') => Err(self
                .bad(format!(
                    "field `{name}` contains a space or a control character"
                ))),
            Some(Value::String(s)) if s.len() > max => {
                Err(self.bad(format!("field `{name}` is longer than {max} bytes")))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(format!("field `{name}` must be a string"))),
        }
    }

    pub fn required(&self, name: &str, max: usize) -> Result<String, Error> {
        self.text(name, max)?
            .ok_or_else(|| self.bad(format!("field `{name}` is missing")))
    }

    pub fn port(&self) -> Result<u16, Error> {
        let port_error = || self.bad("field `port` must be a port number from 1 to 65535".into());
        match self.map.get("port") {
            None | Some(Value::Null) => Ok(DEFAULT_PORT),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(port_error),
            Some(Value::String(s)) => s
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(port_error),
            Some(_) => Err(self.bad("field `port` must be a number".into())),
        }
    }

    /// TLS unless the field says `false` (a boolean or the string, any case).
    pub fn ssl(&self) -> Result<bool, Error> {
        match self.map.get("ssl") {
            None | Some(Value::Null) => Ok(true),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(self.bad(
                "field `ssl` must be true or false (a boolean or the string \"true\"/\"false\")"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::AWSCURRENT;

    fn parse(v: Value) -> Result<RedisSecret, String> {
        RedisSecret::parse(&SecretString::new(v.to_string()), AWSCURRENT).map_err(|e| e.to_string())
    }

    #[test]
    fn fields_are_checked_and_named() {
        let good = serde_json::json!({"host": "h", "username": "u", "password": "p", "masterarn": "arn:x", "extra": 1});
        let s = parse(good.clone()).unwrap();
        assert_eq!((s.port, s.ssl), (DEFAULT_PORT, true));
        let kept: Value =
            serde_json::from_str(s.with_password(&SecretString::new("n".into())).expose()).unwrap();
        assert_eq!(kept["extra"], 1);
        assert_eq!(kept["password"], "n");
        let cases: &[(&str, Value, &str)] = &[
            ("port", Value::from(0), "field `port`"),
            ("port", Value::from("x"), "field `port`"),
            ("port", Value::Bool(true), "field `port` must be a number"),
            ("ssl", Value::from("yes"), "field `ssl`"),
            (
                "username",
                Value::from("a b"),
                "field `username` contains a space",
            ),
            ("username", Value::Null, "field `username` is missing"),
            ("host", Value::from(""), "field `host` is empty"),
            (
                "password",
                Value::from("a\nb"),
                "field `password` contains a control",
            ),
            (
                "password",
                Value::from(5),
                "field `password` must be a string",
            ),
            ("masterarn", Value::Null, "field `masterarn` is missing"),
        ];
        for (field, value, want) in cases {
            let mut v = good.clone();
            v[*field] = value.clone();
            let err = parse(v).unwrap_err();
            assert!(err.contains(want), "{field}={value}: {err}");
            assert!(err.contains("AWSCURRENT"), "{err}");
        }
        assert_eq!(parse(serde_json::json!({"host": "h", "port": "6380", "username": "u", "password": "p", "masterarn": "a", "ssl": "FALSE"})).map(|s| (s.port, s.ssl)).unwrap(), (6380, false));
    }
}
