//! Filesystem path validation.
//!
//! Every path that enters the namenode goes through [`validate`] first, so the namespace can
//! split on `/` without thinking about `.`, `..`, empty components or runaway lengths (G7).
//! A path is absolute, UTF-8 (guaranteed by taking `&str`; [`validate_bytes`] checks raw
//! bytes), at most [`MAX_PATH_BYTES`] long, at most [`MAX_DEPTH`] components deep, and each
//! component is non-empty, not `.` or `..`, at most [`MAX_COMPONENT_BYTES`] long and free of NUL.
//! A single trailing slash is accepted and ignored; `/` is the root.
//!
//! What users type is turned into such a path by [`resolve`]: `dfs://HOST:PORT/p` (or
//! `hdfs://HOST:PORT/p`, as Hadoop tools such as Yelp's mrjob write it) names one of the
//! configured namenodes, and a relative path is taken relative to the working directory,
//! `/user/NAME` as in Hadoop ([`working_dir`]), so `dfs put x rel` and `mrjob wordcount in out`
//! on a cluster never write into `/` by accident.

use crate::config::ClusterConfig;
use crate::error::{Error, Result};

/// Longest accepted path, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted component, in bytes (Linux's `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Deepest accepted path, in components.
pub const MAX_DEPTH: usize = 128;

fn invalid(path: &str, reason: impl Into<String>) -> Error {
    Error::InvalidPath {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Validates `path` and returns its components (empty for the root).
pub fn validate(path: &str) -> Result<Vec<&str>> {
    if path.len() > MAX_PATH_BYTES {
        return Err(invalid(
            &path[..path.floor_char_boundary_compat(64)],
            format!("longer than {MAX_PATH_BYTES} bytes"),
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(invalid(path, "not absolute (must start with '/')"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    // One trailing slash is tolerated ("/a/" is "/a"); what remains must be real components.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let components: Vec<&str> = rest.split('/').collect();
    if components.len() > MAX_DEPTH {
        return Err(invalid(path, format!("deeper than {MAX_DEPTH} components")));
    }
    for c in &components {
        check_component(path, c)?;
    }
    Ok(components)
}

fn check_component(path: &str, c: &str) -> Result<()> {
    if c.is_empty() {
        return Err(invalid(path, "empty component ('//')"));
    }
    if c == "." || c == ".." {
        return Err(invalid(path, format!("'{c}' components are not allowed")));
    }
    if c.len() > MAX_COMPONENT_BYTES {
        return Err(invalid(
            path,
            format!("a component is longer than {MAX_COMPONENT_BYTES} bytes"),
        ));
    }
    if c.contains('\0') {
        return Err(invalid(path, "contains a NUL byte"));
    }
    Ok(())
}

/// Validates raw bytes (e.g. from a command line) as a UTF-8 path.
pub fn validate_bytes(path: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(path)
        .map_err(|_| invalid(&String::from_utf8_lossy(path), "not valid UTF-8"))?;
    validate(text)?;
    Ok(normalize(text))
}

/// The canonical spelling of a valid path: no trailing slash except for the root.
pub fn normalize(path: &str) -> String {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path).to_string()
    } else {
        path.to_string()
    }
}

/// Joins validated components back into a canonical path.
pub fn join(components: &[&str]) -> String {
    if components.is_empty() {
        return "/".into();
    }
    components.iter().fold(String::new(), |mut s, c| {
        s.push('/');
        s.push_str(c);
        s
    })
}

/// The user this process acts as: the one named by the user key in `$MRJOB_USER_KEY` when
/// that is set (what the cluster knows it as, so relative paths land in its own home), else
/// the OS user's name as Hadoop takes the login user's: `$USER` when set, else the name of
/// the process's uid, else the uid as a number.
pub fn user_name() -> String {
    let key = std::env::var_os(crate::auth::USER_KEY_ENV).filter(|p| !p.is_empty());
    if let Some(Ok(c)) = key.map(|p| crate::auth::user_credentials(std::path::Path::new(&p))) {
        if let crate::auth::Claim::User(name) = c.claim() {
            return name.clone();
        }
    }
    if let Some(user) = std::env::var("USER").ok().filter(|u| valid_name(u)) {
        return user;
    }
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) if valid_name(&user.name) => user.name,
        _ => uid.to_string(),
    }
}

/// A user name usable as one path component.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && check_component(name, name).is_ok()
}

/// The working directory relative paths resolve against: `/user/NAME` ([`user_name`]), as
/// in Hadoop. It need not exist: creating a file or a job's output under it creates it.
pub fn working_dir() -> String {
    format!("/user/{}", user_name())
}

/// Turns a path as a user wrote it into a filesystem path, relative to [`working_dir`]: see
/// [`resolve_in`].
pub fn resolve(config: &ClusterConfig, arg: &str) -> Result<String> {
    resolve_in(config, &working_dir(), arg)
}

/// Turns a path as a user wrote it into a filesystem path: `/path` as is; `dfs://HOST:PORT/path`
/// (or `hdfs://...`, see [`strip_scheme`]) after checking that HOST:PORT is one of the cluster's namenodes (`dfs:///path` names the
/// configured cluster); anything else is relative to `cwd`, where `.` and `..` components
/// are resolved (`..` stops at the root). Pure: the caller supplies the working directory.
pub fn resolve_in(config: &ClusterConfig, cwd: &str, arg: &str) -> Result<String> {
    if arg.is_empty() {
        return Err(invalid(arg, "empty path"));
    }
    if arg.starts_with('/') {
        return Ok(arg.to_string());
    }
    let Some(rest) = strip_scheme(arg) else {
        return Ok(relative_to(cwd, arg));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !authority.is_empty() && !config.namenodes.iter().any(|n| n.addr == authority) {
        return Err(invalid(
            arg,
            format!("{authority} is not a namenode of the configured cluster"),
        ));
    }
    Ok(path.to_string())
}

/// The URL schemes that name the cluster's filesystem: our own `dfs://`, and Hadoop's `hdfs://`
/// so that paths written for Hadoop (by mrjob, by habit) work unchanged.
pub const SCHEMES: [&str; 2] = ["dfs://", "hdfs://"];

/// `url` without its `dfs://` or `hdfs://` scheme (`HOST:PORT/path`), or `None` when it has
/// neither: the one place that knows which URLs are dfs paths.
pub fn strip_scheme(url: &str) -> Option<&str> {
    SCHEMES.iter().find_map(|s| url.strip_prefix(s))
}

/// `rel` joined to the absolute `cwd`, with `.` dropped and `..` taking one component off.
fn relative_to(cwd: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = cwd.split('/').filter(|c| !c.is_empty()).collect();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut path = join(&parts);
    // A trailing slash says "directory" to the commands that care (`put x dir/`): keep it.
    if rel.ends_with('/') && path != "/" {
        path.push('/');
    }
    path
}

/// A small helper because `str::floor_char_boundary` is not stable on our MSRV.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, index: usize) -> usize {
        let mut i = index.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_paths() {
        assert_eq!(validate("/").unwrap(), Vec::<&str>::new());
        assert_eq!(validate("/a/b.txt").unwrap(), vec!["a", "b.txt"]);
        assert_eq!(validate("/a/b/").unwrap(), vec!["a", "b"]);
        assert_eq!(validate("/ünï/çødé").unwrap(), vec!["ünï", "çødé"]);
        assert_eq!(normalize("/a/"), "/a");
        assert_eq!(join(&["a", "b"]), "/a/b");
        assert_eq!(join(&[]), "/");
    }

    // Checks G7: bad paths get InvalidPath with a reason.
    #[test]
    fn rejects_bad_paths() {
        let long_component = format!("/{}", "x".repeat(256));
        let too_long = "/abcdefg".repeat(600);
        let too_deep = "/a".repeat(129);
        for bad in [
            "",
            "a/b",
            "//",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/..",
            "/a\0b",
            long_component.as_str(),
            too_long.as_str(),
            too_deep.as_str(),
        ] {
            let err = validate(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}: {err}");
        }
        assert!(validate_bytes(b"/a/\xff").is_err());
        assert_eq!(validate_bytes(b"/a/b/").unwrap(), "/a/b");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        let config = crate::config::local_config(3, 3, std::path::Path::new("/tmp/c"));
        let r = |arg: &str| resolve_in(&config, "/user/ann", arg);
        assert_eq!(r("/a/b").unwrap(), "/a/b");
        assert_eq!(r("rel-out").unwrap(), "/user/ann/rel-out");
        assert_eq!(r("in/").unwrap(), "/user/ann/in/");
        assert_eq!(r("./a/./b").unwrap(), "/user/ann/a/b");
        assert_eq!(r(".").unwrap(), "/user/ann");
        assert_eq!(r("../bob/x").unwrap(), "/user/bob/x");
        assert_eq!(r("../../../..").unwrap(), "/");
        assert!(r("").is_err());
        assert_eq!(working_dir(), format!("/user/{}", user_name()));
        assert!(valid_name(&user_name()), "{}", user_name());
    }

    #[test]
    fn dfs_urls_resolve_against_the_config() {
        let config = crate::config::local_config(3, 3, std::path::Path::new("/tmp/c"));
        let r = |arg: &str| resolve_in(&config, "/user/ann", arg);
        assert_eq!(r("dfs://127.0.0.2:8020/a").unwrap(), "/a");
        assert_eq!(r("dfs://127.0.0.2:8020").unwrap(), "/");
        assert_eq!(r("dfs:///x").unwrap(), "/x");
        assert!(r("dfs://10.0.0.1:1/a").is_err());
        // Hadoop's spelling names the same paths, with the same check of the authority.
        assert_eq!(r("hdfs:///user/ann/x").unwrap(), "/user/ann/x");
        assert_eq!(r("hdfs://127.0.0.2:8020/a").unwrap(), "/a");
        assert!(r("hdfs://10.0.0.1:1/a").is_err());
        assert_eq!(strip_scheme("file:///a"), None);
    }

    #[test]
    fn limits_are_inclusive() {
        let deep = "/a".repeat(MAX_DEPTH);
        assert_eq!(validate(&deep).unwrap().len(), MAX_DEPTH);
        let wide = format!("/{}", "y".repeat(MAX_COMPONENT_BYTES));
        assert!(validate(&wide).is_ok());
    }
}
