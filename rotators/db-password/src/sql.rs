//! Quoting for the statements that cannot take bind parameters (`ALTER ROLE`, `CREATE USER`,
//! `GRANT`): names and passwords reach SQL only through these functions.

/// A PostgreSQL identifier: `"` doubled inside double quotes.
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL string literal: `'` doubled. Safe with `standard_conforming_strings` on (the
/// default since 9.1); the only literal we send is a SCRAM verifier, which has no backslash.
pub fn pg_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A MySQL/MariaDB string literal. Without `NO_BACKSLASH_ESCAPES` a backslash escapes the next
/// character, so it is doubled too; with it, only `'` needs doubling (`QUOTE()` gets this wrong).
pub fn my_literal(text: &str, no_backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if !no_backslash_escapes => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// An account as `SHOW GRANTS` prints it: backquoted, backquotes doubled.
pub fn my_account_shown(user: &str, host: &str) -> String {
    format!(
        "`{}`@`{}`",
        user.replace('`', "``"),
        host.replace('`', "``")
    )
}

/// Rewrites one line of `SHOW GRANTS FOR from` (a grant, a role grant, or MariaDB's
/// `SET DEFAULT ROLE ... FOR`) so it applies to `to`. Only a trailing `WITH ...` (grant option,
/// resource limits) is kept: `IDENTIFIED ...` would copy the password hash, and `REQUIRE` is
/// copied on its own.
pub fn regrant(line: &str, from_shown: &str, to_account: &str) -> Option<String> {
    [" TO ", " FOR "].iter().find_map(|keyword| {
        let marker = format!("{keyword}{from_shown}");
        let at = line.rfind(&marker)?;
        let (head, tail) = (&line[..at], &line[at + marker.len()..]);
        let tail = tail.find(" WITH ").map_or("", |i| &tail[i..]);
        Some(format!("{head}{keyword}{to_account}{tail}"))
    })
}

/// Dual passwords, MariaDB 10.4+: every listed password authenticates the account. Each is given
/// as its `mysql_native_password` hash (`*` and 40 hex digits), so no plaintext reaches the
/// general or slow query log.
pub fn mariadb_identified_by_hashes(account: &str, hashes: &[&str]) -> String {
    let methods: Vec<String> = hashes
        .iter()
        .map(|h| format!("mysql_native_password USING {}", my_literal(h, true)))
        .collect();
    format!(
        "ALTER USER {account} IDENTIFIED VIA {}",
        methods.join(" OR ")
    )
}

/// Dual passwords, MySQL 8.0.14+: the new password becomes the primary and the one it replaces
/// the secondary (`RETAIN CURRENT PASSWORD`); `DISCARD OLD PASSWORD` drops the secondary.
pub fn mysql_retain_current(account: &str, password_literal: &str) -> String {
    format!("ALTER USER {account} IDENTIFIED BY {password_literal} RETAIN CURRENT PASSWORD")
}

pub fn mysql_discard_old(account: &str) -> String {
    format!("ALTER USER {account} DISCARD OLD PASSWORD")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "o'brien\"; drop table x; --";

    #[test]
    fn postgres_quoting_doubles_the_quote() {
        assert_eq!(pg_ident(HOSTILE), "\"o'brien\"\"; drop table x; --\"");
        assert_eq!(pg_literal(HOSTILE), "'o''brien\"; drop table x; --'");
    }

    /// The statements as the reference manuals write them: MariaDB's "Authentication from MariaDB
    /// 10.4" (`IDENTIFIED VIA mysql_native_password USING '<hash>' OR ...`) and MySQL 8.0's
    /// "Dual Password Support" (`... IDENTIFIED BY 'password_b' RETAIN CURRENT PASSWORD`,
    /// `... DISCARD OLD PASSWORD`). The MySQL ones have not run against a server here.
    #[test]
    fn dual_password_statements_follow_the_reference_manuals() {
        let account = "'app'@'%'";
        assert_eq!(
            mariadb_identified_by_hashes(
                account,
                &[
                    "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19",
                    "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
                ]
            ),
            "ALTER USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING \
             '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19' OR mysql_native_password USING \
             '*14E65567ABDB5135D0CFD9A70B3032C179A49EE7'"
        );
        assert_eq!(
            mysql_retain_current("'jeffrey'@'localhost'", "'password_b'"),
            "ALTER USER 'jeffrey'@'localhost' IDENTIFIED BY 'password_b' RETAIN CURRENT PASSWORD"
        );
        assert_eq!(
            mysql_discard_old("'jeffrey'@'localhost'"),
            "ALTER USER 'jeffrey'@'localhost' DISCARD OLD PASSWORD"
        );
    }

    #[test]
    fn mysql_literal_depends_on_sql_mode() {
        assert_eq!(my_literal("a'b\\c", false), "'a''b\\\\c'");
        assert_eq!(my_literal("a'b\\c", true), "'a''b\\c'");
    }

    #[test]
    fn regrant_moves_the_grant_and_drops_the_password_hash() {
        let from = my_account_shown("app", "%");
        let to = "'app_clone'@'%'";
        assert_eq!(
            regrant(
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC'",
                &from,
                to
            )
            .unwrap(),
            "GRANT USAGE ON *.* TO 'app_clone'@'%'"
        );
        assert_eq!(
            regrant(
                "GRANT SELECT ON `db`.* TO `app`@`%` WITH GRANT OPTION",
                &from,
                to
            )
            .unwrap(),
            "GRANT SELECT ON `db`.* TO 'app_clone'@'%' WITH GRANT OPTION"
        );
        assert_eq!(
            regrant(
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC' REQUIRE SSL WITH MAX_USER_CONNECTIONS 5",
                &from,
                to
            )
            .unwrap(),
            "GRANT USAGE ON *.* TO 'app_clone'@'%' WITH MAX_USER_CONNECTIONS 5"
        );
        assert_eq!(
            regrant("SET DEFAULT ROLE `reader` FOR `app`@`%`", &from, to).unwrap(),
            "SET DEFAULT ROLE `reader` FOR 'app_clone'@'%'"
        );
        assert_eq!(
            regrant("GRANT SELECT ON x.* TO `other`@`%`", &from, to),
            None
        );
    }
}
