//! The rig of every rotator's end-to-end tests: the local Secrets Manager, the real binary under
//! the Runtime API stand-in, and the driver's helpers. A test file wraps it with what is its
//! rotator's own (the function's environment, its secrets, its service), so adding a rotator
//! adds no rig.

use crate::driver::{self, Options, Rotation};
use crate::runtime_api::Function;
use crate::stack;
use aws_sdk_secretsmanager::Client;
use serde_json::Value;
use shared::Step;
use shared::store::{AWSCURRENT, AwsStore, SecretStore};

pub struct Rig {
    /// The rotator's binary, `rotate-<...>`.
    pub binary: String,
    pub client: Client,
    pub store: AwsStore,
    pub function: Function,
}

impl Rig {
    /// `binary` (built in the workspace) running with `env` against the local Secrets Manager.
    pub async fn start(binary: &str, env: &[(String, String)]) -> Self {
        Self::with_client(stack::client().await, binary, env).await
    }

    /// As `start`, with Secrets Manager reached through `client`.
    pub async fn with_client(client: Client, binary: &str, env: &[(String, String)]) -> Self {
        let function = Function::start(&crate::workspace_binary(binary), env, false)
            .await
            .unwrap_or_else(|e| panic!("{binary}: {e}"));
        Self {
            binary: binary.to_owned(),
            store: AwsStore::new(client.clone()),
            client,
            function,
        }
    }

    /// What Secrets Manager uses for this function (see `driver::Options::new`).
    pub fn options(&self) -> Options {
        Options::new(&self.binary)
    }

    /// The function's ARN, as rotations of it name it.
    pub fn lambda_arn(&self) -> String {
        stack::function_arn(&self.binary)
    }

    /// A new secret holding `value`, named after `name` and unique to this run.
    pub async fn secret(&self, name: &str, value: &Value) -> String {
        stack::create_secret(&self.client, &stack::unique(name), &value.to_string()).await
    }

    pub async fn rotate(&mut self, arn: &str) -> Rotation {
        let opts = self.options();
        self.rotate_with(arn, &opts).await
    }

    pub async fn rotate_with(&mut self, arn: &str, opts: &Options) -> Rotation {
        driver::rotate(&self.client, &mut self.function, arn, opts)
            .await
            .unwrap()
    }

    /// A rotation whose four steps must succeed.
    pub async fn rotate_ok(&mut self, arn: &str) -> Rotation {
        let opts = self.options();
        driver::rotate_ok(&self.client, &mut self.function, arn, &opts).await
    }

    /// Runs the four steps again for `token`, as Secrets Manager retries a failed rotation.
    pub async fn retry(&mut self, arn: &str, token: &str, opts: &Options) -> Rotation {
        driver::retry(&self.client, &mut self.function, arn, token, opts)
            .await
            .unwrap()
    }

    /// Begins a rotation and runs `steps` of it, each of which must succeed; its token.
    pub async fn begin_and_run(&mut self, arn: &str, steps: &[Step]) -> String {
        let lambda = self.lambda_arn();
        driver::begin_and_run(&self.client, &mut self.function, arn, &lambda, steps).await
    }

    /// The JSON value under a label.
    pub async fn value(&self, arn: &str, stage: &str) -> Value {
        stack::json_value(&self.store, arn, stage).await
    }

    /// A rotation that must fail and leave `AWSCURRENT` as it was; the failing step's error.
    pub async fn refused(&mut self, arn: &str) -> String {
        let before = self.store.get_value(arn, None, AWSCURRENT).await.unwrap();
        let r = self.rotate(arn).await;
        let failed = r.steps.iter().find_map(|s| s.result.clone().err());
        let error = failed.unwrap_or_else(|| panic!("the rotation succeeded: {:?}", r.steps));
        let after = self.store.get_value(arn, None, AWSCURRENT).await.unwrap();
        assert_eq!(after.version_id, before.version_id, "{error}");
        assert_eq!(after.value, before.value, "{error}");
        error
    }

    /// The function's pre-flight report for `arn`.
    pub async fn preflight(&mut self, arn: &str) -> Value {
        driver::preflight(&mut self.function, arn).await.unwrap()
    }

    /// The function's output must never contain a secret the test knows of.
    pub fn assert_no_leak(&self, secrets: &[&str]) {
        self.function.assert_no_leak(secrets);
    }
}

/// `base` with `overrides`, each replacing the variable of its name; an empty value removes it.
pub fn env_with(
    mut base: Vec<(String, String)>,
    overrides: &[(&str, &str)],
) -> Vec<(String, String)> {
    for (k, v) in overrides {
        base.retain(|(name, _)| name != k);
        if !v.is_empty() {
            base.push((k.to_string(), v.to_string()));
        }
    }
    base
}
