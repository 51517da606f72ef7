//! The Hadoop Streaming command line: `-input IN -output OUT -mapper CMD ...`, parsed without
//! I/O. Options take one dash as in Hadoop, or two; an unknown option or a Hadoop option this
//! system does not have is an error naming it, never silently ignored.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::files::{self, SideFile};
use crate::error::{Error, Result};
use crate::job::Settings;
use crate::properties;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `-help`: print the usage.
    Help,
    /// Run a job.
    Run(Box<StreamArgs>),
}

/// A Streaming job as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArgs {
    /// `-input` paths, in order.
    pub inputs: Vec<PathBuf>,
    /// `-output` directory.
    pub output: PathBuf,
    /// `-mapper` (None: identity).
    pub mapper: Option<String>,
    /// `-combiner`.
    pub combiner: Option<String>,
    /// `-reducer` (None: identity, or no reduce at all with `NONE` or 0 reduce tasks).
    pub reducer: Option<String>,
    /// `-files` and `-file`.
    pub files: Vec<SideFile>,
    /// `-cmdenv K=V`.
    pub cmdenv: Vec<(String, String)>,
    /// Settings, with `-numReduceTasks` and `-D` applied.
    pub settings: Settings,
    /// `-D` properties kept for the job (see [`properties::apply`]).
    pub params: BTreeMap<String, String>,
    /// `-partitioner KeyFieldBasedPartitioner`.
    pub keyfield_partitioner: bool,
    /// `--local`: run on this machine even with a cluster configured.
    pub local: bool,
    /// `-q`: print neither progress nor counters.
    pub quiet: bool,
}

/// The usage text of `mrjob streaming -help`.
pub const USAGE: &str = "\
Usage: mrjob streaming -input IN [-input IN2 ...] -output OUT [options]
  -mapper CMD           command run per map task (default: lines pass through)
  -combiner CMD         command run over each sorted spill of map output
  -reducer CMD|NONE     command run per reduce task (default: identity; NONE: map-only)
  -numReduceTasks N     number of reduce tasks (0: map-only)
  -partitioner CLASS    org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner
  -files A,B#ALIAS      ship files into each task's working directory (repeatable)
  -file F               ship one file (repeatable)
  -cmdenv NAME=VALUE    environment variable for the commands (repeatable)
  -D KEY=VALUE          job property by its Hadoop name (see `mrjob properties`)
  -inputformat TextInputFormat, -outputformat TextOutputFormat
  --local               run on this machine even when a cluster is configured
  -q, --quiet           print neither progress nor counters
Commands are split into words as a shell would (quotes), but not run by a shell.
";

const KEYFIELD_PARTITIONERS: &[&str] = &[
    "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
    "org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedPartitioner",
    "KeyFieldBasedPartitioner",
];
const HASH_PARTITIONERS: &[&str] = &[
    "org.apache.hadoop.mapred.lib.HashPartitioner",
    "org.apache.hadoop.mapreduce.lib.partition.HashPartitioner",
    "HashPartitioner",
];
const TEXT_INPUT: &[&str] = &[
    "org.apache.hadoop.mapred.TextInputFormat",
    "org.apache.hadoop.mapreduce.lib.input.TextInputFormat",
    "TextInputFormat",
];
const TEXT_OUTPUT: &[&str] = &[
    "org.apache.hadoop.mapred.TextOutputFormat",
    "org.apache.hadoop.mapreduce.lib.output.TextOutputFormat",
    "TextOutputFormat",
];
/// Hadoop Streaming options this system does not offer.
const UNSUPPORTED: &[&str] = &[
    "libjars",
    "archives",
    "inputreader",
    "io",
    "lazyOutput",
    "background",
    "mapdebug",
    "reducedebug",
    "combinerdebug",
    "additionalconfspec",
    "conf",
    "fs",
    "jt",
];

/// Parses everything after `streaming`.
pub fn parse(args: &[OsString]) -> Result<Parsed> {
    let mut p = Builder::default();
    p.settings.reducers = p.settings.threads.min(u32::MAX as usize) as u32;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = utf8(arg)?;
        if let Some(define) = arg.strip_prefix("-D").filter(|d| !d.is_empty()) {
            p.define(define)?;
            continue;
        }
        let name = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .ok_or_else(|| unexpected(arg))?;
        match name {
            "help" | "h" | "info" => return Ok(Parsed::Help),
            "local" => p.local = true,
            "q" | "quiet" => p.quiet = true,
            "verbose" => {}
            _ if UNSUPPORTED.contains(&name) => {
                return Err(Error::BadSetting(format!(
                    "{arg} is a Hadoop Streaming option this system does not support"
                )))
            }
            _ => {
                let value = it
                    .next()
                    .ok_or_else(|| Error::BadSetting(format!("{arg} needs a value")))?;
                p.option(arg, name, utf8(value)?)?;
            }
        }
    }
    p.finish().map(|a| Parsed::Run(Box::new(a)))
}

fn utf8(arg: &OsString) -> Result<&str> {
    arg.to_str().ok_or_else(|| {
        Error::BadSetting(format!(
            "argument {} is not valid UTF-8",
            arg.to_string_lossy()
        ))
    })
}

fn unexpected(arg: &str) -> Error {
    Error::BadSetting(format!(
        "unexpected argument {arg:?}: Streaming takes options only (-input, -output, -mapper, \
         ...; see mrjob streaming -help)"
    ))
}

#[derive(Default)]
struct Builder {
    inputs: Vec<PathBuf>,
    output: Option<PathBuf>,
    mapper: Option<String>,
    combiner: Option<String>,
    reducer: Option<String>,
    reducer_none: bool,
    files: Vec<SideFile>,
    cmdenv: Vec<(String, String)>,
    settings: Settings,
    params: BTreeMap<String, String>,
    keyfield_partitioner: bool,
    local: bool,
    quiet: bool,
}

impl Builder {
    fn define(&mut self, kv: &str) -> Result<()> {
        let (k, v) = properties::parse_define(kv)?;
        properties::apply(&mut self.settings, &mut self.params, k, v)
    }

    fn option(&mut self, arg: &str, name: &str, value: &str) -> Result<()> {
        match name {
            "input" => self.inputs.push(PathBuf::from(value)),
            "output" => self.output = Some(PathBuf::from(value)),
            "mapper" => self.mapper = Some(command(arg, value)?),
            "combiner" => self.combiner = Some(command(arg, value)?),
            "reducer" if value.trim() == "NONE" => self.reducer_none = true,
            "reducer" => self.reducer = Some(command(arg, value)?),
            "D" | "jobconf" => self.define(value)?,
            "numReduceTasks" => {
                self.settings.reducers = value.trim().parse().map_err(|_| {
                    Error::BadSetting(format!("{arg} {value}: expected a number of reduce tasks"))
                })?
            }
            "files" => self.files.extend(files::parse_list(value)?),
            "file" => self.files.extend(files::parse_list(value)?),
            "cmdenv" => self
                .cmdenv
                .extend(super::conf::parse_cmdenv(value).map_err(|e| named(arg, e))?),
            "partitioner" if KEYFIELD_PARTITIONERS.contains(&value) => {
                self.keyfield_partitioner = true
            }
            "partitioner" if HASH_PARTITIONERS.contains(&value) => {
                self.keyfield_partitioner = false
            }
            "inputformat" if TEXT_INPUT.contains(&value) => {}
            "outputformat" if TEXT_OUTPUT.contains(&value) => {}
            "partitioner" | "inputformat" | "outputformat" => {
                return Err(Error::BadSetting(format!(
                    "{arg} {value}: not supported (supported: {})",
                    match name {
                        "partitioner" => "KeyFieldBasedPartitioner, HashPartitioner",
                        "inputformat" => "TextInputFormat",
                        _ => "TextOutputFormat",
                    }
                )))
            }
            _ => {
                return Err(Error::BadSetting(format!(
                    "unknown option {arg} (see mrjob streaming -help)"
                )))
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<StreamArgs> {
        if self.inputs.is_empty() {
            return Err(Error::BadSetting(
                "-input is required (mrjob streaming -input IN -output OUT -mapper CMD)".into(),
            ));
        }
        let output = self.output.ok_or_else(|| {
            Error::BadSetting(
                "-output is required (mrjob streaming -input IN -output OUT -mapper CMD)".into(),
            )
        })?;
        if self.reducer_none {
            self.settings.reducers = 0;
        }
        if self.settings.reducers == 0 {
            self.reducer = None;
        }
        self.settings.validate()?;
        Ok(StreamArgs {
            inputs: self.inputs,
            output,
            mapper: self.mapper,
            combiner: self.combiner,
            reducer: self.reducer,
            files: self.files,
            cmdenv: self.cmdenv,
            settings: self.settings,
            params: self.params,
            keyfield_partitioner: self.keyfield_partitioner,
            local: self.local,
            quiet: self.quiet,
        })
    }
}

fn command(arg: &str, value: &str) -> Result<String> {
    match shlex::split(value) {
        Some(words) if !words.is_empty() => Ok(value.to_owned()),
        Some(_) => Err(Error::BadSetting(format!("{arg}: the command is empty"))),
        None => Err(Error::BadSetting(format!(
            "{arg} {value}: unbalanced quotes"
        ))),
    }
}

fn named(arg: &str, e: Error) -> Error {
    Error::BadSetting(format!("{arg}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<StreamArgs> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match parse(&args)? {
            Parsed::Run(a) => Ok(*a),
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn hadoop_and_double_dash_spellings_parse() {
        let a = run(&[
            "-input",
            "a",
            "--input",
            "b",
            "-output",
            "o",
            "-mapper",
            "python3 m.py 'x y'",
            "-reducer",
            "cat",
            "-files",
            "m.py,d.txt#data",
            "-file",
            "e",
            "-cmdenv",
            "K=V=W",
            "-D",
            "stream.num.map.output.key.fields=2",
            "-Dmapreduce.job.reduces=3",
            "-partitioner",
            "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
            "-inputformat",
            "org.apache.hadoop.mapred.TextInputFormat",
            "--local",
            "-q",
        ])
        .unwrap();
        assert_eq!(a.inputs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(a.mapper.as_deref(), Some("python3 m.py 'x y'"));
        assert_eq!(a.settings.reducers, 3);
        assert_eq!(a.params["stream.num.map.output.key.fields"], "2");
        assert_eq!(a.cmdenv, [("K".to_owned(), "V=W".to_owned())]);
        let aliases: Vec<&str> = a.files.iter().map(|f| f.alias.as_str()).collect();
        assert_eq!(aliases, ["m.py", "data", "e"]);
        assert!(a.keyfield_partitioner && a.local && a.quiet);
    }

    #[test]
    fn reducer_none_and_zero_reduces_are_map_only() {
        let a = run(&["-input", "a", "-output", "o", "-reducer", "NONE"]).unwrap();
        assert_eq!((a.settings.reducers, a.reducer), (0, None));
        let a = run(&[
            "-input",
            "a",
            "-output",
            "o",
            "-reducer",
            "wc",
            "-numReduceTasks",
            "0",
        ])
        .unwrap();
        assert_eq!((a.settings.reducers, a.reducer), (0, None));
        let a = run(&["-input", "a", "-output", "o", "-numReduceTasks", "2"]).unwrap();
        assert_eq!((a.settings.reducers, a.mapper), (2, None));
    }

    // Checks G7: bad arguments are errors that name what is wrong.
    #[test]
    fn bad_arguments_are_named() {
        let err = |args: &[&str]| run(args).unwrap_err().to_string();
        let base = ["-input", "a", "-output", "o"];
        let with = |more: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(more);
            err(&v)
        };
        assert!(with(&["-frobnicate", "1"]).contains("-frobnicate"));
        assert!(err(&["-input", "a"]).contains("-output is required"));
        assert!(err(&["-output", "o"]).contains("-input is required"));
        assert!(with(&["-mapper"]).contains("-mapper needs a value"));
        assert!(with(&["-D", "no.such.key=1"]).contains("no.such.key"));
        assert!(with(&["-D", "novalue"]).contains("key=value"));
        assert!(with(&["-libjars", "x.jar"]).contains("-libjars"));
        assert!(with(&["-inputformat", "SequenceFileInputFormat"]).contains("not supported"));
        assert!(with(&["-partitioner", "com.x.P"]).contains("com.x.P"));
        assert!(with(&["-numReduceTasks", "x"]).contains("-numReduceTasks x"));
        assert!(with(&["-mapper", "python3 'm.py"]).contains("unbalanced"));
        assert!(with(&["-cmdenv", "NOEQUALS"]).contains("-cmdenv"));
        assert!(with(&["stray"]).contains("stray"));
        let help: Vec<OsString> = vec!["-help".into()];
        assert_eq!(parse(&help).unwrap(), Parsed::Help);
    }
}
