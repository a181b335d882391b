use db_password::db::Settings;
use db_password::{DbPassword, ROTATOR, default_policy};
use shared::password::PasswordPolicy;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = PasswordPolicy::from_env_with(default_policy())
        .and_then(|policy| Settings::from_env().map(|settings| (policy, settings)));
    let (policy, settings) =
        config.inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = shared::config::load().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let target = DbPassword {
        policy,
        settings,
        rds,
    };
    shared::lambda::serve(ROTATOR, &sdk, target).await
}
