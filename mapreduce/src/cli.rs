//! Pieces every job binary's command line shares: the common job options, size parsing, and
//! the end-of-job report. `mrjob` uses them, and so can a user's own job binary.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::Error;
use crate::job::Settings;
use crate::runner::JobReport;

/// Options common to every job.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct JobArgs {
    /// Number of reduce tasks [default: the number of threads]
    #[arg(long, short = 'r', value_name = "N")]
    pub reducers: Option<u32>,
    /// Worker threads [default: number of cores]
    #[arg(long, short = 't', value_name = "N")]
    pub threads: Option<usize>,
    /// Map-side sort buffer per task, e.g. 100MiB [default: 100MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub sort_buffer: Option<u64>,
    /// Split size, e.g. 64MiB [default: 64MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub split_size: Option<u64>,
    /// Longest input record accepted, e.g. 64MiB [default: 64MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_record_size: Option<u64>,
    /// Do not run the job's combiner
    #[arg(long)]
    pub no_combiner: bool,
    /// Directory for intermediate files [default: the system temp directory]
    #[arg(long, value_name = "DIR")]
    pub local_dir: Option<PathBuf>,
    /// Do not fsync output files before committing (faster, not crash-safe)
    #[arg(long)]
    pub no_sync: bool,
    /// Print neither progress nor counters
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl JobArgs {
    /// The job settings these options describe; `default_reducers` applies when `--reducers`
    /// is not given (`None`: one reducer per thread).
    pub fn settings(&self, default_reducers: Option<u32>) -> Result<Settings, Error> {
        let mut s = Settings::default();
        if let Some(t) = self.threads {
            s.threads = t;
        }
        s.reducers = self
            .reducers
            .or(default_reducers)
            .unwrap_or(s.threads.min(u32::MAX as usize) as u32);
        if let Some(b) = self.sort_buffer {
            s.sort_buffer_bytes = usize::try_from(b)
                .map_err(|_| Error::BadSetting("sort buffer too large".into()))?;
        }
        if let Some(b) = self.split_size {
            s.split_size_bytes = b;
        }
        if let Some(b) = self.max_record_size {
            s.max_record_bytes = usize::try_from(b)
                .map_err(|_| Error::BadSetting("max record size too large".into()))?;
        }
        s.combiner_enabled = !self.no_combiner;
        s.local_dir.clone_from(&self.local_dir);
        s.sync_output = !self.no_sync;
        s.validate()?;
        Ok(s)
    }
}

/// Parses a size such as `4096`, `64K`, `64KiB`, `100MB`, `1G` (binary multiples).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(format!(
            "{text:?} is not a size (examples: 4096, 64KiB, 100MiB, 1GiB)"
        ));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    let shift = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        unit => {
            return Err(format!(
                "unknown size unit {unit:?} in {text:?} (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Prints the end-of-job summary and counters to stderr.
pub fn print_report(job: &str, report: &JobReport) {
    eprintln!(
        "Job {job} completed successfully in {:.2} s; output in {}",
        report.elapsed.as_secs_f64(),
        report.output.display()
    );
    eprint!("{}", report.counters);
}

/// Prints a one-line error and returns the failure exit code.
pub fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("mrjob: error: {err}");
    ExitCode::FAILURE
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("abc").is_err());
        assert!(parse_size("-5").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("20000000000T").is_err());
    }
}
