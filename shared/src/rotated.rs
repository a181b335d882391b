//! The secrets a function rotates (`ROTATED_SECRET_ARNS`). A secret's value and tags are chosen by
//! whoever may write or create that secret, and Secrets Manager invokes the function for any
//! secret whose rotation names it; so a secret of one's own, tagged to name another IAM user, App
//! installation or cache user, would be served with the function's power. The function's own
//! configuration is the one thing such a party cannot choose: a step, refresh or pre-flight acts
//! only on a secret it names, checked on the ARN `DescribeSecret` resolved, before anything else.
//! Each function has its own list (the templates' `<Rotator>SecretArns`), so listing a secret for
//! one rotator lets nobody who may tag it point it at another.

pub const ENV: &str = "ROTATED_SECRET_ARNS";

/// Secrets named one by one, each by its full ARN, random suffix included. An entry without it
/// (which Secrets Manager's API accepts as an id) matches no secret: matched as a prefix, it would
/// also admit a secret someone creates later under that name, or under the listed name plus a
/// suffix of their choosing. Where a list takes
/// patterns (`parse` with `patterns`), a `*` matches any run of characters, as in
/// `DB_MASTER_SECRET_ARNS`: `orders-db-*` then also admits a secret anyone may create as
/// `orders-db-mine`, so the templates ask for full ARNs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretList(Vec<String>);

impl SecretList {
    /// Comma-separated entries of the variable `env` (named in the error). Without `patterns`, an
    /// entry with a `*` is refused; with them, only one that is nothing but `*`s.
    pub fn parse(env: &str, text: &str, patterns: bool) -> Result<Self, String> {
        let entries = crate::allow_list::entries(text);
        let bad = |e: &&String| match patterns {
            false => e.contains('*'),
            true => e.chars().all(|c| c == '*'),
        };
        match entries.iter().find(bad) {
            Some(bad) => Err(format!(
                "{env}: the entry `{bad}` is a pattern; name each secret by its ARN (a `*` would \
                 also let in secrets anyone may create under a matching name)"
            )),
            None => Ok(Self(entries)),
        }
    }

    /// Whether `arn` (a full ARN, as `DescribeSecret` gives it) is listed.
    pub fn contains(&self, arn: &str) -> bool {
        self.0
            .iter()
            .any(|e| e == arn || (e.contains('*') && crate::allow_list::glob(e, arn)))
    }
}

/// `None`: the variable is unset, so the function rotates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotated(Option<SecretList>);

impl Rotated {
    pub fn from_env() -> Result<Self, String> {
        match crate::config::non_empty_env(ENV) {
            None => Ok(Self(None)),
            Some(text) => Self::parse(&text),
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        SecretList::parse(ENV, text, true).map(|list| Self(Some(list)))
    }

    /// Whether the secret `arn` (as `DescribeSecret` gives it) is one this function rotates.
    pub fn check(&self, arn: &str) -> Result<(), String> {
        match &self.0 {
            Some(list) if list.contains(arn) => Ok(()),
            Some(_) => Err(format!(
                "this function does not rotate this secret: its {ENV} does not name {arn} (the \
                 templates fill it from this rotator's <Rotator>SecretArns / \
                 rotated_secret_arns[\"<rotator>\"]); nothing was read or changed"
            )),
            None => Err(format!(
                "this function rotates no secret yet: {ENV} is unset (the templates fill it from \
                 this rotator's <Rotator>SecretArns / rotated_secret_arns[\"<rotator>\"]); nothing \
                 was read or changed"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf";
    const NAME: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db";

    #[test]
    fn only_named_secrets_pass() {
        let mine = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-mine-XyZaBc";
        let cases: &[(Option<&str>, &str, Result<(), &str>)] = &[
            (None, ARN, Err("is unset")),
            (Some(ARN), ARN, Ok(())),
            // Not the ARN without its random suffix: that would admit a later secret of the name.
            (Some(NAME), ARN, Err("does not name")),
            // Nor the listed ARN plus a suffix: a secret someone named after the listed ARN.
            (Some(ARN), &format!("{ARN}-XyZaBc"), Err("does not name")),
            (Some("x, y"), ARN, Err("does not name")),
            // A secret whose name only starts with a listed name is another secret.
            (Some(NAME), mine, Err("does not name")),
            (
                Some(NAME),
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-Ab/dEf",
                Err("does not name"),
            ),
            (Some(ARN), mine, Err("does not name")),
            (Some(""), ARN, Err("does not name")),
        ];
        for (list, arn, want) in cases {
            let rotated = match list {
                None => Rotated::default(),
                Some(text) => Rotated::parse(text).unwrap(),
            };
            match (rotated.check(arn), want) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(w)) => assert!(got.contains(w) && got.contains(ENV), "{got}"),
                (got, _) => panic!("{list:?} {arn}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn patterns_match_any_run_and_a_bare_star_is_refused() {
        let rotated = Rotated::parse("arn:aws:secretsmanager:*:111122223333:secret:app/*").unwrap();
        assert!(rotated.check(ARN).is_ok());
        assert!(
            rotated
                .check(&ARN.replace("111122223333", "444455556666"))
                .is_err()
        );
        let err = Rotated::parse("a, **").unwrap_err();
        assert!(err.contains(ENV) && err.contains("is a pattern"), "{err}");
        let err = SecretList::parse("LIST", NAME, false).map(drop);
        assert!(err.is_ok());
        let err = SecretList::parse("LIST", &format!("{NAME}-*"), false).unwrap_err();
        assert!(
            err.contains("LIST") && err.contains("is a pattern"),
            "{err}"
        );
    }
}
