//! Which permission each RPC needs: the [`Action`]s a request asks of its paths, checked with
//! [`crate::namenode::permission::check`] against the namespace before the handler reads or
//! proposes anything (G8), and again, for the operation it proposed, when the committed entry
//! is applied ([`authorize_op`]): the early check refuses cheaply, the second decides.
//!
//! Pure: a request (or operation), the namespace and the caller in; `Ok` or
//! `PermissionDenied` out.

use super::namespace::{Namespace, Op};
use super::permission::{allows_all, check, check_subtree, Action, Caller};
use crate::auth::{Principal, SUPERUSER};
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
    let emptied = match req {
        Request::Delete {
            path,
            recursive: true,
        } => Some(path.as_str()),
        _ => None,
    };
    check_all(ns, who, needs(ns, req), emptied)
}

/// Checks, while a committed entry is applied, the permissions `op` needs for `user` on `ns`
/// as it is at that point of the log: the same rule as [`authorize`], so a request that
/// passed the leader's early check is refused here if a change committed before it (a
/// `chmod`, a `chown`, a rename) took the permission away.
pub fn authorize_op(ns: &Namespace, user: &str, op: &Op) -> Result<()> {
    let who = Caller {
        user,
        superuser: user == SUPERUSER,
    };
    let emptied = match op {
        Op::Delete {
            path,
            recursive: true,
        } => Some(path.as_str()),
        _ => None,
    };
    check_all(ns, who, op_needs(ns, op), emptied)
}

/// Checks each path's action, then (for a recursive delete of `emptied`) that `who` has full
/// access to every directory the delete would empty.
fn check_all(
    ns: &Namespace,
    who: Caller<'_>,
    needs: Vec<(String, Action)>,
    emptied: Option<&str>,
) -> Result<()> {
    for (p, action) in needs {
        check(who, &ns.access_view(&p)?, &action)?;
    }
    if let Some(path) = emptied {
        if !who.superuser {
            let refusing = ns.dir_refusing(path, |a| allows_all(who.user, a))?;
            check_subtree(who, path, refusing)?;
        }
    }
    Ok(())
}

/// The paths a replicated operation touches and what it does to each: what its request
/// needed (see [`needs`]). The namenode's own operations (lease recovery) need nothing.
fn op_needs(ns: &Namespace, op: &Op) -> Vec<(String, Action)> {
    let one = |p: &String, a: Action| vec![(p.clone(), a)];
    match op {
        Op::Create { path, .. } => one(path, Action::Create),
        Op::Mkdirs { path, .. } => one(path, Action::Mkdirs),
        Op::AddBlock { path, .. }
        | Op::AbandonBlock { path, .. }
        | Op::UpdatePipeline { path, .. }
        | Op::Complete { path, .. }
        | Op::SetReplication { path, .. } => one(path, Action::Write),
        Op::Delete { path, .. } => one(path, Action::Remove),
        Op::Rename { src, dst } => vec![
            (src.clone(), Action::Remove),
            (rename_target(ns, src, dst), Action::Create),
        ],
        Op::SetPermission { path, .. } => one(path, Action::Chmod),
        Op::SetOwner { path, owner, group } => one(
            path,
            Action::Chown {
                owner: owner.clone(),
                group: group.clone(),
            },
        ),
        Op::RecoverLease { .. } => Vec::new(),
    }
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
            caller: None,
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

    fn entry_as(user: Option<&str>, op: Op) -> Entry {
        Entry {
            now_ms: 2,
            call: None,
            caller: user.map(str::to_string),
            op,
        }
    }

    // Checks G8: the permission decision is part of the replicated apply. Bob's mkdir passed
    // the leader's early check, then alice's chmod committed before it: applying bob's entry
    // refuses it against the namespace of that moment and changes nothing, on every namenode
    // alike (the result is also what the retry cache answers a retry with).
    #[test]
    fn a_chmod_committed_between_check_and_apply_refuses_the_op_at_apply() {
        let mut ns = homes();
        let open = Op::SetPermission {
            path: "/user/alice".into(),
            mode: 0o777,
        };
        ns.apply(&entry_as(Some("alice"), open)).unwrap();
        let bob = user("bob");
        let mk = Request::Mkdirs {
            path: "/user/alice/drop".into(),
        };
        // The early check, on the leader, before proposing: allowed.
        assert_eq!(kind(authorize(&ns, &bob, &mk)), None);
        // Alice's chmod commits first...
        let close = Op::SetPermission {
            path: "/user/alice".into(),
            mode: 0o755,
        };
        ns.apply(&entry_as(Some("alice"), close)).unwrap();
        // ...then bob's mkdir is applied: refused, nothing created.
        let bobs = Entry {
            call: Some(crate::protocol::CallId {
                client_id: 7,
                call_id: 1,
            }),
            ..entry_as(
                Some("bob"),
                Op::Mkdirs {
                    path: "/user/alice/drop".into(),
                    owner: "bob".into(),
                },
            )
        };
        let before = ns.clone();
        let refused = ns.apply(&bobs).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::PermissionDenied, "{refused:?}");
        assert!(refused.message.contains("bob"), "{}", refused.message);
        assert!(ns.stat("/user/alice/drop").is_err());
        assert_eq!(
            ns.apply(&bobs).unwrap_err(),
            refused,
            "a retry gets the same answer"
        );
        // The directory and its listing are as before.
        let list = |ns: &Namespace| ns.list("/user/alice", None, 100).unwrap();
        assert_eq!(list(&ns), list(&before));
        assert_eq!(
            ns.stat("/user/alice").unwrap(),
            before.stat("/user/alice").unwrap()
        );
        // A chmod by someone who is not the owner is refused at apply too.
        let steal = entry_as(
            Some("bob"),
            Op::SetPermission {
                path: "/user/alice".into(),
                mode: 0o777,
            },
        );
        let err = ns.apply(&steal).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert_eq!(ns.stat("/user/alice").unwrap().mode, 0o755);
    }

    // Entries of format 2 carry no caller and replay as the superuser's, as they were
    // checked when proposed; so do the namenode's own operations.
    #[test]
    fn entries_without_a_caller_apply_as_the_superuser() {
        let mut ns = homes();
        let mk = Op::Mkdirs {
            path: "/user/bob/x".into(),
            owner: "bob".into(),
        };
        let err = ns.apply(&entry_as(Some("alice"), mk.clone())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        ns.apply(&entry_as(None, mk)).unwrap();
        assert!(ns.stat("/user/bob/x").is_ok());
        // The superuser by name passes too.
        let rm = Op::Delete {
            path: "/user/bob/x".into(),
            recursive: true,
        };
        ns.apply(&entry_as(Some(SUPERUSER), rm)).unwrap();
        assert!(ns.stat("/user/bob/x").is_err());
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
