//! A job submitted by a user who is not the superuser (`MRJOB_USER_KEY` set): it runs with the
//! user's identity, its output belongs to the user, and it cannot write where the user may
//! not; its staged binary is the user's alone. Called from a test of `cluster.rs` that
//! already has a cluster up (CI time).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use dfs::auth::{Credentials, KeyFile};
use mapreduce::input::InputFormat;
use mapreduce::job::Settings;
use mapreduce::job_conf::JobConf;
use mapreduce::protocol::{call, BinaryRef, JobSpec, JtRequest, JtResponse};

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

/// A dfs client acting as user `name` (with the key `dfs user add NAME` would make).
fn dfs_as(cluster: &Cluster, name: &str) -> dfs::client::DfsClient {
    let authority = cluster.config.secrets.authority().unwrap();
    let mut config = cluster.config.clone();
    config
        .secrets
        .set_credentials(Credentials::user(name, authority.user_key(name)));
    dfs::client::DfsClient::new(config)
}

/// Submits `spec` straight to the jobtracker as user `name`; the reply, as text.
fn raw_submit_as(cluster: &Cluster, name: &str, spec: JobSpec) -> String {
    let authority = cluster.config.secrets.authority().unwrap();
    let credentials = Credentials::user(name, authority.user_key(name));
    let req = JtRequest::Submit(Box::new(spec));
    let resp: JtResponse = cluster
        .fs
        .block_on(call(
            &cluster.config.jobtracker_addr,
            &credentials,
            &req,
            Duration::from_secs(60),
        ))
        .unwrap();
    format!("{resp:?}")
}

/// A wordcount spec over `/in` into `output` running `binary`.
fn spec_running(binary: BinaryRef, output: &str) -> JobSpec {
    JobSpec {
        conf: JobConf::new("wordcount", Settings::default()),
        binary,
        inputs: vec!["/in".into()],
        output: output.into(),
        input_format: InputFormat::Lines,
        reduces: 1,
        user: "whoever".into(),
        submission: String::new(),
    }
}

/// alice's staged binaries (names), from her staging directory.
fn staged_names(cluster: &Cluster, user: &str) -> Vec<String> {
    let client = cluster.fs.client();
    let dir = mapreduce::job_binary::staging_dir(user);
    let list = cluster.fs.block_on(client.list(&dir)).unwrap();
    list.iter()
        .map(|s| s.path.rsplit('/').next().unwrap().to_owned())
        .collect()
}

/// Checks G8 ("a staged job binary runs only for the job and user that staged it"), after
/// [`user_job_runs_as_its_user`] (alice has run a job, so her binary is staged) on a cluster
/// whose staged-binary grace is `grace`:
/// - alice's staging directory is hers, mode 0700; bob can neither read, replace, remove nor
///   add to what is in it;
/// - bob's Submit naming alice's binary is refused, naming why, and creates nothing; so is
///   one naming a binary bob never staged, and alice's naming bob's private side file;
/// - a staging directory made by someone else is refused by its user's `mrjob`, and a binary
///   planted in it by the jobtracker;
/// - a job of alice's still runs, and the prune at its end removes her old unused staged
///   file but keeps the binary her job used and her newest one.
pub fn staged_binaries_are_their_users(cluster: &Cluster, grace: Duration) {
    let keys = tempfile::tempdir().unwrap();
    let alice_key = must_add_user(cluster, "alice", keys.path());
    must_add_user(cluster, "bob", keys.path());
    let carol_key = must_add_user(cluster, "carol", keys.path());
    let names = staged_names(cluster, "alice");
    let [sha] = &names[..] else {
        panic!("alice has one staged binary: {names:?}")
    };
    let alices = mapreduce::job_binary::staged_path("alice", sha);
    let client = cluster.fs.client();
    let dir = cluster
        .fs
        .block_on(client.stat(&mapreduce::job_binary::staging_dir("alice")))
        .unwrap();
    assert_eq!((dir.owner.as_str(), dir.mode), ("alice", 0o700));

    // bob cannot read, overwrite, remove or add to alice's staging.
    let bob = dfs_as(cluster, "bob");
    let denied = |what: &str, r: dfs::Result<()>| {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), dfs::ErrorKind::PermissionDenied, "{what}: {e}");
    };
    let fs = &cluster.fs;
    denied("read", fs.block_on(bob.read_file(&alices)).map(drop));
    denied(
        "overwrite",
        fs.block_on(bob.write_file(&alices, b"#!/bin/sh\n", true)),
    );
    denied("delete", fs.block_on(bob.delete(&alices, false)).map(drop));
    let planted = format!(
        "{}/{}",
        mapreduce::job_binary::staging_dir("alice"),
        "e".repeat(64)
    );
    denied("plant", fs.block_on(bob.write_file(&planted, b"x", false)));
    denied(
        "rename away",
        fs.block_on(bob.rename(&mapreduce::job_binary::staging_dir("alice"), "/tmp/a")),
    );
    let binary = |path: &str| BinaryRef {
        dfs_path: path.into(),
        sha256: sha.clone(),
    };

    // bob names alice's binary: refused before anything is created.
    let text = raw_submit_as(cluster, "bob", spec_running(binary(&alices), "/user/bob/x"));
    assert!(
        text.contains("PermissionDenied") && text.contains("is not bob's"),
        "{text}"
    );
    // The same hash in bob's own staging directory, where bob staged nothing.
    let bobs = mapreduce::job_binary::staged_path("bob", sha);
    let text = raw_submit_as(cluster, "bob", spec_running(binary(&bobs), "/user/bob/x"));
    assert!(text.contains("does not exist"), "{text}");
    assert!(!cluster.exists("/user/bob/x"));

    // alice's own binary with bob's private file as a Streaming side file: refused.
    fs.block_on(bob.write_file("/user/bob/secret", b"bob's", false))
        .unwrap();
    fs.block_on(bob.set_permission("/user/bob/secret", 0o600))
        .unwrap();
    let mut spec = spec_running(binary(&alices), "/user/alice/side");
    let params = &mut spec.conf.params;
    params.insert(
        mapreduce::streaming::conf::FILES.into(),
        "/user/bob/secret#s".into(),
    );
    params.insert(
        mapreduce::streaming::conf::FILES_ORIGIN.into(),
        "dfs".into(),
    );
    let text = raw_submit_as(cluster, "alice", spec);
    assert!(
        text.contains("PermissionDenied") && text.contains("/user/bob/secret"),
        "{text}"
    );
    assert!(!cluster.exists("/user/alice/side"));

    // bob made carol's staging directory before carol staged anything: carol's mrjob
    // refuses to stage into it.
    fs.block_on(bob.mkdirs(&mapreduce::job_binary::staging_dir("carol")))
        .unwrap();
    let run = mrjob_as(cluster, &carol_key, &["wordcount", "/in", "/user/carol/wc"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "carol staged into bob's directory");
    assert!(stderr.contains("belongs to bob, not to carol"), "{stderr}");
    // Nor will the jobtracker run what bob planted there for a job of carol's.
    let trojan = mapreduce::job_binary::staged_path("carol", sha);
    fs.block_on(bob.write_file(&trojan, b"#!/bin/sh\n", false))
        .unwrap();
    let text = raw_submit_as(
        cluster,
        "carol",
        spec_running(binary(&trojan), "/user/carol/t"),
    );
    assert!(
        text.contains("PermissionDenied") && text.contains("belongs to bob, not to carol"),
        "{text}"
    );
    assert!(!cluster.exists("/user/carol/t"));

    // Pruning, per user: an old file nobody uses goes; the binary of alice's job that just
    // ended and her newest file stay.
    let alice = dfs_as(cluster, "alice");
    let staged = |name: &str| format!("{}/{name}", mapreduce::job_binary::staging_dir("alice"));
    let (old, newest) = ("1".repeat(64), "2".repeat(64));
    fs.block_on(alice.write_file(&staged(&old), b"old", false))
        .unwrap();
    std::thread::sleep(grace + Duration::from_millis(500));
    fs.block_on(alice.write_file(&staged(&newest), b"new", false))
        .unwrap();
    let run = mrjob_as(
        cluster,
        &alice_key,
        &["wordcount", "/in", "/user/alice/wc2"],
    );
    assert!(
        run.status.success(),
        "alice's second job: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while staged_names(cluster, "alice").contains(&old) {
        assert!(
            std::time::Instant::now() < deadline,
            "the old staged file was not pruned"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut left = staged_names(cluster, "alice");
    left.sort();
    let mut want = vec![newest, sha.clone()];
    want.sort();
    assert_eq!(left, want, "alice's staging after pruning");
}
