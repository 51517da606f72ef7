//! A test-only model of what a power loss leaves on disk, so tests can check G1 and G2 against
//! fsync rather than against the page cache (which survives a SIGKILL).
//!
//! # Turning it on
//!
//! The model is off unless `DFS_TEST_POWER_LOSS_DIR=<shadow dir>` ([`ENV_VAR`]) is set when a
//! dfs process starts; the variable is read once. When it is off, every sync pays one check of
//! an already initialized `OnceLock`. When it is on, a process calls [`register_root`] for each
//! tree it keeps state under (the namenode's `meta_dir`, the datanode's data dirs), and only
//! files and directories under those roots are modelled. Every sync in dfs goes through
//! [`crate::durable`] or the WAL ([`crate::wal::Wal::sync`], [`crate::wal::SegmentSync`]),
//! which report to the model after the real sync succeeded and before their caller can act on
//! it; a SIGKILL in between counts as a power loss just before that sync. Each process needs
//! its own shadow directory.
//!
//! After the test SIGKILLs the process, [`materialize`] rewrites every registered root so that
//! it holds exactly what the model says survived, and resets the shadow to describe that state,
//! so the restarted process (with the same shadow dir) can lose power again.
//!
//! # The model
//!
//! Files and directories are identified by (device, inode, birth time), so a rename keeps a
//! file's identity and with it its durable contents, and a reused inode number is not taken for
//! the deleted file it once belonged to.
//!
//! - **File data** is what the file held when it was last fsynced (`fsync_file`), or, for the
//!   WAL's appends, the prefix that had been flushed when the sync was requested
//!   ([`crate::wal::Wal::flush_for_sync`]): bytes appended while an fsync runs are not covered by
//!   it. A file that was never synced has no durable data.
//! - **A directory's entries** (names and the identities they point to) are what the directory
//!   listed when it was last fsynced (`fsync_dir`). The listing is taken just before the real
//!   fsync, so an entry made while the fsync runs is not credited to it; of two overlapping
//!   fsyncs of one directory, the later listing wins.
//! - **A directory exists** after power loss only if its parent's durable entries name it; its
//!   own entries are its last durable listing (none if it was never fsynced). So creating a
//!   directory is durable only once its parent is fsynced, and a file only once its directory
//!   is.
//! - **A registered root** and its ancestors are assumed durable (the operator or the test
//!   created them), and at registration the root's whole tree as it is on disk then is taken as
//!   durable (state from before the model was on, or left by [`materialize`]).
//!
//! [`materialize`] then rebuilds each root from its durable listing: a durable entry whose file
//! data was synced gets exactly those bytes (later writes and appends are cut back), a durable
//! entry whose data was never synced becomes an empty file, names created but never made
//! durable disappear, and names removed or renamed away without a directory fsync come back
//! with their durable contents (a rename without a directory fsync is undone as a whole).
//!
//! # Why this is what a real filesystem may do, and where the model is simpler
//!
//! POSIX promises nothing about unsynced data or directory entries after a crash, and ext4,
//! XFS and btrfs do lose them: data sits in the page cache until writeback, and directory
//! changes sit in the journal's running transaction. `fsync` on a file makes its data (and, with
//! `sync_all`, its size) durable but not its name; `fsync` on a directory makes its entries
//! durable. The model picks the most pessimistic legal outcome for everything not synced,
//! which is what a durability protocol must tolerate. Simplifications:
//!
//! - Real filesystems may keep *some* unsynced changes (a prefix of appends, a rename that a
//!   journal commit happened to include). The model always drops them; a protocol that is
//!   correct for the pessimistic outcome is correct for these too, except that the model never
//!   produces a partially persisted unsynced write (torn writes inside a block, garbage tails);
//!   the WAL's own torn-tail tests cover those.
//! - An unsynced file with a durable name becomes empty; ext4 in `data=ordered` mode may also
//!   keep its old size with zeroed blocks. Neither is trusted by dfs.
//! - Hard links are materialized as separate copies with the same contents; nothing in dfs
//!   writes a file through two names after linking.
//! - Symlinks, permissions and timestamps are not modelled (dfs keeps none under its roots).
//! - A file's synced contents are read back after its fsync returns; the model assumes no other
//!   thread writes the file in between (true for every dfs file: one owner writes and syncs).
//! - The datanode's background `sync_data` on blocks being written only starts writeback early
//!   and is not reported; the model then credits less than the disk would hold, which only
//!   makes the test stricter (such a file lives in `tmp/`, which restart clears anyway).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::frame::{decode_msg, encode_msg};

/// Environment variable that turns the model on for a process; its value is the shadow dir.
pub const ENV_VAR: &str = "DFS_TEST_POWER_LOSS_DIR";

/// Deepest directory nesting [`materialize`] follows (a guard against a cyclic shadow).
const MAX_DEPTH: usize = 64;
const ROOTS_FILE: &str = "roots.bin";
const FILES_DIR: &str = "files";
const DIRS_DIR: &str = "dirs";

static GLOBAL: OnceLock<Option<Model>> = OnceLock::new();

/// The process's model: `Some` only when [`ENV_VAR`] was set when first asked.
pub(crate) fn global() -> Option<&'static Model> {
    GLOBAL
        .get_or_init(|| std::env::var_os(ENV_VAR).map(|dir| Model::new(PathBuf::from(dir))))
        .as_ref()
}

/// Registers `root` with the process's model when it is on (see the module docs); a no-op
/// otherwise. Call it at startup, before anything under `root` is opened.
pub fn register_root(root: &Path) -> Result<()> {
    match global() {
        Some(model) => model.register_root(root),
        None => Ok(()),
    }
}

/// The identity of a file or directory: (device, inode, birth time in ns; 0 where the
/// filesystem does not report it). Used as the shadow's file name.
fn identity(meta: &fs::Metadata) -> String {
    let birth_ns = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{}-{}-{birth_ns}", meta.dev(), meta.ino())
}

/// One entry of a durable directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    name: String,
    id: String,
    is_dir: bool,
}

/// A directory listing taken before its fsync, committed to the shadow after the fsync.
#[derive(Debug)]
pub(crate) struct DirListing {
    id: String,
    seq: u64,
    entries: Vec<Entry>,
}

/// What survives a power loss, recorded in a shadow directory: `roots.bin` (registered roots and
/// their identities), `files/<id>` (each file's durable contents) and `dirs/<id>` (each
/// directory's durable listing).
#[derive(Debug)]
pub(crate) struct Model {
    shadow: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Canonical paths of the registered roots.
    roots: Vec<PathBuf>,
    /// Order of directory listings, so an older listing never replaces a newer one.
    next_seq: u64,
    committed_seq: HashMap<String, u64>,
}

impl Model {
    /// A model recording into `shadow` (created on [`Model::register_root`]).
    pub(crate) fn new(shadow: PathBuf) -> Model {
        Model {
            shadow,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the shadow as consistent as any other crash.
        crate::lock::lock(&self.state)
    }

    /// Models the tree under `root` (created if missing). If the shadow does not know this root
    /// yet, or knows another directory under its name, its current contents are taken as durable.
    pub(crate) fn register_root(&self, root: &Path) -> Result<()> {
        fs::create_dir_all(root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        let root = canonical(root)?;
        let mut state = self.lock();
        for sub in [FILES_DIR, DIRS_DIR] {
            let dir = self.shadow.join(sub);
            fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let id = identity(&metadata(&root)?);
        let mut roots = load_roots(&self.shadow)?;
        if !roots.iter().any(|(p, i)| *p == root && *i == id) {
            self.record_tree(&root)?;
            roots.retain(|(p, _)| *p != root);
            roots.push((root.clone(), id));
            replace_file(&self.shadow.join(ROOTS_FILE), &encode_msg(&roots)?)?;
        }
        if !state.roots.contains(&root) {
            state.roots.push(root);
        }
        Ok(())
    }

    /// The canonical form of `path` if it lies under a registered root.
    fn covered(&self, path: &Path) -> Result<Option<PathBuf>> {
        let path = canonical(path)?;
        let covered = self.lock().roots.iter().any(|r| path.starts_with(r));
        Ok(covered.then_some(path))
    }

    /// Records `file`'s whole contents as durable; call after its fsync succeeded. `path` must
    /// name the same file (checked).
    pub(crate) fn file_synced(&self, file: &File, path: &Path) -> Result<()> {
        let Some(path) = self.covered(path)? else {
            return Ok(());
        };
        let id = identity(&file_metadata(file, &path)?);
        let mut reader =
            File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        if identity(&file_metadata(&reader, &path)?) != id {
            return Err(Error::Malformed(format!(
                "power-loss model: {} no longer names the file that was synced",
                path.display()
            )));
        }
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let _state = self.lock();
        replace_file(&self.shadow.join(FILES_DIR).join(id), &bytes)
    }

    /// Records the first `durable_len` bytes of an append-only `file` (opened for reading) as
    /// durable; call after an fsync that covered them succeeded. Earlier bytes must not have
    /// changed since they were recorded (a file cut shorter is recorded with
    /// [`Model::file_synced`]).
    pub(crate) fn appended_synced(&self, file: &File, path: &Path, durable_len: u64) -> Result<()> {
        let Some(path) = self.covered(path)? else {
            return Ok(());
        };
        let id = identity(&file_metadata(file, &path)?);
        let shadow_file = self.shadow.join(FILES_DIR).join(id);
        let _state = self.lock();
        let recorded = match fs::metadata(&shadow_file) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(format!("stat {}", shadow_file.display()), e)),
        };
        // A later sync of the same file may have been recorded first; it covers this one.
        if durable_len <= recorded {
            return Ok(());
        }
        let mut tail = vec![0u8; (durable_len - recorded) as usize];
        file.read_exact_at(&mut tail, recorded)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&shadow_file)
            .and_then(|mut f| f.write_all(&tail))
            .map_err(|e| Error::io(format!("appending to {}", shadow_file.display()), e))
    }

    /// Lists `dir` just before its fsync; `None` when `dir` is not modelled. Pass the listing to
    /// [`Model::dir_synced`] once the fsync succeeded.
    pub(crate) fn dir_listing(&self, dir: &Path) -> Result<Option<DirListing>> {
        let Some(dir) = self.covered(dir)? else {
            return Ok(None);
        };
        let mut state = self.lock();
        state.next_seq += 1;
        let seq = state.next_seq;
        let id = identity(&metadata(&dir)?);
        let entries = list(&dir)?;
        Ok(Some(DirListing { id, seq, entries }))
    }

    /// Records a listing taken by [`Model::dir_listing`] as the directory's durable entries,
    /// unless a later listing of the same directory was recorded already.
    pub(crate) fn dir_synced(&self, listing: DirListing) -> Result<()> {
        let mut state = self.lock();
        let newest = state.committed_seq.get(&listing.id).copied().unwrap_or(0);
        if listing.seq <= newest {
            return Ok(());
        }
        let path = self.shadow.join(DIRS_DIR).join(&listing.id);
        replace_file(&path, &encode_msg(&listing.entries)?)?;
        state.committed_seq.insert(listing.id, listing.seq);
        Ok(())
    }

    /// Records the whole tree under `dir` as durable, as it is on disk now.
    fn record_tree(&self, dir: &Path) -> Result<()> {
        let entries = list(dir)?;
        let id = identity(&metadata(dir)?);
        replace_file(&self.shadow.join(DIRS_DIR).join(id), &encode_msg(&entries)?)?;
        for e in &entries {
            let path = dir.join(&e.name);
            if e.is_dir {
                self.record_tree(&path)?;
            } else {
                let bytes = fs::read(&path)
                    .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
                replace_file(&self.shadow.join(FILES_DIR).join(&e.id), &bytes)?;
            }
        }
        Ok(())
    }
}

/// What the model says a directory holds after power loss.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<String, Node>),
}

/// Rewrites every root registered in `shadow` to hold exactly what survived a power loss (see
/// the module docs), then resets `shadow` to describe the rewritten trees as durable. Call it
/// only while the process that recorded into `shadow` is dead.
///
/// Every tree is read from the shadow before any root is touched, so a damaged shadow is an
/// error that changes nothing on disk.
pub fn materialize(shadow: &Path) -> Result<()> {
    let roots = load_roots(shadow)?;
    let mut trees = Vec::with_capacity(roots.len());
    for (path, id) in &roots {
        trees.push((path, read_dir_node(shadow, id, 0)?));
    }
    for (path, children) in &trees {
        clear_dir(path)?;
        write_children(path, children)?;
    }
    for sub in [FILES_DIR, DIRS_DIR] {
        let dir = shadow.join(sub);
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(|e| Error::io(format!("clearing {}", dir.display()), e))?;
        }
    }
    let _ = fs::remove_file(shadow.join(ROOTS_FILE));
    let model = Model::new(shadow.to_path_buf());
    for (path, _) in &roots {
        model.register_root(path)?;
    }
    Ok(())
}

/// The durable children of directory `id`.
fn read_dir_node(shadow: &Path, id: &str, depth: usize) -> Result<BTreeMap<String, Node>> {
    if depth > MAX_DEPTH {
        return Err(Error::Malformed(format!(
            "power-loss shadow {} nests directories deeper than {MAX_DEPTH}",
            shadow.display()
        )));
    }
    let entries: Vec<Entry> = match read_optional(&shadow.join(DIRS_DIR).join(id))? {
        Some(bytes) => decode_msg(&bytes)?,
        None => Vec::new(),
    };
    let mut children = BTreeMap::new();
    for e in entries {
        check_name(&e.name)?;
        let node = if e.is_dir {
            Node::Dir(read_dir_node(shadow, &e.id, depth + 1)?)
        } else {
            Node::File(read_optional(&shadow.join(FILES_DIR).join(&e.id))?.unwrap_or_default())
        };
        children.insert(e.name, node);
    }
    Ok(children)
}

/// Refuses names that would escape the directory they are written into.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::Malformed(format!(
            "power-loss shadow holds a bad entry name {name:?}"
        )));
    }
    Ok(())
}

fn write_children(dir: &Path, children: &BTreeMap<String, Node>) -> Result<()> {
    for (name, node) in children {
        let path = dir.join(name);
        match node {
            Node::File(bytes) => fs::write(&path, bytes)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?,
            Node::Dir(grandchildren) => {
                fs::create_dir(&path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                write_children(&path, grandchildren)?;
            }
        }
    }
    Ok(())
}

/// Removes everything inside `dir` (creating `dir` if it is missing), keeping `dir` itself so
/// its identity, recorded as the root's, stays the same.
fn clear_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    Ok(())
}

/// The entries of `dir` now: regular files and directories (anything else is not modelled).
/// Entries that vanish while being listed are skipped.
fn list(dir: &Path) -> Result<Vec<Entry>> {
    let read = fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let meta = match fs::symlink_metadata(entry.path()) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("stat {}", entry.path().display()), e)),
        };
        if !meta.is_dir() && !meta.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(Error::Malformed(format!(
                "power-loss model: non-UTF-8 name in {}",
                dir.display()
            )));
        };
        entries.push(Entry {
            name,
            id: identity(&meta),
            is_dir: meta.is_dir(),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn load_roots(shadow: &Path) -> Result<Vec<(PathBuf, String)>> {
    match read_optional(&shadow.join(ROOTS_FILE))? {
        Some(bytes) => decode_msg(&bytes),
        None => Ok(Vec::new()),
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Replaces a shadow file atomically with respect to a SIGKILL (tmp + rename). No fsync: the
/// shadow must survive the test's SIGKILL, not a real power loss.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = crate::durable::tmp_path(path);
    fs::write(&tmp, bytes).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
}

/// `path` with its directory canonicalized (the file itself may be about to vanish).
fn canonical(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path)
        .map_err(|e| Error::io(format!("resolving {}", path.display()), e))?;
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Ok(absolute);
    };
    let parent = fs::canonicalize(parent)
        .map_err(|e| Error::io(format!("resolving {}", parent.display()), e))?;
    Ok(parent.join(name))
}

fn metadata(path: &Path) -> Result<fs::Metadata> {
    fs::metadata(path).map_err(|e| Error::io(format!("stat {}", path.display()), e))
}

fn file_metadata(file: &File, path: &Path) -> Result<fs::Metadata> {
    file.metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A modelled root in a tempdir with its own shadow, and the sync calls dfs makes, each
    /// reporting to this model rather than the process's.
    struct Disk {
        tmp: tempfile::TempDir,
        root: PathBuf,
        shadow: PathBuf,
        model: Model,
    }

    impl Disk {
        fn new() -> Disk {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            let shadow = tmp.path().join("shadow");
            let model = Model::new(shadow.clone());
            model.register_root(&root).unwrap();
            Disk {
                tmp,
                root,
                shadow,
                model,
            }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.root.join(rel)
        }

        fn write(&self, rel: &str, bytes: &[u8]) -> File {
            let mut f = File::create(self.path(rel)).unwrap();
            f.write_all(bytes).unwrap();
            f
        }

        fn append(&self, rel: &str, bytes: &[u8]) -> File {
            let mut f = OpenOptions::new()
                .append(true)
                .read(true)
                .open(self.path(rel))
                .unwrap();
            f.write_all(bytes).unwrap();
            f
        }

        fn fsync_file(&self, file: &File, rel: &str) {
            file.sync_all().unwrap();
            self.model.file_synced(file, &self.path(rel)).unwrap();
        }

        fn fsync_dir(&self, rel: &str) {
            let dir = self.path(rel);
            let listing = self.model.dir_listing(&dir).unwrap().unwrap();
            File::open(&dir).unwrap().sync_all().unwrap();
            self.model.dir_synced(listing).unwrap();
        }

        /// Power loss: what is on disk afterwards.
        fn power_loss(&self) {
            materialize(&self.shadow).unwrap();
        }

        fn read(&self, rel: &str) -> Option<Vec<u8>> {
            read_optional(&self.path(rel)).unwrap()
        }
    }

    #[test]
    fn unsynced_write_is_lost() {
        let d = Disk::new();
        let _f = d.write("a", b"data");
        d.fsync_dir("");
        d.power_loss();
        // The name was durable, the data never was.
        assert_eq!(d.read("a"), Some(Vec::new()));
    }

    #[test]
    fn synced_write_is_kept() {
        let d = Disk::new();
        let f = d.write("a", b"data");
        d.fsync_file(&f, "a");
        d.fsync_dir("");
        d.power_loss();
        assert_eq!(d.read("a"), Some(b"data".to_vec()));
    }

    #[test]
    fn data_appended_after_a_sync_is_lost() {
        let d = Disk::new();
        let f = d.write("a", b"first");
        d.fsync_file(&f, "a");
        d.fsync_dir("");
        let _f = d.append("a", b" second");
        d.power_loss();
        assert_eq!(d.read("a"), Some(b"first".to_vec()));
    }

    #[test]
    fn appends_are_durable_up_to_the_flushed_length() {
        let d = Disk::new();
        let f = d.write("wal", b"");
        d.fsync_dir("");
        let f2 = d.append("wal", b"record1");
        // As the WAL does: the length is taken at flush time, more is appended while the sync
        // runs, and only the flushed prefix counts.
        let flushed = 7;
        let _f3 = d.append("wal", b"record2");
        f2.sync_data().unwrap();
        d.model
            .appended_synced(&f2, &d.path("wal"), flushed)
            .unwrap();
        // An older, shorter sync recorded late changes nothing.
        d.model.appended_synced(&f, &d.path("wal"), 3).unwrap();
        d.power_loss();
        assert_eq!(d.read("wal"), Some(b"record1".to_vec()));
    }

    #[test]
    fn new_file_without_dir_fsync_is_lost() {
        let d = Disk::new();
        let f = d.write("a", b"data");
        d.fsync_file(&f, "a");
        d.power_loss();
        assert_eq!(d.read("a"), None);
    }

    #[test]
    fn rename_without_dir_fsync_restores_old_contents_or_absence() {
        let d = Disk::new();
        let f = d.write("state", b"old");
        d.fsync_file(&f, "state");
        d.fsync_dir("");
        let cases = [("state", Some(b"old".to_vec())), ("fresh", None)];
        for (name, _) in &cases {
            let tmp = format!("{name}.tmp");
            let f = d.write(&tmp, b"new");
            d.fsync_file(&f, &tmp);
            fs::rename(d.path(&tmp), d.path(name)).unwrap();
        }
        d.power_loss();
        for (name, before) in cases {
            assert_eq!(d.read(name), before, "{name}");
            assert_eq!(d.read(&format!("{name}.tmp")), None, "{name}.tmp");
        }
    }

    #[test]
    fn rename_with_dir_fsync_keeps_new_contents() {
        let d = Disk::new();
        let f = d.write("state", b"old");
        d.fsync_file(&f, "state");
        d.fsync_dir("");
        let f = d.write("state.tmp", b"new");
        d.fsync_file(&f, "state.tmp");
        fs::rename(d.path("state.tmp"), d.path("state")).unwrap();
        d.fsync_dir("");
        d.power_loss();
        assert_eq!(d.read("state"), Some(b"new".to_vec()));
        assert_eq!(d.read("state.tmp"), None);
    }

    #[test]
    fn deletion_without_dir_fsync_comes_back() {
        let d = Disk::new();
        for name in ["kept", "gone"] {
            let f = d.write(name, name.as_bytes());
            d.fsync_file(&f, name);
        }
        d.fsync_dir("");
        fs::remove_file(d.path("kept")).unwrap();
        d.power_loss();
        assert_eq!(d.read("kept"), Some(b"kept".to_vec()));
        // With the directory fsynced after the removal, it stays removed.
        fs::remove_file(d.path("gone")).unwrap();
        let model = Model::new(d.shadow.clone());
        model.register_root(&d.root).unwrap();
        let listing = model.dir_listing(&d.root).unwrap().unwrap();
        model.dir_synced(listing).unwrap();
        materialize(&d.shadow).unwrap();
        assert_eq!(d.read("gone"), None);
        assert_eq!(d.read("kept"), Some(b"kept".to_vec()));
    }

    #[test]
    fn new_directory_is_durable_only_once_its_parent_is_synced() {
        let d = Disk::new();
        fs::create_dir(d.path("sub")).unwrap();
        let f = d.write("sub/a", b"data");
        d.fsync_file(&f, "sub/a");
        d.fsync_dir("sub");
        d.power_loss();
        assert_eq!(d.read("sub/a"), None);
        assert!(!d.path("sub").exists());

        // After materialize the model goes on from what survived.
        let model = Model::new(d.shadow.clone());
        model.register_root(&d.root).unwrap();
        fs::create_dir(d.path("sub")).unwrap();
        let f = d.write("sub/a", b"data");
        f.sync_all().unwrap();
        model.file_synced(&f, &d.path("sub/a")).unwrap();
        for dir in [d.path("sub"), d.root.clone()] {
            let listing = model.dir_listing(&dir).unwrap().unwrap();
            model.dir_synced(listing).unwrap();
        }
        materialize(&d.shadow).unwrap();
        assert_eq!(d.read("sub/a"), Some(b"data".to_vec()));
    }

    #[test]
    fn an_older_listing_never_replaces_a_newer_one() {
        let d = Disk::new();
        let older = d.model.dir_listing(&d.root).unwrap().unwrap();
        let f = d.write("a", b"data");
        d.fsync_file(&f, "a");
        d.fsync_dir("");
        d.model.dir_synced(older).unwrap();
        d.power_loss();
        assert_eq!(d.read("a"), Some(b"data".to_vec()));
    }

    #[test]
    fn state_from_before_registration_is_durable() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("current")).unwrap();
        fs::write(root.join("current/blk"), b"block").unwrap();
        let shadow = tmp.path().join("shadow");
        Model::new(shadow.clone()).register_root(&root).unwrap();
        fs::write(root.join("current/blk"), b"overwritten").unwrap();
        fs::write(root.join("stray"), b"x").unwrap();
        materialize(&shadow).unwrap();
        assert_eq!(fs::read(root.join("current/blk")).unwrap(), b"block");
        assert!(!root.join("stray").exists());
    }

    #[test]
    fn files_outside_the_roots_are_not_recorded() {
        let d = Disk::new();
        let outside = d.tmp.path().join("outside");
        let mut f = File::create(&outside).unwrap();
        f.write_all(b"x").unwrap();
        d.model.file_synced(&f, &outside).unwrap();
        assert!(d.model.dir_listing(d.tmp.path()).unwrap().is_none());
        let recorded = fs::read_dir(d.shadow.join(FILES_DIR)).unwrap().count();
        assert_eq!(recorded, 0);
    }

    #[test]
    fn a_damaged_shadow_is_an_error_and_changes_nothing() {
        let d = Disk::new();
        let f = d.write("a", b"data");
        d.fsync_file(&f, "a");
        d.fsync_dir("");
        fs::write(d.shadow.join(ROOTS_FILE), b"\xff\xff\xff\xff garbage").unwrap();
        assert!(materialize(&d.shadow).is_err());
        assert_eq!(d.read("a"), Some(b"data".to_vec()));
        let root_id = identity(&fs::metadata(&d.root).unwrap());
        let bad = vec![Entry {
            name: "..".into(),
            id: "x".into(),
            is_dir: true,
        }];
        fs::write(
            d.shadow.join(DIRS_DIR).join(&root_id),
            encode_msg(&bad).unwrap(),
        )
        .unwrap();
        let roots = vec![(canonical(&d.root).unwrap(), root_id)];
        fs::write(d.shadow.join(ROOTS_FILE), encode_msg(&roots).unwrap()).unwrap();
        assert!(materialize(&d.shadow).is_err());
        assert_eq!(d.read("a"), Some(b"data".to_vec()));
    }
}
