//! Which master secrets the function may use. `masterarn` sits in the secret value, which anyone
//! with `PutSecretValue` can rewrite; the function's configuration cannot be rewritten that way, so
//! a master is used only when `DB_MASTER_SECRET_ARNS` names it, or when it is an RDS-managed master
//! secret (its `aws:rds:` tags, which only RDS can set) of the secret's own database.

use shared::allow_list::AllowList;

/// `DB_MASTER_SECRET_ARNS`: comma-separated secret ARNs, `*` matching any run of characters
/// (`shared::allow_list`, the rule every rotator with an administrator's secret shares).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterAllowList(AllowList);

impl MasterAllowList {
    pub const ENV: &'static str = "DB_MASTER_SECRET_ARNS";

    pub fn parse(text: &str) -> Result<Self, String> {
        AllowList::parse(Self::ENV, text).map(Self)
    }

    pub fn from_env() -> Result<Self, String> {
        AllowList::from_env(Self::ENV).map(Self)
    }

    pub fn allows(&self, masterarn: &str) -> bool {
        self.0.allows(masterarn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/master-AbCdEf";

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
