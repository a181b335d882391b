//! `rotate-local`: rotate a secret on the local stack the way `aws secretsmanager rotate-secret`
//! does, running a rotator binary through the Lambda Runtime API.
//!
//! Usage: rotate-local --secret-id ID --function PATH [--resume | --preflight] [--env NAME=VALUE]... [--logs]
//!
//! `--preflight` runs the function's read-only pre-flight check instead of a rotation and prints
//! its report; the exit status is 1 when a check failed.

use e2e::driver::{self, Options};
use e2e::runtime_api::Function;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: rotate-local --secret-id ID --function PATH [--resume | --preflight] [--env NAME=VALUE]... [--logs]";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rotate-local: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, String> {
    let (mut secret, mut function, mut env) = (None, None, Vec::new());
    let (mut resume, mut logs, mut preflight) = (false, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secret-id" => secret = args.next(),
            "--function" => function = args.next().map(PathBuf::from),
            "--resume" => resume = true,
            "--preflight" => preflight = true,
            "--logs" => logs = true,
            "--env" => {
                let pair = args.next().ok_or(USAGE)?;
                let (k, v) = pair.split_once('=').ok_or("--env takes NAME=VALUE")?;
                env.push((k.to_owned(), v.to_owned()));
            }
            _ => return Err(format!("unknown argument `{arg}`\n{USAGE}")),
        }
    }
    let secret = secret.ok_or(USAGE)?;
    let function = function.ok_or(USAGE)?;
    let client = e2e::stack::client().await;
    let name = function
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let mut f = Function::start(&function, &env, logs)
        .await
        .map_err(|e| format!("cannot start {}: {e}", function.display()))?;
    if preflight {
        let report = driver::preflight(&mut f, &secret).await;
        f.stop().await;
        let report = report?;
        print!("{}", driver::format_report(&report));
        return Ok(report["preflight"] == "ok");
    }
    let opts = Options {
        resume,
        lambda_arn: e2e::stack::function_arn(&name),
        step_timeout: Duration::from_secs(60),
    };
    let rotation = driver::rotate(&client, &mut f, &secret, &opts).await;
    f.stop().await;
    let rotation = rotation?;
    println!("rotation of {secret} to version {}", rotation.token);
    for s in &rotation.steps {
        match &s.result {
            Ok(()) => println!("  {:<13} ok      {:>7.1} ms", s.step.as_str(), s.millis),
            Err(e) => println!(
                "  {:<13} FAILED  {:>7.1} ms  {e}",
                s.step.as_str(),
                s.millis
            ),
        }
    }
    println!("labels:\n{}", driver::format_labels(&rotation.labels));
    Ok(rotation.succeeded())
}
