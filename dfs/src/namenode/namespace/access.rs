//! Owners, groups and modes: the operations that change them (`chmod`, `chown`) and the view
//! of a path that `namenode::permission` checks. Who may change them is decided by
//! `namenode::access` (before the proposal, and again as the entry is applied); here they are
//! only validated and applied.

use super::tree::Body;
use super::{Namespace, Outcome, ROOT};
use crate::auth::validate_user_name;
use crate::error::{Error, Result};
use crate::namenode::permission::{Attrs, PathView, MODE_MASK};
use crate::path;

impl Namespace {
    pub(super) fn set_permission(&mut self, p: &str, mode: u16) -> Result<Outcome> {
        if mode & !MODE_MASK != 0 {
            return Err(Error::Config(format!(
                "mode {mode:o} has bits outside {MODE_MASK:o}"
            )));
        }
        let id = self.lookup(p)?;
        self.inodes.get_mut(&id).expect("looked up").mode = mode;
        Ok(Outcome::Done)
    }

    pub(super) fn set_owner(
        &mut self,
        p: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<Outcome> {
        for name in owner.iter().chain(group.iter()) {
            validate_user_name(name)?;
        }
        let id = self.lookup(p)?;
        let inode = self.inodes.get_mut(&id).expect("looked up");
        if let Some(o) = owner {
            inode.owner = o.to_string();
        }
        if let Some(g) = group {
            inode.group = g.to_string();
        }
        Ok(Outcome::Done)
    }

    /// The attributes of `/` and of every existing component of `p` after it, for the
    /// permission check. Stops at the first missing component, or at a file that has more of
    /// the path after it (the operation then reports the path's real problem).
    pub fn access_view(&self, p: &str) -> Result<PathView> {
        let components = path::validate(p)?;
        let mut id = ROOT;
        let mut chain = vec![self.attrs(id)];
        for (i, c) in components.iter().enumerate() {
            let Body::Dir(children) = &self.inodes[&id].body else {
                return Ok(PathView {
                    path: p.to_string(),
                    chain,
                    exists: false,
                });
            };
            let Some(&child) = children.get(*c) else {
                return Ok(PathView {
                    path: p.to_string(),
                    chain,
                    exists: false,
                });
            };
            id = child;
            chain.push(self.attrs(id));
            debug_assert_eq!(chain.len(), i + 2);
        }
        Ok(PathView {
            path: p.to_string(),
            chain,
            exists: true,
        })
    }

    /// The first non-empty directory at or below `p` (depth first) whose attributes `ok`
    /// refuses, with its path: what a recursive delete of `p` would empty without the right.
    pub fn dir_refusing(
        &self,
        p: &str,
        ok: impl Fn(&Attrs) -> bool,
    ) -> Result<Option<(String, Attrs)>> {
        let mut stack = match self.lookup(p) {
            Ok(id) => vec![id],
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        while let Some(id) = stack.pop() {
            let Body::Dir(children) = &self.inodes[&id].body else {
                continue;
            };
            if children.is_empty() {
                continue;
            }
            let a = self.attrs(id);
            if !ok(&a) {
                return Ok(Some((self.path_of(id), a)));
            }
            stack.extend(children.values());
        }
        Ok(None)
    }

    fn attrs(&self, id: u64) -> Attrs {
        let inode = &self.inodes[&id];
        Attrs {
            owner: inode.owner.clone(),
            group: inode.group.clone(),
            mode: inode.mode,
            is_dir: matches!(inode.body, Body::Dir(_)),
        }
    }
}
