//! Per-job properties by their Hadoop names (`-D key=value`), validated.
//!
//! Users bring their habits from Hadoop: `-D mapreduce.job.reduces=4`,
//! `-D stream.num.map.output.key.fields=2`. Every key is looked up in one table; a key that is
//! not there, or a value that does not parse, is an error naming the key, because a silently
//! ignored setting is a job that quietly does something else than asked. Deprecated Hadoop 1
//! names (`mapred.reduce.tasks`) are accepted as aliases of their new names.
//!
//! A property either changes the job's [`Settings`] or is kept in the job's parameters under
//! its canonical name, for the part of the job that reads it (Streaming reads its `stream.*`
//! keys and the key-field partitioner options from there).

use std::collections::BTreeMap;

use crate::compression::Codec;
use crate::error::{Error, Result};
use crate::job::Settings;
use crate::scheduler::TaskPolicy;

/// What a property does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Number of reduce tasks.
    Reduces,
    /// Map-side sort buffer, in MiB.
    SortMb,
    /// Largest split, in bytes.
    SplitMaxBytes,
    /// Whether the job's combiner runs (not a Hadoop key; `mrjob.combiner.enabled`).
    CombinerEnabled,
    /// Kept in the parameters: any text.
    Text,
    /// Kept in the parameters: a non-negative integer.
    Count,
    /// Kept in the parameters: `true` or `false`.
    Flag,
    /// Kept in the parameters: attempts of a task, 1 to [`MAX_ATTEMPTS`].
    Attempts,
    /// Kept in the parameters: a compression codec, by its short name.
    CodecName,
    /// Kept in the parameters and otherwise ignored, with a warning saying so: it means
    /// something only to a scheduler with queues or priorities, which this one is not.
    Ignored,
}

/// Most attempts of one task a job may ask for (as the cluster config allows).
pub const MAX_ATTEMPTS: u64 = 100;

/// Canonical names of the properties other modules read back (see [`JobProperties`]).
pub mod keys {
    /// The job's name, shown in progress, the report and `mrjob list/status`.
    pub const JOB_NAME: &str = "mapreduce.job.name";
    /// Backup attempts of slow maps.
    pub const MAP_SPECULATIVE: &str = "mapreduce.map.speculative";
    /// Backup attempts of slow reduces.
    pub const REDUCE_SPECULATIVE: &str = "mapreduce.reduce.speculative";
    /// Failed attempts of one map before the job fails.
    pub const MAP_MAX_ATTEMPTS: &str = "mapreduce.map.maxattempts";
    /// Failed attempts of one reduce before the job fails.
    pub const REDUCE_MAX_ATTEMPTS: &str = "mapreduce.reduce.maxattempts";
    /// Milliseconds without progress before an attempt is failed (0: never).
    pub const TASK_TIMEOUT: &str = "mapreduce.task.timeout";
    /// Whether output is compressed.
    pub const COMPRESS: &str = "mapreduce.output.fileoutputformat.compress";
    /// The codec of compressed output.
    pub const COMPRESS_CODEC: &str = "mapreduce.output.fileoutputformat.compress.codec";
    /// The smallest split.
    pub const SPLIT_MIN: &str = "mapreduce.input.fileinputformat.split.minsize";
    /// The number of maps wanted (a hint).
    pub const MAPS: &str = "mapreduce.job.maps";
}

/// One known property.
#[derive(Debug)]
struct Property {
    name: &'static str,
    /// Hadoop 1 names of the same property.
    old: &'static [&'static str],
    effect: Effect,
}

const fn prop(name: &'static str, old: &'static [&'static str], effect: Effect) -> Property {
    Property { name, old, effect }
}

/// Every property a job accepts.
const PROPERTIES: &[Property] = &[
    prop(
        "mapreduce.job.reduces",
        &["mapred.reduce.tasks"],
        Effect::Reduces,
    ),
    prop("mapreduce.job.name", &["mapred.job.name"], Effect::Text),
    prop("mapreduce.task.io.sort.mb", &["io.sort.mb"], Effect::SortMb),
    prop(
        "mapreduce.input.fileinputformat.split.maxsize",
        &["mapred.max.split.size"],
        Effect::SplitMaxBytes,
    ),
    prop("mrjob.combiner.enabled", &[], Effect::CombinerEnabled),
    // Scheduling of this job's attempts, over the cluster's [mapreduce] defaults.
    prop(
        keys::MAP_SPECULATIVE,
        &["mapred.map.tasks.speculative.execution"],
        Effect::Flag,
    ),
    prop(
        keys::REDUCE_SPECULATIVE,
        &["mapred.reduce.tasks.speculative.execution"],
        Effect::Flag,
    ),
    prop(
        keys::MAP_MAX_ATTEMPTS,
        &["mapred.map.max.attempts"],
        Effect::Attempts,
    ),
    prop(
        keys::REDUCE_MAX_ATTEMPTS,
        &["mapred.reduce.max.attempts"],
        Effect::Attempts,
    ),
    prop(keys::TASK_TIMEOUT, &["mapred.task.timeout"], Effect::Count),
    // Output compression and splits.
    prop(keys::COMPRESS, &["mapred.output.compress"], Effect::Flag),
    prop(
        keys::COMPRESS_CODEC,
        &["mapred.output.compression.codec"],
        Effect::CodecName,
    ),
    prop(keys::SPLIT_MIN, &["mapred.min.split.size"], Effect::Count),
    prop(keys::MAPS, &["mapred.map.tasks"], Effect::Count),
    // Queues and priorities: accepted (scripts written for Hadoop set them), no effect.
    prop(
        "mapreduce.job.queuename",
        &["mapred.job.queue.name"],
        Effect::Ignored,
    ),
    prop(
        "mapreduce.job.priority",
        &["mapred.job.priority"],
        Effect::Ignored,
    ),
    // Streaming: how a child's output lines are cut into key and value.
    prop("stream.map.input.field.separator", &[], Effect::Text),
    prop("stream.map.output.field.separator", &[], Effect::Text),
    prop("stream.num.map.output.key.fields", &[], Effect::Count),
    prop("stream.reduce.input.field.separator", &[], Effect::Text),
    prop("stream.reduce.output.field.separator", &[], Effect::Text),
    prop("stream.num.reduce.output.key.fields", &[], Effect::Count),
    prop("stream.non.zero.exit.is.failure", &[], Effect::Flag),
    // The key-field partitioner (secondary sort).
    prop(
        "mapreduce.map.output.key.field.separator",
        &["map.output.key.field.separator"],
        Effect::Text,
    ),
    prop(
        "mapreduce.partition.keypartitioner.options",
        &["mapred.text.key.partitioner.options"],
        Effect::Text,
    ),
    // Recognised so that Streaming can say KeyFieldBasedComparator is not supported.
    prop(
        "mapreduce.partition.keycomparator.options",
        &["mapred.text.key.comparator.options"],
        Effect::Text,
    ),
];

fn find(key: &str) -> Option<&'static Property> {
    PROPERTIES
        .iter()
        .find(|p| p.name == key || p.old.contains(&key))
}

/// The known name closest to `key`, for the error message.
fn closest(key: &str) -> Option<&'static str> {
    PROPERTIES
        .iter()
        .flat_map(|p| std::iter::once(p.name).chain(p.old.iter().copied()))
        .map(|name| (strsim::levenshtein(key, name), name))
        .filter(|(d, name)| *d <= name.len() / 3)
        .min()
        .map(|(_, name)| name)
}

fn bad(key: &str, value: &str, want: &str) -> Error {
    Error::BadSetting(format!("-D {key}={value}: {want}"))
}

/// Applies `-D key=value`: changes `settings`, or records the value in `params` under the
/// property's canonical name. Unknown keys and malformed values are errors naming the key.
pub fn apply(
    settings: &mut Settings,
    params: &mut BTreeMap<String, String>,
    key: &str,
    value: &str,
) -> Result<()> {
    let Some(p) = find(key) else {
        let hint = closest(key).map_or(String::new(), |n| format!(" (did you mean {n}?)"));
        return Err(Error::BadSetting(format!(
            "-D {key}: unknown property{hint}; `mrjob properties` lists the known ones"
        )));
    };
    let count = || -> Result<u64> {
        value
            .trim()
            .parse()
            .map_err(|_| bad(key, value, "expected a non-negative integer"))
    };
    match p.effect {
        Effect::Reduces => {
            settings.reducers =
                u32::try_from(count()?).map_err(|_| bad(key, value, "too many reduce tasks"))?;
        }
        Effect::SortMb => {
            let mb = count()?;
            if mb == 0 || mb > 64 * 1024 {
                return Err(bad(key, value, "expected 1 to 65536 (MiB)"));
            }
            settings.sort_buffer_bytes = (mb as usize) << 20;
        }
        Effect::SplitMaxBytes => {
            let n = count()?;
            if n == 0 {
                return Err(bad(key, value, "a split needs at least 1 byte"));
            }
            settings.split_size_bytes = n;
        }
        Effect::CombinerEnabled => settings.combiner_enabled = flag(key, value)?,
        Effect::Text => {
            params.insert(p.name.to_owned(), value.to_owned());
        }
        Effect::Count => {
            params.insert(p.name.to_owned(), count()?.to_string());
        }
        Effect::Flag => {
            params.insert(p.name.to_owned(), flag(key, value)?.to_string());
        }
        Effect::Attempts => {
            let n = count()?;
            if !(1..=MAX_ATTEMPTS).contains(&n) {
                return Err(bad(key, value, &format!("expected 1 to {MAX_ATTEMPTS}")));
            }
            params.insert(p.name.to_owned(), n.to_string());
        }
        Effect::CodecName => {
            let codec = Codec::from_name(value).map_err(|e| bad(key, value, &e.to_string()))?;
            params.insert(p.name.to_owned(), codec.name().to_owned());
        }
        Effect::Ignored => {
            tracing::warn!(
                "-D {key}={value}: accepted, but this scheduler has no queues or priorities \
                 (jobs run first in, first out)"
            );
            params.insert(p.name.to_owned(), value.to_owned());
        }
    }
    Ok(())
}

/// The properties a job's parts read back from its parameters, typed. Values were checked
/// by [`apply`]; they are checked again here, since parameters can also be set directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobProperties {
    /// `mapreduce.job.name`.
    pub name: Option<String>,
    /// Compressed output: `mapreduce.output.fileoutputformat.compress=true`, with the codec
    /// named by `...compress.codec` (default gzip, as Hadoop's `GzipCodec` users expect;
    /// Hadoop's own default `DefaultCodec` is accepted by name as `deflate`).
    pub output_codec: Option<Codec>,
    /// `mapreduce.input.fileinputformat.split.minsize` (0: none): the local split size's
    /// floor; on a cluster, consecutive blocks are joined into splits of at least this.
    pub split_min_bytes: u64,
    /// `mapreduce.job.maps`: a hint for the local split size (see
    /// [`crate::split::local_split_size`]) and teragen's number of maps; on a cluster a job
    /// reading files has one map per block.
    pub maps_hint: Option<u32>,
    /// Per-job scheduling over the cluster's defaults.
    pub tasks: TaskPolicy,
}

impl JobProperties {
    /// Reads the typed properties from a job's parameters; a malformed value names its key.
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<JobProperties> {
        let get = |k: &str| params.get(k).map(String::as_str);
        let num = |k: &str| -> Result<Option<u64>> {
            get(k)
                .map(|v| v.trim().parse().map_err(|_| bad(k, v, "expected a number")))
                .transpose()
        };
        let flag_of = |k: &str| get(k).map(|v| flag(k, v)).transpose();
        let attempts = |k: &str| -> Result<Option<u32>> {
            match num(k)? {
                Some(n) if (1..=MAX_ATTEMPTS).contains(&n) => Ok(Some(n as u32)),
                Some(n) => Err(bad(k, &n.to_string(), "expected 1 to 100")),
                None => Ok(None),
            }
        };
        let codec = get(keys::COMPRESS_CODEC)
            .map(Codec::from_name)
            .transpose()?
            .unwrap_or(Codec::Gzip);
        let maps_hint = num(keys::MAPS)?
            .map(|n| u32::try_from(n).map_err(|_| bad(keys::MAPS, &n.to_string(), "too many")))
            .transpose()?;
        Ok(JobProperties {
            name: get(keys::JOB_NAME)
                .filter(|n| !n.trim().is_empty())
                .map(str::to_owned),
            output_codec: flag_of(keys::COMPRESS)?.unwrap_or(false).then_some(codec),
            split_min_bytes: num(keys::SPLIT_MIN)?.unwrap_or(0),
            maps_hint,
            tasks: TaskPolicy {
                map_speculative: flag_of(keys::MAP_SPECULATIVE)?,
                reduce_speculative: flag_of(keys::REDUCE_SPECULATIVE)?,
                map_max_attempts: attempts(keys::MAP_MAX_ATTEMPTS)?,
                reduce_max_attempts: attempts(keys::REDUCE_MAX_ATTEMPTS)?,
                task_timeout_ms: num(keys::TASK_TIMEOUT)?,
            },
        })
    }
}

fn flag(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, value, "expected true or false")),
    }
}

/// Splits a `key=value` argument of `-D`.
pub fn parse_define(arg: &str) -> Result<(&str, &str)> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(Error::BadSetting(format!(
            "-D {arg}: expected key=value, e.g. -D mapreduce.job.reduces=4"
        ))),
    }
}

/// What a property does here, where that is not what its Hadoop name says.
const NOTES: &[(&str, &str)] = &[
    (
        keys::MAPS,
        "a hint: a local run cuts about total/N bytes per split, teragen runs N maps; \
         a cluster runs one map per block",
    ),
    (
        keys::TASK_TIMEOUT,
        "milliseconds without progress before an attempt fails; 0: never",
    ),
    (
        keys::COMPRESS_CODEC,
        "GzipCodec (default), BZip2Codec, ZStandardCodec, DefaultCodec (zlib, .deflate)",
    ),
    (
        "mapreduce.input.fileinputformat.split.maxsize",
        "local runs only; a cluster runs one map per block",
    ),
    (
        keys::SPLIT_MIN,
        "bytes; on a cluster consecutive blocks are joined into splits of at least this",
    ),
    (
        "mapreduce.job.queuename",
        "accepted, no effect (one FIFO queue)",
    ),
    (
        "mapreduce.job.priority",
        "accepted, no effect (one FIFO queue)",
    ),
];

/// Every known property with its old names, one per line, for `mrjob properties`.
pub fn describe() -> String {
    let mut out = String::new();
    for p in PROPERTIES {
        out.push_str(p.name);
        if !p.old.is_empty() {
            out.push_str(&format!(" (also {})", p.old.join(", ")));
        }
        if let Some((_, note)) = NOTES.iter().find(|(k, _)| *k == p.name) {
            out.push_str(&format!(": {note}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(key: &str, value: &str) -> Result<(Settings, BTreeMap<String, String>)> {
        let mut s = Settings::default();
        let mut p = BTreeMap::new();
        apply(&mut s, &mut p, key, value)?;
        Ok((s, p))
    }

    #[test]
    fn settings_change_by_new_and_old_names() {
        assert_eq!(run("mapreduce.job.reduces", "7").unwrap().0.reducers, 7);
        assert_eq!(run("mapred.reduce.tasks", "0").unwrap().0.reducers, 0);
        assert_eq!(
            run("mapreduce.task.io.sort.mb", "16")
                .unwrap()
                .0
                .sort_buffer_bytes,
            16 << 20
        );
    }

    #[test]
    fn stream_keys_are_kept_under_their_canonical_name() {
        let (_, p) = run("map.output.key.field.separator", ".").unwrap();
        assert_eq!(p["mapreduce.map.output.key.field.separator"], ".");
        let (_, p) = run("stream.num.map.output.key.fields", " 2").unwrap();
        assert_eq!(p["stream.num.map.output.key.fields"], "2");
    }

    // Checks G7: a bad property is an error naming the key, never silently ignored.
    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = run("mapreduce.job.reduce", "3").unwrap_err().to_string();
        assert!(e.contains("mapreduce.job.reduce:"), "{e}");
        assert!(e.contains("did you mean mapreduce.job.reduces"), "{e}");
        let e = run("no.such.thing", "1").unwrap_err().to_string();
        assert!(
            e.contains("no.such.thing") && !e.contains("did you mean"),
            "{e}"
        );
        let e = run("mapreduce.job.reduces", "many")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mapreduce.job.reduces=many"), "{e}");
        assert!(run("stream.non.zero.exit.is.failure", "yes").is_err());
        assert!(run("mapreduce.task.io.sort.mb", "0").is_err());
    }

    #[test]
    fn job_properties_read_back_typed() {
        let mut s = Settings::default();
        let mut p = BTreeMap::new();
        for (k, v) in [
            ("mapred.job.name", "nightly logs"),
            ("mapreduce.map.speculative", "false"),
            ("mapreduce.reduce.maxattempts", "2"),
            ("mapred.task.timeout", "0"),
            ("mapreduce.output.fileoutputformat.compress", "true"),
            (
                "mapreduce.output.fileoutputformat.compress.codec",
                "org.apache.hadoop.io.compress.BZip2Codec",
            ),
            ("mapreduce.input.fileinputformat.split.minsize", "1024"),
            ("mapreduce.job.maps", "6"),
            ("mapreduce.job.queuename", "default"),
        ] {
            apply(&mut s, &mut p, k, v).unwrap();
        }
        let props = JobProperties::from_params(&p).unwrap();
        assert_eq!(props.name.as_deref(), Some("nightly logs"));
        assert_eq!(props.output_codec, Some(Codec::Bzip2));
        assert_eq!((props.split_min_bytes, props.maps_hint), (1024, Some(6)));
        let t = props.tasks;
        assert_eq!(t.map_speculative, Some(false));
        assert_eq!(t.reduce_speculative, None);
        assert_eq!((t.map_max_attempts, t.reduce_max_attempts), (None, Some(2)));
        assert_eq!(t.task_timeout_ms, Some(0));
        // Compression is off unless asked for; the codec alone does not turn it on.
        p.remove("mapreduce.output.fileoutputformat.compress");
        assert_eq!(JobProperties::from_params(&p).unwrap().output_codec, None);
        let mut p = BTreeMap::new();
        apply(&mut s, &mut p, "mapred.output.compress", "TRUE").unwrap();
        let props = JobProperties::from_params(&p).unwrap();
        assert_eq!(props.output_codec, Some(Codec::Gzip));
        assert_eq!(
            JobProperties::from_params(&BTreeMap::new()).unwrap(),
            JobProperties::default()
        );
    }

    // Checks G7: values of the new keys are validated, naming the key.
    #[test]
    fn bad_scheduling_and_codec_values_name_the_key() {
        for (k, v) in [
            ("mapreduce.map.maxattempts", "0"),
            ("mapreduce.reduce.maxattempts", "101"),
            ("mapreduce.map.speculative", "maybe"),
            ("mapreduce.task.timeout", "-1"),
            (
                "mapreduce.output.fileoutputformat.compress.codec",
                "SnappyCodec",
            ),
            ("mapreduce.job.maps", "lots"),
        ] {
            let e = run(k, v).unwrap_err().to_string();
            assert!(e.contains(&format!("{k}={v}")), "{e}");
        }
        let mut p = BTreeMap::new();
        p.insert(keys::MAP_MAX_ATTEMPTS.to_owned(), "0".to_owned());
        let e = JobProperties::from_params(&p).unwrap_err().to_string();
        assert!(e.contains(keys::MAP_MAX_ATTEMPTS), "{e}");
    }

    #[test]
    fn defines_split_at_the_first_equals_sign() {
        assert_eq!(parse_define("a.b=c=d").unwrap(), ("a.b", "c=d"));
        assert_eq!(parse_define("a.b=").unwrap(), ("a.b", ""));
        assert!(parse_define("a.b").is_err());
        assert!(parse_define("=x").is_err());
    }
}
