//! The secrets a function rotates (`ROTATED_SECRET_ARNS`). A secret's value and tags are chosen by
//! whoever may write or create that secret, and Secrets Manager invokes the function for any
//! secret whose rotation names it; so a secret of one's own, tagged to name another IAM user, App
//! installation or cache user, would be served with the function's power. The function's own
//! configuration is the one thing such a party cannot choose: a step, refresh or pre-flight acts
//! only on a secret it names, checked on the ARN `DescribeSecret` resolved, before anything else.

use crate::allow_list::AllowList;

pub const ENV: &str = "ROTATED_SECRET_ARNS";

/// `None`: the variable is unset, so the function rotates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotated(Option<AllowList>);

impl Rotated {
    pub fn from_env() -> Result<Self, String> {
        match crate::config::non_empty_env(ENV) {
            None => Ok(Self(None)),
            Some(text) => Self::parse(&text),
        }
    }

    /// Comma-separated secret ARNs, `*` matching any run of characters (`AllowList`).
    pub fn parse(text: &str) -> Result<Self, String> {
        AllowList::parse(ENV, text).map(|list| Self(Some(list)))
    }

    /// Whether the secret `arn` (as `DescribeSecret` gives it) is one this function rotates.
    pub fn check(&self, arn: &str) -> Result<(), String> {
        match &self.0 {
            Some(list) if list.allows(arn) => Ok(()),
            Some(_) => Err(format!(
                "this function does not rotate this secret: its {ENV} does not name {arn} (the \
                 templates fill it from RotatedSecretArns / rotated_secret_arns); nothing was \
                 read or changed"
            )),
            None => Err(format!(
                "this function rotates no secret yet: {ENV} is unset (the templates fill it from \
                 RotatedSecretArns / rotated_secret_arns); nothing was read or changed"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf";

    #[test]
    fn only_named_secrets_pass() {
        let cases: &[(Option<&str>, &str, Result<(), &str>)] = &[
            (None, ARN, Err("is unset")),
            (Some(ARN), ARN, Ok(())),
            (
                Some("arn:aws:secretsmanager:us-east-1:111122223333:secret:app/*"),
                ARN,
                Ok(()),
            ),
            (
                Some(ARN),
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:mine-XyZaBc",
                Err(
                    "does not name arn:aws:secretsmanager:us-east-1:111122223333:secret:mine-XyZaBc",
                ),
            ),
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
    fn a_list_allowing_any_secret_is_refused() {
        assert!(Rotated::parse("*").unwrap_err().contains(ENV));
    }
}
