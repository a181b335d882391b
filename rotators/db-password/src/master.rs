//! Which master secrets the function may use. `masterarn` sits in the secret value, which anyone
//! with `PutSecretValue` can rewrite; the function's configuration cannot be rewritten that way, so
//! a master is used only when `DB_MASTER_SECRET_ARNS` names it, or when it is an RDS-managed master
//! secret (its `aws:rds:` tags, which only RDS can set) of the secret's own database.

/// `DB_MASTER_SECRET_ARNS`: comma-separated secret ARNs; `*` matches any run of characters, so
/// `arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/master-*` allows every version
/// suffix of one name. The `masterarn` is matched as written in the secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterAllowList(Vec<String>);

impl MasterAllowList {
    pub const ENV: &'static str = "DB_MASTER_SECRET_ARNS";

    pub fn parse(text: &str) -> Result<Self, String> {
        let entries: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = entries.iter().find(|e| e.chars().all(|c| c == '*')) {
            return Err(format!(
                "{}: the entry `{bad}` would allow any secret; name the master secrets",
                Self::ENV
            ));
        }
        Ok(Self(entries))
    }

    pub fn from_env() -> Result<Self, String> {
        shared::config::non_empty_env(Self::ENV)
            .map(|v| Self::parse(&v))
            .unwrap_or_else(|| Ok(Self::default()))
    }

    pub fn allows(&self, masterarn: &str) -> bool {
        self.0.iter().any(|pattern| glob(pattern, masterarn))
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/master-AbCdEf";

    #[test]
    fn exact_arns_and_wildcards_match_as_iam_would() {
        let cases: &[(&str, &str, bool)] = &[
            (ARN, ARN, true),
            (
                ARN,
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/master-AbCdEg",
                false,
            ),
            (
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/master-*",
                ARN,
                true,
            ),
            (
                "arn:aws:secretsmanager:*:111122223333:secret:prod/*-*",
                ARN,
                true,
            ),
            ("arn:aws:secretsmanager:*:444455556666:secret:*", ARN, false),
            ("*:secret:prod/master-AbCdEf", ARN, true),
            ("*:secret:prod/master", ARN, false),
            ("prod/master-*", ARN, false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("", "", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob(pattern, text), *want, "{pattern} vs {text}");
        }
    }

    #[test]
    fn the_list_is_comma_separated_and_refuses_a_bare_wildcard() {
        let list =
            MasterAllowList::parse(&format!(" {ARN} , arn:aws:secretsmanager:*:*:secret:x-* ,"))
                .unwrap();
        assert!(list.allows(ARN));
        assert!(list.allows("arn:aws:secretsmanager:eu-west-1:1:secret:x-1"));
        assert!(!list.allows("arn:aws:secretsmanager:eu-west-1:1:secret:y-1"));
        assert!(!MasterAllowList::default().allows(ARN));
        let err = MasterAllowList::parse("a,**").unwrap_err();
        assert!(
            err.contains("DB_MASTER_SECRET_ARNS") && err.contains("`**`"),
            "{err}"
        );
    }
}
