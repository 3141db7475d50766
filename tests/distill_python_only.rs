//! `clp-gpu distill` / `distill-task` in the Rust binary: one line saying how to get them (the
//! Python package's `[distill]` extra), exit code 1, whatever flags follow.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clp-gpu"))
        .args(args)
        .output()
        .expect("run clp-gpu");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn distill_names_the_python_extra() {
    for args in [
        vec!["distill"],
        vec!["distill", "--teacher", "t", "--help"],
        vec!["distill-task", "--task-teacher", "x", "-q"],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(
            stderr.contains(&format!("`clp-gpu {}`", args[0])),
            "{stderr}"
        );
        assert!(
            stderr.contains("pip install 'clp-gpu[distill]'"),
            "{stderr}"
        );
    }
}

#[test]
fn help_lists_distill() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("distill-task"), "{stdout}");
    assert!(stdout.contains("clp-gpu[distill]"), "{stdout}");
}
