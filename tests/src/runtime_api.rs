//! A minimal Lambda Runtime API server: runs a rotator binary as Lambda would (the binary polls
//! `/runtime/invocation/next` and posts a response or an error), so tests, the demo and the
//! benchmarks drive the real release or debug binary without Docker or AWS.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function answered for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Response(Value),
    /// `errorMessage` of an invocation error.
    Error(String),
}

#[derive(Debug)]
pub enum InvokeError {
    /// The process exited before answering (a crash, or a start-up failure).
    Exited(String),
    TimedOut,
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Exited(s) => write!(f, "the function process exited: {s}"),
            InvokeError::TimedOut => f.write_str("the function did not answer in time"),
        }
    }
}

struct Invocation {
    id: String,
    body: String,
    deadline_ms: u64,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct State {
    /// The ARN the function is told it runs as: `stack::function_arn` of the binary's name, the
    /// ARN the driver configures as the secret's rotation function.
    function_arn: String,
    waiting: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    /// When the function first asked for work: the end of its init phase.
    first_poll: std::sync::OnceLock<Instant>,
    /// `errorType` of every invocation error, in order.
    error_types: Mutex<Vec<String>>,
}

/// One running function process and the Runtime API it polls.
pub struct Function {
    binary: std::path::PathBuf,
    env: Vec<(String, String)>,
    child: Child,
    queue: mpsc::Sender<Invocation>,
    output: Arc<Mutex<Vec<String>>>,
    /// The tasks copying the process's stdout and stderr into `output`.
    readers: Vec<JoinHandle<()>>,
    serial: u64,
    echo: bool,
    state: Arc<State>,
    started: Instant,
}

impl Function {
    /// Starts the Runtime API on a loopback port and the binary against it. `echo` copies the
    /// function's output to this process's stderr as it comes.
    pub async fn start(
        binary: &Path,
        env: &[(String, String)],
        echo: bool,
    ) -> std::io::Result<Self> {
        let (queue, next) = mpsc::channel::<Invocation>(1);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let name = binary.file_name().unwrap_or_default().to_string_lossy();
        let state = Arc::new(State {
            function_arn: crate::stack::function_arn(&name),
            waiting: Mutex::default(),
            first_poll: std::sync::OnceLock::new(),
            error_types: Mutex::default(),
        });
        tokio::spawn(serve(
            listener,
            Arc::new(tokio::sync::Mutex::new(next)),
            state.clone(),
        ));
        let output = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let (child, readers) = spawn(binary, env, &addr.to_string(), &output, echo)?;
        Ok(Self {
            binary: binary.to_owned(),
            env: env.to_vec(),
            child,
            queue,
            output,
            readers,
            serial: 0,
            echo,
            state,
            started,
        })
    }

    /// From exec to the first `/invocation/next`: the init phase. `None` until it polled.
    pub fn init_time(&self) -> Option<Duration> {
        self.state
            .first_poll
            .get()
            .map(|t| t.duration_since(self.started))
    }

    /// When the process was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The process's peak resident set size so far (Linux `VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Sends one event and waits for the answer.
    pub async fn invoke(&mut self, event: &Value, timeout: Duration) -> Result<Reply, InvokeError> {
        self.serial += 1;
        let (tx, rx) = oneshot::channel();
        let deadline = SystemTime::now() + timeout;
        let invocation = Invocation {
            id: format!("req-{}", self.serial),
            body: event.to_string(),
            deadline_ms: deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64,
            reply: tx,
        };
        if self.queue.send(invocation).await.is_err() {
            return Err(InvokeError::Exited("the runtime API server stopped".into()));
        }
        let outcome = tokio::select! {
            reply = rx => reply.map_err(|_| InvokeError::Exited("no reply".into())),
            status = self.child.wait() => Err(InvokeError::Exited(
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            )),
            () = tokio::time::sleep(timeout) => Err(InvokeError::TimedOut),
        };
        if let Err(InvokeError::Exited(_)) = outcome {
            self.drain_output().await;
        }
        outcome
    }

    /// Waits until the readers copied what an exited process left in its pipes: the exit is
    /// seen before they are done, and a start-up error is often the last thing printed.
    async fn drain_output(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
    }

    /// Starts the process again if it exited, as Lambda starts a new execution environment.
    pub async fn ensure_running(&mut self) -> std::io::Result<()> {
        if self.child.try_wait()?.is_some() {
            let fresh = Function::start(&self.binary, &self.env, self.echo).await?;
            let old_output = std::mem::take(&mut *self.output.lock().unwrap());
            fresh.output.lock().unwrap().splice(0..0, old_output);
            *self = fresh;
        }
        Ok(())
    }

    /// The `errorType` of every error the function answered so far, oldest first.
    pub fn error_types(&self) -> Vec<String> {
        self.state.error_types.lock().unwrap().clone()
    }

    /// Everything the function printed so far (its JSON logs and EMF lines).
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Fails when any line the function printed contains one of `secrets`.
    pub fn assert_no_leak(&self, secrets: &[&str]) {
        for line in self.output() {
            for s in secrets.iter().filter(|s| !s.is_empty()) {
                assert!(
                    !line.contains(s),
                    "a secret reached the function's output: {line}"
                );
            }
        }
    }

    /// Whether the process has exited (it crashed, or failed at start-up).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().map_or(true, |s| s.is_some())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The secrets a test function rotates unless the test names its own (`ROTATED_SECRET_ARNS`).
pub const TEST_SECRETS: &str = "arn:aws:secretsmanager:*:123456789012:secret:*";

fn spawn(
    binary: &Path,
    env: &[(String, String)],
    api: &str,
    output: &Arc<Mutex<Vec<String>>>,
    echo: bool,
) -> std::io::Result<(Child, Vec<JoinHandle<()>>)> {
    let name = binary
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let mut child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        // The most verbose level, so the tests' leak checks see everything a function can log.
        .env("LOG_LEVEL", "trace")
        // Every secret of the tests' account; a test narrows it by giving its own.
        .env(shared::rotated::ENV, TEST_SECRETS)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let readers = [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        Box::new(stderr),
    ]
    .into_iter()
    .map(|stream| {
        let output = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("{line}");
                }
                output.lock().unwrap().push(line);
            }
        })
    })
    .collect();
    Ok((child, readers))
}

type Next = Arc<tokio::sync::Mutex<mpsc::Receiver<Invocation>>>;

async fn serve(listener: TcpListener, next: Next, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (next, state) = (next.clone(), state.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| route(req, next.clone(), state.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(
    req: Request<Incoming>,
    next: Next,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .to_owned();
    let method = req.method().clone();
    let body = req.into_body().collect().await?.to_bytes();
    let respond = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if method == Method::GET && path == "/invocation/next" {
        let _ = state.first_poll.set(Instant::now());
        let Some(inv) = next.lock().await.recv().await else {
            return Ok(respond(StatusCode::GONE, String::new()));
        };
        state
            .waiting
            .lock()
            .unwrap()
            .insert(inv.id.clone(), inv.reply);
        let mut r = respond(StatusCode::OK, inv.body);
        let h = r.headers_mut();
        h.insert("lambda-runtime-aws-request-id", inv.id.parse().unwrap());
        h.insert(
            "lambda-runtime-deadline-ms",
            inv.deadline_ms.to_string().parse().unwrap(),
        );
        h.insert(
            "lambda-runtime-invoked-function-arn",
            state.function_arn.parse().unwrap(),
        );
        h.insert(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".parse().unwrap(),
        );
        return Ok(r);
    }
    if method == Method::POST && path == "/init/error" {
        // The process exits after this; `invoke` reports the exit.
        return Ok(respond(StatusCode::ACCEPTED, String::new()));
    }
    if method == Method::POST
        && let Some(rest) = path.strip_prefix("/invocation/")
        && let Some((id, kind)) = rest.split_once('/')
    {
        let reply = match kind {
            "response" => Reply::Response(serde_json::from_slice(&body).unwrap_or(Value::Null)),
            "error" => {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let error_type = v["errorType"].as_str().unwrap_or_default().to_owned();
                state.error_types.lock().unwrap().push(error_type);
                Reply::Error(v["errorMessage"].as_str().unwrap_or_default().to_owned())
            }
            _ => return Ok(respond(StatusCode::NOT_FOUND, String::new())),
        };
        if let Some(tx) = state.waiting.lock().unwrap().remove(id) {
            let _ = tx.send(reply);
        }
        return Ok(respond(StatusCode::ACCEPTED, String::new()));
    }
    Ok(respond(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {path}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A process that prints more than a pipe holds and exits at once: all of it is in
    /// `output()` when `invoke` reports the exit (a start-up error is the last line printed).
    #[tokio::test]
    async fn the_output_of_an_exited_process_is_complete_when_invoke_returns() {
        let script = std::env::temp_dir().join(format!("exits-at-start-{}", std::process::id()));
        std::fs::write(
            &script,
            "#!/bin/sh\nseq 1 20000\necho the last line >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut f = Function::start(&script, &[], false).await.unwrap();
        let err = f
            .invoke(&serde_json::json!({}), Duration::from_secs(10))
            .await
            .unwrap_err();
        std::fs::remove_file(&script).unwrap();
        assert!(matches!(err, InvokeError::Exited(_)), "{err}");
        let output = f.output();
        assert_eq!(output.len(), 20001);
        assert!(output.contains(&"the last line".to_string()));
        assert_eq!(output.iter().filter(|l| *l == "20000").count(), 1);
    }
}
