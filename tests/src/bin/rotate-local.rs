//! `rotate-local`: rotate a secret on the local stack the way `aws secretsmanager rotate-secret`
//! does, running a rotator binary through the Lambda Runtime API. `rotate-local --help` says how.

use e2e::driver::{self, Options};
use e2e::runtime_api::Function;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: rotate-local --secret-id ID --function PATH [--resume | --preflight] [--env NAME=VALUE]... [--logs]";

const HELP: &str = "\
Rotates a secret of the local stack as `aws secretsmanager rotate-secret` does: creates the
AWSPENDING placeholder, then runs the four steps through the Lambda Runtime API with the rotator
binary PATH, and prints each step's outcome and the final labels.

  --secret-id ID     the secret's name or ARN in the local Secrets Manager
  --function PATH    the rotator binary, e.g. target/debug/rotate-random-password
  --resume           retry the rotation in progress (same token), as Secrets Manager's retry does
  --preflight        run the function's read-only pre-flight check instead; exit status 1 when a
                     check failed
  --env NAME=VALUE   set an environment variable of the function (repeatable)
  --logs             copy the function's log lines to stderr as they come. The function logs at
                     LOG_LEVEL=trace here (the templates deploy info); --env LOG_LEVEL=info (or
                     error, warn, debug) sets another level
  -h, --help         this text

Without --logs, the function's output is printed when its process exits before answering (a
start-up error, such as a bad setting).

The local stack must be running in this shell, as AWS_ENDPOINT_URL and friends say where it is:
  . scripts/stack.sh && stack_start     (stack_stop ends it)

Exit status: 0 when the rotation (or pre-flight) succeeded, 1 when a step (or check) failed, 2 when
it could not run.";

const NO_STACK: &str = "start it in this shell with `. scripts/stack.sh && stack_start` (it exports AWS_ENDPOINT_URL and the test credentials), then rerun; `stack_stop` ends it";

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
            "-h" | "--help" => {
                println!("{USAGE}\n\n{HELP}");
                return Ok(true);
            }
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
    stack_is_running().await?;
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
        print_output_if_it_died(&mut f, logs);
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
    print_output_if_it_died(&mut f, logs);
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

/// The endpoint the stack exported, on loopback and answering; otherwise how to start the stack
/// (e2e::stack would panic, and the SDK would only say "dispatch failure").
async fn stack_is_running() -> Result<(), String> {
    let url = std::env::var("AWS_ENDPOINT_URL").map_err(|_| {
        format!("the local stack is not running (AWS_ENDPOINT_URL is not set): {NO_STACK}")
    })?;
    let addr = ["http://127.0.0.1:", "http://localhost:"]
        .iter()
        .find_map(|p| url.strip_prefix(p))
        .map(|port| format!("127.0.0.1:{}", port.trim_end_matches('/')))
        .ok_or_else(|| {
            format!(
                "AWS_ENDPOINT_URL is {url}, not the local stack (http://127.0.0.1:PORT): {NO_STACK}"
            )
        })?;
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        _ => Err(format!(
            "the local stack is not running (nothing answers at AWS_ENDPOINT_URL={url}): {NO_STACK}"
        )),
    }
}

/// A function that exits before answering has said why in its output (a start-up error, e.g. a
/// bad setting): print it even without --logs, which already copied it.
fn print_output_if_it_died(f: &mut Function, logs: bool) {
    if !logs && f.has_exited() {
        eprintln!("rotate-local: the function exited; its output:");
        for line in f.output() {
            eprintln!("  {line}");
        }
    }
}
