//! Top-k as run (a k at or above the overlap means all of it; a selection over more than 256
//! tokens is refused in one line), staging directories of killed runs removed by the next run
//! (by their unheld advisory lock), and `--quiet`/`--json` the same on every long-running
//! command.

mod fixtures;

use fixtures::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

/// `clp-gpu apply` of the pair on the CPU path with `extra`.
fn apply_cpu(src: &Model, hlp: &Model, out: &Path, extra: &[&str]) -> Output {
    run_apply(src, hlp, out, &[&["--backend", "cpu"], extra].concat())
}

#[test]
fn top_k_at_or_above_the_overlap_is_dense_and_a_large_selection_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = gpt2_pair(tmp.path(), (1, 2));
    let out = tmp.path().join("out");
    let r = ok_json(apply_cpu(
        &src,
        &hlp,
        &out,
        &[
            "--top-k",
            "5000",
            "--weighting",
            "clp",
            "--match",
            "exact",
            "--json",
            "--quiet",
        ],
    ));
    assert!(r["overlap"].as_u64().unwrap() < 5000);
    assert_eq!(r["top_k"], "all", "{r}");
    check_output(
        &src,
        &hlp,
        &out,
        clp_gpu::defaults::Preset::Original.weighting(),
        None,
    );

    // 450 overlapping tokens: softmax over 300, and a clp k between the selection limit and
    // the overlap, are refused in one line stating the limit.
    let english = |size, seed| ModelSpec {
        seed,
        ..ModelSpec::trained(Arch::Gpt2, Lang::English, size, 0)
    };
    let big_src = build_model(&tmp.path().join("bigsrc"), &english(450, 3));
    let big = build_model(&tmp.path().join("big"), &english(500, 4));
    let cases: [(&[&str], &[&str]); 2] = [
        (
            &["--top-k", "300", "--weighting", "softmax"],
            &["--top-k 300", "at most 256", "450 tokens overlap"],
        ),
        (
            &["--top-k", "280"],
            &["--top-k 280", "at most 256", "450 tokens overlap"],
        ),
    ];
    for (i, (extra, needles)) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("refused{i}"));
        let o = apply_cpu(&big_src, &big, &out, extra);
        assert_fails_cleanly(o, &out, needles);
    }
}

#[test]
fn staging_directories_of_killed_runs_are_removed_and_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = gpt2_pair(tmp.path(), (1, 2));
    let parent = tmp.path().join("outs");
    std::fs::create_dir(&parent).unwrap();
    let lock = clp_gpu::model::writer::LOCK_FILE;
    let staging = |name: &str| {
        let d = parent.join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("model.safetensors"), vec![0u8; 4096]).unwrap();
        d
    };
    let dead = staging(".old.tmp-4242");
    std::fs::write(dead.join(lock), "").unwrap();
    let live = staging(".busy.tmp-4343");
    let held = std::fs::File::create(live.join(lock)).unwrap();
    held.lock().unwrap();
    let unlocked_foreign = staging(".notours.tmp-4444"); // no lock file: not ours to judge

    let out = parent.join("out");
    let o = apply_cpu(&src, &hlp, &out, &["--quiet"]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(!dead.exists(), "the killed run's staging directory stays");
    assert!(live.exists() && unlocked_foreign.exists());
    assert!(
        stderr.contains("notice: removed") && stderr.contains(".old.tmp-4242"),
        "{stderr}"
    );
    assert!(!out.join(lock).exists(), "the lock file reached OUT");
    drop(held);
}

#[test]
fn quiet_and_json_behave_the_same_on_every_long_running_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = gpt2_pair(tmp.path(), (1, 2));
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(
        &corpus,
        "the quick brown fox jumps over the lazy dog\n".repeat(20),
    )
    .unwrap();
    let (d, h) = (s(&src.dir), s(&hlp.dir));
    let outs = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let (o1, o2, o3, o4, o5, o6) = (
        outs("a1"),
        outs("a2"),
        outs("t1"),
        outs("t2"),
        outs("s1"),
        outs("s2"),
    );
    let bench = ["--shape", "20,30,8,8", "--backend", "cpu"];
    let commands: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "apply",
            vec![
                "--source",
                d,
                "--helper",
                h,
                "--backend",
                "cpu",
                "--out",
                &o1,
            ],
            vec!["--out", &o2],
        ),
        (
            "evaluate",
            vec!["--source", d, "--helper", h, "--backend", "cpu"],
            vec![],
        ),
        (
            "trim",
            vec!["--model", d, "--corpus", s(&corpus), "--out", &o3],
            vec!["--out", &o4],
        ),
        (
            "shrink",
            vec!["--model", d, "--layers", "0", "--out", &o5],
            vec!["--out", &o6],
        ),
        ("bench", bench.to_vec(), vec![]),
    ];
    for (cmd, args, second) in commands {
        let o = run(cmd, &[args.clone(), vec!["--quiet"]].concat());
        let stdout = ok(o);
        assert!(stdout.is_empty(), "{cmd} --quiet printed: {stdout}");
        let mut again = args.clone();
        if !second.is_empty() {
            // A second output directory for the JSON run.
            let at = again.iter().position(|a| *a == second[0]).unwrap();
            again[at + 1] = second[1];
        }
        let r = ok_json(run(cmd, &[again, vec!["--json"]].concat()));
        assert!(r.is_object(), "{cmd} --json: {r}");
    }
}

#[test]
fn preset_original_is_the_papers_method_and_excludes_the_method_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = gpt2_pair(tmp.path(), (3, 4));
    let out = tmp.path().join("out");
    let r = ok_json(apply_cpu(
        &src,
        &hlp,
        &out,
        &["--preset", "original", "--json", "--quiet"],
    ));
    assert_eq!(
        (&r["preset"], &r["match_mode"], &r["weighting"]),
        (&json!("original"), &json!("exact"), &json!("clp k=all")),
        "{r}"
    );
    check_output(
        &src,
        &hlp,
        &out,
        clp_gpu::defaults::Preset::Original.weighting(),
        None,
    );
    let report = read_json(&out.join("clp_transfer.json"));
    assert_eq!(report["method"]["preset"], "original");
    assert_eq!(report["method"]["match"], "exact");

    // Without flags the report names the default method and no preset.
    let out2 = tmp.path().join("out2");
    let r = ok_json(apply_cpu(&src, &hlp, &out2, &["--json", "--quiet"]));
    assert_eq!(
        (&r["preset"], &r["match_mode"], &r["weighting"]),
        (
            &Value::Null,
            &json!("canonical"),
            &json!("softmax k=10 T=0.1")
        ),
        "{r}"
    );

    // A preset with a method flag is refused before any work, and OUT is not created.
    let out3 = tmp.path().join("out3");
    for flag in [
        ["--top-k", "5"],
        ["--weighting", "clp"],
        ["--match", "exact"],
        ["--temperature", "0.2"],
    ] {
        let mut extra = vec!["--preset", "original"];
        extra.extend(flag);
        let o = apply_cpu(&src, &hlp, &out3, &extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag:?}: {err}");
        assert!(err.contains("cannot be used with"), "{flag:?}: {err}");
        assert!(!out3.exists());
    }
}

#[test]
fn method_flags_the_chosen_method_never_reads_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = gpt2_pair(tmp.path(), (3, 4));
    let out = tmp.path().join("out");
    // (flags, the flag refused): k and T mean nothing to FVT, T nothing but to softmax.
    let refused: [(&[&str], &str); 4] = [
        (
            &["--weighting", "fvt", "--top-k", "5"],
            "--top-k is not read by --weighting fvt",
        ),
        (
            &["--weighting", "fvt", "--temperature", "0.2"],
            "--temperature is not read by --weighting fvt",
        ),
        (
            &["--weighting", "clp", "--temperature", "0.2"],
            "--temperature is not read by --weighting clp",
        ),
        (
            &["--weighting", "omp", "--temperature", "0.5"],
            "--temperature is not read by --weighting omp",
        ),
    ];
    for (flags, why) in refused {
        let o = apply_cpu(&src, &hlp, &out, flags);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(why), "{flags:?}: {err}");
        assert!(!out.exists());
    }
    // The same flags where the method reads them, and defaults never given, run.
    for flags in [
        &[
            "--weighting",
            "softmax",
            "--temperature",
            "0.2",
            "--top-k",
            "5",
        ][..],
        &["--weighting", "omp", "--top-k", "4"],
        &["--weighting", "fvt"],
    ] {
        let o = apply_cpu(&src, &hlp, &out, &[flags, &["--force", "--quiet"]].concat());
        assert!(
            o.status.success(),
            "{flags:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // extend reads them only with --helper.
    let (corpus, ext) = (src.dir.join("config.json"), tmp.path().join("ext"));
    let o = run(
        "extend",
        &[
            "--model",
            s(&src.dir),
            "--corpus",
            s(&corpus),
            "--add",
            "3",
            "--out",
            s(&ext),
            "--top-k",
            "5",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--top-k is not read by extend without --helper"),
        "{err}"
    );
}
