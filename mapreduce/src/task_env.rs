//! The environment a task process starts with on a cluster worker.
//!
//! A worker is a daemon started from someone's shell or a service manager; its environment holds
//! whatever was there (credentials, `MRJOB_USER_KEY`, debugging switches such as
//! `PYTHONUNBUFFERED`). A task runs the job user's code, so it gets only the variables named in
//! `task_env_whitelist` (as Hadoop's NodeManager passes only its `env-whitelist`), plus what the
//! job itself sets (`-cmdenv`, the job configuration, which the task adds for its children).
//! Leaking the rest was measured to matter: an inherited `PYTHONUNBUFFERED=1` made every
//! Python Streaming mapper write one line per syscall, about half again the job's CPU.

use std::ffi::{OsStr, OsString};

/// Variables a task keeps from its worker's environment when the cluster names none.
pub const DEFAULT_WHITELIST: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "RUST_LOG",
    "RUST_BACKTRACE",
];

/// Variables the framework itself reads in a task process, kept whatever the whitelist says:
/// the test hooks (faults, the power-loss model), which do nothing unless set.
const FRAMEWORK: &[&str] = &[crate::fault::FAULTS_ENV, dfs::power_loss::ENV_VAR];

/// The subset of `from` (a worker's environment) a task keeps: names on `whitelist` or used by
/// the framework, in `from`'s order.
pub fn task_environment<I>(whitelist: &[String], from: I) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let kept = |name: &OsStr| {
        whitelist.iter().any(|w| OsStr::new(w) == name)
            || FRAMEWORK.iter().any(|f| OsStr::new(f) == name)
    };
    from.into_iter().filter(|(k, _)| kept(k)).collect()
}

/// The default whitelist as owned names (the config's default).
pub fn default_whitelist() -> Vec<String> {
    DEFAULT_WHITELIST.iter().map(|s| s.to_string()).collect()
}

/// Why `name` cannot be on the whitelist, if it cannot: it must be a plain variable name.
pub fn check_name(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (!plain).then(|| format!("task_env_whitelist: `{name}` is not an environment variable name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn only_whitelisted_and_framework_variables_reach_a_task() {
        let worker = env(&[
            ("PATH", "/usr/bin"),
            ("PYTHONUNBUFFERED", "1"),
            ("MRJOB_USER_KEY", "/root/alice.key"),
            (crate::fault::FAULTS_ENV, "map:0:fail"),
            ("HOME", "/root"),
        ]);
        let kept = task_environment(&default_whitelist(), worker);
        assert_eq!(
            kept,
            env(&[
                ("PATH", "/usr/bin"),
                (crate::fault::FAULTS_ENV, "map:0:fail"),
                ("HOME", "/root")
            ])
        );
    }

    #[test]
    fn a_configured_whitelist_replaces_the_default() {
        let worker = env(&[("PATH", "/usr/bin"), ("PYTHONPATH", "/opt/lib")]);
        let kept = task_environment(&["PYTHONPATH".to_owned()], worker);
        assert_eq!(kept, env(&[("PYTHONPATH", "/opt/lib")]));
    }

    #[test]
    fn whitelist_names_are_checked() {
        assert!(check_name("PYTHONPATH").is_none());
        assert!(check_name("_X1").is_none());
        for bad in ["", "1A", "A=B", "A B"] {
            assert!(check_name(bad).is_some(), "{bad:?}");
        }
    }
}
