//! A job submitted by a user who is not the superuser (`MRJOB_USER_KEY` set): it runs with the
//! user's identity, its output belongs to the user, and it cannot write where the user may
//! not. Called from a test of `cluster.rs` that already has a cluster up (CI time).

use std::path::Path;
use std::process::{Command, Output};

use dfs::auth::KeyFile;

use super::Cluster;

/// Writes `NAME.key` in `dir` (as `dfs user add NAME` would) and makes `/user/NAME` the user's.
fn must_add_user(cluster: &Cluster, name: &str, dir: &Path) -> std::path::PathBuf {
    let authority = cluster.config.secrets.authority().unwrap();
    let path = dir.join(format!("{name}.key"));
    KeyFile {
        user: Some(name.into()),
        key: authority.user_key(name).to_hex(),
    }
    .create(&path)
    .unwrap();
    let client = cluster.fs.client();
    let home = format!("/user/{name}");
    cluster.fs.block_on(client.mkdirs(&home)).unwrap();
    cluster
        .fs
        .block_on(client.set_owner(&home, Some(name), None))
        .unwrap();
    path
}

fn mrjob_as(cluster: &Cluster, key: &Path, args: &[&str]) -> Output {
    Command::new(super::mrjob_bin())
        .arg("--conf")
        .arg(&cluster.conf)
        .args(args)
        .env(dfs::auth::USER_KEY_ENV, key)
        .output()
        .unwrap()
}

/// Checks G8 ("only authenticated members and users act; each user only on what its
/// permissions allow") and G6: user alice's wordcount succeeds with the same output as the
/// superuser's (`reference`, run with the same reducers), every file of it is alice's, the
/// job list shows alice; and a job of hers whose output is in a directory she may not write
/// is refused, creating nothing.
pub fn user_job_runs_as_its_user(cluster: &Cluster, reference: &str, reduces: &str) {
    let keys = tempfile::tempdir().unwrap();
    let key = must_add_user(cluster, "alice", keys.path());
    let out = "/user/alice/wc";
    let run = mrjob_as(cluster, &key, &["wordcount", "/in", out, "-r", reduces]);
    assert!(
        run.status.success(),
        "alice's wordcount: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        cluster.files(out),
        cluster.files(reference),
        "alice's output"
    );
    let client = cluster.fs.client();
    let mut owned = cluster.fs.block_on(client.list(out)).unwrap();
    owned.push(cluster.fs.block_on(client.stat(out)).unwrap());
    for s in &owned {
        assert_eq!(s.owner, "alice", "{} belongs to {}", s.path, s.owner);
    }
    let list = mrjob_as(cluster, &key, &["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("alice") && l.contains("SUCCEEDED")),
        "{text}"
    );

    // `/out` is the superuser's (0755): alice's job may not put its output there.
    let denied = mrjob_as(
        cluster,
        &key,
        &["wordcount", "/in", "/out/alice", "-r", "1"],
    );
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success(), "alice wrote under /out: {stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(!cluster.exists("/out/alice"));
}
