//! Where a job runs: on this machine (the embedded default), or on the configured cluster.
//!
//! The rule (DESIGN.md): with local paths and no cluster configured, a job runs at once on
//! this machine with all cores. With a cluster configured (`--conf FILE` or `MRJOB_CONF`), or
//! with a `dfs://` path, the same command runs on the cluster, reading and writing dfs.
//! `--local` forces local mode.

use std::path::{Path, PathBuf};

use dfs::config::find_config_path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, LocalFs};
use crate::job_conf::{JobConf, Registry};
use crate::runner::{run_local, JobReport, RunOptions};
use crate::submit::ClusterClient;

/// Where jobs run.
#[derive(Debug, Clone)]
pub enum Engine {
    /// This machine, local files.
    Local,
    /// A cluster, dfs paths.
    Cluster(Box<ClusterClient>),
}

impl Engine {
    /// Chooses local or cluster mode for a command with these path arguments.
    pub fn choose(conf: Option<&Path>, force_local: bool, paths: &[&Path]) -> Result<Engine> {
        let wants_dfs = paths
            .iter()
            .any(|p| p.to_string_lossy().starts_with("dfs://"));
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
                Ok(Engine::Cluster(Box::new(ClusterClient::new(config)?)))
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
        match self {
            Engine::Local => run_local(&registry.build(conf)?, inputs, output, opts),
            Engine::Cluster(c) => {
                let inputs: Vec<PathBuf> =
                    inputs.iter().map(|p| self.path(p)).collect::<Result<_>>()?;
                c.run(registry, conf, &inputs, &self.path(output)?, opts)
            }
        }
    }

    /// A path as this engine's filesystem names it: `dfs://HOST:PORT/p` and relative paths
    /// become absolute dfs paths on a cluster; local paths stay as they are.
    pub fn path(&self, p: &Path) -> Result<PathBuf> {
        let Engine::Cluster(c) = self else {
            return Ok(p.to_owned());
        };
        let text = p.to_str().ok_or_else(|| Error::BadInput {
            path: p.to_owned(),
            reason: "dfs paths must be valid UTF-8".into(),
        })?;
        let resolved = dfs::shell::resolve_path(c.config(), text).map_err(|e| Error::BadInput {
            path: p.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(if resolved.starts_with('/') {
            PathBuf::from(resolved)
        } else {
            PathBuf::from(format!("/{resolved}"))
        })
    }

    /// The filesystem jobs read and write (for sampling input and reading results).
    pub fn fs(&self) -> &dyn FileSystem {
        match self {
            Engine::Local => &LocalFs,
            Engine::Cluster(c) => c.fs(),
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
            Engine::Cluster(_) => PathBuf::from(format!("/tmp/{unique}")),
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
        matches!(self, Engine::Cluster(_))
    }
}
