//! Side files (`-files a.py,b.txt#alias`, `-file f`): shipped once at submit, placed into
//! every task's working directory under their alias, executable (mode 0755) so a shipped
//! script runs as `-mapper ./a.py`.
//!
//! Locally the submitter copies each file once into a staging directory and tasks link to
//! it. On a cluster the submitter uploads local files once into a dfs staging directory
//! (its user's alone, mode 0700; removed when the job ends); files already in dfs are used where they are; each task
//! copies them from dfs into its working directory.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::fs::FileSystem;
use crate::job_binary::STAGING_DIR_MODE;

/// One side file: where it is read from, and its name in the working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideFile {
    /// A local path, or a dfs path or URI.
    pub source: String,
    /// Its name in the task's working directory.
    pub alias: String,
}

/// Parses a `-files` list (`a.py,dir/b.txt#alias`); the alias defaults to the file name.
pub fn parse_list(list: &str) -> Result<Vec<SideFile>> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| parse_one(item.trim()))
        .collect()
}

fn parse_one(item: &str) -> Result<SideFile> {
    let (source, alias) = match item.rsplit_once('#') {
        Some((s, a)) => (s, a.to_owned()),
        None => (
            item,
            Path::new(item.trim_end_matches('/'))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    };
    if source.is_empty() || alias.is_empty() || alias == "." || alias == ".." || alias.contains('/')
    {
        return Err(Error::BadSetting(format!(
            "-files {item}: expected PATH or PATH#NAME, with a NAME without '/'"
        )));
    }
    Ok(SideFile {
        source: source.to_owned(),
        alias,
    })
}

/// Where tasks find staged files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Local paths (local mode).
    Local,
    /// dfs paths (cluster mode).
    Dfs,
}

/// Files staged for one job, and the directory to remove when it ends.
#[derive(Debug)]
pub struct Staged {
    /// The files as tasks fetch them.
    pub files: Vec<SideFile>,
    /// Where they are.
    pub origin: Origin,
    local_dir: Option<tempfile::TempDir>,
    dfs_dir: Option<PathBuf>,
}

impl Staged {
    /// The dfs directory local files were uploaded into, if any.
    pub fn dfs_dir(&self) -> Option<&Path> {
        self.dfs_dir.as_deref()
    }

    /// Removes what staging created (the local copy or the dfs upload directory).
    pub fn remove(self, engine: &Engine) {
        if let Some(dir) = &self.dfs_dir {
            engine.remove_dir(dir);
        }
        drop(self.local_dir);
    }
}

/// Stages `files` for a job run by `engine`. A missing file is an error naming it.
pub fn stage(engine: &Engine, files: &[SideFile]) -> Result<Staged> {
    check_aliases(files)?;
    if engine.is_cluster() {
        return stage_on_cluster(engine, files);
    }
    let mut staged = Staged {
        files: Vec::new(),
        origin: Origin::Local,
        local_dir: None,
        dfs_dir: None,
    };
    if files.is_empty() {
        return Ok(staged);
    }
    let dir = tempfile::Builder::new()
        .prefix("mrjob-files-")
        .tempdir()
        .map_err(|e| Error::io("creating a staging directory for -files", e))?;
    for f in files {
        if is_dfs_uri(&f.source) {
            return Err(Error::BadSetting(format!(
                "-files {}: dfs files need a cluster (pass --conf FILE or set MRJOB_CONF)",
                f.source
            )));
        }
        let to = dir.path().join(&f.alias);
        std::fs::copy(&f.source, &to).map_err(|e| missing(&f.source, e))?;
        make_executable(&to)?;
        staged.files.push(SideFile {
            source: to.to_string_lossy().into_owned(),
            alias: f.alias.clone(),
        });
    }
    staged.local_dir = Some(dir);
    Ok(staged)
}

fn missing(source: &str, e: std::io::Error) -> Error {
    Error::BadSetting(format!("-files {source}: cannot ship it: {e}"))
}

fn check_aliases(files: &[SideFile]) -> Result<()> {
    for (i, f) in files.iter().enumerate() {
        if files[..i].iter().any(|g| g.alias == f.alias) {
            return Err(Error::BadSetting(format!(
                "-files: two files are named {:?} in the working directory (rename one with #NAME)",
                f.alias
            )));
        }
    }
    Ok(())
}

fn is_dfs_uri(s: &str) -> bool {
    s.starts_with("dfs://") || s.starts_with("hdfs://")
}

fn stage_on_cluster(engine: &Engine, files: &[SideFile]) -> Result<Staged> {
    let mut staged = Staged {
        files: Vec::new(),
        origin: Origin::Dfs,
        local_dir: None,
        dfs_dir: None,
    };
    for f in files {
        let local = !is_dfs_uri(&f.source) && Path::new(&f.source).is_file();
        let path = if local {
            let dir = match &staged.dfs_dir {
                Some(d) => d.clone(),
                None => {
                    let d = engine.temp_path("mrjob-files")?;
                    engine.fs().mkdirs(&d)?;
                    staged.dfs_dir = Some(d.clone());
                    close_to_others(engine, &d)?;
                    d
                }
            };
            let to = dir.join(&f.alias);
            upload(engine.fs(), Path::new(&f.source), &to)?;
            to
        } else {
            let p = engine.path(Path::new(&f.source))?;
            if !engine.fs().exists(&p)? {
                let e = std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file on this machine or in dfs",
                );
                return Err(missing(&f.source, e));
            }
            p
        };
        staged.files.push(SideFile {
            source: path.to_string_lossy().into_owned(),
            alias: f.alias.clone(),
        });
    }
    Ok(staged)
}

/// Makes a dfs staging directory its user's alone (mode 0700), as its staged binaries are:
/// the job's tasks act as that user; nobody else needs to read it.
fn close_to_others(engine: &Engine, dir: &Path) -> Result<()> {
    let Engine::Cluster(c, _) = engine else {
        return Ok(());
    };
    let path = dir.to_string_lossy();
    c.fs()
        .block_on(c.fs().client().set_permission(&path, STAGING_DIR_MODE))
        .map_err(|e| crate::error::dfs_error(format_args!("closing {path} to other users"), e))
}

fn upload(fs: &dyn FileSystem, from: &Path, to: &Path) -> Result<()> {
    let mut input = std::fs::File::open(from).map_err(|e| missing(&from.to_string_lossy(), e))?;
    let mut out = fs.create(to)?;
    std::io::copy(&mut input, &mut out).ctx("uploading -files to", to)?;
    out.finish(false).ctx("closing", to)
}

fn make_executable(path: &Path) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).ctx("chmod", path)
}

/// Encodes staged files for the job's parameters, one `SOURCE#ALIAS` per line.
pub fn encode(files: &[SideFile]) -> String {
    files
        .iter()
        .map(|f| format!("{}#{}", f.source, f.alias))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decodes [`encode`]'s text.
pub fn decode(text: &str) -> Result<Vec<SideFile>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(parse_one)
        .collect()
}

/// Puts the staged files into a task's working directory `dir`.
pub fn place(files: &[SideFile], origin: Origin, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    for f in files {
        let to = dir.join(&f.alias);
        match origin {
            Origin::Local => std::os::unix::fs::symlink(&f.source, &to).ctx("linking", &to)?,
            Origin::Dfs => {
                let mut input = fs.open(Path::new(&f.source))?;
                let mut out = std::fs::File::create(&to).ctx("creating", &to)?;
                std::io::copy(&mut input, &mut out).ctx("fetching -files into", &to)?;
                out.flush().ctx("writing", &to)?;
                make_executable(&to)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_with_aliases() {
        let files = parse_list("a/b.py,/x/y.txt#data,dfs://h:1/z#z2").unwrap();
        let got: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.source.as_str(), f.alias.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a/b.py", "b.py"),
                ("/x/y.txt", "data"),
                ("dfs://h:1/z", "z2")
            ]
        );
        assert_eq!(decode(&encode(&files)).unwrap(), files);
        for bad in ["a#", "#b", "a#x/y", "a#.."] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
        let twice = parse_list("a/x,b/x").unwrap();
        assert!(check_aliases(&twice)
            .unwrap_err()
            .to_string()
            .contains("\"x\""));
    }
}
