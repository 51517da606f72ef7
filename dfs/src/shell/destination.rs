//! Where `dfs put` writes each source: the destination rule, kept free of I/O so that every
//! case is tested without a cluster. The shell looks the destination up once, asks [`plan`],
//! then creates the directory the plan names (if any) and copies each source to its target.
//!
//! The rule, as `hdfs dfs -put` and `cp` users expect it:
//! - an existing directory receives every source under the source's own name;
//! - a destination ending in `/` is a directory: created when missing, an error when a file;
//! - otherwise a single source is written (or, for a local directory, copied) to the
//!   destination itself, so `put input/ /in` makes `/in` the copy of `input/`;
//! - several sources need a directory destination.

use crate::error::{Error, Result};
use crate::path;

/// What the destination is in the filesystem before the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Nothing there.
    Missing,
    /// A file.
    File,
    /// A directory.
    Dir,
}

/// What `put` does: create [`PutPlan::mkdir`] first, then copy source `i` to `targets[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutPlan {
    /// A missing directory to create first (the destination was spelled with a trailing `/`).
    pub mkdir: Option<String>,
    /// The filesystem path each source is copied to, in the order of the sources.
    pub targets: Vec<String>,
}

/// The plan for copying sources named `names` (their last path components) to `dst` (an
/// absolute filesystem path, possibly ending in `/`), given what `dst` is now.
pub fn plan(names: &[&str], dst: &str, existing: Existing) -> Result<PutPlan> {
    let dir = path::normalize(dst);
    let as_dir = dst.ends_with('/');
    let into_dir = |mkdir: Option<String>| -> Result<PutPlan> {
        if let Some(twice) = first_duplicate(names) {
            return Err(Error::AlreadyExists(format!(
                "{}: two sources are named {twice:?}",
                path_in(&dir, twice)
            )));
        }
        let targets = names.iter().map(|n| path_in(&dir, n)).collect();
        Ok(PutPlan { mkdir, targets })
    };
    match existing {
        Existing::Dir => into_dir(None),
        Existing::Missing if as_dir => into_dir(Some(dir.clone())),
        Existing::File if as_dir => Err(Error::WrongKind(format!(
            "{dst}: {dir} is a file, not a directory"
        ))),
        _ if names.len() > 1 => Err(Error::WrongKind(format!(
            "{dst}: {} sources need a directory destination, but {}",
            names.len(),
            if existing == Existing::File {
                "it is a file"
            } else {
                "it does not exist (end it with '/' to create it)"
            }
        ))),
        _ => Ok(PutPlan {
            mkdir: None,
            targets: names.iter().map(|_| dir.clone()).collect(),
        }),
    }
}

/// `name` inside directory `dir` (a normalized path, so only the root ends in `/`).
fn path_in(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The first name given twice: two sources copied into one directory would collide there.
fn first_duplicate<'a>(names: &[&'a str]) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.iter().copied().find(|n| !seen.insert(*n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn targets(names: &[&str], dst: &str, existing: Existing) -> (Option<String>, Vec<String>) {
        let p = plan(names, dst, existing).unwrap();
        (p.mkdir, p.targets)
    }

    fn error(names: &[&str], dst: &str, existing: Existing) -> (ErrorKind, String) {
        let e = plan(names, dst, existing).unwrap_err();
        (e.kind(), e.to_string())
    }

    // The README's sequence: `put big.bin /data/` on a fresh filesystem, then `get
    // /data/big.bin`. Before, the missing `/data/` became a file named `/data`.
    #[test]
    fn a_trailing_slash_makes_a_missing_destination_a_directory() {
        let (mkdir, t) = targets(&["big.bin"], "/data/", Existing::Missing);
        assert_eq!(mkdir.as_deref(), Some("/data"));
        assert_eq!(t, ["/data/big.bin"]);
        let (mkdir, t) = targets(&["a", "b"], "/x/y/", Existing::Missing);
        assert_eq!(mkdir.as_deref(), Some("/x/y"));
        assert_eq!(t, ["/x/y/a", "/x/y/b"]);
    }

    #[test]
    fn an_existing_directory_receives_sources_under_their_names() {
        for dst in ["/data", "/data/"] {
            let (mkdir, t) = targets(&["big.bin", "dir"], dst, Existing::Dir);
            assert_eq!(mkdir, None, "{dst}");
            assert_eq!(t, ["/data/big.bin", "/data/dir"], "{dst}");
        }
        let (_, t) = targets(&["a"], "/", Existing::Dir);
        assert_eq!(t, ["/a"]);
    }

    // `put input/ /in` with `/in` missing: `/in` becomes the copy (files or directories alike).
    #[test]
    fn one_source_without_a_slash_is_written_to_the_destination_itself() {
        assert_eq!(
            targets(&["input"], "/in", Existing::Missing),
            (None, vec!["/in".to_string()])
        );
        // An existing file is replaced only with `-f`; the namenode decides that.
        assert_eq!(
            targets(&["a.txt"], "/f", Existing::File),
            (None, vec!["/f".to_string()])
        );
    }

    #[test]
    fn several_sources_need_a_directory() {
        let (kind, msg) = error(&["a", "b"], "/missing", Existing::Missing);
        assert_eq!(kind, ErrorKind::WrongKind);
        assert!(
            msg.contains("/missing") && msg.contains("does not exist") && msg.contains("'/'"),
            "{msg}"
        );
        let (kind, msg) = error(&["a", "b"], "/f", Existing::File);
        assert_eq!(kind, ErrorKind::WrongKind);
        assert!(msg.contains("/f") && msg.contains("is a file"), "{msg}");
    }

    #[test]
    fn a_slash_after_a_file_is_an_error() {
        let (kind, msg) = error(&["a"], "/f/", Existing::File);
        assert_eq!(kind, ErrorKind::WrongKind);
        assert!(msg.contains("/f is a file"), "{msg}");
    }

    #[test]
    fn two_sources_of_one_name_would_collide() {
        let (kind, msg) = error(&["x", "y", "x"], "/d/", Existing::Missing);
        assert_eq!(kind, ErrorKind::AlreadyExists);
        assert!(msg.contains("/d/x") && msg.contains("two sources"), "{msg}");
        assert!(plan(&["x", "x"], "/d", Existing::Dir).is_err());
    }
}
