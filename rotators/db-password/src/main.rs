use db_password::db::Settings;
use db_password::master::MasterAllowList;
use db_password::{DbPassword, ROTATOR, default_policy};
use shared::password::PasswordPolicy;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = PasswordPolicy::from_env_with(default_policy()).and_then(|policy| {
        let settings = Settings::from_env()?;
        Ok((policy, settings, MasterAllowList::from_env()?))
    });
    let (policy, settings, masters) =
        config.inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = shared::config::load().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let target = DbPassword {
        policy,
        settings,
        masters,
        rds,
    };
    shared::lambda::serve(ROTATOR, &sdk, target).await
}
