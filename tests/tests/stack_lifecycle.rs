//! No process of the local stack outlives the script that started it (`scripts/demo`,
//! `scripts/test`). Each run gets a private `STACK_DIR`; every process the run starts inherits it
//! in its environment, so the stack's processes are told apart from the machine's own PostgreSQL,
//! MariaDB or Redis and from other people's stacks without touching any of those.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// A fresh directory for STACK_DIR and a `cargo` that does nothing: this test's own cargo already
/// built the binaries and holds the build lock, so a nested build would wait for ever.
fn sandbox(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stack-lifecycle-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(&cargo, "#!/bin/sh\nexit \"${FAKE_CARGO_STATUS:-0}\"\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&cargo)
        .status()
        .unwrap();
    dir
}

/// The processes (pid, name) whose environment says `STACK_DIR=<dir>`.
fn processes_of(dir: &Path) -> BTreeSet<(u32, String)> {
    let marker = format!("STACK_DIR={}", dir.join("stack").display());
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            found.insert((pid, name.trim().to_owned()));
        }
    }
    found
}

/// Runs `bash -c script` in the work tree with the sandbox's STACK_DIR and cargo, watching the
/// processes it starts. Returns the process names seen while it ran, its output, and what is left
/// a moment after it exited.
fn run_and_watch(
    dir: &Path,
    script: &str,
    env: &[(&str, &str)],
) -> (BTreeSet<String>, String, BTreeSet<(u32, String)>) {
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(root())
        .env("STACK_DIR", dir.join("stack"))
        .env("PATH", path)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the script did not end within 5 minutes"
        );
        seen.extend(processes_of(dir).into_iter().map(|(_, name)| name));
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = format!("{}{}", out.join().unwrap(), err.join().unwrap());
    // Whatever the script stops, it stops before it exits; a short grace covers /proc catching up.
    std::thread::sleep(Duration::from_millis(300));
    (seen, output, processes_of(dir))
}

fn assert_whole_stack_seen(seen: &BTreeSet<String>, output: &str) {
    for name in ["python", "postgres", "mariadbd"] {
        assert!(
            seen.iter().any(|s| s.starts_with(name)),
            "no {name} process of the stack was seen (seen: {seen:?}); output:\n{output}"
        );
    }
}

fn kill_leftovers(left: &BTreeSet<(u32, String)>) {
    for (pid, _) in left {
        // SAFETY: kill(2) on a pid this test's script started (it carries our private STACK_DIR).
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
}

#[test]
fn the_demo_stops_its_whole_stack() {
    assert!(
        root().join("target/debug/demo").exists(),
        "target/debug/demo is not built: run `cargo build --workspace --bins` first (scripts/test does)"
    );
    let dir = sandbox("demo");
    let (seen, output, left) = run_and_watch(&dir, "scripts/demo", &[]);
    kill_leftovers(&left);
    assert_whole_stack_seen(&seen, &output);
    assert!(
        output.contains("4. checks"),
        "the demo did not run:\n{output}"
    );
    assert!(
        left.is_empty(),
        "still running after scripts/demo ended: {left:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// scripts/test's own lines from the stack on, with the test run failing: the stack still stops.
#[test]
fn the_test_script_stops_its_whole_stack_when_the_tests_fail() {
    let script = std::fs::read_to_string(root().join("scripts/test")).unwrap();
    let from = script
        .find(". scripts/stack.sh")
        .expect("scripts/test sources scripts/stack.sh");
    let tail = format!("set -euo pipefail\n{}", &script[from..]);
    assert!(
        tail.contains("cargo test"),
        "scripts/test runs the tests after starting the stack"
    );
    let dir = sandbox("test");
    let (seen, output, left) = run_and_watch(&dir, &tail, &[("FAKE_CARGO_STATUS", "101")]);
    kill_leftovers(&left);
    assert_whole_stack_seen(&seen, &output);
    assert!(
        left.is_empty(),
        "still running after scripts/test ended: {left:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
