//! `hadoop fs ...` on the configured cluster's dfs: the commands Yelp's mrjob calls, printing
//! what Hadoop's `FsShell` prints where mrjob reads it (the `-ls` lines, `-du` sizes, the
//! `No such file or directory` error lines it recognises) and exiting as Hadoop does (`-test`
//! answers with the exit status; a usage error exits 255, a failed command 1).
//!
//! The commands the dfs shell already has (`put`, `get`, `cat`, `du`, `mv`, `mkdir`) run
//! through [`dfs::shell::run`]; `-ls`, `-test`, `-rm` and `-touchz`, whose output or
//! semantics differ from Hadoop's, use the dfs client directly.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dfs::client::{CreateOptions, DfsClient};
use dfs::config::{ClusterConfig, CONF_ENV};
use dfs::error::{Error, ErrorKind, Result};
use dfs::protocol::{FileKind, FileStatus};
use dfs::shell::ShellCommand;

use super::fs_command::{parse, FsCommand, TestCheck, USAGE};
use super::patterns;
use crate::glob::is_pattern;

/// Hadoop's exit status for a usage error (`FsShell` returns -1).
const EXIT_USAGE: u8 = 255;

/// Runs `hadoop fs ARGS` (the arguments after `fs`).
pub fn run(conf: Option<&Path>, args: &[String]) -> ExitCode {
    let cmd = match parse(args) {
        Ok(cmd) => cmd,
        Err(msg) => {
            eprintln!("{msg}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let name = args[0].trim_start_matches('-').to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let outcome = match runtime {
        Ok(rt) => rt.block_on(execute(conf, cmd)),
        Err(e) => Err(Error::io("starting the dfs client runtime", e)),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// Hadoop's wording for the errors mrjob recognises; the dfs shell's message otherwise.
fn describe(e: &Error) -> String {
    match e {
        Error::NotFound(path) => format!("`{path}': No such file or directory"),
        Error::AlreadyExists(path) => format!("`{path}': File exists"),
        other => dfs::shell::describe(other),
    }
}

async fn execute(conf: Option<&Path>, cmd: FsCommand) -> Result<ExitCode> {
    let cmd = if patterns::has_pattern(&cmd) {
        let hadoop = Hadoop::connect(conf)?;
        patterns::expand_command(&hadoop.client, &hadoop.config, cmd).await?
    } else {
        cmd
    };
    // The shell's own commands: the same code as `dfs put`, `dfs cat`, ...
    let shell = match cmd {
        FsCommand::Mkdir { paths } => ShellCommand::Mkdir {
            parents: true,
            paths,
        },
        FsCommand::Put { force, srcs, dst } => ShellCommand::Put {
            force,
            replication: None,
            block_size_bytes: None,
            srcs,
            dst,
        },
        FsCommand::Get { src, dst } => ShellCommand::Get {
            src,
            dst: PathBuf::from(dst),
        },
        FsCommand::Cat { paths } => ShellCommand::Cat { paths },
        FsCommand::Du { summary, paths } => ShellCommand::Du {
            summary,
            human: false,
            header: false,
            help: None,
            paths,
        },
        FsCommand::Mv { src, dst } => ShellCommand::Mv { src, dst },
        FsCommand::Chmod {
            recursive,
            mode,
            paths,
        } => ShellCommand::Chmod {
            recursive,
            mode,
            paths,
        },
        FsCommand::Chown {
            recursive,
            owner,
            paths,
        } => ShellCommand::Chown {
            recursive,
            owner,
            paths,
        },
        other => return Hadoop::connect(conf)?.execute(other).await,
    };
    dfs::shell::run(conf, shell).await?;
    Ok(ExitCode::SUCCESS)
}

/// The commands whose output or semantics are Hadoop's own.
struct Hadoop {
    client: DfsClient,
    config: ClusterConfig,
}

impl Hadoop {
    fn connect(conf: Option<&Path>) -> Result<Hadoop> {
        let config = ClusterConfig::discover(conf)?.ok_or_else(|| {
            Error::Config(format!(
                "no cluster configured: pass --conf FILE before `hadoop` or set {CONF_ENV}"
            ))
        })?;
        Ok(Hadoop {
            client: DfsClient::new(config.clone()),
            config,
        })
    }

    fn path(&self, arg: &str) -> Result<String> {
        dfs::path::resolve(&self.config, arg)
    }

    async fn execute(&self, cmd: FsCommand) -> Result<ExitCode> {
        match cmd {
            FsCommand::Ls { recursive, paths } => self.ls(&paths, recursive).await,
            FsCommand::Test { check, path } => self.test(check, &path).await,
            FsCommand::Rm {
                recursive,
                force,
                paths,
            } => self.rm(&paths, recursive, force).await,
            FsCommand::Touchz { paths } => self.touchz(&paths).await,
            other => Err(Error::WrongKind(format!(
                "{other:?} is a dfs shell command"
            ))),
        }
    }

    /// Lists each path; a missing one is reported (as Hadoop words it) and makes the exit
    /// status 1, but the others are still listed.
    async fn ls(&self, args: &[String], recursive: bool) -> Result<ExitCode> {
        let mut code = ExitCode::SUCCESS;
        for arg in args {
            let status = match self.client.stat(&self.path(arg)?).await {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    eprintln!("ls: `{arg}': No such file or directory");
                    code = ExitCode::FAILURE;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if status.kind == FileKind::File {
                println!("{}", ls_line(&status));
                continue;
            }
            let entries = self.client.list(&status.path).await?;
            if !recursive {
                println!("Found {} items", entries.len());
                for e in &entries {
                    println!("{}", ls_line(e));
                }
                continue;
            }
            // Depth first, each directory's line before what is in it, as Hadoop's `-ls -R`.
            let mut todo: Vec<FileStatus> = entries.into_iter().rev().collect();
            while let Some(e) = todo.pop() {
                println!("{}", ls_line(&e));
                if e.kind == FileKind::Dir {
                    todo.extend(self.client.list(&e.path).await?.into_iter().rev());
                }
            }
        }
        Ok(code)
    }

    /// A pattern is true when any path it matches is (and false when it matches nothing).
    async fn test(&self, check: TestCheck, arg: &str) -> Result<ExitCode> {
        let paths = if is_pattern(Path::new(arg)) {
            patterns::matches(&self.client, &self.config, arg).await?
        } else {
            vec![self.path(arg)?]
        };
        let mut yes = paths.is_empty() && answer(check, None);
        for path in &paths {
            let status = match self.client.stat(path).await {
                Ok(s) => Some(s),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            yes |= answer(check, status.as_ref());
        }
        Ok(if yes {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    async fn rm(&self, args: &[String], recursive: bool, force: bool) -> Result<ExitCode> {
        let mut code = ExitCode::SUCCESS;
        for arg in args {
            let path = self.path(arg)?;
            let status = match self.client.stat(&path).await {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if !force {
                        eprintln!("rm: `{arg}': No such file or directory");
                        code = ExitCode::FAILURE;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if status.kind == FileKind::Dir && !recursive {
                eprintln!("rm: `{arg}': Is a directory");
                code = ExitCode::FAILURE;
                continue;
            }
            // Deleted by someone else in between is, for -f, the same outcome.
            if self.client.delete(&path, recursive).await? || force {
                println!("Deleted {arg}");
            }
        }
        Ok(code)
    }

    async fn touchz(&self, args: &[String]) -> Result<ExitCode> {
        for arg in args {
            let path = self.path(arg)?;
            match self.client.stat(&path).await {
                Ok(s) if s.kind == FileKind::File && s.len_bytes == 0 => continue,
                Ok(s) if s.kind == FileKind::Dir => {
                    return Err(Error::WrongKind(format!("`{arg}': Is a directory")))
                }
                Ok(_) => return Err(Error::WrongKind(format!("`{arg}': Not a zero-length file"))),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let opts = CreateOptions {
                require_parent: true,
                ..Default::default()
            };
            self.client.create(&path, opts).await?.close().await?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `-test`'s answer for a path's status (`None`: it does not exist).
fn answer(check: TestCheck, status: Option<&FileStatus>) -> bool {
    let Some(s) = status else {
        return false;
    };
    match check {
        TestCheck::Exists => true,
        TestCheck::Dir => s.kind == FileKind::Dir,
        TestCheck::File => s.kind == FileKind::File,
        TestCheck::NonEmpty => s.len_bytes > 0 || (s.kind == FileKind::Dir && s.count > 0),
        TestCheck::Empty => s.kind == FileKind::File && s.len_bytes == 0,
    }
}

/// One line of Hadoop's `-ls`: permissions, replication (`-` for a directory), owner, group,
/// size, `YYYY-MM-DD HH:MM`, path. mrjob finds the path as what follows the `HH:MM` field, so
/// the columns must stay single words (user and group names are: see
/// `dfs::auth::validate_user_name`).
pub fn ls_line(s: &FileStatus) -> String {
    let (kind, rep) = match s.kind {
        FileKind::Dir => ('d', "-".to_owned()),
        FileKind::File => ('-', s.replication.to_string()),
    };
    format!(
        "{kind}{} {rep:>3} {} {} {:>10} {} {}",
        dfs::namenode::permission::mode_string(s.mode),
        s.owner,
        s.group,
        s.len_bytes,
        dfs::shell::format_time(s.mtime_ms),
        s.path
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: FileKind, len_bytes: u64, count: u64) -> FileStatus {
        FileStatus {
            path: "/user/ann/out/part-00000".into(),
            kind,
            len_bytes,
            replication: if kind == FileKind::File { 3 } else { 0 },
            block_size_bytes: 0,
            mtime_ms: 1_700_000_000_000,
            under_construction: false,
            count,
            owner: "ann".into(),
            group: "supergroup".into(),
            mode: if kind == FileKind::File { 0o644 } else { 0o755 },
        }
    }

    /// The path is what follows the `HH:MM` field, found as mrjob/fs/hadoop.py `ls` finds it:
    /// split on single spaces, the field after the last five-character `..:..` field.
    fn path_as_mrjob_reads_it(line: &str) -> String {
        let fields: Vec<&str> = line.split(' ').collect();
        let index = fields
            .iter()
            .rposition(|f| f.len() == 5 && f.as_bytes()[2] == b':')
            .expect("a time field")
            + 1;
        line.splitn(index + 1, ' ').last().unwrap().to_owned()
    }

    #[test]
    fn ls_lines_are_hadoops() {
        let file = ls_line(&status(FileKind::File, 3276, 1));
        assert_eq!(
            file,
            "-rw-r--r--   3 ann supergroup       3276 2023-11-14 22:13 /user/ann/out/part-00000"
        );
        assert_eq!(path_as_mrjob_reads_it(&file), "/user/ann/out/part-00000");
        let dir = ls_line(&status(FileKind::Dir, 0, 2));
        assert!(
            dir.starts_with("drwxr-xr-x   - ann supergroup          0 "),
            "{dir}"
        );
        let mut spaced = status(FileKind::File, 1, 1);
        spaced.path = "/a b/c 12:34 d".into();
        let line = ls_line(&spaced);
        // A path holding a time-like word is where mrjob's own rule breaks; ordinary spaces
        // are kept.
        spaced.path = "/a b/c d".into();
        assert_eq!(path_as_mrjob_reads_it(&ls_line(&spaced)), "/a b/c d");
        assert!(line.ends_with("/a b/c 12:34 d"));
        // The real owner, group and mode, sticky bit included.
        let mut shared = status(FileKind::Dir, 0, 0);
        (shared.owner, shared.group, shared.mode) = ("admin".into(), "supergroup".into(), 0o1777);
        assert!(
            ls_line(&shared).starts_with("drwxrwxrwt   - admin supergroup "),
            "{}",
            ls_line(&shared)
        );
    }

    #[test]
    fn test_answers_as_hadoop() {
        let file = status(FileKind::File, 5, 1);
        let empty = status(FileKind::File, 0, 0);
        let dir = status(FileKind::Dir, 0, 0);
        assert!(answer(TestCheck::Exists, Some(&dir)));
        assert!(!answer(TestCheck::Exists, None));
        assert!(!answer(TestCheck::Dir, None));
        assert!(answer(TestCheck::Dir, Some(&dir)) && !answer(TestCheck::Dir, Some(&file)));
        assert!(answer(TestCheck::File, Some(&file)) && !answer(TestCheck::File, Some(&dir)));
        assert!(answer(TestCheck::NonEmpty, Some(&file)));
        assert!(
            !answer(TestCheck::NonEmpty, Some(&empty)) && !answer(TestCheck::NonEmpty, Some(&dir))
        );
        assert!(answer(TestCheck::Empty, Some(&empty)) && !answer(TestCheck::Empty, Some(&file)));
    }

    #[test]
    fn missing_paths_are_worded_as_mrjob_expects() {
        // mrjob matches `^lsr?: .*No such file.*$` and `^rmr?: .*No such file.*$`.
        let line = format!("ls: {}", describe(&Error::NotFound("/x".into())));
        assert_eq!(line, "ls: `/x': No such file or directory");
    }
}
