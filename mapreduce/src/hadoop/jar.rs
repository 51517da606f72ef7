//! `hadoop jar ANY.jar STREAMING-ARGS`: the jar names Hadoop Streaming (tools pass the path of
//! `hadoop-streaming-*.jar`; it is not read), the rest are Streaming's arguments, run by
//! [`crate::streaming::run_cli`]. The job is reported on stderr with Hadoop's job log lines
//! ([`super::log`]), which is where Yelp's mrjob reads the counters and the output directory,
//! and where a failure's task stderr (a Python traceback) reaches it.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use super::log;
use crate::runner::JobReport;

/// Runs `hadoop jar JAR ARGS` (the arguments after `jar`).
pub fn run(conf: Option<&Path>, args: &[OsString]) -> ExitCode {
    let Some((_jar, streaming_args)) = args.split_first() else {
        eprintln!("RunJar jarFile [mainClass] args...");
        return ExitCode::FAILURE;
    };
    let job = log::job_id(SystemTime::now());
    print(log::started(SystemTime::now(), &job));
    // Paths in the output line are dfs paths exactly when a cluster is configured (Streaming
    // chooses the engine by the same rule).
    let on_dfs = dfs::config::find_config_path(conf).is_some();
    let report = |_name: &str, r: &JobReport| {
        // A local output is named by its absolute path, so the `file://` URI means it.
        let output = match std::path::absolute(&r.output) {
            Ok(p) if !on_dfs => p,
            _ => r.output.clone(),
        };
        let now = SystemTime::now();
        print(log::succeeded(now, &job, &r.counters, &output, on_dfs));
    };
    match crate::streaming::run_cli(conf, streaming_args, &report) {
        Ok(code) => code,
        Err(e) => {
            print(log::failed(SystemTime::now(), &job, &e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Job log lines go to stderr, as Hadoop's job client logs them.
fn print(lines: Vec<String>) {
    for line in lines {
        eprintln!("{line}");
    }
}
