//! Which permission each RPC needs: the [`Action`]s a request asks of its paths, checked with
//! [`crate::namenode::permission::check`] against the namespace before the handler reads or
//! proposes anything (G8).
//!
//! Pure: a request, the namespace and the caller in; `Ok` or `PermissionDenied` out.

use super::namespace::Namespace;
use super::permission::{allows_all, check, check_subtree, Action, Caller};
use crate::auth::Principal;
use crate::error::Result;
use crate::path;
use crate::protocol::Request;

/// Checks every permission `req` needs for `caller` on `ns`. Requests without a path
/// (datanode reports, status, lease renewal) need none here.
pub fn authorize(ns: &Namespace, caller: &Principal, req: &Request) -> Result<()> {
    let who = Caller {
        user: caller.user(),
        superuser: caller.is_superuser(),
    };
    for (p, action) in needs(ns, req) {
        check(who, &ns.access_view(&p)?, &action)?;
    }
    if let Request::Delete {
        path,
        recursive: true,
    } = req
    {
        if !who.superuser {
            let refusing = ns.dir_refusing(path, |a| allows_all(who.user, a))?;
            check_subtree(who, path, refusing)?;
        }
    }
    Ok(())
}

/// The paths a request touches and what it does to each.
fn needs(ns: &Namespace, req: &Request) -> Vec<(String, Action)> {
    let one = |p: &String, a: Action| vec![(p.clone(), a)];
    match req {
        Request::Create { path, .. } => one(path, Action::Create),
        Request::Mkdirs { path } => one(path, Action::Mkdirs),
        Request::AddBlock { path, .. }
        | Request::AbandonBlock { path, .. }
        | Request::UpdatePipeline { path, .. }
        | Request::AddDatanode { path, .. }
        | Request::Complete { path, .. }
        | Request::SetReplication { path, .. } => one(path, Action::Write),
        Request::Delete { path, .. } => one(path, Action::Remove),
        Request::Rename { src, dst } => vec![
            (src.clone(), Action::Remove),
            (rename_target(ns, src, dst), Action::Create),
        ],
        Request::Stat { path } => one(path, Action::Traverse),
        Request::List { path, .. } | Request::Du { path } | Request::Fsck { path } => {
            one(path, Action::List)
        }
        Request::GetBlockLocations { path, .. } => one(path, Action::Read),
        Request::SetPermission { path, .. } => one(path, Action::Chmod),
        Request::SetOwner { path, owner, group } => one(
            path,
            Action::Chown {
                owner: owner.clone(),
                group: group.clone(),
            },
        ),
        Request::RenewLease { .. }
        | Request::Register { .. }
        | Request::Heartbeat { .. }
        | Request::BlockReport { .. }
        | Request::IncrementalReport { .. }
        | Request::ReportCorrupt { .. }
        | Request::DatanodeReport
        | Request::Status => Vec::new(),
    }
}

/// Where a rename puts `src`: into `dst` when that is an existing directory (as the namespace
/// does), else at `dst`.
fn rename_target(ns: &Namespace, src: &str, dst: &str) -> String {
    let into_dir = ns
        .stat(dst)
        .is_ok_and(|s| s.kind == crate::protocol::FileKind::Dir);
    let name = path::validate(src)
        .ok()
        .and_then(|c| c.last().map(|n| n.to_string()));
    match (into_dir, name) {
        (true, Some(name)) => format!("{}/{name}", dst.trim_end_matches('/')),
        _ => dst.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::namenode::namespace::{Entry, Op};

    fn apply(ns: &mut Namespace, op: Op) {
        ns.apply(&Entry {
            now_ms: 1,
            call: None,
            op,
        })
        .unwrap();
    }

    fn user(name: &str) -> Principal {
        Principal::User(name.into())
    }

    /// `/user/alice` (alice's, 0755) holding `secret` (0600), `/user/bob` (bob's, 0700).
    fn homes() -> Namespace {
        let mut ns = Namespace::new();
        for u in ["alice", "bob"] {
            let path = format!("/user/{u}");
            apply(
                &mut ns,
                Op::Mkdirs {
                    path: path.clone(),
                    owner: "admin".into(),
                },
            );
            apply(
                &mut ns,
                Op::SetOwner {
                    path,
                    owner: Some(u.into()),
                    group: None,
                },
            );
        }
        apply(
            &mut ns,
            Op::SetPermission {
                path: "/user/bob".into(),
                mode: 0o700,
            },
        );
        apply(
            &mut ns,
            Op::Mkdirs {
                path: "/user/alice/secret".into(),
                owner: "alice".into(),
            },
        );
        apply(
            &mut ns,
            Op::SetPermission {
                path: "/user/alice/secret".into(),
                mode: 0o700,
            },
        );
        ns
    }

    fn kind(r: Result<()>) -> Option<ErrorKind> {
        r.err().map(|e| e.kind())
    }

    // Checks G8: each request is held to the permissions of the paths it touches.
    #[test]
    fn requests_are_checked_against_the_paths_they_touch() {
        let ns = homes();
        let bob = user("bob");
        let alice = user("alice");
        let denied = Some(ErrorKind::PermissionDenied);
        let list = |p: &str| Request::List {
            path: p.into(),
            start_after: None,
            limit: 10,
        };
        assert_eq!(
            kind(authorize(&ns, &bob, &list("/user/alice/secret"))),
            denied
        );
        assert_eq!(
            kind(authorize(&ns, &alice, &list("/user/alice/secret"))),
            None
        );
        let del = Request::Delete {
            path: "/user/alice/secret".into(),
            recursive: true,
        };
        assert_eq!(kind(authorize(&ns, &bob, &del)), denied);
        assert_eq!(kind(authorize(&ns, &alice, &del)), None);
        // Renaming alice's directory into bob's home: refused at the source for bob and at
        // the destination for alice.
        let mv = Request::Rename {
            src: "/user/alice/secret".into(),
            dst: "/user/bob".into(),
        };
        assert_eq!(kind(authorize(&ns, &bob, &mv)), denied);
        assert_eq!(kind(authorize(&ns, &alice, &mv)), denied);
        let mk = Request::Mkdirs {
            path: "/user/bob/x".into(),
        };
        assert_eq!(kind(authorize(&ns, &alice, &mk)), denied);
        assert_eq!(kind(authorize(&ns, &bob, &mk)), None);
        let chmod = Request::SetPermission {
            path: "/user/alice".into(),
            mode: 0o777,
        };
        assert_eq!(kind(authorize(&ns, &bob, &chmod)), denied);
        let admin = Principal::Member("nn1".into());
        assert_eq!(kind(authorize(&ns, &admin, &chmod)), None);
        assert_eq!(kind(authorize(&ns, &bob, &Request::Status)), None);
    }

    // Checks G8: a recursive delete needs full access to every directory it empties, even
    // where the parent lets the caller remove the top (HDFS's rule).
    #[test]
    fn recursive_delete_needs_access_to_what_it_empties() {
        let mut ns = homes();
        apply(
            &mut ns,
            Op::SetPermission {
                path: "/user/alice".into(),
                mode: 0o777,
            },
        );
        let del = |recursive| Request::Delete {
            path: "/user/alice/secret".into(),
            recursive,
        };
        let bob = user("bob");
        // secret (0700, alice's) is empty: nothing below to protect.
        assert_eq!(kind(authorize(&ns, &bob, &del(true))), None);
        apply(
            &mut ns,
            Op::Mkdirs {
                path: "/user/alice/secret/inner".into(),
                owner: "alice".into(),
            },
        );
        let err = authorize(&ns, &bob, &del(true)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        let msg = err.to_string();
        assert!(
            msg.contains("full access") && msg.contains("/user/alice/secret "),
            "{msg}"
        );
        assert_eq!(kind(authorize(&ns, &user("alice"), &del(true))), None);
        let admin = Principal::Member("nn1".into());
        assert_eq!(kind(authorize(&ns, &admin, &del(true))), None);
    }

    #[test]
    fn new_inodes_belong_to_their_creator_in_the_parents_group() {
        let ns = homes();
        let s = ns.stat("/user/alice/secret").unwrap();
        assert_eq!(
            (s.owner.as_str(), s.group.as_str()),
            ("alice", "supergroup")
        );
        assert_eq!(s.mode, 0o700);
        let root = ns.stat("/").unwrap();
        assert_eq!((root.owner.as_str(), root.mode), ("admin", 0o755));
    }
}
