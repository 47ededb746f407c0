//! `seed --out FILE`: a seeded database written as a snapshot to ship, reproducibly.

use std::path::Path;
use std::process::Command;

/// Runs the seeder with `args`, `SOURCE_DATE_EPOCH` set to `epoch` (or unset): its
/// output, and whether it succeeded.
fn seed(args: &[&str], epoch: Option<&str>, cwd: &Path) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seed"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("APP_ENV")
        .env_remove("SOURCE_DATE_EPOCH");
    if let Some(epoch) = epoch {
        command.env("SOURCE_DATE_EPOCH", epoch);
    }
    let output = command.output().expect("the seeder runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn the_same_inputs_give_a_byte_identical_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    for out in [&a, &b] {
        let (ok, said) = seed(
            &["--scale", "20", "--out", out.to_str().unwrap()],
            Some("1767225600"),
            dir.path(),
        );
        assert!(ok, "{said}");
        assert!(said.contains("sha256:"), "{said}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let meta = snapshot::check(&a).await.expect("a good snapshot");
    assert_eq!(meta.made_at.timestamp(), 1_767_225_600);
    assert_eq!(meta.made_from, "seed --scale 20");
    assert_eq!(
        meta.row_counts.get("projects"),
        Some(&23),
        "the sample's three projects and 20 more"
    );
    // Seeded in a work file beside it, which is gone; the configured database (./local.db
    // in the working directory) was never created.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn without_a_fixed_time_the_checksum_is_still_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    for out in [&a, &b] {
        let (ok, said) = seed(&["--out", out.to_str().unwrap()], None, dir.path());
        assert!(ok, "{said}");
    }
    let (ma, mb) = (
        snapshot::check(&a).await.unwrap(),
        snapshot::check(&b).await.unwrap(),
    );
    assert_eq!(ma.checksum, mb.checksum);
    assert_eq!(ma.row_counts, mb.row_counts);
}

#[test]
fn an_existing_file_is_never_written_over() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("taken.db");
    std::fs::write(&out, b"keep me").unwrap();
    let (ok, said) = seed(&["--out", out.to_str().unwrap()], None, dir.path());
    assert!(!ok, "{said}");
    assert!(said.contains("exists already"), "{said}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
