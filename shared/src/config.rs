//! AWS SDK configuration from the environment, with the endpoint variables users already set.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Loads the shared SDK configuration. `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` are
/// honoured by the SDK itself. Timeouts keep a hung call from eating the whole Lambda budget.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await
}

/// The Secrets Manager client. AWS's Python templates read `SECRETS_MANAGER_ENDPOINT`; it applies
/// when the standard `AWS_ENDPOINT_URL_SECRETS_MANAGER` is not set.
pub fn secrets_manager(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let mut builder = aws_sdk_secretsmanager::config::Builder::from(config);
    if std::env::var_os("AWS_ENDPOINT_URL_SECRETS_MANAGER").is_none()
        && let Some(url) = non_empty_env("SECRETS_MANAGER_ENDPOINT")
    {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_secretsmanager::Client::from_conf(builder.build())
}

/// The variables every rotator reads through this crate (the password policy's are in
/// `password::ENV`).
pub const ENV: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "SECRETS_MANAGER_ENDPOINT",
    "LOG_LEVEL",
    "RUST_LOG",
    "METRICS_NAMESPACE",
    "RETIRE_PREVIOUS",
    "RETIRE_PREVIOUS_MIN_AGE_SECONDS",
    crate::rotated::ENV,
];

/// `RETIRE_PREVIOUS_MIN_AGE_SECONDS` unset or blank.
pub const RETIRE_MIN_AGE_DEFAULT: Duration = Duration::from_secs(7200);

/// How long, at least, the credential that stopped being current keeps working before
/// `RETIRE_PREVIOUS=next-rotation` retires it (`RETIRE_PREVIOUS_MIN_AGE_SECONDS`). The default,
/// 2 h, is twice the longest common cache lifetime (AWS's caching clients and the Lambda extension
/// refresh hourly), because "stopped being current" is read as the new version's creation, which
/// precedes its promotion by the rotation's own run. Scheduled rotations wait for it only when
/// their windows let two start less than 2 h apart: `rate(4 hours)` (one-hour windows) never
/// does, a schedule in days without a `Duration` (the whole UTC day) can, so the README asks for
/// a `Duration` there.
pub fn retire_min_age() -> Result<Duration, String> {
    const NAME: &str = "RETIRE_PREVIOUS_MIN_AGE_SECONDS";
    match non_empty_env(NAME) {
        None => Ok(RETIRE_MIN_AGE_DEFAULT),
        Some(v) => v.trim().parse().map(Duration::from_secs).map_err(|_| {
            format!(
                "{NAME} must be a whole number of seconds, got `{}`",
                v.escape_debug()
            )
        }),
    }
}

/// When the credential that became `AWSPREVIOUS` is retired (`RETIRE_PREVIOUS`), the same for
/// every rotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// `next-rotation` (default): it keeps working until the next rotation retires it first
    /// thing (in createSecret), so a consumer that read `AWSCURRENT` through a cache just before
    /// finishSecret still holds a working credential for a whole rotation period.
    NextRotation,
    /// `finish`: finishSecret retires it at once.
    Finish,
}

impl Retire {
    /// `RETIRE_PREVIOUS` unset or blank.
    pub const DEFAULT: Retire = Retire::NextRotation;

    pub fn from_env() -> Result<Self, String> {
        retire_min_age()?;
        match non_empty_env("RETIRE_PREVIOUS").as_deref().map(str::trim) {
            None => Ok(Self::DEFAULT),
            Some("next-rotation") => Ok(Retire::NextRotation),
            Some("finish") => Ok(Retire::Finish),
            Some(other) => Err(format!(
                "RETIRE_PREVIOUS must be next-rotation or finish, got `{}`",
                other.escape_debug()
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Retire::NextRotation => "next-rotation",
            Retire::Finish => "finish",
        }
    }
}

pub fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A yes/no variable, read the way AWS's Python templates read theirs: `true`, `1`, `y`, `yes`
/// (any case) are true. The templates take every other text as false; we take only `false`, `0`,
/// `n`, `no` as false and refuse the rest by name, so a typo cannot silently flip a setting.
/// Unset or blank: `default`.
pub fn flag(name: &str, value: Option<&str>, default: bool) -> Result<bool, String> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "y" | "yes" => Ok(true),
        "false" | "0" | "n" | "no" => Ok(false),
        _ => Err(format!(
            "{name} must be true or false (or 1/0, yes/no, y/n), got `{}`",
            v.escape_debug()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::flag;

    #[test]
    fn flags_read_as_the_templates_read_them() {
        for yes in ["true", "TRUE", "True", "1", "y", "Y", "yes", "YES", " yes "] {
            assert_eq!(flag("X", Some(yes), false), Ok(true), "{yes}");
        }
        for no in ["false", "False", "0", "n", "no", "NO"] {
            assert_eq!(flag("X", Some(no), true), Ok(false), "{no}");
        }
        assert_eq!(flag("X", None, true), Ok(true));
        assert_eq!(flag("X", Some("  "), false), Ok(false));
        let err = flag("EXCLUDE_NUMBERS", Some("maybe"), false).unwrap_err();
        assert!(
            err.contains("EXCLUDE_NUMBERS must be true or false"),
            "{err}"
        );
    }
}
