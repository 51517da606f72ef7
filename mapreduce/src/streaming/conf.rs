//! A Streaming job's configuration, read once from its [`JobConf`] parameters (which carry
//! the commands, side files, `-cmdenv` and the `stream.*` properties to every task).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::child::Role;
use super::files::{self, Origin, SideFile};
use super::key_fields::{FieldCut, KeyFieldPartitioner};
use crate::error::{Error, Result};
use crate::job_conf::JobConf;

/// Parameter: the `-mapper` command (absent: identity).
pub const MAPPER: &str = "mrjob.streaming.mapper";
/// Parameter: the `-reducer` command (absent: identity).
pub const REDUCER: &str = "mrjob.streaming.reducer";
/// Parameter: the `-combiner` command.
pub const COMBINER: &str = "mrjob.streaming.combiner";
/// Parameter: staged side files, one `SOURCE#ALIAS` per line.
pub const FILES: &str = "mrjob.streaming.files";
/// Parameter: where staged side files are (`local` or `dfs`).
pub const FILES_ORIGIN: &str = "mrjob.streaming.files.origin";
/// Parameter: the dfs directory the submitter uploaded local side files into, which the
/// jobtracker removes when the job ends (the submitter may be gone by then: Ctrl-C).
pub const FILES_STAGING: &str = "mrjob.streaming.files.staging";
/// Parameter: `-cmdenv` variables, one `K=V` per line.
pub const CMDENV: &str = "mrjob.streaming.cmdenv";
/// Parameter: `keyfield` for `KeyFieldBasedPartitioner`.
pub const PARTITIONER: &str = "mrjob.streaming.partitioner";

/// Everything a Streaming task needs, parsed and checked.
#[derive(Debug, Clone)]
pub struct StreamConf {
    /// The mapper command (None: lines pass through).
    pub mapper: Option<String>,
    /// The reducer command (None: key/value pairs pass through).
    pub reducer: Option<String>,
    /// The combiner command.
    pub combiner: Option<String>,
    /// How map (and combiner) output lines are cut into key and value.
    pub map_output: FieldCut,
    /// How reduce output lines are cut (for output separators other than TAB).
    pub reduce_output: FieldCut,
    /// What goes between key and value on a reducer's (or combiner's) stdin.
    pub reduce_input_separator: Vec<u8>,
    /// Whether a non-zero exit status fails the task.
    pub exit_is_failure: bool,
    /// `-cmdenv` variables.
    pub cmdenv: Vec<(String, String)>,
    /// Staged side files.
    pub files: Vec<SideFile>,
    /// Where they are.
    pub files_origin: Origin,
    /// The job's parameters, exported to children.
    pub params: BTreeMap<String, String>,
    /// The job's name (`mapreduce.job.name`, else `streaming`).
    pub job_name: String,
    /// Number of reduce tasks (0: map-only).
    pub reducers: u32,
    /// Longest child output line.
    pub max_line_bytes: usize,
    /// Where task working directories go when the task has none of its own.
    pub local_dir: Option<PathBuf>,
}

impl StreamConf {
    /// Reads and checks a Streaming job's parameters.
    pub fn from_job_conf(conf: &JobConf) -> Result<StreamConf> {
        let p = &conf.params;
        let text = |k: &str, default: &str| p.get(k).cloned().unwrap_or_else(|| default.into());
        let count = |k: &str| -> Result<u64> {
            p.get(k).map_or(Ok(1), |v| {
                v.parse()
                    .map_err(|_| Error::BadSetting(format!("-D {k}={v}: expected a number")))
            })
        };
        let map_output = FieldCut::new(
            &text("stream.map.output.field.separator", "\t"),
            count("stream.num.map.output.key.fields")?,
        )?;
        let reduce_output = FieldCut::new(
            &text("stream.reduce.output.field.separator", "\t"),
            count("stream.num.reduce.output.key.fields")?,
        )?;
        if p.contains_key("mapreduce.partition.keycomparator.options") {
            return Err(Error::BadSetting(
                "-D mapreduce.partition.keycomparator.options: KeyFieldBasedComparator is not \
                 supported; keys sort bytewise (use stream.num.map.output.key.fields with \
                 KeyFieldBasedPartitioner for a secondary sort)"
                    .into(),
            ));
        }
        let cmdenv = p.get(CMDENV).map_or(Ok(Vec::new()), |t| parse_cmdenv(t))?;
        let files_origin = match p.get(FILES_ORIGIN).map(String::as_str) {
            Some("dfs") => Origin::Dfs,
            _ => Origin::Local,
        };
        Ok(StreamConf {
            mapper: p.get(MAPPER).cloned(),
            reducer: p.get(REDUCER).cloned(),
            combiner: p.get(COMBINER).cloned(),
            map_output,
            reduce_output,
            reduce_input_separator: text("stream.reduce.input.field.separator", "\t").into_bytes(),
            exit_is_failure: p
                .get("stream.non.zero.exit.is.failure")
                .is_none_or(|v| v != "false"),
            cmdenv,
            files: p.get(FILES).map_or(Ok(Vec::new()), |t| files::decode(t))?,
            files_origin,
            params: p.clone(),
            job_name: conf.display_name().to_owned(),
            reducers: conf.settings.reducers,
            max_line_bytes: conf.settings.max_record_bytes,
            local_dir: conf.settings.local_dir.clone(),
        })
    }

    /// The key-field partitioner, when the job asked for one.
    pub fn partitioner(&self) -> Result<Option<KeyFieldPartitioner>> {
        if self.params.get(PARTITIONER).map(String::as_str) != Some("keyfield") {
            return Ok(None);
        }
        let options = self
            .params
            .get("mapreduce.partition.keypartitioner.options")
            .map_or("-k1", String::as_str);
        let separator = self
            .params
            .get("mapreduce.map.output.key.field.separator")
            .map_or("\t", String::as_str);
        KeyFieldPartitioner::parse(options, separator).map(Some)
    }

    /// The command of a role.
    pub fn command(&self, role: Role) -> Option<&str> {
        match role {
            Role::Mapper => self.mapper.as_deref(),
            Role::Reducer => self.reducer.as_deref(),
            Role::Combiner => self.combiner.as_deref(),
        }
    }

    /// Where a task without a directory of its own makes its working directory.
    pub fn scratch_base(&self) -> PathBuf {
        self.local_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

/// Parses `-cmdenv` lines (`K=V`).
pub fn parse_cmdenv(text: &str) -> Result<Vec<(String, String)>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                Ok((k.to_owned(), v.to_owned()))
            }
            _ => Err(Error::BadSetting(format!(
                "-cmdenv {l}: expected NAME=VALUE"
            ))),
        })
        .collect()
}
