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

use crate::error::{Error, Result};
use crate::job::Settings;

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
    }
    Ok(())
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

/// Every known property with its old names, one per line, for `mrjob properties`.
pub fn describe() -> String {
    let mut out = String::new();
    for p in PROPERTIES {
        out.push_str(p.name);
        if !p.old.is_empty() {
            out.push_str(&format!(" (also {})", p.old.join(", ")));
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
    fn defines_split_at_the_first_equals_sign() {
        assert_eq!(parse_define("a.b=c=d").unwrap(), ("a.b", "c=d"));
        assert_eq!(parse_define("a.b=").unwrap(), ("a.b", ""));
        assert!(parse_define("a.b").is_err());
        assert!(parse_define("=x").is_err());
    }
}
