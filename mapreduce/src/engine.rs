//! Where a job runs: on this machine (the embedded default), or on the configured cluster.
//!
//! The rule (DESIGN.md): with local paths and no cluster configured, a job runs at once on
//! this machine with all cores. With a cluster configured (`--conf FILE` or `MRJOB_CONF`), or
//! with a `dfs://` (or `hdfs://`) path, the same command runs on the cluster, reading and writing dfs.
//! `--local` forces local mode. On a cluster, relative paths are relative to the dfs working
//! directory `/user/NAME` (see `dfs::path::resolve`).

use std::fmt;
use std::path::{Path, PathBuf};

use dfs::config::{find_config_path, CONF_ENV};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, LocalFs};
use crate::glob::is_pattern;
use crate::job_conf::{JobConf, Registry};
use crate::runner::{run_local, JobReport, RunOptions};
use crate::submit::ClusterClient;

/// Where jobs run.
#[derive(Debug, Clone)]
pub enum Engine {
    /// This machine, local files.
    Local,
    /// A cluster, dfs paths; the config file it came from, for messages.
    Cluster(Box<ClusterClient>, ConfSource),
}

/// Where the cluster config came from: named in errors, so a user sees why a job looked in dfs.
#[derive(Debug, Clone)]
pub struct ConfSource {
    /// The config file.
    pub path: PathBuf,
    /// Whether it was named by `MRJOB_CONF` (else by `--conf`).
    pub from_env: bool,
}

impl fmt::Display for ConfSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = if self.from_env { CONF_ENV } else { "--conf" };
        write!(f, "{} ({by})", self.path.display())
    }
}

impl Engine {
    /// Chooses local or cluster mode for a command with these path arguments.
    pub fn choose(conf: Option<&Path>, force_local: bool, paths: &[&Path]) -> Result<Engine> {
        let wants_dfs = paths
            .iter()
            .any(|p| dfs::path::strip_scheme(&p.to_string_lossy()).is_some());
        if force_local {
            if wants_dfs {
                return Err(Error::BadSetting(
                    "--local cannot read or write dfs:// paths".into(),
                ));
            }
            return Ok(Engine::Local);
        }
        match find_config_path(conf) {
            Some(path) => {
                let config = Config::load(&path)?;
                let source = ConfSource {
                    path,
                    from_env: conf.is_none(),
                };
                Ok(Engine::Cluster(
                    Box::new(ClusterClient::new(config)?),
                    source,
                ))
            }
            None if wants_dfs => Err(Error::BadSetting(
                "dfs:// paths need a cluster: pass --conf FILE or set MRJOB_CONF".into(),
            )),
            None => Ok(Engine::Local),
        }
    }

    /// Runs the job `conf` describes over `inputs` into `output`.
    pub fn run(
        &self,
        registry: &Registry,
        conf: &JobConf,
        inputs: &[PathBuf],
        output: &Path,
        opts: &RunOptions,
    ) -> Result<JobReport> {
        self.check_inputs(inputs)?;
        match self {
            Engine::Local => run_local(&registry.build(conf)?, inputs, output, opts),
            Engine::Cluster(c, _) => {
                let inputs: Vec<PathBuf> =
                    inputs.iter().map(|p| self.path(p)).collect::<Result<_>>()?;
                c.run(registry, conf, &inputs, &self.path(output)?, opts)
            }
        }
    }

    /// Checks that every input exists where the job would read it (a pattern: that it
    /// matches something), before anything is staged or submitted. The error says what was
    /// looked up where, since a local path on a cluster (or a dfs path without one) is the
    /// usual cause.
    pub fn check_inputs(&self, inputs: &[PathBuf]) -> Result<()> {
        for input in inputs {
            let path = self.path(input)?;
            if is_pattern(&path) {
                crate::fs::expand(self.fs(), &path).map_err(|e| self.unmatched(input, e))?;
            } else if !self.fs().exists(&path)? {
                return Err(self.missing_input(input, &path));
            }
        }
        Ok(())
    }

    /// A pattern's error, saying where it was matched.
    fn unmatched(&self, given: &Path, e: Error) -> Error {
        let Error::BadInput { reason, .. } = e else {
            return e;
        };
        let place = match self {
            Engine::Local => "on this machine".to_owned(),
            Engine::Cluster(_, source) => format!("in the cluster of {source}"),
        };
        Error::BadInput {
            path: given.to_owned(),
            reason: format!("{reason} ({place})"),
        }
    }

    fn missing_input(&self, given: &Path, resolved: &Path) -> Error {
        let Engine::Cluster(_, source) = self else {
            return Error::BadInput {
                path: given.to_owned(),
                reason: format!(
                    "no such file or directory on this machine (running locally; for dfs \
                     paths pass --conf FILE or set {CONF_ENV})"
                ),
            };
        };
        let hint = if std::fs::symlink_metadata(given).is_ok() {
            format!(
                "; {} is a local path: add --local to read it",
                given.display()
            )
        } else {
            "; for a local file run without a cluster config or use --local".to_owned()
        };
        Error::BadInput {
            path: PathBuf::from(format!("dfs://{}", resolved.display())),
            reason: format!("not found in the cluster of {source}{hint}"),
        }
    }

    /// A path as this engine's filesystem names it: on a cluster, `dfs://HOST:PORT/p` (or
    /// `hdfs://...`) becomes
    /// `/p` and a relative path is taken relative to the working directory `/user/NAME`;
    /// local paths stay as they are.
    pub fn path(&self, p: &Path) -> Result<PathBuf> {
        let Engine::Cluster(c, _) = self else {
            return Ok(p.to_owned());
        };
        let text = p.to_str().ok_or_else(|| Error::BadInput {
            path: p.to_owned(),
            reason: "dfs paths must be valid UTF-8".into(),
        })?;
        let resolved = dfs::path::resolve(c.config(), text).map_err(|e| Error::BadInput {
            path: p.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(PathBuf::from(resolved))
    }

    /// The filesystem jobs read and write (for sampling input and reading results).
    pub fn fs(&self) -> &dyn FileSystem {
        match self {
            Engine::Local => &LocalFs,
            Engine::Cluster(c, _) => c.fs(),
        }
    }

    /// A fresh path for intermediate output between chained jobs (it does not exist yet).
    pub fn temp_path(&self, prefix: &str) -> Result<PathBuf> {
        let unique = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        Ok(match self {
            Engine::Local => std::env::temp_dir().join(unique),
            Engine::Cluster(..) => PathBuf::from(format!("/tmp/{unique}")),
        })
    }

    /// Removes a directory tree (best effort: intermediate output).
    pub fn remove_dir(&self, p: &Path) {
        let _ = self.fs().delete(p, true);
    }

    /// Whether a path exists.
    pub fn exists(&self, p: &Path) -> Result<bool> {
        self.fs().exists(&self.path(p)?)
    }

    /// Whether jobs run on a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Engine::Cluster(..))
    }
}
