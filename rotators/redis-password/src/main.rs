use redis_password::conn::Settings;
use redis_password::elasticache::{ElastiCache, MEMORYDB_USER_ARNS, USER_ARNS};
use redis_password::{ADMIN_SECRET_ARNS, ROTATOR, RedisPassword, default_policy};
use shared::allow_list::AllowList;
use shared::password::PasswordPolicy;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = PasswordPolicy::from_env_with(default_policy()).and_then(|policy| {
        let settings = Settings::from_env()?;
        let admins = AllowList::from_env(ADMIN_SECRET_ARNS)?;
        let users = (
            AllowList::from_env(USER_ARNS)?,
            AllowList::from_env(MEMORYDB_USER_ARNS)?,
            redis_password::pin::keep_unproven_current_from_env()?,
        );
        Ok((policy, settings, admins, users))
    });
    let (policy, settings, admins, (users, memorydb_users, keep_unproven_current)) =
        config.inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = shared::config::load().await;
    let target = RedisPassword {
        policy,
        settings,
        admins,
        elasticache: ElastiCache {
            client: aws_sdk_elasticache::Client::new(&sdk),
            memorydb: aws_sdk_memorydb::Client::new(&sdk),
            users,
            memorydb_users,
            keep_unproven_current,
        },
    };
    shared::lambda::serve(ROTATOR, &sdk, target).await
}
