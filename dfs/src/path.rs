//! Filesystem path validation.
//!
//! Every path that enters the namenode goes through [`validate`] first, so the namespace can
//! split on `/` without thinking about `.`, `..`, empty components or runaway lengths (G7).
//! A path is absolute, UTF-8 (guaranteed by taking `&str`; [`validate_bytes`] checks raw
//! bytes), at most [`MAX_PATH_BYTES`] long, at most [`MAX_DEPTH`] components deep, and each
//! component is non-empty, not `.` or `..`, at most [`MAX_COMPONENT_BYTES`] long and free of NUL.
//! A single trailing slash is accepted and ignored; `/` is the root.

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
    fn limits_are_inclusive() {
        let deep = "/a".repeat(MAX_DEPTH);
        assert_eq!(validate(&deep).unwrap().len(), MAX_DEPTH);
        let wide = format!("/{}", "y".repeat(MAX_COMPONENT_BYTES));
        assert!(validate(&wide).is_ok());
    }
}
