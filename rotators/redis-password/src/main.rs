use redis_password::conn::Settings;
use redis_password::elasticache::{self, ElastiCache};
use redis_password::{ADMIN_SECRET_ARNS, ROTATOR, RedisPassword, default_policy};
use shared::allow_list::AllowList;
use shared::password::PasswordPolicy;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = PasswordPolicy::from_env_with(default_policy()).and_then(|policy| {
        let settings = Settings::from_env()?;
        let admins = AllowList::from_env(ADMIN_SECRET_ARNS)?;
        Ok((
            policy,
            settings,
            admins,
            AllowList::from_env(elasticache::USER_ARNS)?,
        ))
    });
    let (policy, settings, admins, users) =
        config.inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = shared::config::load().await;
    let target = RedisPassword {
        policy,
        settings,
        admins,
        elasticache: ElastiCache {
            client: aws_sdk_elasticache::Client::new(&sdk),
            users,
        },
    };
    shared::lambda::serve(ROTATOR, &sdk, target).await
}
