//! `chmod` and `chown`, each optionally recursive (`-R`, walked here as `hadoop fs` does: one
//! call per path, so a refusal names the path that was refused).

use super::Shell;
use crate::error::{Error, Result};
use crate::namenode::permission::parse_mode;
use crate::protocol::FileKind;

/// Most paths one recursive `chmod`/`chown` visits.
const MAX_RECURSIVE_PATHS: usize = 1_000_000;

/// Splits `USER`, `USER:GROUP` or `:GROUP` into the owner and group to set.
pub(super) fn parse_owner(spec: &str) -> Result<(Option<String>, Option<String>)> {
    let (owner, group) = match spec.split_once(':') {
        Some((o, g)) => (o, Some(g)),
        None => (spec, None),
    };
    let owner = (!owner.is_empty()).then(|| owner.to_string());
    let group = group.filter(|g| !g.is_empty()).map(str::to_string);
    if owner.is_none() && group.is_none() {
        return Err(Error::Config(format!(
            "chown: {spec:?} names neither an owner nor a group (USER[:GROUP] or :GROUP)"
        )));
    }
    Ok((owner, group))
}

impl Shell {
    /// The paths to change: each argument, and with `recursive` everything below it.
    async fn targets(&self, paths: Vec<String>, recursive: bool) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack: Vec<String> = Vec::new();
        for p in paths {
            stack.push(self.path(&p)?);
        }
        stack.reverse();
        while let Some(p) = stack.pop() {
            if out.len() >= MAX_RECURSIVE_PATHS {
                return Err(Error::Config(format!(
                    "more than {MAX_RECURSIVE_PATHS} paths to change; split the command"
                )));
            }
            if recursive && self.client.stat(&p).await?.kind == FileKind::Dir {
                let children = self.client.list(&p).await?;
                stack.extend(children.into_iter().rev().map(|c| c.path));
            }
            out.push(p);
        }
        Ok(out)
    }

    pub(super) async fn chmod(
        &self,
        mode: &str,
        paths: Vec<String>,
        recursive: bool,
    ) -> Result<()> {
        let mode = parse_mode(mode)?;
        for p in self.targets(paths, recursive).await? {
            self.client.set_permission(&p, mode).await?;
        }
        Ok(())
    }

    pub(super) async fn chown(
        &self,
        spec: &str,
        paths: Vec<String>,
        recursive: bool,
    ) -> Result<()> {
        let (owner, group) = parse_owner(spec)?;
        for p in self.targets(paths, recursive).await? {
            self.client
                .set_owner(&p, owner.as_deref(), group.as_deref())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_specs_split_as_chown_does() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(parse_owner("alice").unwrap(), (s("alice"), None));
        assert_eq!(parse_owner("alice:g").unwrap(), (s("alice"), s("g")));
        assert_eq!(parse_owner(":g").unwrap(), (None, s("g")));
        assert_eq!(parse_owner("alice:").unwrap(), (s("alice"), None));
        assert!(parse_owner(":").is_err());
        assert!(parse_owner("").is_err());
    }
}
