//! Users' permissions on the namespace, in the style of HDFS (and POSIX): who may do what to a
//! path, given the owner, group and mode of every directory on the way to it.
//!
//! Pure: [`check`] takes what the namespace shows of a path ([`PathView`]), the caller and the
//! [`Action`] wanted, and answers `Ok` or [`Error::PermissionDenied`] naming the user, the
//! path and the permission that was missing. The RPC handlers call it before they read or
//! propose (`namenode::server`), and applying a committed entry calls it again for the
//! entry's caller (`namenode::access::authorize_op`), so the decision that counts is taken
//! against the namespace at the entry's place in the log.
//!
//! Groups: the cluster has no group database. A user is a member of the group named like
//! itself and of no other; the superuser (`admin`) is also a member of [`SUPERGROUP`]. The
//! superuser passes every check, as HDFS's does.

use crate::auth::SUPERUSER;
use crate::error::{Error, Result};

/// The group of `/` and of what inherits it: the superuser's group.
pub const SUPERGROUP: &str = "supergroup";
/// Read permission bit (of one class: owner, group or other).
pub const READ: u16 = 4;
/// Write permission bit.
pub const WRITE: u16 = 2;
/// Execute (search, for a directory) permission bit.
pub const EXECUTE: u16 = 1;
/// The sticky bit: in a directory, only an entry's owner (or the directory's, or the
/// superuser) may delete or rename the entry.
pub const STICKY: u16 = 0o1000;
/// Every bit a mode may carry.
pub const MODE_MASK: u16 = 0o1777;
/// Mode of a new directory (HDFS's 0777 less its umask 022).
pub const DIR_MODE: u16 = 0o755;
/// Mode of a new file (0666 less the umask 022).
pub const FILE_MODE: u16 = 0o644;

/// One inode's owner, group and mode, as the check sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    /// Owning user.
    pub owner: String,
    /// Owning group.
    pub group: String,
    /// Permission bits, sticky bit included.
    pub mode: u16,
    /// A directory (only directories are traversed).
    pub is_dir: bool,
}

/// What the namespace shows of a path: the attributes of `/` and of each component after it
/// that exists, in order; `exists` says whether the last one is the path itself (otherwise it
/// is the deepest existing ancestor, or a file standing where a directory was expected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    /// The path asked about, for messages.
    pub path: String,
    /// `/` first; never empty.
    pub chain: Vec<Attrs>,
    /// The whole path exists (the last of `chain` is its inode).
    pub exists: bool,
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    /// The user it acts as.
    pub user: &'a str,
    /// The superuser passes every check.
    pub superuser: bool,
}

/// What the caller wants to do with the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Look at its status: search (x) on every ancestor.
    Traverse,
    /// Read a file's data or blocks: r on it.
    Read,
    /// List a directory (r and x on it), or stat a file.
    List,
    /// Create the path (a file, or a directory and its missing parents): w and x on the
    /// deepest existing ancestor; replacing an existing file needs w and x on its parent and
    /// w on the file.
    Create,
    /// `mkdir -p`: nothing more than traversal if it exists already, else as `Create`.
    Mkdirs,
    /// Change a file (replication, the blocks of a file being written): its owner, or w.
    Write,
    /// Delete or rename it away: w and x on the parent, and the parent's sticky bit.
    Remove,
    /// Change its mode: only its owner.
    Chmod,
    /// Change its owner (superuser only) and/or group (its owner, to a group it belongs to).
    Chown {
        /// New owner, if it changes.
        owner: Option<String>,
        /// New group, if it changes.
        group: Option<String>,
    },
}

/// True when `user` is a member of `group` (see the module comment: no group database).
pub fn is_member(user: &str, group: &str) -> bool {
    group == user || (user == SUPERUSER && group == SUPERGROUP)
}

/// `rwxr-x---` and so on, with `t`/`T` for the sticky bit, as `ls -l` prints it.
pub fn mode_string(mode: u16) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & READ != 0 { 'r' } else { '-' });
        s.push(if bits & WRITE != 0 { 'w' } else { '-' });
        s.push(if bits & EXECUTE != 0 { 'x' } else { '-' });
    }
    if mode & STICKY != 0 {
        let other_x = mode & EXECUTE != 0;
        s.pop();
        s.push(if other_x { 't' } else { 'T' });
    }
    s
}

/// Parses an octal mode (`755`, `0600`, `1777`).
pub fn parse_mode(text: &str) -> Result<u16> {
    let mode = u16::from_str_radix(text, 8)
        .map_err(|_| Error::Config(format!("mode {text:?} is not an octal number")))?;
    if mode & !MODE_MASK != 0 {
        return Err(Error::Config(format!(
            "mode {text} has bits outside {MODE_MASK:o}"
        )));
    }
    Ok(mode)
}

/// Decides whether `caller` may do `action` on `view`'s path.
pub fn check(caller: Caller<'_>, view: &PathView, action: &Action) -> Result<()> {
    if caller.superuser {
        return Ok(());
    }
    let user = caller.user;
    // Every directory above the path's own inode must be searchable.
    let ancestors = if view.exists {
        &view.chain[..view.chain.len() - 1]
    } else {
        &view.chain[..]
    };
    for (depth, a) in ancestors.iter().enumerate() {
        if a.is_dir && !allows(user, a, EXECUTE) {
            return Err(denied(user, view, depth, a, "search (x) on an ancestor"));
        }
    }
    let last = view.chain.len() - 1;
    let target = view.exists.then(|| &view.chain[last]);
    match action {
        Action::Traverse => Ok(()),
        Action::Read => need(user, view, target, READ, "read (r)"),
        Action::List => match target {
            Some(t) if t.is_dir => need(user, view, target, READ | EXECUTE, "list (r-x)"),
            _ => Ok(()),
        },
        Action::Mkdirs if view.exists => Ok(()),
        Action::Create | Action::Mkdirs => {
            let (depth, dir) = match target {
                Some(_) if last > 0 => (last - 1, &view.chain[last - 1]),
                _ => (last, &view.chain[last]),
            };
            if dir.is_dir && !allows(user, dir, WRITE | EXECUTE) {
                return Err(denied(user, view, depth, dir, "write (w) on the parent"));
            }
            // Overwriting a file also needs write on it, as in HDFS.
            match target {
                Some(t) if !t.is_dir => need(user, view, target, WRITE, "write (w) to overwrite"),
                _ => Ok(()),
            }
        }
        Action::Write => match target {
            Some(t) if t.owner == user => Ok(()),
            _ => need(user, view, target, WRITE, "write (w)"),
        },
        Action::Remove => remove(user, view),
        Action::Chmod => owner_only(user, view, target, "change the mode"),
        Action::Chown { owner, group } => chown(user, view, target, owner, group),
    }
}

/// A recursive delete also needs full access (rwx) to every non-empty directory it empties,
/// as in HDFS: `refusing` is the first one below (or at) the path that the caller lacks it on,
/// found by the namespace with [`allows_all`].
pub fn check_subtree(
    caller: Caller<'_>,
    path: &str,
    refusing: Option<(String, Attrs)>,
) -> Result<()> {
    match refusing {
        Some((dir, a)) if !caller.superuser => Err(denied_at(
            caller.user,
            path,
            &dir,
            &a,
            "full access (rwx) on what it empties",
        )),
        _ => Ok(()),
    }
}

/// True when `user` has read, write and search on `a` (what emptying a directory takes).
pub fn allows_all(user: &str, a: &Attrs) -> bool {
    allows(user, a, READ | WRITE | EXECUTE)
}

fn remove(user: &str, view: &PathView) -> Result<()> {
    let n = view.chain.len();
    if !view.exists || n < 2 {
        // Nothing to remove (the operation says so), or `/` (which it refuses).
        return Ok(());
    }
    let (parent, entry) = (&view.chain[n - 2], &view.chain[n - 1]);
    if !allows(user, parent, WRITE | EXECUTE) {
        return Err(denied(user, view, n - 2, parent, "write (w) on the parent"));
    }
    let sticky = parent.mode & STICKY != 0;
    if sticky && entry.owner != user && parent.owner != user {
        return Err(denied(
            user,
            view,
            n - 2,
            parent,
            "ownership of the entry in a sticky directory",
        ));
    }
    Ok(())
}

fn chown(
    user: &str,
    view: &PathView,
    target: Option<&Attrs>,
    owner: &Option<String>,
    group: &Option<String>,
) -> Result<()> {
    let Some(t) = target else { return Ok(()) };
    if owner.as_deref().is_some_and(|o| o != t.owner) {
        return Err(denied(
            user,
            view,
            view.chain.len() - 1,
            t,
            "the superuser's right to change an owner",
        ));
    }
    owner_only(user, view, target, "change the group")?;
    match group {
        Some(g) if !is_member(user, g) => Err(Error::PermissionDenied(format!(
            "user {user} may not give {} to group {g}: not a member of it",
            view.path
        ))),
        _ => Ok(()),
    }
}

fn owner_only(user: &str, view: &PathView, target: Option<&Attrs>, what: &str) -> Result<()> {
    match target {
        Some(t) if t.owner != user => Err(denied(
            user,
            view,
            view.chain.len() - 1,
            t,
            &format!("ownership (only the owner may {what})"),
        )),
        _ => Ok(()),
    }
}

fn need(user: &str, view: &PathView, target: Option<&Attrs>, bits: u16, what: &str) -> Result<()> {
    match target {
        Some(t) if !allows(user, t, bits) => Err(denied(user, view, view.chain.len() - 1, t, what)),
        // A missing path: the operation reports it.
        _ => Ok(()),
    }
}

/// True when the class `user` falls in (owner, else group, else other) has all of `bits`.
fn allows(user: &str, a: &Attrs, bits: u16) -> bool {
    let shift = if a.owner == user {
        6
    } else if is_member(user, &a.group) {
        3
    } else {
        0
    };
    (a.mode >> shift) & bits == bits
}

/// The error, naming the user, the path, the inode that refused (by its depth) and what was
/// missing, as `user=bob, access=read (r), inode="/a/f":alice:alice:-rw-------` does in HDFS.
fn denied(user: &str, view: &PathView, depth: usize, a: &Attrs, what: &str) -> Error {
    denied_at(user, &view.path, &prefix(&view.path, depth), a, what)
}

fn denied_at(user: &str, path: &str, inode: &str, a: &Attrs, what: &str) -> Error {
    let kind = if a.is_dir { 'd' } else { '-' };
    Error::PermissionDenied(format!(
        "user {user} may not do that to {path}: it lacks {what} on {inode} ({}:{} {kind}{})",
        a.owner,
        a.group,
        mode_string(a.mode)
    ))
}

/// The first `depth` components of `path` (`/` for 0).
fn prefix(path: &str, depth: usize) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    format!("/{}", parts[..depth.min(parts.len())].join("/"))
}

#[cfg(test)]
mod tests;
