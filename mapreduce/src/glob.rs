//! Input patterns: Hadoop's glob syntax for job inputs (`logs/2026-*/*.gz`).
//!
//! A pattern is matched one path component at a time against directory listings, as
//! Hadoop's `FileSystem.globStatus` does: `*` and `?` never cross a `/`, `[abc]`, `[a-z]`,
//! `[!a]` (or `[^a]`) match one character, `{a,b}` either alternative, and `\` escapes the
//! next character. Listing is left to the caller: [`Expansion`] says which directory to list
//! next and takes the entries back, so the same rule runs over local files and over dfs
//! (whose client is async) and is tested without either.
//!
//! Hidden names (`.x`, `_x`) are not matched by a wildcard, as Hadoop's input filter skips
//! them, unless the pattern's component itself starts with that character.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};
use crate::fs::is_hidden;

/// Characters that make an input path a pattern.
const SPECIAL: &[char] = &['*', '?', '[', '{', '\\'];
/// Most directories one pattern may list: a pattern that would walk a whole filesystem is
/// refused rather than left to run for hours.
pub const MAX_LISTINGS: usize = 100_000;

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Full path.
    pub path: PathBuf,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Length in bytes (files).
    pub len: u64,
}

/// Whether an input path is a pattern (holds `*`, `?`, `[`, `{` or `\`).
pub fn is_pattern(path: &Path) -> bool {
    path.to_string_lossy().contains(SPECIAL)
}

/// One component of the pattern after its literal prefix.
#[derive(Debug)]
struct Component {
    matcher: GlobMatcher,
    /// Whether the component itself starts with `.` or `_`, so hidden names may match.
    hidden_ok: bool,
}

/// The expansion of one pattern, driven by the caller's listings.
#[derive(Debug)]
pub struct Expansion {
    pattern: PathBuf,
    /// The directory before the first component with a wildcard.
    root: PathBuf,
    /// The pattern was relative with no literal prefix: listings are of `.`, and `./` is
    /// taken off the paths found.
    in_cwd: bool,
    components: Vec<Component>,
    /// Directories still to list, with the index of the component their entries must match.
    pending: Vec<(PathBuf, usize)>,
    matches: Vec<DirEntry>,
    listings: usize,
}

impl Expansion {
    /// Compiles `pattern`; a malformed one (an unclosed `[` or `{`) is an error naming it.
    pub fn new(pattern: &Path) -> Result<Expansion> {
        let text = pattern.to_string_lossy();
        let absolute = text.starts_with('/');
        let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
        let literal = parts.iter().take_while(|p| !p.contains(SPECIAL)).count();
        let mut root = PathBuf::from(if absolute { "/" } else { "" });
        root.extend(&parts[..literal]);
        let components = parts[literal..]
            .iter()
            .map(|p| compile(pattern, p))
            .collect::<Result<Vec<_>>>()?;
        let in_cwd = root.as_os_str().is_empty();
        if in_cwd {
            root = PathBuf::from(".");
        }
        let pending = if components.is_empty() {
            Vec::new()
        } else {
            vec![(root.clone(), 0)]
        };
        Ok(Expansion {
            pattern: pattern.to_owned(),
            root,
            in_cwd,
            components,
            pending,
            matches: Vec::new(),
            listings: 0,
        })
    }

    /// The directory the pattern's wildcards start under; files found are named relative to
    /// it (for mappers, as a directory input names its files relative to itself).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The next directory to list, and the depth to hand back with its entries.
    pub fn next_dir(&mut self) -> Option<(PathBuf, usize)> {
        self.pending.pop()
    }

    /// Takes the entries of a directory returned by [`Expansion::next_dir`].
    pub fn listed(&mut self, depth: usize, entries: Vec<DirEntry>) -> Result<()> {
        self.listings += 1;
        if self.listings > MAX_LISTINGS {
            return Err(Error::BadInput {
                path: self.pattern.clone(),
                reason: format!("pattern lists more than {MAX_LISTINGS} directories"),
            });
        }
        let Some(component) = self.components.get(depth) else {
            return Ok(());
        };
        let last = depth + 1 == self.components.len();
        for mut e in entries {
            let Some(name) = e.path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if (is_hidden(&name) && !component.hidden_ok) || !component.matcher.is_match(&name) {
                continue;
            }
            if self.in_cwd {
                e.path = e
                    .path
                    .strip_prefix(".")
                    .map_or(e.path.clone(), Path::to_owned);
            }
            if last {
                self.matches.push(e);
            } else if e.is_dir {
                self.pending.push((e.path, depth + 1));
            }
        }
        Ok(())
    }

    /// The paths the pattern matched, sorted; none is an error naming the pattern (Hadoop's
    /// "Input Pattern ... matches 0 files").
    pub fn finish(mut self) -> Result<Vec<DirEntry>> {
        if self.matches.is_empty() {
            return Err(no_match(&self.pattern));
        }
        self.matches.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(self.matches)
    }
}

/// The error for a pattern that matches nothing (or only empty directories).
pub fn no_match(pattern: &Path) -> Error {
    Error::BadInput {
        path: pattern.to_owned(),
        reason: "input pattern matches 0 files".to_owned(),
    }
}

fn compile(pattern: &Path, component: &str) -> Result<Component> {
    let glob = GlobBuilder::new(component)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| Error::BadInput {
            path: pattern.to_owned(),
            reason: format!("bad pattern: {e}"),
        })?;
    Ok(Component {
        matcher: glob.compile_matcher(),
        hidden_ok: component.starts_with(['.', '_']),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory tree: (path, is_dir).
    fn tree() -> Vec<(&'static str, bool)> {
        vec![
            ("/logs", true),
            ("/logs/2026-01", true),
            ("/logs/2026-01/a.gz", false),
            ("/logs/2026-01/b.txt", false),
            ("/logs/2026-01/_SUCCESS", false),
            ("/logs/2026-02", true),
            ("/logs/2026-02/c.gz", false),
            ("/logs/2025-12", true),
            ("/logs/2025-12/d.gz", false),
            ("/logs/_tmp", true),
            ("/logs/_tmp/e.gz", false),
            ("/logs/notes.gz", false),
        ]
    }

    fn list(dir: &Path) -> Vec<DirEntry> {
        tree()
            .into_iter()
            .filter(|(p, _)| Path::new(p).parent() == Some(dir))
            .map(|(p, is_dir)| DirEntry {
                path: PathBuf::from(p),
                is_dir,
                len: 1,
            })
            .collect()
    }

    fn expand(pattern: &str) -> Result<Vec<String>> {
        let mut exp = Expansion::new(Path::new(pattern))?;
        while let Some((dir, depth)) = exp.next_dir() {
            exp.listed(depth, list(&dir))?;
        }
        Ok(exp
            .finish()?
            .into_iter()
            .map(|e| e.path.to_string_lossy().into_owned())
            .collect())
    }

    #[test]
    fn wildcards_match_one_component_at_a_time() {
        assert_eq!(
            expand("/logs/2026-*/*.gz").unwrap(),
            ["/logs/2026-01/a.gz", "/logs/2026-02/c.gz"]
        );
        assert_eq!(expand("/logs/*.gz").unwrap(), ["/logs/notes.gz"]);
        assert_eq!(
            expand("/logs/202?-0[1-2]").unwrap(),
            ["/logs/2026-01", "/logs/2026-02"]
        );
        assert_eq!(
            expand("/logs/{2025-12,2026-02}/*").unwrap(),
            ["/logs/2025-12/d.gz", "/logs/2026-02/c.gz"]
        );
        assert_eq!(
            expand("/logs/2026-0[!1]/*").unwrap(),
            ["/logs/2026-02/c.gz"]
        );
        assert_eq!(
            expand("/logs/*/[ab].*").unwrap(),
            ["/logs/2026-01/a.gz", "/logs/2026-01/b.txt"]
        );
    }

    #[test]
    fn hidden_names_match_only_a_component_that_asks_for_them() {
        assert!(!expand("/logs/*/*").unwrap().iter().any(|p| p.contains('_')));
        assert_eq!(expand("/logs/_*/*").unwrap(), ["/logs/_tmp/e.gz"]);
    }

    #[test]
    fn the_root_is_the_literal_prefix() {
        let exp = Expansion::new(Path::new("/logs/2026-*/x/*.gz")).unwrap();
        assert_eq!(exp.root(), Path::new("/logs"));
        let exp = Expansion::new(Path::new("*.txt")).unwrap();
        assert_eq!(exp.root(), Path::new("."));
        let exp = Expansion::new(Path::new("in/*.txt")).unwrap();
        assert_eq!(exp.root(), Path::new("in"));
    }

    #[test]
    fn a_relative_pattern_without_prefix_lists_the_working_directory() {
        let mut exp = Expansion::new(Path::new("*.txt")).unwrap();
        let (dir, depth) = exp.next_dir().unwrap();
        assert_eq!(dir, Path::new("."));
        let entry = |p: &str| DirEntry {
            path: PathBuf::from(p),
            is_dir: false,
            len: 3,
        };
        exp.listed(depth, vec![entry("./a.txt"), entry("./b.bin")])
            .unwrap();
        assert_eq!(exp.finish().unwrap(), [entry("a.txt")]);
    }

    // Checks G7: a pattern that matches nothing, or cannot be parsed, is an error naming it.
    #[test]
    fn no_match_and_bad_patterns_are_errors_naming_the_pattern() {
        let e = expand("/logs/2027-*/*.gz").unwrap_err().to_string();
        assert!(
            e.contains("/logs/2027-*/*.gz") && e.contains("matches 0 files"),
            "{e}"
        );
        let e = expand("/logs/[2026").unwrap_err().to_string();
        assert!(
            e.contains("/logs/[2026") && e.contains("bad pattern"),
            "{e}"
        );
        let e = expand("/logs/{a,b").unwrap_err().to_string();
        assert!(e.contains("bad pattern"), "{e}");
        assert!(is_pattern(Path::new("a/*.gz")) && !is_pattern(Path::new("a/b.gz")));
    }
}
