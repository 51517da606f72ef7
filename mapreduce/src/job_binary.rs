//! Staged job binaries: what a submitter uploads (this program without its debug info), where
//! (each user's own staging directory), which binary a job may name, and the rule by which
//! the jobtracker removes the staged binaries no job needs any more.
//!
//! A job binary is staged in dfs under [`BINARY_DIR`]`/<user>/<sha256>`, the SHA-256 of the
//! bytes uploaded, which workers check after download. The user's directory is its own, mode
//! 0700, so no other user can read, replace or remove what it staged; a job may name only a
//! binary in its own user's directory ([`check_binary_ref`]), and the workers fetch it with
//! the job's task token, so the namenode's permission check applies to the fetch too (G8). The uploaded copy has its debug sections
//! stripped (`strip --strip-debug`, or `objcopy --strip-debug`): a release binary built with
//! `debug = 1` shrinks to a small part of its size, its symbol table stays (so `perf` still
//! names functions in task processes), and the binary on the submitter's disk keeps its full
//! debug info for profiling and debugging. Stripping the same file gives the same bytes, so a
//! resubmission of the same program finds its binary staged and uploads nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::protocol::BinaryRef;

/// Where staged job binaries live in dfs: one directory per user below it.
pub const BINARY_DIR: &str = "/mrjob/bin";
/// Mode of a user's staging directory: the user's alone.
pub const STAGING_DIR_MODE: u16 = 0o700;

/// The staging directory of `user`'s job binaries.
pub fn staging_dir(user: &str) -> String {
    format!("{BINARY_DIR}/{user}")
}

/// Where `user` stages the binary of SHA-256 `sha256`.
pub fn staged_path(user: &str, sha256: &str) -> String {
    format!("{}/{sha256}", staging_dir(user))
}

/// Whether `text` is a SHA-256 as binaries are named: 64 lower-case hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A job of `user` may run only a binary its user staged: `binary` must name a well-formed
/// SHA-256 and the file of that name in `user`'s staging directory. The error says what is
/// wrong, for the submitter.
pub fn check_binary_ref(user: &str, binary: &BinaryRef) -> Result<(), String> {
    if !is_sha256(&binary.sha256) {
        return Err(format!(
            "the job binary's SHA-256 {:?} is not 64 lower-case hex digits",
            binary.sha256
        ));
    }
    let want = staged_path(user, &binary.sha256);
    if binary.dfs_path != want {
        return Err(format!(
            "the job binary dfs://{} is not {user}'s: a job of {user} runs only a binary \
             {user} staged, at dfs://{want} (mrjob stages its own binary there)",
            binary.dfs_path
        ));
    }
    Ok(())
}

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

/// One entry of a staging directory, as the cleanup rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// The file's name in its directory: a SHA-256, or `.<sha256>.<pid>` while uploading.
    pub name: String,
    /// Last modification, milliseconds since the Unix epoch.
    pub mtime_ms: u64,
}

/// The staged binaries of one staging directory to remove: those no job in `used` (the file
/// names, in this directory, of the binaries of running jobs and of jobs that ended within
/// the grace period) names, last written more than `grace_ms` before `now_ms`, except the
/// directory's newest complete binary, which its user's resubmission of the latest build
/// would otherwise upload again. Abandoned temporary uploads go after the same grace.
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

/// The names, in directory `dir`, of the binaries in `used_paths` (dfs paths of the binaries
/// jobs use): what [`binaries_to_remove`] must keep there.
pub fn used_in(dir: &str, used_paths: &HashSet<String>) -> HashSet<String> {
    used_paths
        .iter()
        .filter_map(|p| p.strip_prefix(dir)?.strip_prefix('/'))
        .filter(|name| !name.contains('/'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: u64 = 1_000;

    fn bin(path: &str, sha256: &str) -> BinaryRef {
        BinaryRef {
            dfs_path: path.into(),
            sha256: sha256.into(),
        }
    }

    // Checks G8: a job names only a binary of its own user's staging directory.
    #[test]
    fn a_job_may_name_only_its_users_staged_binary() {
        let sha = "ab".repeat(32);
        let alices = staged_path("alice", &sha);
        assert_eq!(alices, format!("/mrjob/bin/alice/{sha}"));
        assert!(check_binary_ref("alice", &bin(&alices, &sha)).is_ok());
        let err = check_binary_ref("bob", &bin(&alices, &sha)).unwrap_err();
        assert!(
            err.contains("is not bob's") && err.contains(&format!("/mrjob/bin/bob/{sha}")),
            "{err}"
        );
        // The old shared layout, another name than the hash, a path that climbs out, or a
        // hash that is no hash: all refused.
        for path in [
            format!("/mrjob/bin/{sha}"),
            format!("/mrjob/bin/alice/{}", "cd".repeat(32)),
            format!("/mrjob/bin/alice/../bob/{sha}"),
        ] {
            assert!(
                check_binary_ref("alice", &bin(&path, &sha)).is_err(),
                "{path}"
            );
        }
        for bad in [
            "AB".repeat(32),
            "ab".repeat(31),
            format!("{}/x", "a".repeat(62)),
        ] {
            let err = check_binary_ref("alice", &bin(&staged_path("alice", &bad), &bad));
            assert!(err.unwrap_err().contains("hex"), "{bad}");
        }
    }

    #[test]
    fn used_binaries_are_found_per_directory() {
        let used: HashSet<String> = [
            "/mrjob/bin/alice/a1",
            "/mrjob/bin/bob/b1",
            "/mrjob/bin/old",
            "/mrjob/bin/alice/x/y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(used_in("/mrjob/bin/alice", &used), self::used(&["a1"]));
        assert_eq!(used_in("/mrjob/bin", &used), self::used(&["old"]));
        assert!(used_in("/mrjob/bin/carol", &used).is_empty());
    }

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
