//! A function process limited to the CPU share Lambda gives a memory size: Lambda gives one full
//! vCPU at 1769 MB and a share proportional to memory below that. The limit is a cgroup v1 CPU
//! quota (`cpu.cfs_quota_us` per 100 ms `cpu.cfs_period_us`), created and removed by the bench;
//! the function joins it from a wrapper script before it execs, so its init runs limited too.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup/cpu";
const PERIOD_US: u64 = 100_000;
/// The memory size at which Lambda gives one full vCPU.
pub const FULL_VCPU_MB: u64 = 1769;

/// One cgroup with the CPU quota of `memory_mb` (`None`: no quota, the same wrapper and cgroup
/// machinery as the baseline). Removed on drop; its processes must have ended by then.
pub struct Limit {
    dir: PathBuf,
    wrappers: PathBuf,
}

impl Limit {
    /// `Err` says why the limit cannot be set here (not root, no cgroup v1 CPU controller).
    pub fn new(bin_dir: &Path, memory_mb: Option<u64>) -> Result<Self, String> {
        let name = match memory_mb {
            Some(mb) => format!("bench-{mb}mb"),
            None => "bench-unlimited".to_owned(),
        };
        let dir = Path::new(ROOT).join(&name);
        if !Path::new(ROOT).join("cpu.cfs_quota_us").exists() {
            return Err(format!("no cgroup v1 CPU controller at {ROOT}"));
        }
        if !dir.exists() {
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot create {} (needs root): {e}", dir.display()))?;
        }
        let quota = match memory_mb {
            Some(mb) => (PERIOD_US * mb / FULL_VCPU_MB).to_string(),
            None => "-1".to_owned(),
        };
        let set = |file: &str, value: &str| {
            std::fs::write(dir.join(file), value)
                .map_err(|e| format!("cannot write {value} to {}: {e}", dir.join(file).display()))
        };
        set("cpu.cfs_period_us", &PERIOD_US.to_string())?;
        set("cpu.cfs_quota_us", &quota)?;
        // The wrapper keeps the binary's file name, which names the function (its ARN).
        let wrappers = bin_dir.join(&name);
        std::fs::create_dir_all(&wrappers).map_err(|e| e.to_string())?;
        Ok(Self { dir, wrappers })
    }

    /// An executable that joins this cgroup, then execs `exe` (same pid, so the limit holds from
    /// the first instruction of the function).
    pub fn wrap(&self, exe: &Path) -> PathBuf {
        let path = self.wrappers.join(exe.file_name().unwrap());
        let script = format!(
            "#!/bin/sh\necho $$ > {}\nexec {}\n",
            self.dir.join("cgroup.procs").display(),
            exe.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// CPU time the cgroup's processes were throttled for so far, in ms (`cpu.stat`).
    pub fn throttled_ms(&self) -> f64 {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        stat.lines()
            .find_map(|l| l.strip_prefix("throttled_time "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0.0, |ns| ns / 1e6)
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("bench: could not remove {}: {e}", self.dir.display());
        }
        let _ = std::fs::remove_dir_all(&self.wrappers);
    }
}
