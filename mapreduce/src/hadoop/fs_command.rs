//! `hadoop fs` arguments, as Hadoop's `FsShell` takes them (`-ls -R PATH`, `-rm -R -f
//! -skipTrash PATH`, ...), parsed into one [`FsCommand`]. Pure: the commands run in
//! [`super::fs`].

/// One `hadoop fs` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsCommand {
    /// `-ls [-R] PATH...` (and the old `-lsr`): Hadoop's listing lines.
    Ls {
        /// List subdirectories too.
        recursive: bool,
        /// Paths (`.`, the working directory, when none is given).
        paths: Vec<String>,
    },
    /// `-mkdir [-p] PATH...`: parents are always created.
    Mkdir {
        /// Directories.
        paths: Vec<String>,
    },
    /// `-put [-f] SRC... DST` (and `-copyFromLocal`).
    Put {
        /// Replace an existing file.
        force: bool,
        /// Local sources.
        srcs: Vec<String>,
        /// Destination.
        dst: String,
    },
    /// `-get SRC DST` (and `-copyToLocal`).
    Get {
        /// dfs source.
        src: String,
        /// Local destination.
        dst: String,
    },
    /// `-cat PATH...` (and `-text`, which is the same for uncompressed files).
    Cat {
        /// Files.
        paths: Vec<String>,
    },
    /// `-test -e|-d|-f|-s|-z PATH`: the answer is the exit status.
    Test {
        /// What is asked.
        check: TestCheck,
        /// The path.
        path: String,
    },
    /// `-rm [-r|-R] [-f] [-skipTrash] PATH...` (and `-rmr`). There is no trash.
    Rm {
        /// Delete directories with what is in them.
        recursive: bool,
        /// A missing path is not an error.
        force: bool,
        /// Paths.
        paths: Vec<String>,
    },
    /// `-du [-s] PATH...`: `size  size-with-replicas  path` lines.
    Du {
        /// One line per argument instead of one per child.
        summary: bool,
        /// Paths.
        paths: Vec<String>,
    },
    /// `-touchz PATH...`: an empty file (an existing one must be empty).
    Touchz {
        /// Files.
        paths: Vec<String>,
    },
    /// `-mv SRC DST`.
    Mv {
        /// Source.
        src: String,
        /// Destination.
        dst: String,
    },
    /// `-chmod [-R] MODE PATH...` (octal modes only).
    Chmod {
        /// Also everything below each directory.
        recursive: bool,
        /// Octal mode.
        mode: String,
        /// Paths.
        paths: Vec<String>,
    },
    /// `-chown [-R] [OWNER][:[GROUP]] PATH...`.
    Chown {
        /// Also everything below each directory.
        recursive: bool,
        /// `OWNER`, `OWNER:GROUP` or `:GROUP`.
        owner: String,
        /// Paths.
        paths: Vec<String>,
    },
}

/// What `-test` asks about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCheck {
    /// `-e`: it exists.
    Exists,
    /// `-d`: it is a directory.
    Dir,
    /// `-f`: it is a file.
    File,
    /// `-s`: it is not empty (a file with bytes, or a directory with children).
    NonEmpty,
    /// `-z`: it is a file of length zero.
    Empty,
}

/// The commands `hadoop fs` knows, for its usage message.
pub const USAGE: &str = "Usage: hadoop fs [-ls [-R] <path>...] [-mkdir [-p] <path>...] \
     [-put [-f] <localsrc>... <dst>] [-get <src> <localdst>] [-cat <src>...] \
     [-test -[defsz] <path>] [-rm [-f] [-r|-R] [-skipTrash] <path>...] [-du [-s] <path>...] \
     [-touchz <path>...] [-mv <src> <dst>] [-chmod [-R] <octal mode> <path>...] \
     [-chown [-R] [OWNER][:[GROUP]] <path>...]";

/// Parses `hadoop fs` arguments (after `fs`). The error is the message Hadoop-style tools
/// print: it names the command or the option that is wrong.
pub fn parse(args: &[String]) -> Result<FsCommand, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    let (flags, operands) = split_flags(rest);
    let name = cmd.trim_start_matches('-');
    let parsed = match name {
        "ls" | "lsr" => {
            let recursive = name == "lsr" || take(&flags, &["-R", "-r"]);
            check_flags(name, &flags, &["-R", "-r", "-h"])?;
            // No path lists the working directory, as Hadoop lists the home directory.
            let paths = if operands.is_empty() {
                vec![".".to_owned()]
            } else {
                operands
            };
            FsCommand::Ls { recursive, paths }
        }
        "mkdir" => {
            check_flags(name, &flags, &["-p"])?;
            FsCommand::Mkdir {
                paths: at_least_one(name, operands)?,
            }
        }
        "put" | "copyFromLocal" => {
            check_flags(name, &flags, &["-f", "-p"])?;
            let (dst, srcs) = last_and_rest(name, operands)?;
            FsCommand::Put {
                force: take(&flags, &["-f"]),
                srcs,
                dst,
            }
        }
        "get" | "copyToLocal" => {
            check_flags(name, &flags, &["-p", "-ignoreCrc", "-crc"])?;
            let [src, dst] = exactly::<2>(name, operands)?;
            FsCommand::Get { src, dst }
        }
        "cat" | "text" => {
            check_flags(name, &flags, &["-ignoreCrc"])?;
            FsCommand::Cat {
                paths: at_least_one(name, operands)?,
            }
        }
        "test" => parse_test(&flags, operands)?,
        "rm" | "rmr" => {
            check_flags(name, &flags, &["-r", "-R", "-f", "-skipTrash"])?;
            FsCommand::Rm {
                recursive: name == "rmr" || take(&flags, &["-r", "-R"]),
                force: take(&flags, &["-f"]),
                paths: at_least_one(name, operands)?,
            }
        }
        "du" | "dus" => {
            check_flags(name, &flags, &["-s", "-h", "-v", "-x"])?;
            FsCommand::Du {
                summary: name == "dus" || take(&flags, &["-s"]),
                paths: at_least_one(name, operands)?,
            }
        }
        "touchz" => {
            check_flags(name, &flags, &[])?;
            FsCommand::Touchz {
                paths: at_least_one(name, operands)?,
            }
        }
        "mv" => {
            check_flags(name, &flags, &[])?;
            let [src, dst] = exactly::<2>(name, operands)?;
            FsCommand::Mv { src, dst }
        }
        "chmod" | "chown" => parse_change(name, &flags, operands)?,
        _ => return Err(format!("{cmd}: Unknown command")),
    };
    Ok(parsed)
}

/// `-chmod` and `-chown`: `[-R] SPEC PATH...`.
fn parse_change(name: &str, flags: &[&str], operands: Vec<String>) -> Result<FsCommand, String> {
    check_flags(name, flags, &["-R"])?;
    let recursive = take(flags, &["-R"]);
    let (spec, paths) = match operands.split_first() {
        Some((spec, paths)) if !paths.is_empty() => (spec.clone(), paths.to_vec()),
        _ => {
            return Err(format!(
                "-{name}: Not enough arguments: expected 2 but got {}",
                operands.len()
            ))
        }
    };
    Ok(if name == "chmod" {
        FsCommand::Chmod {
            recursive,
            mode: spec,
            paths,
        }
    } else {
        FsCommand::Chown {
            recursive,
            owner: spec,
            paths,
        }
    })
}

fn parse_test(flags: &[&str], operands: Vec<String>) -> Result<FsCommand, String> {
    let check = match flags {
        ["-e"] => TestCheck::Exists,
        ["-d"] => TestCheck::Dir,
        ["-f"] => TestCheck::File,
        ["-s"] => TestCheck::NonEmpty,
        ["-z"] => TestCheck::Empty,
        _ => return Err("-test: exactly one of -e, -d, -f, -s, -z is expected".into()),
    };
    let [path] = exactly::<1>("test", operands)?;
    Ok(FsCommand::Test { check, path })
}

/// Options come first, as in Hadoop: everything up to the first argument that does not start
/// with `-` (a lone `-` is an operand: stdin or stdout).
fn split_flags(rest: &[String]) -> (Vec<&str>, Vec<String>) {
    let n = rest
        .iter()
        .take_while(|a| a.starts_with('-') && a.len() > 1)
        .count();
    let flags = rest[..n].iter().map(String::as_str).collect();
    (flags, rest[n..].to_vec())
}

fn take(flags: &[&str], names: &[&str]) -> bool {
    flags.iter().any(|f| names.contains(f))
}

fn check_flags(cmd: &str, flags: &[&str], known: &[&str]) -> Result<(), String> {
    match flags.iter().find(|f| !known.contains(f)) {
        Some(bad) => Err(format!("-{cmd}: Illegal option {bad}")),
        None => Ok(()),
    }
}

fn at_least_one(cmd: &str, operands: Vec<String>) -> Result<Vec<String>, String> {
    if operands.is_empty() {
        return Err(format!(
            "-{cmd}: Not enough arguments: expected 1 but got 0"
        ));
    }
    Ok(operands)
}

fn exactly<const N: usize>(cmd: &str, operands: Vec<String>) -> Result<[String; N], String> {
    let got = operands.len();
    operands
        .try_into()
        .map_err(|_| format!("-{cmd}: expected {N} arguments but got {got}"))
}

fn last_and_rest(cmd: &str, mut operands: Vec<String>) -> Result<(String, Vec<String>), String> {
    if operands.len() < 2 {
        let got = operands.len();
        return Err(format!(
            "-{cmd}: Not enough arguments: expected 2 but got {got}"
        ));
    }
    let last = operands.pop().unwrap_or_default();
    Ok((last, operands))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &str) -> Result<FsCommand, String> {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        parse(&args)
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// The exact calls Yelp mrjob 0.7 makes (mrjob/fs/hadoop.py).
    #[test]
    fn parses_what_mrjob_calls() {
        assert_eq!(
            p("-ls -R hdfs:///user/a/out").unwrap(),
            FsCommand::Ls {
                recursive: true,
                paths: v(&["hdfs:///user/a/out"])
            }
        );
        assert_eq!(
            p("-mkdir -p hdfs:///tmp/x").unwrap(),
            FsCommand::Mkdir {
                paths: v(&["hdfs:///tmp/x"])
            }
        );
        assert_eq!(
            p("-rm -R -f -skipTrash hdfs:///tmp/x").unwrap(),
            FsCommand::Rm {
                recursive: true,
                force: true,
                paths: v(&["hdfs:///tmp/x"])
            }
        );
        assert_eq!(
            p("-put /l/a.py hdfs:///f/a.py").unwrap(),
            FsCommand::Put {
                force: false,
                srcs: v(&["/l/a.py"]),
                dst: "hdfs:///f/a.py".into()
            }
        );
        assert_eq!(
            p("-test -e /a").unwrap(),
            FsCommand::Test {
                check: TestCheck::Exists,
                path: "/a".into()
            }
        );
        assert_eq!(
            p("-du /a").unwrap(),
            FsCommand::Du {
                summary: false,
                paths: v(&["/a"])
            }
        );
        assert_eq!(
            p("-lsr /a").unwrap(),
            FsCommand::Ls {
                recursive: true,
                paths: v(&["/a"])
            }
        );
        assert!(matches!(
            p("-touchz /a/b").unwrap(),
            FsCommand::Touchz { .. }
        ));
        assert!(matches!(p("-cat /a /b").unwrap(), FsCommand::Cat { paths } if paths.len() == 2));
        assert!(matches!(
            p("-copyToLocal /a l").unwrap(),
            FsCommand::Get { .. }
        ));
    }

    #[test]
    fn bad_arguments_name_what_is_wrong() {
        assert_eq!(p("").unwrap_err(), "no command given");
        assert_eq!(
            p("-frobnicate /a").unwrap_err(),
            "-frobnicate: Unknown command"
        );
        assert_eq!(p("-ls -Q /a").unwrap_err(), "-ls: Illegal option -Q");
        assert!(p("-cat").unwrap_err().contains("Not enough arguments"));
        assert_eq!(
            p("-ls").unwrap(),
            FsCommand::Ls {
                recursive: false,
                paths: v(&["."])
            }
        );
        assert!(p("-put onlyone").unwrap_err().contains("expected 2"));
        assert!(p("-mv a b c")
            .unwrap_err()
            .contains("expected 2 arguments but got 3"));
        assert!(p("-test /a").unwrap_err().contains("exactly one of"));
        assert!(p("-test -e -d /a").unwrap_err().contains("exactly one of"));
        assert!(p("-chmod 600")
            .unwrap_err()
            .contains("Not enough arguments"));
        assert_eq!(
            p("-chown -x a /p").unwrap_err(),
            "-chown: Illegal option -x"
        );
    }

    #[test]
    fn parses_chmod_and_chown() {
        assert_eq!(
            p("-chmod -R 700 /a /b").unwrap(),
            FsCommand::Chmod {
                recursive: true,
                mode: "700".into(),
                paths: v(&["/a", "/b"])
            }
        );
        assert_eq!(
            p("-chown ann:ann /a").unwrap(),
            FsCommand::Chown {
                recursive: false,
                owner: "ann:ann".into(),
                paths: v(&["/a"])
            }
        );
    }
}
