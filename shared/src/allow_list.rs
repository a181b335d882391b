//! Which other secrets a function may act with. A secret's value names them (`masterarn`), and
//! anyone with `PutSecretValue` can rewrite it; the function's configuration cannot be rewritten
//! that way, so an administrator's secret is used only when a variable of the function names it.

/// Comma-separated secret ARNs from one variable; `*` matches any run of characters, so
/// `arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/master-*` allows the random suffix
/// of one name, and also any secret someone names `prod/master-<anything>`: the secrets named
/// here must still log in where the rotated secret points. A value is matched as written in the
/// secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<String>);

impl AllowList {
    /// `env` is the variable's name, for the error message.
    pub fn parse(env: &str, text: &str) -> Result<Self, String> {
        let entries = entries(text);
        if let Some(bad) = entries.iter().find(|e| e.chars().all(|c| c == '*')) {
            return Err(format!(
                "{env}: the entry `{bad}` would allow any secret; name the secrets"
            ));
        }
        Ok(Self(entries))
    }

    /// The list in variable `env`; empty (allowing nothing) when it is unset.
    pub fn from_env(env: &str) -> Result<Self, String> {
        crate::config::non_empty_env(env)
            .map(|v| Self::parse(env, &v))
            .unwrap_or_else(|| Ok(Self::default()))
    }

    pub fn allows(&self, arn: &str) -> bool {
        self.0.iter().any(|pattern| glob(pattern, arn))
    }
}

/// The comma-separated entries of a list variable, trimmed, empty ones dropped.
pub(crate) fn entries(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
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
        let list = AllowList::parse(
            "SOME_ARNS",
            &format!(" {ARN} , arn:aws:secretsmanager:*:*:secret:x-* ,"),
        )
        .unwrap();
        assert!(list.allows(ARN));
        assert!(list.allows("arn:aws:secretsmanager:eu-west-1:1:secret:x-1"));
        assert!(!list.allows("arn:aws:secretsmanager:eu-west-1:1:secret:y-1"));
        assert!(!AllowList::default().allows(ARN));
        let err = AllowList::parse("SOME_ARNS", "a,**").unwrap_err();
        assert!(err.contains("SOME_ARNS") && err.contains("`**`"), "{err}");
    }
}
