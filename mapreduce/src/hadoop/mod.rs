//! The Hadoop front door: a `hadoop` command (`mrjob hadoop ...`, or the binary run under the
//! name `hadoop`) that answers what Yelp's mrjob runner (`-r hadoop`) calls: `hadoop version`
//! ([`version`]), `hadoop fs ...` on the configured cluster's dfs ([`fs`], arguments parsed by
//! [`fs_command`], glob patterns expanded by [`patterns`]), and `hadoop jar ANY.jar
//! STREAMING-ARGS` ([`jar`]: a Streaming job, reported with Hadoop's job log lines, [`log`]).
//!
//! It lives in the mapreduce crate beside Streaming because every job binary that wants to be
//! driven as Hadoop can then offer it with one call ([`run`]); the binary only decides when.

pub mod fs;
pub mod fs_command;
pub mod jar;
pub mod log;
pub mod patterns;
pub mod version;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// What `hadoop` prints for a missing or unknown command.
const USAGE: &str = "Usage: hadoop [--config DIR] COMMAND\n  \
     version                print the version\n  \
     fs ARGS                run a filesystem command on the cluster's dfs (also: dfs)\n  \
     jar JAR STREAMING-ARGS run a Streaming job (the jar is not read)";

/// Runs `hadoop ARGS` (the arguments after `hadoop`) with the cluster of `conf` (else
/// `MRJOB_CONF`).
pub fn run(conf: Option<&Path>, args: &[OsString]) -> ExitCode {
    let args = skip_config_option(args);
    let Some(command) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    match command.to_str() {
        Some("version") => {
            print!("{}", version::text());
            ExitCode::SUCCESS
        }
        Some("fs" | "dfs") => match utf8(&args[1..]) {
            Ok(fs_args) => fs::run(conf, &fs_args),
            Err(bad) => {
                eprintln!("hadoop fs: argument {bad:?} is not valid UTF-8");
                ExitCode::from(255)
            }
        },
        Some("jar") => jar::run(conf, &args[1..]),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("hadoop: unknown command {command:?}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

/// `hadoop --config DIR ...` names Hadoop's configuration directory; ours is the cluster config
/// (`--conf` or `MRJOB_CONF`), so the option is accepted and ignored.
fn skip_config_option(args: &[OsString]) -> &[OsString] {
    match args.first().and_then(|a| a.to_str()) {
        Some("--config") if args.len() >= 2 => &args[2..],
        _ => args,
    }
}

fn utf8(args: &[OsString]) -> Result<Vec<String>, OsString> {
    args.iter()
        .map(|a| a.clone().into_string())
        .collect::<Result<Vec<String>, OsString>>()
}
