//! MapReduce's part of `cluster.toml`: the `[mapreduce]` table (how jobs are scheduled and
//! retried), beside dfs's part of the same file ([`dfs::config`], which also keeps where the
//! jobtracker and each host's worker run; its module docs say why).
//!
//! The rules are dfs's (G7): every key has a default, so the table may be left out, and an
//! unknown key is an error naming it. Each crate checks its own part of the file and skips the
//! other's.

use std::path::Path;

use dfs::config::{find_config_path, ClusterConfig, MAPREDUCE_SECTION};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `[mapreduce]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapReduceConfig {
    /// Longest wait of a worker's heartbeat for a command; also the heartbeat period.
    pub worker_heartbeat_ms: u64,
    /// A worker silent for this long is lost: its attempts (and needed map outputs) re-run.
    pub worker_timeout_ms: u64,
    /// A task attempt whose progress does not change for this long is failed.
    pub task_timeout_ms: u64,
    /// Failed attempts of one task before its job fails.
    pub task_max_attempts: u32,
    /// How long a job waits for a node-local slot before taking a rack-local one (and twice
    /// this before any).
    pub locality_delay_ms: u64,
    /// Percentage of a job's maps that must be done before its reduces start.
    pub reduce_slowstart_percent: u32,
    /// Launch backup attempts of stragglers near the end of a phase.
    pub speculative: bool,
    /// Of each attempt's stdout and of its stderr, the worker keeps the first and the last
    /// this many bytes (see [`crate::task_log`]).
    pub task_log_keep_bytes: u64,
    /// A worker deletes attempts' logs older than this.
    pub task_log_max_age_ms: u64,
    /// A worker deletes its oldest attempts' logs beyond this total.
    pub task_log_max_total_bytes: u64,
    /// The variables of a worker's own environment its task processes keep (see
    /// [`crate::task_env`]); the job's `-cmdenv` and configuration come on top.
    pub task_env_whitelist: Vec<String>,
    /// The jobtracker removes a staged job binary that no running job uses once it is this
    /// old and no job using it ended within this long (each user's newest stays; see
    /// [`crate::job_binary::binaries_to_remove`]).
    pub staged_binary_grace_ms: u64,
}

impl Default for MapReduceConfig {
    fn default() -> Self {
        MapReduceConfig {
            worker_heartbeat_ms: 1_000,
            worker_timeout_ms: 10_000,
            task_timeout_ms: 600_000,
            task_max_attempts: 4,
            locality_delay_ms: 300,
            reduce_slowstart_percent: 80,
            speculative: true,
            task_log_keep_bytes: 64 * 1024,
            task_log_max_age_ms: 7 * 24 * 3600 * 1000,
            task_log_max_total_bytes: 1 << 30,
            task_env_whitelist: crate::task_env::default_whitelist(),
            staged_binary_grace_ms: crate::job_binary::UNUSED_BINARY_GRACE_MS,
        }
    }
}

/// The whole file seen from MapReduce: its table, every other key left to dfs.
#[derive(Deserialize)]
struct Whole {
    #[serde(default)]
    mapreduce: MapReduceConfig,
}

/// The table alone, for writing it.
#[derive(Serialize)]
struct Section<'a> {
    mapreduce: &'a MapReduceConfig,
}

impl MapReduceConfig {
    /// This table with the timings every test cluster uses (beside dfs's
    /// `ClusterConfig::with_fast_timeouts`): a lost worker noticed in seconds, heartbeats
    /// five times a second. A harness overrides only what its tests need otherwise.
    pub fn with_fast_timeouts(mut self) -> MapReduceConfig {
        self.worker_heartbeat_ms = 200;
        self.worker_timeout_ms = 3_000;
        self.task_timeout_ms = 30_000;
        self.locality_delay_ms = 300;
        self
    }

    /// Parses the `[mapreduce]` table of a whole `cluster.toml` text and validates it.
    pub fn parse(text: &str) -> Result<Self> {
        let whole: Whole = toml::from_str(text).map_err(|e| bad(&e))?;
        whole.mapreduce.validate()?;
        Ok(whole.mapreduce)
    }

    /// Checks what serde cannot: timeouts and percentages in range.
    pub fn validate(&self) -> Result<()> {
        let checks: [(bool, &str); 6] = [
            (
                self.worker_heartbeat_ms > 0,
                "worker_heartbeat_ms must be positive",
            ),
            (
                self.worker_timeout_ms > self.worker_heartbeat_ms,
                "worker_timeout_ms must exceed worker_heartbeat_ms",
            ),
            (self.task_timeout_ms > 0, "task_timeout_ms must be positive"),
            (
                (1..=100).contains(&self.task_max_attempts),
                "task_max_attempts must be in 1..=100",
            ),
            (
                self.reduce_slowstart_percent <= 100,
                "reduce_slowstart_percent must be at most 100",
            ),
            (
                (1..=64 << 20).contains(&self.task_log_keep_bytes),
                "task_log_keep_bytes must be in 1..=64MiB (it is held in memory per stream)",
            ),
        ];
        if let Some(why) = self
            .task_env_whitelist
            .iter()
            .find_map(|n| crate::task_env::check_name(n))
        {
            return Err(bad(&why));
        }
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, msg)) => Err(bad(msg)),
            None => Ok(()),
        }
    }

    /// The table as TOML, `[mapreduce]` header included.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(&Section { mapreduce: self }).map_err(|e| bad(&e))
    }
}

fn bad(e: &dyn std::fmt::Display) -> Error {
    Error::BadSetting(format!("[{MAPREDUCE_SECTION}]: {e}"))
}

/// A whole `cluster.toml`: dfs's part and MapReduce's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// dfs's part, with where the jobtracker and the workers run.
    pub cluster: ClusterConfig,
    /// The `[mapreduce]` table.
    pub mapreduce: MapReduceConfig,
}

impl Config {
    /// Parses and validates both parts of a `cluster.toml` text.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_both(text).map_err(Error::BadSetting)
    }

    fn parse_both(text: &str) -> std::result::Result<Self, String> {
        let cluster = ClusterConfig::parse(text).map_err(|e| e.to_string())?;
        let mapreduce = MapReduceConfig::parse(text).map_err(|e| match e {
            Error::BadSetting(msg) => msg,
            e => e.to_string(),
        })?;
        Ok(Config { cluster, mapreduce })
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let in_file =
            |msg: String| Error::BadSetting(format!("cluster config {}: {msg}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| in_file(e.to_string()))?;
        let mut config = Self::parse_both(&text).map_err(in_file)?;
        config.cluster.secrets = dfs::auth::Secrets::load(&config.cluster.key_path(path));
        Ok(config)
    }

    /// Writes the whole file to `path`, and the cluster key beside it if it is not there yet
    /// (see [`ClusterConfig::save`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        let key = self.cluster.key_path(path);
        let io = |e: dfs::Error| Error::BadSetting(format!("writing {}: {e}", path.display()));
        self.cluster.secrets.write_key_file(&key).map_err(io)?;
        dfs::durable::write_durable(path, self.to_toml()?.as_bytes()).map_err(io)
    }

    /// Loads the config chosen by `--conf` or `MRJOB_CONF`; `Ok(None)` when neither is set.
    pub fn discover(cli_conf: Option<&Path>) -> Result<Option<Self>> {
        match find_config_path(cli_conf) {
            Some(path) => Self::load(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Renders the whole file: dfs's part, then the `[mapreduce]` table.
    pub fn to_toml(&self) -> Result<String> {
        let dfs = self
            .cluster
            .to_toml()
            .map_err(|e| Error::BadSetting(e.to_string()))?;
        Ok(format!("{dfs}\n{}", self.mapreduce.to_toml()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_table_gets_the_defaults() {
        assert_eq!(
            MapReduceConfig::parse("replication = 2").unwrap(),
            MapReduceConfig::default()
        );
        let c = MapReduceConfig::parse("[mapreduce]\nspeculative = false").unwrap();
        assert!(!c.speculative);
        assert_eq!(c.task_max_attempts, 4);
        assert_eq!(c.worker_heartbeat_ms, 1_000);
    }

    // Checks G7: a typo in a MapReduce key is an error naming it, as in dfs's part.
    #[test]
    fn unknown_keys_in_the_table_are_rejected() {
        let err = Config::parse("[mapreduce]\nspeculativ = false").unwrap_err();
        assert!(err.to_string().contains("speculativ"), "{err}");
        let err = Config::parse("replicaton = 2\n[mapreduce]").unwrap_err();
        assert!(err.to_string().contains("replicaton"), "{err}");
    }

    // Checks G7: values serde accepts but the scheduler cannot use get a clear error.
    #[test]
    fn invalid_values_are_rejected() {
        for (text, needle) in [
            ("worker_heartbeat_ms = 0", "worker_heartbeat_ms"),
            ("worker_timeout_ms = 500", "worker_timeout_ms"),
            ("task_max_attempts = 0", "task_max_attempts"),
            ("reduce_slowstart_percent = 101", "reduce_slowstart_percent"),
        ] {
            let err = MapReduceConfig::parse(&format!("[mapreduce]\n{text}")).unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn the_generated_config_round_trips() {
        let cluster = dfs::config::local_config(3, 4, Path::new("/tmp/x"));
        // The dfs generator writes no table: the defaults make it complete.
        let text = cluster.to_toml().unwrap();
        let read = Config::parse(&text).unwrap();
        assert_eq!(read.cluster, cluster);
        assert_eq!(read.mapreduce, MapReduceConfig::default());
        let config = Config {
            cluster,
            mapreduce: MapReduceConfig {
                speculative: false,
                task_timeout_ms: 30_000,
                ..MapReduceConfig::default()
            },
        };
        let text = config.to_toml().unwrap();
        assert!(text.contains("[mapreduce]"), "{text}");
        assert_eq!(Config::parse(&text).unwrap(), config);
    }
}
