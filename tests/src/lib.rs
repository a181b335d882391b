//! The local stack for demos, tests and benchmarks: a Lambda Runtime API server that runs the real
//! rotator binaries, moto server as Secrets Manager, and the rotate-secret driver.

pub mod db;
pub mod driver;
pub mod github;
pub mod iam;
pub mod proxy;
pub mod redis;
pub mod rig;
pub mod rotators;
pub mod runtime_api;
pub mod sockets;
pub mod stack;

use std::path::PathBuf;

/// A workspace binary built next to the running test or tool (`target/<profile>/NAME`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    path
}
