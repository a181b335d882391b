use random_password::RandomPassword;
use shared::password::PasswordPolicy;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let policy = PasswordPolicy::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "invalid password configuration");
    })?;
    let sdk = shared::config::load().await;
    shared::lambda::serve("random-password", &sdk, RandomPassword { policy }).await
}
