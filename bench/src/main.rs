//! `rotation-bench`: measures the release binaries on the local stack and prints a JSON report.
//! Run through `bench/run`, which builds them, starts the stack and writes bench/README.md.
//!
//! usage: rotation-bench BIN_DIR [COLD_RUNS] [WARM_ROTATIONS] [CPU_RUNS]
//!
//! `BENCH_ONLY=cold,warm,templates,cpu,scale` (a subset) runs only those sections; `logins` runs
//! when `BENCH_LOGINS_REFERENCE` names the C reference client.

mod cpu;
mod logins;
mod subject;
mod template;

use e2e::proxy;

use e2e::driver::{self, Options};
use e2e::runtime_api::{Function, Reply};
use serde_json::{Value, json};
use shared::store::{AWSCURRENT, AwsStore, SecretStore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use subject::Subject;

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, min and max in milliseconds.
pub(crate) fn summary(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let median = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    };
    json!({"median_ms": median, "min_ms": samples[0], "max_ms": samples[n - 1], "runs": n})
}

fn options(subject: Subject) -> Options {
    Options::new(subject.binary())
}

/// A fresh process of `exe` per run: exec to the first `/invocation/next` (init), and exec to the
/// answer of one invocation that reads the local Secrets Manager (a step for a finished version:
/// one `DescribeSecret`).
async fn cold_start(exe: &Path, subject: Subject, runs: usize) -> Value {
    let client = subject.client().await;
    let arn = subject.new_secret(&client).await;
    let env = subject.env(&subject.upstream()).await;
    // One rotation first, so rotation is enabled and the current version is a finished one.
    let mut f = Function::start(exe, &env, false).await.unwrap();
    let r = driver::rotate(&client, &mut f, &arn, &options(subject))
        .await
        .unwrap();
    assert!(r.succeeded(), "{:?}", r.steps);
    f.stop().await;
    let labels = AwsStore::new(client).describe(&arn).await.unwrap().labels;
    let current = labels.version_with(AWSCURRENT).unwrap().to_owned();
    let event = json!({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": current});
    let (mut init, mut first) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut f = Function::start(exe, &env, false).await.unwrap();
        let reply = f.invoke(&event, Duration::from_secs(30)).await.unwrap();
        let answered = f.started().elapsed();
        assert!(matches!(reply, Reply::Response(_)), "{reply:?}");
        init.push(ms(f.init_time().unwrap()));
        first.push(ms(answered));
        f.stop().await;
    }
    json!({"init": summary(init), "first_response": summary(first)})
}

/// One long-lived process, `rotations` full rotations through the driver, each through the
/// counting proxy (the calls reported are the last rotation's). Also the process's peak RSS.
async fn warm(bin_dir: &Path, subject: Subject, rotations: usize) -> Value {
    warm_process(&bin_dir.join(subject.binary()), subject, rotations, &[]).await
}

/// `warm` for any function executable (ours, or an AWS template under bench/lambda_runtime.py),
/// with extra environment; `{proxy}` in a value becomes the counting proxy's URL.
async fn warm_process(
    exe: &Path,
    subject: Subject,
    rotations: usize,
    extra_env: &[(&str, &str)],
) -> Value {
    let client = subject.client().await;
    let (proxy_url, counts) = proxy::start(subject.upstream()).await;
    let mut env = subject.env(&proxy_url).await;
    for (k, v) in extra_env {
        env.push((k.to_string(), v.replace("{proxy}", &proxy_url)));
    }
    let mut f = Function::start(exe, &env, false).await.unwrap();
    let mut per_step: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut totals = Vec::new();
    let mut calls = BTreeMap::new();
    // A subject that rotates one secret has it rotated once, unmeasured, so that every measured
    // rotation retires the previous credential.
    let one_secret = if subject.rotates_one_secret() {
        let arn = subject.new_secret(&client).await;
        let r = driver::rotate(&client, &mut f, &arn, &options(subject))
            .await
            .unwrap();
        assert!(r.succeeded(), "{:?}\n{}", r.steps, f.output().join("\n"));
        Some(arn)
    } else {
        None
    };
    for _ in 0..rotations {
        let arn = match &one_secret {
            Some(arn) => arn.clone(),
            None => subject.new_secret(&client).await,
        };
        counts.take();
        let gh_before = github_exchanges(subject).await;
        let r = driver::rotate(&client, &mut f, &arn, &options(subject))
            .await
            .unwrap();
        assert!(r.succeeded(), "{:?}\n{}", r.steps, f.output().join("\n"));
        calls = counts.take();
        if let Subject::GitHubToken = subject {
            // GitHub calls come from the stand-in's record, by method and path template.
            for x in &subject::github().await.gh.exchanges()[gh_before..] {
                let path: Vec<&str> = x
                    .path
                    .split('/')
                    .map(|seg| match seg.parse::<u64>() {
                        Ok(_) => "{id}",
                        Err(_) => seg,
                    })
                    .collect();
                *calls
                    .entry(format!("GitHub:{} {}", x.method, path.join("/")))
                    .or_insert(0) += 1;
            }
        }
        for s in &r.steps {
            per_step.entry(s.step.as_str()).or_default().push(s.millis);
        }
        totals.push(r.steps.iter().map(|s| s.millis).sum());
    }
    let peak_rss_kib = f.peak_rss_kib();
    f.stop().await;
    let steps: BTreeMap<&str, Value> = per_step.into_iter().map(|(k, v)| (k, summary(v))).collect();
    let sm_calls: u64 = calls
        .iter()
        .filter(|(k, _)| k.starts_with("SecretsManager:"))
        .map(|(_, v)| v)
        .sum();
    json!({
        "rotation": summary(totals),
        "steps": steps,
        "api_calls": calls,
        "secrets_manager_calls": sm_calls,
        "peak_rss_kib": peak_rss_kib,
    })
}

/// How many requests the GitHub stand-in has answered so far (0 for the other subjects).
async fn github_exchanges(subject: Subject) -> usize {
    match subject {
        Subject::GitHubToken => subject::github().await.gh.exchanges().len(),
        _ => 0,
    }
}

/// `n` secrets rotated at once, each by its own function process (as Lambda would scale out).
async fn scale(bin_dir: &Path, n: usize) -> Value {
    let subject = Subject::RandomPassword;
    let client = subject.client().await;
    let env = subject.env(&subject.upstream()).await;
    let mut tasks = tokio::task::JoinSet::new();
    let mut ready = Vec::new();
    for _ in 0..n {
        let arn = subject.new_secret(&client).await;
        let f = Function::start(&bin_dir.join(subject.binary()), &env, false)
            .await
            .unwrap();
        ready.push((arn, f));
    }
    let started = Instant::now();
    for (arn, mut f) in ready {
        let client = client.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            let r = driver::rotate(&client, &mut f, &arn, &options(subject))
                .await
                .unwrap();
            assert!(r.succeeded(), "{:?}", r.steps);
            f.stop().await;
            ms(t.elapsed())
        });
    }
    let mut each = Vec::new();
    while let Some(t) = tasks.join_next().await {
        each.push(t.unwrap());
    }
    json!({"secrets": n, "wall_ms": ms(started.elapsed()), "per_rotation": summary(each)})
}

/// Memory sizes whose CPU share the rotators are measured at (`None`: no limit, the baseline
/// through the same wrapper).
const MEMORY_SIZES: [Option<u64>; 5] = [None, Some(1024), Some(512), Some(256), Some(128)];

/// Every rotator's cold start and warm rotations with the CPU limited to the share Lambda gives
/// each of `MEMORY_SIZES`. `None` when the limit cannot be set here (the reason is printed).
async fn cpu_shares(bin_dir: &Path, runs: usize) -> Option<Value> {
    let mut sizes = Vec::new();
    for memory_mb in MEMORY_SIZES {
        let limit = match cpu::Limit::new(bin_dir, memory_mb) {
            Ok(limit) => limit,
            Err(why) => {
                eprintln!("bench: skipping the CPU-share measurements: {why}");
                return None;
            }
        };
        let share = memory_mb.map_or(1.0, |mb| mb as f64 / cpu::FULL_VCPU_MB as f64);
        let mut subjects = BTreeMap::new();
        for subject in Subject::ALL {
            eprintln!("bench: {} at {memory_mb:?} MB's CPU share", subject.label());
            let exe = limit.wrap(&bin_dir.join(subject.binary()));
            let throttled = limit.throttled_ms();
            let cold = cold_start(&exe, subject, runs).await;
            let warm = warm_process(&exe, subject, runs, &[]).await;
            let throttled = limit.throttled_ms() - throttled;
            subjects.insert(
                subject.label(),
                json!({"cold_start": cold, "warm": warm, "throttled_ms": throttled}),
            );
        }
        sizes.push(json!({"memory_mb": memory_mb, "cpu_share": share, "subjects": subjects}));
    }
    Some(json!({"period_us": 100_000, "runs": runs, "sizes": sizes}))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin_dir = PathBuf::from(
        args.next()
            .expect("usage: rotation-bench BIN_DIR [COLD_RUNS] [WARM_ROTATIONS]"),
    );
    let cold_runs: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(20);
    let rotations: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(20);
    let cpu_runs: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(5);
    let only = std::env::var("BENCH_ONLY").ok();
    let run = |section: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|s| s == section))
    };
    let mut report =
        json!({"cold_runs": cold_runs, "warm_rotations": rotations, "cpu_runs": cpu_runs});
    // Other work on the machine skews the times: the load averages before and after say how much.
    report["load_before"] = json!(loadavg());
    // The C reference client for DB logins (bench/run compiles bench/reference/logins.c).
    if let Ok(tool) = std::env::var("BENCH_LOGINS_REFERENCE") {
        report["logins"] = logins::run(Path::new(&tool), 10).await;
    }
    if std::env::var_os("BENCH_ONLY_LOGINS").is_some() {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    for subject in Subject::ALL {
        if run("cold") {
            eprintln!("bench: {} cold start", subject.label());
            report["cold_start"][subject.label()] =
                cold_start(&bin_dir.join(subject.binary()), subject, cold_runs).await;
        }
        if run("warm") {
            eprintln!("bench: {} warm rotations", subject.label());
            report["warm"][subject.label()] = warm(&bin_dir, subject, rotations).await;
        }
    }
    // AWS's Python templates on the same servers, when a copy of aws-samples/
    // aws-secrets-manager-rotation-lambdas is at BENCH_AWS_TEMPLATES (not part of this repository).
    let templates = std::env::var("BENCH_AWS_TEMPLATES").ok();
    if let Some(dir) = templates.filter(|_| run("templates")) {
        for (subject, template) in [
            (
                Subject::DbPostgres,
                "SecretsManagerRDSPostgreSQLRotationSingleUser",
            ),
            (
                Subject::DbMariaDb,
                "SecretsManagerRDSMariaDBRotationSingleUser",
            ),
        ] {
            eprintln!("bench: AWS template {template} warm rotations");
            let runner = template::runner(&bin_dir, Path::new(&dir).join(template));
            let ca = std::env::var("TEST_CA_FILE").unwrap();
            let env = [
                ("SECRETS_MANAGER_ENDPOINT", "{proxy}"),
                ("BENCH_CA_FILE", ca.as_str()),
            ];
            report["aws_template"][subject.label()] =
                warm_process(&runner, subject, rotations, &env).await;
        }
    }
    if run("cpu")
        && let Some(cpu) = cpu_shares(&bin_dir, cpu_runs).await
    {
        report["cpu_shares"] = cpu;
    }
    if run("scale") {
        let mut scaling = Vec::new();
        for n in [1, 10, 100] {
            eprintln!("bench: {n} concurrent rotations");
            scaling.push(scale(&bin_dir, n).await);
        }
        report["scale"] = Value::Array(scaling);
    }
    report["load_after"] = json!(loadavg());
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
