//! Grep, as Hadoop's grep example: count every match of a regular expression in the input,
//! then sort the matches by count, descending. Output lines are `count\tmatch`; matches with
//! equal counts are in byte order.
//!
//! Two jobs run back to back: the first counts (with a summing combiner) into a temporary
//! directory, the second sorts by an inverted-count key with a single reducer.

use std::path::{Path, PathBuf};

use mapreduce::codec::{parse_u64_key_descending, u64_key_descending, u64_value};
use mapreduce::{
    Engine, Error, Job, JobConf, JobReport, MapEmitter, Mapper, Record, ReduceEmitter, Reducer,
    Result, RunOptions, Settings, ValueSource,
};
use regex::bytes::Regex;

use crate::sum::{SumCombiner, SumReducer};

/// Compiles `pattern`, with an error that names it.
pub fn compile(pattern: &str) -> Result<Regex> {
    Regex::new(pattern).map_err(|e| {
        // The regex crate's message draws a caret diagram over several lines; keep the
        // line that says what is wrong so the error stays one line.
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("parse error")
            .trim()
            .trim_start_matches("error: ");
        Error::BadSetting(format!("invalid regex {pattern:?}: {reason}"))
    })
}

/// Emits `(match, 1)` for every match in a line.
#[derive(Debug, Clone)]
pub struct MatchMapper {
    regex: Regex,
}

impl Mapper for MatchMapper {
    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        let one = u64_value(1);
        for m in self.regex.find_iter(record.value) {
            out.emit(m.as_bytes(), &one);
        }
        Ok(())
    }
}

/// Turns `match\tcount` lines into keys that sort by count, descending, then by match.
#[derive(Debug, Clone, Copy, Default)]
pub struct InvertMapper;

impl Mapper for InvertMapper {
    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        let line = record.value;
        let bad = || Error::BadRecord {
            file: PathBuf::from(record.file),
            offset: record.offset,
            reason: "expected match<TAB>count".into(),
        };
        let tab = memchr::memrchr(b'\t', line).ok_or_else(bad)?;
        let count: u64 = std::str::from_utf8(&line[tab + 1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let mut key = u64_key_descending(count).to_vec();
        key.extend_from_slice(&line[..tab]);
        out.emit(&key, b"");
        Ok(())
    }
}

/// Writes `count\tmatch` from the inverted keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountFirstReducer;

impl Reducer for CountFirstReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueSource,
        out: &mut dyn ReduceEmitter,
    ) -> Result<()> {
        let count = parse_u64_key_descending(key)
            .ok_or_else(|| Error::user("grep sort key shorter than 8 bytes"))?;
        let count = count.to_string();
        while values.next_value().is_some() {
            out.emit(count.as_bytes(), &key[8..]);
        }
        Ok(())
    }
}

/// The counting job.
pub fn count_job(regex: Regex, settings: Settings) -> Job {
    Job::new("grep-search", MatchMapper { regex })
        .combiner(SumCombiner)
        .reducer(SumReducer)
        .settings(settings)
}

/// The sorting job.
pub fn sort_job(mut settings: Settings) -> Job {
    settings.reducers = 1;
    Job::new("grep-sort", InvertMapper)
        .reducer(CountFirstReducer)
        .settings(settings)
}

/// Registered name of the counting job (parameter `regex`).
pub const COUNT_JOB: &str = "grep-count";
/// Registered name of the sorting job.
pub const SORT_JOB: &str = "grep-sort";

/// Rebuilds the counting job from its configuration.
pub fn build_count(conf: &JobConf) -> Result<Job> {
    Ok(count_job(
        compile(conf.get("regex")?)?,
        conf.settings.clone(),
    ))
}

/// Rebuilds the sorting job from its configuration.
pub fn build_sort(conf: &JobConf) -> Result<Job> {
    Ok(sort_job(conf.settings.clone()))
}

/// What each of grep's two jobs reported.
#[derive(Debug)]
pub struct GrepReport {
    /// The counting job (its output is temporary).
    pub count: JobReport,
    /// The sorting job, whose output is the result.
    pub sort: JobReport,
}

impl GrepReport {
    /// The steps by name, for a report that shows each job's counters apart: adding them up
    /// would count records twice (the counting job's output is the sorting job's input).
    pub fn steps(&self) -> [(&'static str, &JobReport); 2] {
        [(COUNT_JOB, &self.count), (SORT_JOB, &self.sort)]
    }
}

/// Runs both jobs on `engine`: counts into a temporary directory, then sorts into `output`.
pub fn run(
    engine: &Engine,
    regex: &str,
    inputs: &[PathBuf],
    output: &Path,
    base: JobConf,
    opts: &RunOptions,
) -> Result<GrepReport> {
    compile(regex)?;
    if engine.exists(output)? {
        return Err(Error::OutputExists(output.to_owned()));
    }
    let registry = crate::registry();
    let counts = engine.temp_path("grep-temp")?;
    // Both jobs get the user's settings and properties; the counts are temporary data,
    // neither synced nor compressed.
    let mut count = base.clone().with("regex", regex);
    count.job = COUNT_JOB.to_owned();
    count.settings.sync_output = false;
    count.params.remove(mapreduce::properties::keys::COMPRESS);
    let mut sort = base;
    sort.job = SORT_JOB.to_owned();
    let result = engine
        .run(&registry, &count, inputs, &counts, opts)
        .and_then(|count| {
            let sort = engine.run(
                &registry,
                &sort,
                std::slice::from_ref(&counts),
                output,
                opts,
            )?;
            Ok(GrepReport { count, sort })
        });
    engine.remove_dir(&counts);
    result
}
