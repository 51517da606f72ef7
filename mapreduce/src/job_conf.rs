//! A job's portable description, and the registry that turns it back into a [`Job`].
//!
//! A [`Job`] holds closures, which cannot cross a process boundary. On a cluster, every task
//! runs in a child process of a worker, started from the job's own binary; that process
//! rebuilds the job from its [`JobConf`] with the same [`Registry`] the submitting process used,
//! as Hadoop rebuilds a job from its class name and `Configuration`. Anything a job computes
//! before it starts (terasort's sampled partition boundaries) goes into the parameters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::{Job, Settings};
use crate::properties::JobProperties;

/// Everything needed to rebuild a job in any process of the same binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobConf {
    /// The name the job's builder is registered under.
    pub job: String,
    /// Job parameters (a regular expression, partition boundaries, ...).
    pub params: BTreeMap<String, String>,
    /// The job's settings.
    pub settings: Settings,
}

impl JobConf {
    /// A configuration for the job registered as `job`.
    pub fn new(job: &str, settings: Settings) -> JobConf {
        JobConf {
            job: job.to_owned(),
            params: BTreeMap::new(),
            settings,
        }
    }

    /// Adds a parameter.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> JobConf {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// The name users see: `mapreduce.job.name` when set, else the registered job name.
    pub fn display_name(&self) -> &str {
        self.params
            .get(crate::properties::keys::JOB_NAME)
            .map(String::as_str)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&self.job)
    }

    /// A parameter that must be present.
    pub fn get(&self, key: &str) -> Result<&str> {
        self.params.get(key).map(String::as_str).ok_or_else(|| {
            Error::BadSetting(format!("job {} needs the parameter {key:?}", self.job))
        })
    }

    /// A parameter parsed as a number.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let text = self.get(key)?;
        text.parse().map_err(|_| {
            Error::BadSetting(format!(
                "job {}: parameter {key:?} is not a number: {text:?}",
                self.job
            ))
        })
    }
}

/// Builds a job from its configuration; the same function runs at submit and in every task.
pub type JobBuilder = fn(&JobConf) -> Result<Job>;

/// The jobs a binary can run, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    builders: BTreeMap<String, JobBuilder>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `builder` under `name`.
    pub fn register(mut self, name: &str, builder: JobBuilder) -> Registry {
        self.builders.insert(name.to_owned(), builder);
        self
    }

    /// Rebuilds the job `conf` describes, with the properties its parameters set (its name,
    /// output compression, split hints) over what the builder chose.
    pub fn build(&self, conf: &JobConf) -> Result<Job> {
        let builder = self.builders.get(&conf.job).ok_or_else(|| {
            Error::BadSetting(format!(
                "this binary has no job named {:?} (it has: {})",
                conf.job,
                self.builders.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let mut job = builder(conf)?;
        let props = JobProperties::from_params(&conf.params)?;
        if let Some(name) = &props.name {
            job.name.clone_from(name);
        }
        job.output_codec = props.output_codec.or(job.output_codec);
        job.split_min_bytes = job.split_min_bytes.max(props.split_min_bytes);
        job.maps_hint = props.maps_hint.or(job.maps_hint);
        job.validate()?;
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Record;
    use crate::job::Mapper;
    use crate::output::MapEmitter;

    #[derive(Clone)]
    struct Echo;
    impl Mapper for Echo {
        fn map(&mut self, r: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
            out.emit(r.value, b"");
            Ok(())
        }
    }

    fn echo(conf: &JobConf) -> Result<Job> {
        let _ = conf.get("p")?;
        Ok(Job::new("echo", Echo).settings(conf.settings.clone()))
    }

    fn map_only() -> Settings {
        Settings {
            reducers: 0,
            ..Settings::default()
        }
    }

    #[test]
    fn conf_round_trips_and_rebuilds() {
        let reg = Registry::new().register("echo", echo);
        let conf = JobConf::new("echo", map_only()).with("p", "1");
        let bytes = dfs::frame::encode_msg(&conf).unwrap();
        let back: JobConf = dfs::frame::decode_msg(&bytes).unwrap();
        assert_eq!(back, conf);
        assert_eq!(reg.build(&back).unwrap().name, "echo");
    }

    // Checks G7: a missing parameter or an unknown job is a clear error.
    #[test]
    fn missing_pieces_are_named() {
        let reg = Registry::new().register("echo", echo);
        let err = reg
            .build(&JobConf::new("echo", Settings::default()))
            .unwrap_err();
        assert!(err.to_string().contains("\"p\""), "{err}");
        let err = reg
            .build(&JobConf::new("nope", Settings::default()))
            .unwrap_err();
        assert!(err.to_string().contains("echo"), "{err}");
        let conf = JobConf::new("echo", Settings::default()).with("n", "x");
        assert!(conf.get_u64("n").is_err());
    }
}
