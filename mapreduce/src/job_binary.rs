//! Staged job binaries: what a submitter uploads (this program without its debug info) and
//! the rule by which the jobtracker removes the staged binaries no job needs any more.
//!
//! A job binary is staged in dfs under [`BINARY_DIR`]`/<sha256>`, the SHA-256 of the bytes
//! uploaded, which workers check after download. The uploaded copy has its debug sections
//! stripped (`strip --strip-debug`, or `objcopy --strip-debug`): a release binary built with
//! `debug = 1` shrinks to a small part of its size, its symbol table stays (so `perf` still
//! names functions in task processes), and the binary on the submitter's disk keeps its full
//! debug info for profiling and debugging. Stripping the same file gives the same bytes, so a
//! resubmission of the same program finds its binary staged and uploads nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where staged job binaries live in dfs.
pub const BINARY_DIR: &str = "/mrjob/bin";

/// How long a staged binary no job uses is kept: long enough for the submitter that staged
/// it to submit its job, and for an upload under way (a `.`-prefixed temporary name) to end.
pub const UNUSED_BINARY_GRACE_MS: u64 = 15 * 60 * 1000;

/// The file to upload for `exe`: a copy without debug info, in a temporary directory that
/// lives as long as this value, or `exe` itself where no strip tool is installed (or it
/// fails), since a larger upload is better than no job.
#[derive(Debug)]
pub struct UploadCopy {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl UploadCopy {
    /// Strips the debug info of `exe` into a temporary copy.
    pub fn of(exe: &Path) -> UploadCopy {
        match strip_debug(exe) {
            Some((dir, path)) => UploadCopy {
                path,
                _dir: Some(dir),
            },
            None => UploadCopy {
                path: exe.to_path_buf(),
                _dir: None,
            },
        }
    }

    /// The file to hash and upload.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `exe` without its debug sections, by the first strip tool that works.
fn strip_debug(exe: &Path) -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("mrjob-stage")
        .tempdir()
        .ok()?;
    let out = dir.path().join("job-binary");
    for tool in ["strip", "objcopy"] {
        let status = Command::new(tool)
            .arg("--strip-debug")
            .arg(exe)
            .arg("-o")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() && out.is_file() => return Some((dir, out)),
            Ok(s) => tracing::debug!("{tool} --strip-debug {}: {s}", exe.display()),
            Err(e) => tracing::debug!("running {tool}: {e}"),
        }
    }
    tracing::info!(
        "no strip tool worked; staging {} with its debug info",
        exe.display()
    );
    None
}

/// One entry of [`BINARY_DIR`], as the cleanup rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// The file's name in [`BINARY_DIR`]: a SHA-256, or `.<sha256>.<pid>` while uploading.
    pub name: String,
    /// Last modification, milliseconds since the Unix epoch.
    pub mtime_ms: u64,
}

/// The staged binaries to remove: those no job in `used` (the SHA-256s of running jobs and
/// of jobs that ended within the grace period) names, last written more than `grace_ms`
/// before `now_ms`, except the newest complete binary, which a resubmission of the latest
/// build would otherwise upload again. Abandoned temporary uploads go after the same grace.
pub fn binaries_to_remove(
    staged: &[StagedFile],
    used: &HashSet<String>,
    now_ms: u64,
    grace_ms: u64,
) -> Vec<String> {
    let newest = staged
        .iter()
        .filter(|f| !f.name.starts_with('.'))
        .max_by(|a, b| a.mtime_ms.cmp(&b.mtime_ms).then(a.name.cmp(&b.name)))
        .map(|f| f.name.as_str());
    staged
        .iter()
        .filter(|f| Some(f.name.as_str()) != newest)
        .filter(|f| !used.contains(&f.name))
        .filter(|f| now_ms.saturating_sub(f.mtime_ms) > grace_ms)
        .map(|f| f.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: u64 = 1_000;

    fn f(name: &str, mtime_ms: u64) -> StagedFile {
        StagedFile {
            name: name.into(),
            mtime_ms,
        }
    }

    fn used(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn old_unused_binaries_go_and_the_newest_stays() {
        let staged = [f("a", 100), f("b", 200), f("c", 300)];
        let mut gone = binaries_to_remove(&staged, &used(&[]), 10_000, GRACE);
        gone.sort();
        assert_eq!(gone, vec!["a", "b"]);
    }

    #[test]
    fn binaries_that_jobs_use_are_kept_however_old() {
        let staged = [f("a", 100), f("b", 200), f("c", 300)];
        assert_eq!(
            binaries_to_remove(&staged, &used(&["a"]), 10_000, GRACE),
            vec!["b"]
        );
        assert!(binaries_to_remove(&staged, &used(&["a", "b"]), 10_000, GRACE).is_empty());
    }

    #[test]
    fn recent_binaries_are_kept_for_the_grace_period() {
        // "a" was just staged by a submitter that has not submitted yet.
        let staged = [f("a", 9_500), f("b", 200), f("c", 9_900)];
        assert_eq!(
            binaries_to_remove(&staged, &used(&[]), 10_000, GRACE),
            vec!["b"]
        );
        // Exactly at the grace period's end: still kept.
        assert!(
            binaries_to_remove(&[f("x", 9_000), f("y", 9_999)], &used(&[]), 10_000, GRACE)
                .is_empty()
        );
    }

    #[test]
    fn abandoned_uploads_go_but_never_count_as_the_newest() {
        let staged = [f("a", 100), f(".b.42", 5_000), f(".c.43", 9_800)];
        let gone = binaries_to_remove(&staged, &used(&[]), 10_000, GRACE);
        // "a" is the newest complete binary; the old upload goes, the one under way stays.
        assert_eq!(gone, vec![".b.42"]);
    }

    #[test]
    fn nothing_staged_or_a_clock_behind_removes_nothing() {
        assert!(binaries_to_remove(&[], &used(&[]), 10_000, GRACE).is_empty());
        // A leader clock ahead of ours: files look like they come from the future.
        let staged = [f("a", 50_000), f("b", 60_000)];
        assert!(binaries_to_remove(&staged, &used(&[]), 10_000, GRACE).is_empty());
    }

    // The uploaded copy is what the hash names: stripping is deterministic, and the copy has
    // no debug sections left (when a strip tool is installed).
    #[test]
    fn the_upload_copy_is_stable_and_no_larger() {
        let exe = std::env::current_exe().unwrap();
        let a = UploadCopy::of(&exe);
        let b = UploadCopy::of(&exe);
        let (a_bytes, b_bytes) = (
            std::fs::read(a.path()).unwrap(),
            std::fs::read(b.path()).unwrap(),
        );
        assert_eq!(
            a_bytes, b_bytes,
            "the same program must stage under one hash"
        );
        let exe_len = std::fs::metadata(&exe).unwrap().len();
        assert!(a_bytes.len() as u64 <= exe_len);
        if a.path() != exe {
            assert!(
                (a_bytes.len() as u64) < exe_len,
                "stripping removed nothing"
            );
        }
    }
}
