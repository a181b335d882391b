use github_token::{GitHubToken, ROTATOR};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let target = GitHubToken::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = shared::config::load().await;
    shared::lambda::serve(ROTATOR, &sdk, target).await
}
