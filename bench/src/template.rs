//! An executable that runs one of AWS's Python rotation templates as a Lambda function under the
//! Runtime API (bench/lambda_runtime.py, with the bench's venv).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `BIN_DIR/aws-template-<name>`, a script that starts the template's handler.
pub fn runner(bin_dir: &Path, template_dir: PathBuf) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let python = root.join(".venv/bin/python");
    let harness = root.join("bench/lambda_runtime.py");
    assert!(
        template_dir.join("lambda_function.py").exists(),
        "{} has no lambda_function.py",
        template_dir.display()
    );
    let name = template_dir.file_name().unwrap().to_string_lossy();
    let path = bin_dir.join(format!("aws-template-{name}"));
    let script = format!(
        "#!/bin/sh\nexec {} {} {}\n",
        python.display(),
        harness.display(),
        template_dir.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
