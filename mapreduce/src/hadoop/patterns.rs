//! Glob patterns in `hadoop fs` path arguments (`hadoop fs -ls 'logs/2026-*/*.gz'`).
//!
//! Hadoop's shell expands a pattern before a command sees it, and Yelp's mrjob relies on that:
//! it checks that an input such as `hdfs:///logs/2026-*/*.gz` exists with `fs -ls PATTERN`, and
//! sizes it with `fs -du PATTERN`. A pattern is matched with the same rule as job inputs
//! ([`crate::glob`]); one that matches nothing is left as written, so the command then
//! reports it missing in Hadoop's words (`ls: `x*': No such file or directory`).

use std::path::{Path, PathBuf};

use dfs::client::DfsClient;
use dfs::config::ClusterConfig;
use dfs::error::{Error, Result};
use dfs::protocol::FileKind;

use super::fs_command::FsCommand;
use crate::glob::{is_pattern, DirEntry, Expansion};

/// `cmd` with the patterns among its existing-path arguments replaced by what they match.
/// Destinations (`-put`, `-mv`, `-get`'s local file) and `-test`'s path (answered over all its
/// matches by the caller) are left alone.
pub async fn expand_command(
    client: &DfsClient,
    config: &ClusterConfig,
    cmd: FsCommand,
) -> Result<FsCommand> {
    let expand = |paths| expand_all(client, config, paths);
    Ok(match cmd {
        FsCommand::Ls { recursive, paths } => FsCommand::Ls {
            recursive,
            paths: expand(paths).await?,
        },
        FsCommand::Cat { paths } => FsCommand::Cat {
            paths: expand(paths).await?,
        },
        FsCommand::Rm {
            recursive,
            force,
            paths,
        } => FsCommand::Rm {
            recursive,
            force,
            paths: expand(paths).await?,
        },
        FsCommand::Du { summary, paths } => FsCommand::Du {
            summary,
            paths: expand(paths).await?,
        },
        FsCommand::Chmod {
            recursive,
            mode,
            paths,
        } => FsCommand::Chmod {
            recursive,
            mode,
            paths: expand(paths).await?,
        },
        FsCommand::Chown {
            recursive,
            owner,
            paths,
        } => FsCommand::Chown {
            recursive,
            owner,
            paths: expand(paths).await?,
        },
        other => other,
    })
}

/// Whether `cmd` has a pattern among the arguments [`expand_command`] expands.
pub fn has_pattern(cmd: &FsCommand) -> bool {
    match cmd {
        FsCommand::Ls { paths, .. }
        | FsCommand::Cat { paths }
        | FsCommand::Rm { paths, .. }
        | FsCommand::Du { paths, .. }
        | FsCommand::Chmod { paths, .. }
        | FsCommand::Chown { paths, .. } => paths.iter().any(|p| is_pattern(Path::new(p))),
        _ => false,
    }
}

/// Each argument, or what it matches if it is a pattern that matches something.
async fn expand_all(
    client: &DfsClient,
    config: &ClusterConfig,
    args: Vec<String>,
) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let found = if is_pattern(Path::new(&arg)) {
            matches(client, config, &arg).await?
        } else {
            Vec::new()
        };
        if found.is_empty() {
            out.push(arg);
        } else {
            out.extend(found);
        }
    }
    Ok(out)
}

/// The dfs paths `pattern` matches, sorted; none when it matches nothing (or its fixed
/// leading directories do not exist).
pub async fn matches(
    client: &DfsClient,
    config: &ClusterConfig,
    pattern: &str,
) -> Result<Vec<String>> {
    let path = dfs::path::resolve(config, pattern)?;
    let bad = |e: crate::error::Error| Error::InvalidPath {
        path: pattern.to_owned(),
        reason: e.to_string(),
    };
    let mut exp = Expansion::new(Path::new(&path)).map_err(bad)?;
    if !client.exists(&path_text(exp.root())).await? {
        return Ok(Vec::new());
    }
    while let Some((dir, depth)) = exp.next_dir() {
        let entries = client
            .list(&path_text(&dir))
            .await?
            .into_iter()
            .map(|e| DirEntry {
                is_dir: e.kind == FileKind::Dir,
                len: e.len_bytes,
                path: PathBuf::from(e.path),
            })
            .collect();
        exp.listed(depth, entries).map_err(bad)?;
    }
    // `finish` refuses an empty match (a job input must match something); here it is an answer.
    Ok(exp
        .finish()
        .map(|found| found.into_iter().map(|e| path_text(&e.path)).collect())
        .unwrap_or_default())
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
