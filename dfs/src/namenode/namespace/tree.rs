//! The inode tree: directories, names and parents; path lookups and the operations that only
//! reshape the tree (`mkdirs`, `rename`, `delete`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Namespace, Outcome, ROOT};
use crate::error::{Error, Result};
use crate::namenode::permission::{DIR_MODE, FILE_MODE};
use crate::path;
use crate::protocol::Block;

/// A file's metadata: what `create` fixed, its blocks in file order and its writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileMeta {
    pub(super) replication: u32,
    pub(super) block_size_bytes: u64,
    pub(super) blocks: Vec<Block>,
    pub(super) lease_holder: Option<String>,
}

/// What an inode is: a directory (children by name) or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Body {
    Dir(BTreeMap<String, u64>),
    File(FileMeta),
}

/// One node of the tree; the root is its own parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Inode {
    pub(super) parent: u64,
    pub(super) name: String,
    pub(super) mtime_ms: u64,
    pub(super) body: Body,
    /// Owning user, group and permission bits (`namenode::permission`).
    pub(super) owner: String,
    pub(super) group: String,
    pub(super) mode: u16,
}

fn not_found(p: &str) -> Error {
    Error::NotFound(p.to_string())
}

impl Namespace {
    pub(super) fn lookup(&self, p: &str) -> Result<u64> {
        let mut id = ROOT;
        for c in path::validate(p)? {
            let Body::Dir(children) = &self.inodes[&id].body else {
                return Err(Error::WrongKind(format!("{p}: a parent is a file")));
            };
            id = *children.get(c).ok_or_else(|| not_found(p))?;
        }
        Ok(id)
    }

    pub(super) fn path_of(&self, mut id: u64) -> String {
        let mut parts = Vec::new();
        while id != ROOT {
            let inode = &self.inodes[&id];
            parts.push(inode.name.as_str());
            id = inode.parent;
        }
        parts.reverse();
        path::join(&parts)
    }

    pub(super) fn file(&self, id: u64, p: &str) -> Result<&FileMeta> {
        match &self.inodes[&id].body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Error::WrongKind(format!("{p} is a directory"))),
        }
    }

    pub(super) fn file_mut(&mut self, id: u64, p: &str) -> Result<&mut FileMeta> {
        match &mut self
            .inodes
            .get_mut(&id)
            .expect("looked-up inode exists")
            .body
        {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Error::WrongKind(format!("{p} is a directory"))),
        }
    }

    pub(super) fn children_mut(&mut self, id: u64) -> &mut BTreeMap<String, u64> {
        match &mut self.inodes.get_mut(&id).expect("parent exists").body {
            Body::Dir(c) => c,
            Body::File(_) => unreachable!("callers check that the parent is a directory"),
        }
    }

    pub(super) fn touch(&mut self, id: u64, now_ms: u64) {
        if let Some(inode) = self.inodes.get_mut(&id) {
            inode.mtime_ms = inode.mtime_ms.max(now_ms);
        }
    }

    /// Adds `name` under `parent`, owned by `owner`, in the parent's group (as HDFS does), with
    /// the default mode of its kind.
    pub(super) fn insert_child(
        &mut self,
        parent: u64,
        name: &str,
        (now_ms, owner): (u64, &str),
        body: Body,
    ) -> u64 {
        let id = self.next_inode_id;
        self.next_inode_id += 1;
        let mode = match body {
            Body::Dir(_) => DIR_MODE,
            Body::File(_) => FILE_MODE,
        };
        let inode = Inode {
            parent,
            name: name.to_string(),
            mtime_ms: now_ms,
            body,
            owner: owner.to_string(),
            group: self.inodes[&parent].group.clone(),
            mode,
        };
        self.inodes.insert(id, inode);
        self.children_mut(parent).insert(name.to_string(), id);
        self.touch(parent, now_ms);
        id
    }

    /// Creates `p` and its missing parents, owned by `owner`; returns the directory's inode id.
    pub(super) fn mkdirs(&mut self, now_ms: u64, p: &str, owner: &str) -> Result<u64> {
        let components = path::validate(p)?;
        let mut id = ROOT;
        for c in components {
            let Body::Dir(children) = &self.inodes[&id].body else {
                return Err(Error::WrongKind(format!(
                    "{p}: {} is a file",
                    self.path_of(id)
                )));
            };
            id = match children.get(c) {
                Some(&child) => child,
                None => self.insert_child(id, c, (now_ms, owner), Body::Dir(BTreeMap::new())),
            };
        }
        match self.inodes[&id].body {
            Body::Dir(_) => Ok(id),
            Body::File(_) => Err(Error::WrongKind(format!("{p} is a file"))),
        }
    }

    pub(super) fn rename(&mut self, now_ms: u64, src: &str, dst: &str) -> Result<Outcome> {
        let src_id = self.lookup(src)?;
        if src_id == ROOT {
            return Err(Error::WrongKind("cannot rename /".into()));
        }
        let dst_components = path::validate(dst)?;
        let (dst_parent, dst_name) = match self.lookup(dst) {
            // `mv a dir` moves a into dir, as a shell user expects.
            Ok(id) if matches!(self.inodes[&id].body, Body::Dir(_)) => {
                (id, self.inodes[&src_id].name.clone())
            }
            Ok(_) => return Err(Error::AlreadyExists(dst.to_string())),
            Err(Error::NotFound(_)) => {
                let (name, parents) = dst_components
                    .split_last()
                    .expect("dst exists unless non-root");
                let parent = self.lookup(&path::join(parents))?;
                (parent, (*name).to_string())
            }
            Err(e) => return Err(e),
        };
        if !matches!(self.inodes[&dst_parent].body, Body::Dir(_)) {
            return Err(Error::WrongKind(format!("parent of {dst} is a file")));
        }
        if self.is_ancestor_or_self(src_id, dst_parent) {
            return Err(Error::WrongKind(format!(
                "cannot move {src} inside itself ({dst})"
            )));
        }
        if let Body::Dir(c) = &self.inodes[&dst_parent].body {
            if c.contains_key(&dst_name) {
                return Err(Error::AlreadyExists(format!(
                    "{}/{dst_name}",
                    self.path_of(dst_parent)
                )));
            }
        }
        let old_parent = self.inodes[&src_id].parent;
        let old_name = self.inodes[&src_id].name.clone();
        self.children_mut(old_parent).remove(&old_name);
        self.children_mut(dst_parent)
            .insert(dst_name.clone(), src_id);
        let inode = self.inodes.get_mut(&src_id).expect("exists");
        inode.parent = dst_parent;
        inode.name = dst_name;
        self.touch(old_parent, now_ms);
        self.touch(dst_parent, now_ms);
        Ok(Outcome::Done)
    }

    fn is_ancestor_or_self(&self, ancestor: u64, mut id: u64) -> bool {
        loop {
            if id == ancestor {
                return true;
            }
            if id == ROOT {
                return false;
            }
            id = self.inodes[&id].parent;
        }
    }

    pub(super) fn delete(&mut self, now_ms: u64, p: &str, recursive: bool) -> Result<Outcome> {
        let id = match self.lookup(p) {
            Ok(id) => id,
            Err(Error::NotFound(_)) => return Ok(Outcome::Deleted(false)),
            Err(e) => return Err(e),
        };
        if id == ROOT {
            return Err(Error::WrongKind("refusing to delete /".into()));
        }
        if let Body::Dir(children) = &self.inodes[&id].body {
            if !children.is_empty() && !recursive {
                return Err(Error::WrongKind(format!(
                    "{p} is a non-empty directory (use recursive)"
                )));
            }
        }
        self.remove_subtree(now_ms, id);
        Ok(Outcome::Deleted(true))
    }

    /// Unlinks `id` from its parent and drops it and everything below it.
    pub(super) fn remove_subtree(&mut self, now_ms: u64, id: u64) {
        let parent = self.inodes[&id].parent;
        let name = self.inodes[&id].name.clone();
        self.children_mut(parent).remove(&name);
        self.touch(parent, now_ms);
        let mut stack = vec![id];
        while let Some(next) = stack.pop() {
            let Some(inode) = self.inodes.remove(&next) else {
                continue;
            };
            match inode.body {
                Body::Dir(children) => stack.extend(children.values()),
                Body::File(f) => {
                    for b in f.blocks {
                        self.block_owner.remove(&b.id);
                    }
                }
            }
        }
    }
}
