//! Users' permissions on the real three-namenode cluster, checked before and after every
//! namenode is restarted (the owners and modes are replicated state, in the log and in
//! snapshots).

use std::process::Command;
use std::time::Duration;

use dfs::auth::Credentials;
use dfs::protocol::{FileStatus, Request, Response};
use dfs::rpc::NamenodeClient;
use dfs::ErrorKind;

use super::{create, Cluster};

impl Cluster {
    /// A client that authenticates as user `name` (with the key `dfs user add` would give it).
    pub(super) fn user_client(&self, name: &str) -> NamenodeClient {
        let authority = self.config.secrets.authority().unwrap();
        NamenodeClient::with_addrs(
            self.config.namenode_addrs(),
            Ok(Credentials::user(name, authority.user_key(name))),
            Duration::from_secs(2),
            Duration::from_secs(15),
        )
    }

    /// Runs the `dfs` binary with this cluster's config; `key` makes it act as that user.
    pub(super) fn dfs(&self, key: Option<&str>, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dfs"));
        cmd.arg("--conf").arg(&self.conf_path).args(args);
        cmd.env_remove(dfs::auth::USER_KEY_ENV);
        if let Some(user) = key {
            cmd.env(
                dfs::auth::USER_KEY_ENV,
                self.dir.path().join(format!("{user}.key")),
            );
        }
        cmd.output().expect("run dfs")
    }
}

async fn stat(client: &NamenodeClient, path: &str) -> FileStatus {
    match client.call(Request::Stat { path: path.into() }).await {
        Ok(Response::Status(s)) => s,
        other => panic!("stat {path}: {other:?}"),
    }
}

/// Expects `PermissionDenied` naming `user` and `path`.
fn must_be_denied(what: &str, r: dfs::Result<Response>, user: &str, path: &str) {
    let err = match r {
        Ok(resp) => panic!("{what}: {user} was allowed: {resp:?}"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{what}: {err}");
    let msg = err.to_string();
    assert!(msg.contains(user) && msg.contains(path), "{what}: {msg}");
}

fn chmod(path: &str, mode: u16) -> Request {
    Request::SetPermission {
        path: path.into(),
        mode,
    }
}

/// Adds users alice and bob with `dfs user add` (their homes too), and has alice make
/// `/user/alice/secret` (0600) and `/user/alice/private/` (0700) holding a file.
pub(super) async fn must_set_up_alice_and_bob(cluster: &Cluster) {
    for user in ["alice", "bob"] {
        let key = cluster.dir.path().join(format!("{user}.key"));
        let out = cluster.dfs(None, &["user", "add", user, "--out", key.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "user add {user}: {stderr}");
        assert!(
            stderr.contains(&format!("created /user/{user}")),
            "{stderr}"
        );
    }
    let alice = cluster.user_client("alice");
    create(&alice, "/user/alice/secret").await.unwrap();
    alice
        .call(chmod("/user/alice/secret", 0o600))
        .await
        .unwrap();
    create(&alice, "/user/alice/private/f").await.unwrap();
    alice
        .call(chmod("/user/alice/private", 0o700))
        .await
        .unwrap();
}

/// Checks G8 ("only authenticated members and users act; each user only on what its
/// permissions allow"): bob can neither read, list, delete, rename nor chmod alice's files;
/// alice cannot give hers away; the superuser can do all of it; `dfs ls` shows owner, group
/// and mode.
pub(super) async fn must_enforce_alice_and_bob(cluster: &Cluster) {
    let (alice, bob) = (cluster.user_client("alice"), cluster.user_client("bob"));
    let admin = cluster.client();
    let secret = "/user/alice/secret";
    let s = stat(&alice, secret).await;
    assert_eq!(
        (s.owner.as_str(), s.group.as_str(), s.mode),
        ("alice", "supergroup", 0o600)
    );
    let home = stat(&admin, "/user/alice").await;
    assert_eq!((home.owner.as_str(), home.mode), ("alice", 0o755));

    let read = |path: &str| Request::GetBlockLocations {
        path: path.into(),
        offset_bytes: 0,
        len_bytes: 1,
        reader_host: None,
    };
    let list = |path: &str| Request::List {
        path: path.into(),
        start_after: None,
        limit: 100,
    };
    must_be_denied("read", bob.call(read(secret)).await, "bob", secret);
    let private = "/user/alice/private";
    must_be_denied("list", bob.call(list(private)).await, "bob", private);
    let del = Request::Delete {
        path: secret.into(),
        recursive: false,
    };
    must_be_denied("delete", bob.call(del.clone()).await, "bob", secret);
    let mv = Request::Rename {
        src: secret.into(),
        dst: "/user/bob/stolen".into(),
    };
    must_be_denied("rename", bob.call(mv).await, "bob", secret);
    must_be_denied("chmod", bob.call(chmod(secret, 0o666)).await, "bob", secret);
    let give = Request::SetOwner {
        path: secret.into(),
        owner: Some("bob".into()),
        group: None,
    };
    must_be_denied("chown", alice.call(give.clone()).await, "alice", secret);
    must_be_denied(
        "mkdir",
        bob.call(Request::Mkdirs {
            path: "/user/alice/b".into(),
        })
        .await,
        "bob",
        "/user/alice/b",
    );

    // The owner and the superuser can.
    alice.call(read(secret)).await.unwrap();
    alice.call(list(private)).await.unwrap();
    admin.call(read(secret)).await.unwrap();
    admin.call(list(private)).await.unwrap();

    // `dfs ls` as alice shows the columns `hadoop fs -ls` shows; as bob, a clear refusal.
    let out = cluster.dfs(Some("alice"), &["ls", "/user/alice"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.contains("-rw-------   1 alice supergroup"),
        "{listing}"
    );
    assert!(
        listing.contains("drwx------   - alice supergroup"),
        "{listing}"
    );
    let out = cluster.dfs(Some("bob"), &["ls", private]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bob listed {private}");
    assert!(
        stderr.contains("permission denied") && stderr.contains("bob"),
        "{stderr}"
    );
    let out = cluster.dfs(Some("bob"), &["chmod", "777", secret]);
    assert!(!out.status.success(), "bob chmodded {secret}");
}

/// The superuser's part, after the restart: it may give the file away, and delete it.
pub(super) async fn must_let_the_superuser_act(cluster: &Cluster) {
    let admin = cluster.client();
    let bob = cluster.user_client("bob");
    let secret = "/user/alice/secret";
    admin
        .call(Request::SetOwner {
            path: secret.into(),
            owner: Some("bob".into()),
            group: Some("bob".into()),
        })
        .await
        .unwrap();
    // Now bob's, but still in alice's directory: bob reads it and cannot delete it.
    let s = stat(&bob, secret).await;
    assert_eq!((s.owner.as_str(), s.group.as_str()), ("bob", "bob"));
    let del = Request::Delete {
        path: secret.into(),
        recursive: false,
    };
    must_be_denied("delete", bob.call(del.clone()).await, "bob", secret);
    assert!(matches!(admin.call(del).await, Ok(Response::Deleted(true))));
}
