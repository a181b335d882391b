//! Password policy from the same environment variables as AWS's rotation templates, so a user can
//! switch functions without touching configuration.
//!
//! Passwords come from the operating system's CSPRNG inside the function rather than from
//! `GetRandomPassword`: that saves one API call (and its IAM permission) per rotation, and the
//! value never crosses the network before it reaches the store.

use crate::random;
use crate::secret::SecretString;

/// The variables the policy reads, the same as AWS's templates.
pub const ENV: &[&str] = &[
    "EXCLUDE_CHARACTERS",
    "PASSWORD_LENGTH",
    "EXCLUDE_NUMBERS",
    "EXCLUDE_PUNCTUATION",
    "EXCLUDE_UPPERCASE",
    "EXCLUDE_LOWERCASE",
    "REQUIRE_EACH_INCLUDED_TYPE",
];

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const MAX_LENGTH: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub exclude_characters: String,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub exclude_uppercase: bool,
    pub exclude_lowercase: bool,
    pub require_each_included_type: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            length: 32,
            exclude_characters: "/@\"'\\".into(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            require_each_included_type: true,
        }
    }
}

impl PasswordPolicy {
    /// Reads the policy from the process environment; a bad value is an error naming the variable.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        Self::from_lookup_with(Self::default(), get)
    }

    /// Like `from_env`, with a rotator's own defaults for the variables that are not set.
    pub fn from_env_with(defaults: Self) -> Result<Self, String> {
        Self::from_lookup_with(defaults, |name| std::env::var(name).ok())
    }

    pub fn from_lookup_with(d: Self, get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let flag =
            |name: &str, default: bool| crate::config::flag(name, get(name).as_deref(), default);
        let length = match get("PASSWORD_LENGTH").as_deref().map(str::trim) {
            None | Some("") => d.length,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LENGTH).contains(n))
                .ok_or_else(|| {
                    format!(
                        "PASSWORD_LENGTH must be a whole number from 1 to {MAX_LENGTH}, got `{}`",
                        v.escape_debug()
                    )
                })?,
        };
        let policy = Self {
            length,
            exclude_characters: get("EXCLUDE_CHARACTERS").unwrap_or(d.exclude_characters),
            exclude_numbers: flag("EXCLUDE_NUMBERS", d.exclude_numbers)?,
            exclude_punctuation: flag("EXCLUDE_PUNCTUATION", d.exclude_punctuation)?,
            exclude_uppercase: flag("EXCLUDE_UPPERCASE", d.exclude_uppercase)?,
            exclude_lowercase: flag("EXCLUDE_LOWERCASE", d.exclude_lowercase)?,
            require_each_included_type: flag(
                "REQUIRE_EACH_INCLUDED_TYPE",
                d.require_each_included_type,
            )?,
        };
        policy.check()?;
        Ok(policy)
    }

    /// The character classes left after the exclusions, each as its allowed characters.
    fn classes(&self) -> Vec<Vec<char>> {
        let sets = [
            ("0123456789", self.exclude_numbers),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", self.exclude_uppercase),
            ("abcdefghijklmnopqrstuvwxyz", self.exclude_lowercase),
            (PUNCTUATION, self.exclude_punctuation),
        ];
        sets.into_iter()
            .filter(|(_, excluded)| !excluded)
            .map(|(set, _)| {
                set.chars()
                    .filter(|c| !self.exclude_characters.contains(*c))
                    .collect::<Vec<_>>()
            })
            .filter(|set| !set.is_empty())
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        let classes = self.classes();
        if classes.is_empty() {
            return Err("the password settings exclude every character".into());
        }
        if self.require_each_included_type && self.length < classes.len() {
            return Err(format!(
                "PASSWORD_LENGTH {} is shorter than the {} character types REQUIRE_EACH_INCLUDED_TYPE asks for",
                self.length,
                classes.len()
            ));
        }
        Ok(())
    }

    pub fn generate(&self) -> SecretString {
        let classes = self.classes();
        let all: Vec<char> = classes.concat();
        let mut chars: Vec<char> = Vec::with_capacity(self.length);
        if self.require_each_included_type {
            chars.extend(classes.iter().map(|set| set[random::below(set.len())]));
        }
        while chars.len() < self.length {
            chars.push(all[random::below(all.len())]);
        }
        // Fisher-Yates, so the required characters are not always in front.
        for i in (1..chars.len()).rev() {
            chars.swap(i, random::below(i + 1));
        }
        let password = SecretString::new(chars.iter().collect());
        chars.iter_mut().for_each(|c| *c = '\0');
        password
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn policy(vars: &[(&str, &str)]) -> Result<PasswordPolicy, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PasswordPolicy::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_aws_templates() {
        let p = policy(&[]).unwrap();
        assert_eq!(p, PasswordPolicy::default());
        for _ in 0..200 {
            let pw = p.generate();
            let pw = pw.expose();
            assert_eq!(pw.chars().count(), 32);
            assert!(!pw.contains(['/', '@', '"', '\'', '\\']), "{pw}");
            assert!(pw.chars().any(|c| c.is_ascii_digit()));
            assert!(pw.chars().any(|c| c.is_ascii_uppercase()));
            assert!(pw.chars().any(|c| c.is_ascii_lowercase()));
            assert!(pw.chars().any(|c| c.is_ascii_punctuation()));
        }
    }

    #[test]
    fn exclusions_are_honoured() {
        let p = policy(&[
            ("PASSWORD_LENGTH", "64"),
            ("EXCLUDE_PUNCTUATION", "true"),
            ("EXCLUDE_UPPERCASE", "TRUE"),
            ("EXCLUDE_CHARACTERS", "abc0"),
        ])
        .unwrap();
        let pw = p.generate();
        assert_eq!(pw.expose().len(), 64);
        assert!(
            pw.expose()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert!(!pw.expose().contains(['a', 'b', 'c', '0']));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("PASSWORD_LENGTH", "ten")],
                "PASSWORD_LENGTH must be a whole number",
            ),
            (
                &[("PASSWORD_LENGTH", "0")],
                "PASSWORD_LENGTH must be a whole number",
            ),
            (
                &[("PASSWORD_LENGTH", "5000")],
                "PASSWORD_LENGTH must be a whole number",
            ),
            (
                &[("EXCLUDE_NUMBERS", "maybe")],
                "EXCLUDE_NUMBERS must be true or false",
            ),
            (
                &[("REQUIRE_EACH_INCLUDED_TYPE", "2")],
                "REQUIRE_EACH_INCLUDED_TYPE must be",
            ),
            (
                &[
                    ("EXCLUDE_NUMBERS", "true"),
                    ("EXCLUDE_PUNCTUATION", "true"),
                    ("EXCLUDE_UPPERCASE", "true"),
                    ("EXCLUDE_LOWERCASE", "true"),
                ],
                "exclude every character",
            ),
            (
                &[("PASSWORD_LENGTH", "3")],
                "shorter than the 4 character types",
            ),
        ];
        for (vars, want) in cases {
            let err = policy(vars).unwrap_err();
            assert!(err.contains(want), "{vars:?}: {err}");
        }
    }

    #[test]
    fn short_password_without_the_requirement_is_fine() {
        let p = policy(&[
            ("PASSWORD_LENGTH", "1"),
            ("REQUIRE_EACH_INCLUDED_TYPE", "false"),
        ])
        .unwrap();
        assert_eq!(p.generate().expose().len(), 1);
    }
}
