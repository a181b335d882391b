//! What a user may do, read from the database, and the differences between the two users of an
//! alternating pair. testSecret refuses to promote a user whose privileges differ from the
//! current user's, naming each difference.

use crate::sql;
use std::collections::{BTreeMap, BTreeSet};

/// A PostgreSQL role: its attributes (`rolsuper`, ...) and the roles it is a direct member of.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgRole {
    pub attributes: BTreeMap<&'static str, String>,
    pub member_of: BTreeSet<String>,
}

/// The attributes compared, as `pg_roles` columns, and the clause that sets each (for those a
/// role with `CREATEROLE` may set; the others can only be reported).
pub const PG_ATTRIBUTES: &[(&str, Option<(&str, &str)>)] = &[
    ("rolsuper", None),
    ("rolinherit", Some(("INHERIT", "NOINHERIT"))),
    ("rolcreaterole", Some(("CREATEROLE", "NOCREATEROLE"))),
    ("rolcreatedb", Some(("CREATEDB", "NOCREATEDB"))),
    ("rolcanlogin", None),
    ("rolreplication", None),
    ("rolbypassrls", None),
];

/// PostgreSQL: the clone is a member of the original (so it holds the original's privileges,
/// now and later) with the same attributes and no other membership the original lacks.
pub fn pg_differences(original: &str, clone: &str, o: &PgRole, c: &PgRole) -> Vec<String> {
    let mut out = Vec::new();
    if !c.member_of.contains(original) {
        out.push(format!("`{clone}` is not a member of `{original}`"));
    }
    for (name, a) in &o.attributes {
        let b = c.attributes.get(name).map(String::as_str).unwrap_or("?");
        if a != b {
            out.push(format!(
                "attribute {name} is {a} for `{original}` but {b} for `{clone}`"
            ));
        }
    }
    let theirs: BTreeSet<&String> = c.member_of.iter().filter(|r| *r != original).collect();
    for r in o.member_of.iter().filter(|r| !theirs.contains(r)) {
        out.push(format!(
            "`{original}` is a member of `{r}` but `{clone}` is not"
        ));
    }
    for r in theirs.iter().filter(|r| !o.member_of.contains(**r)) {
        out.push(format!(
            "`{clone}` is a member of `{r}` but `{original}` is not"
        ));
    }
    out
}

/// What an existing clone holds that the original does not. A role named like the clone that is
/// not yet this pair's (not a member of the original, or with more) is not taken over: its new
/// password would hand the secret's writer what it holds.
pub fn pg_extras(original: &str, clone: &str, o: &PgRole, c: &PgRole) -> Vec<String> {
    let mut out = Vec::new();
    if !c.member_of.contains(original) {
        out.push(format!("`{clone}` is not a member of `{original}`"));
    }
    for r in c
        .member_of
        .iter()
        .filter(|r| *r != original && !o.member_of.contains(*r))
    {
        out.push(format!(
            "`{clone}` is a member of `{r}` but `{original}` is not"
        ));
    }
    for (name, value) in &c.attributes {
        if value == "true" && o.attributes.get(name).map(String::as_str) != Some("true") {
            out.push(format!(
                "attribute {name} is true for `{clone}` but not for `{original}`"
            ));
        }
    }
    out
}

/// MySQL/MariaDB: accounts and grants an existing clone holds that the original does not.
pub fn my_extras(
    original: &str,
    clone: &str,
    o: &BTreeMap<String, MyAccount>,
    c: &BTreeMap<String, MyAccount>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (host, b) in c {
        let Some(a) = o.get(host) else {
            out.push(format!(
                "`{clone}` has an account on host `{host}` but `{original}` has none"
            ));
            continue;
        };
        for g in b.grants.difference(&a.grants) {
            out.push(format!(
                "on host `{host}`: `{clone}` has `{g}` that `{original}` has not"
            ));
        }
    }
    out
}

/// A MySQL/MariaDB account on one host: its grants (role grants and `SET DEFAULT ROLE` included,
/// each rewritten for a neutral account so two users compare) and its `REQUIRE` clause.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MyAccount {
    pub grants: BTreeSet<String>,
    pub require: String,
}

/// The placeholder account grants are rewritten for before comparing.
const ANYONE: &str = "<user>";

/// `SHOW GRANTS` lines of `user@host`, rewritten for a neutral account.
pub fn my_normalise(lines: &[String], user: &str, host: &str) -> BTreeSet<String> {
    let shown = sql::my_account_shown(user, host);
    lines
        .iter()
        .map(|l| sql::regrant(l, &shown, ANYONE).unwrap_or_else(|| l.clone()))
        .collect()
}

/// The `REQUIRE` clause from `mysql.user`'s `ssl_type`, `ssl_cipher`, `x509_issuer` and
/// `x509_subject`, quoted for the session.
pub fn my_require(
    ssl_type: &str,
    cipher: &str,
    issuer: &str,
    subject: &str,
    quote: impl Fn(&str) -> String,
) -> String {
    match ssl_type.to_ascii_uppercase().as_str() {
        "ANY" => "SSL".into(),
        "X509" => "X509".into(),
        "SPECIFIED" => {
            let parts: Vec<String> = [("ISSUER", issuer), ("SUBJECT", subject), ("CIPHER", cipher)]
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k} {}", quote(v)))
                .collect();
            if parts.is_empty() {
                "NONE".into()
            } else {
                parts.join(" AND ")
            }
        }
        _ => "NONE".into(),
    }
}

/// MySQL/MariaDB: the accounts of both users, host by host.
pub fn my_differences(
    original: &str,
    clone: &str,
    o: &BTreeMap<String, MyAccount>,
    c: &BTreeMap<String, MyAccount>,
) -> Vec<String> {
    let mut out = Vec::new();
    for host in o.keys().filter(|h| !c.contains_key(*h)) {
        out.push(format!(
            "`{original}` has an account on host `{host}` but `{clone}` has none"
        ));
    }
    for host in c.keys().filter(|h| !o.contains_key(*h)) {
        out.push(format!(
            "`{clone}` has an account on host `{host}` but `{original}` has none"
        ));
    }
    for (host, a) in o {
        let Some(b) = c.get(host) else { continue };
        if a.require != b.require {
            out.push(format!(
                "on host `{host}`: REQUIRE {} for `{original}` but REQUIRE {} for `{clone}`",
                a.require, b.require
            ));
        }
        for g in a.grants.difference(&b.grants) {
            out.push(format!("on host `{host}`: `{clone}` lacks `{g}`"));
        }
        for g in b.grants.difference(&a.grants) {
            out.push(format!(
                "on host `{host}`: `{clone}` has `{g}` that `{original}` has not"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(attrs: &[(&'static str, &str)], member_of: &[&str]) -> PgRole {
        PgRole {
            attributes: attrs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            member_of: member_of.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn postgres_clone_must_be_a_member_with_the_same_attributes() {
        let o = role(&[("rolcreatedb", "true")], &["readers"]);
        let good = role(&[("rolcreatedb", "true")], &["app", "readers"]);
        assert!(pg_differences("app", "app_clone", &o, &good).is_empty());
        let bad = role(&[("rolcreatedb", "false")], &["writers"]);
        let d = pg_differences("app", "app_clone", &o, &bad).join("; ");
        for want in [
            "`app_clone` is not a member of `app`",
            "attribute rolcreatedb is true for `app` but false for `app_clone`",
            "`app` is a member of `readers` but `app_clone` is not",
            "`app_clone` is a member of `writers` but `app` is not",
        ] {
            assert!(d.contains(want), "{d}");
        }
    }

    #[test]
    fn an_existing_clone_with_more_than_the_original_is_not_this_pairs() {
        let o = role(&[("rolcreatedb", "false")], &["readers"]);
        let cases: &[(PgRole, &[&str])] = &[
            (role(&[("rolcreatedb", "false")], &["app", "readers"]), &[]),
            // A crash's clone: a member, attributes not yet copied (copied before use).
            (role(&[("rolcreatedb", "false")], &["app"]), &[]),
            (
                role(&[("rolcreatedb", "false")], &[]),
                &["`app_clone` is not a member of `app`"],
            ),
            (
                role(&[("rolcreatedb", "true")], &["app", "admins"]),
                &[
                    "`app_clone` is a member of `admins` but `app` is not",
                    "attribute rolcreatedb is true for `app_clone` but not for `app`",
                ],
            ),
        ];
        for (c, want) in cases {
            assert_eq!(pg_extras("app", "app_clone", &o, c), *want, "{c:?}");
        }
        let account = |grants: &[&str]| MyAccount {
            grants: grants.iter().map(|g| g.to_string()).collect(),
            require: "NONE".into(),
        };
        let o = BTreeMap::from([("%".to_string(), account(&["USAGE", "SELECT db"]))]);
        let bare = BTreeMap::from([("%".to_string(), account(&["USAGE"]))]);
        assert!(my_extras("app", "app_clone", &o, &bare).is_empty());
        let more = BTreeMap::from([
            ("%".to_string(), account(&["USAGE", "SELECT other"])),
            ("10.0.0.1".to_string(), account(&["USAGE"])),
        ]);
        assert_eq!(
            my_extras("app", "app_clone", &o, &more),
            [
                "on host `%`: `app_clone` has `SELECT other` that `app` has not",
                "`app_clone` has an account on host `10.0.0.1` but `app` has none",
            ]
        );
    }

    #[test]
    fn mysql_grants_compare_across_users_and_hosts() {
        let lines = |u: &str| {
            vec![
                format!("GRANT USAGE ON *.* TO `{u}`@`%` IDENTIFIED BY PASSWORD '*ABC'"),
                format!("GRANT SELECT ON `db`.* TO `{u}`@`%`"),
                format!("GRANT `reader` TO `{u}`@`%`"),
                format!("SET DEFAULT ROLE `reader` FOR `{u}`@`%`"),
            ]
        };
        let a = MyAccount {
            grants: my_normalise(&lines("app"), "app", "%"),
            require: "SSL".into(),
        };
        let b = MyAccount {
            grants: my_normalise(&lines("app_clone"), "app_clone", "%"),
            require: "SSL".into(),
        };
        assert_eq!(a, b);
        assert!(!a.grants.iter().any(|g| g.contains("*ABC")), "{a:?}");
        let o = BTreeMap::from([("%".to_string(), a.clone())]);
        let mut weaker = b.clone();
        weaker.require = "NONE".into();
        weaker.grants.retain(|g| !g.contains("SELECT"));
        let c = BTreeMap::from([
            ("%".to_string(), weaker),
            ("10.0.0.1".to_string(), b.clone()),
        ]);
        let d = my_differences("app", "app_clone", &o, &c).join("; ");
        for want in [
            "REQUIRE SSL for `app` but REQUIRE NONE for `app_clone`",
            "`app_clone` lacks `GRANT SELECT ON `db`.* TO <user>`",
            "`app_clone` has an account on host `10.0.0.1`",
        ] {
            assert!(d.contains(want), "{d}");
        }
    }

    #[test]
    fn require_clauses() {
        let q = |s: &str| format!("'{s}'");
        assert_eq!(my_require("", "", "", "", q), "NONE");
        assert_eq!(my_require("ANY", "", "", "", q), "SSL");
        assert_eq!(my_require("X509", "", "", "", q), "X509");
        assert_eq!(
            my_require("SPECIFIED", "", "/CN=ca", "/CN=me", q),
            "ISSUER '/CN=ca' AND SUBJECT '/CN=me'"
        );
    }
}
