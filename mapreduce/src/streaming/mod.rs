//! Hadoop Streaming: any executable as mapper, combiner or reducer, talking lines on its
//! stdin and stdout, with Hadoop Streaming's semantics.
//!
//! The built job is an ordinary [`Job`]: its mapper and reducer run the commands (see
//! [`mapper`], [`reducer`], [`child`]), and sort, spill, merge, shuffle and commit are the
//! engine's own. A `-combiner` is reducer-shaped, so it runs as the job's
//! [`Job::group_combiner`] over each sorted partition of a spill.
//!
//! Rooms: [`args`] (the command line), [`conf`] (the job's parameters, read back in every
//! task), [`child`] (one running command and its pipes), [`reporter`] (its stderr),
//! [`key_fields`] (cutting lines into key and value; the key-field partitioner), [`env`] (the
//! child's environment), [`files`] (side files), [`task`] (working directory and start),
//! [`mapper`], [`reducer`].

pub mod args;
pub mod child;
pub mod conf;
pub mod env;
pub mod files;
pub mod key_fields;
pub mod mapper;
pub mod reducer;
pub mod reporter;
pub mod task;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::Result;
use crate::input::InputFormat;
use crate::job::{HashPartitioner, Job};
use crate::job_conf::{JobConf, Registry};
use crate::output::OutputFormat;
use crate::runner::{JobReport, RunOptions};
use args::{Parsed, StreamArgs};
use child::Role;
use conf::StreamConf;
use mapper::StreamMapper;
use reducer::StreamReducer;

/// The name Streaming jobs are registered under in a job binary's [`Registry`].
pub const JOB_NAME: &str = "streaming";

/// Builds a Streaming job from its configuration (the registry's builder).
pub fn build(job_conf: &JobConf) -> Result<Job> {
    let conf = Arc::new(StreamConf::from_job_conf(job_conf)?);
    let partitioner: Arc<dyn crate::job::Partitioner> = match conf.partitioner()? {
        Some(p) => Arc::new(p),
        None => Arc::new(HashPartitioner),
    };
    let map_conf = conf.clone();
    let mut job = Job {
        name: conf.job_name.clone(),
        mapper: Arc::new(move || Box::new(StreamMapper::new(map_conf.clone()))),
        reducer: None,
        combiner: None,
        group_combiner: None,
        partitioner,
        input: InputFormat::Lines,
        // Output lines are written as the commands wrote them (see `task::text_line`).
        output: OutputFormat::Raw,
        settings: job_conf.settings.clone(),
        // The registry applies -D properties (codec, split hints) to every job it builds.
        output_codec: None,
        split_min_bytes: 0,
        maps_hint: None,
    };
    if conf.reducers > 0 {
        let c = conf.clone();
        job.reducer = Some(Arc::new(move || {
            Box::new(StreamReducer::new(c.clone(), Role::Reducer))
        }));
        if conf.combiner.is_some() {
            let c = conf.clone();
            job.group_combiner = Some(Arc::new(move || {
                Box::new(StreamReducer::new(c.clone(), Role::Combiner))
            }));
        }
    }
    Ok(job)
}

/// A registry holding the Streaming job only (the job binary's own registry must hold it
/// too, under [`JOB_NAME`], for its task processes).
pub fn registry() -> Registry {
    Registry::new().register(JOB_NAME, build)
}

/// The job's portable description, from the command line and the staged side files.
pub fn job_conf(a: &StreamArgs, staged: &files::Staged) -> JobConf {
    let mut c = JobConf::new(JOB_NAME, a.settings.clone());
    c.params.clone_from(&a.params);
    let mut set = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            c.params.insert(k.to_owned(), v.clone());
        }
    };
    set(conf::MAPPER, a.mapper.as_ref());
    set(conf::REDUCER, a.reducer.as_ref());
    set(conf::COMBINER, a.combiner.as_ref());
    if !staged.files.is_empty() {
        c.params
            .insert(conf::FILES.into(), files::encode(&staged.files));
        let origin = match staged.origin {
            files::Origin::Local => "local",
            files::Origin::Dfs => "dfs",
        };
        c.params.insert(conf::FILES_ORIGIN.into(), origin.into());
        if let Some(dir) = staged.dfs_dir() {
            let dir = dir.to_string_lossy().into_owned();
            c.params.insert(conf::FILES_STAGING.into(), dir);
        }
    }
    if !a.cmdenv.is_empty() {
        let text: Vec<String> = a.cmdenv.iter().map(|(k, v)| format!("{k}={v}")).collect();
        c.params.insert(conf::CMDENV.into(), text.join("\n"));
    }
    if a.keyfield_partitioner {
        c.params.insert(conf::PARTITIONER.into(), "keyfield".into());
    }
    c
}

/// `mrjob streaming ARGS`: parses Hadoop Streaming arguments, runs the job locally or on the
/// configured cluster (`conf`, else `MRJOB_CONF`), and calls `report` once with the job's
/// name and report. Side files staged for the job are removed when it ends, failed or not.
pub fn run_cli(
    conf: Option<&Path>,
    args: &[OsString],
    report: &dyn Fn(&str, &JobReport),
) -> Result<ExitCode> {
    let a = match args::parse(args)? {
        Parsed::Help => {
            print!("{}", args::USAGE);
            return Ok(ExitCode::SUCCESS);
        }
        Parsed::Run(a) => a,
    };
    let mut paths: Vec<&Path> = a.inputs.iter().map(PathBuf::as_path).collect();
    paths.push(&a.output);
    let engine = Engine::choose(conf, a.local, &paths)?;
    // Before staging anything: a missing input is named without side effects.
    engine.check_inputs(&a.inputs)?;
    let staged = files::stage(&engine, &a.files)?;
    let job_conf = job_conf(&a, &staged);
    let opts = RunOptions { progress: !a.quiet };
    let result = build(&job_conf).and_then(|job| {
        job.validate()?;
        engine.run(&registry(), &job_conf, &a.inputs, &a.output, &opts)
    });
    staged.remove(&engine);
    let job_report = result?;
    if !a.quiet {
        let name = job_conf
            .params
            .get("mapreduce.job.name")
            .map_or(JOB_NAME, String::as_str);
        report(name, &job_report);
    }
    Ok(ExitCode::SUCCESS)
}
