//! The whole filesystem as real processes: three Raft namenodes and 3-4 datanodes on
//! 127.0.0.x / 127.0.1.x, tiny blocks, short timeouts. The data-path bodies (`common::scenarios`)
//! are shared with `data_path.rs`, which runs them on a fake namenode; the tests here add what needs the real
//! namenode: re-replication, replacement of corrupt replicas, restarts.

mod common;

use std::time::{Duration, Instant};

use common::scenarios as data_path;
use common::*;
use dfs::client::DfsClient;

const LIMIT: Duration = Duration::from_secs(150);

/// Waits until every block under `path` has at least `n` live good replicas, none on
/// `not_on`, and no corrupt replica left; panics after `within`.
async fn must_wait_replicated(
    client: &DfsClient,
    path: &str,
    n: usize,
    not_on: Option<&str>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let files = client.fsck(path).await;
        let healthy = files.as_ref().is_ok_and(|files| {
            files.iter().all(|f| {
                f.blocks.iter().all(|b| {
                    let good = b.live.iter().filter(|h| Some(h.as_str()) != not_on).count();
                    good >= n && b.corrupt.is_empty()
                })
            })
        });
        if healthy {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} not back to {n} good replicas within {within:?}: {files:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Checks G2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_round_trip() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Real, 3).await;
        data_path::round_trip(&cluster, seed).await;
    })
    .await;
}

// Checks G2 and G4: a datanode SIGKILLed mid-write; close succeeds with the right bytes, and
// the namenode brings every block back to three live replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_datanode_mid_write() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut cluster = Cluster::start(Harness::Real, 4).await;
        let (data, victim) = data_path::kill_datanode_mid_write(&mut cluster, seed).await;
        let client = cluster.client();
        must_wait_replicated(
            &client,
            "/killed-mid-write",
            3,
            Some(&victim),
            Duration::from_secs(60),
        )
        .await;
        must_equal(
            &must_read(&client, "/killed-mid-write").await,
            &data,
            "after re-replication",
        );
    })
    .await;
}

// Checks G4: SIGKILL a datanode holding replicas; every block returns to three live replicas
// and the file reads back intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_datanode_holding_replicas() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut cluster = Cluster::start(Harness::Real, 4).await;
        let client = cluster.client();
        let data = seeded_bytes(seed, BLOCK * 5 + 123);
        must_put(&client, "/held", &data).await;
        let blocks = client.block_locations("/held").await.unwrap();
        let victim = blocks.blocks[0].locations[0].host.clone();
        cluster.kill_datanode(&victim);
        must_wait_replicated(&client, "/held", 3, Some(&victim), Duration::from_secs(60)).await;
        must_equal(
            &must_read(&client, "/held").await,
            &data,
            "after losing a datanode",
        );
    })
    .await;
}

// Checks G3: a flipped byte in a stored replica: reads return the right bytes, the replica is
// reported, and the namenode replaces it with a good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replica_is_replaced() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Real, 4).await;
        let (path, block, victim) = data_path::corrupt_one_replica(&cluster, seed).await;
        let client = cluster.client();
        must_wait_replicated(&client, &path, 3, None, Duration::from_secs(60)).await;
        // The corrupt copy is gone from disk (deleted, or replaced by a good one).
        let data = must_read(&client, &path).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let on_disk = cluster
                .replica_file(&victim, block)
                .map(|f| std::fs::read(f).unwrap());
            match on_disk {
                None => break,
                Some(bytes) if bytes == data[..bytes.len().min(data.len())] => break,
                Some(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "corrupt replica of block {block} still on {victim}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

// Checks G3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_all_replicas_fails_cleanly() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Real, 3).await;
        data_path::corrupt_all_replicas(&cluster, seed).await;
    })
    .await;
}

// Checks G7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_to_datanode() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Real, 3).await;
        data_path::garbage_to_datanode(&cluster, seed).await;
        forged_reports_are_refused(&cluster).await;
    })
    .await;
}

/// Checks G7 and G8: replica reports are refused by every namenode and leave no trace when
/// they come from a host that never registered, from a member speaking for another host, or
/// from a user (issue 14: 3 M forged replicas grew a namenode to 2 GB).
async fn forged_reports_are_refused(cluster: &Cluster) {
    use dfs::auth::{names, Credentials};
    let authority = cluster.config.secrets.authority().unwrap();
    let as_forged_host = authority.member_credentials(&names::datanode("forged-host"));
    forged_report(cluster, as_forged_host, dfs::ErrorKind::NotFound).await;
    let as_other_host = authority.member_credentials(&names::datanode("host1"));
    forged_report(cluster, as_other_host, dfs::ErrorKind::PermissionDenied).await;
    let as_user = Credentials::user("mallory", authority.user_key("mallory"));
    forged_report(cluster, as_user, dfs::ErrorKind::PermissionDenied).await;
}

async fn forged_report(
    cluster: &Cluster,
    credentials: dfs::auth::Credentials,
    refused_as: dfs::ErrorKind,
) {
    use dfs::protocol::{Block, ReplicaState, ReportedReplica, Request, Response};
    let replicas: Vec<ReportedReplica> = (0..10_000u64)
        .map(|i| ReportedReplica {
            block: Block {
                id: 1 << 40 | i,
                gen_stamp: 1,
                len_bytes: 1,
            },
            state: ReplicaState::Finalized,
        })
        .collect();
    let nn = dfs::rpc::NamenodeClient::with_addrs(
        cluster.config.namenode_addrs(),
        Ok(credentials),
        Duration::from_secs(2),
        Duration::from_secs(10),
    );
    let forged = Request::BlockReport {
        host: "forged-host".into(),
        replicas,
    };
    for (id, reply) in nn.call_each(forged).await {
        let err = reply.expect_err("a forged report must fail");
        assert_eq!(err.kind(), refused_as, "namenode {id}: {err}");
    }
    let Response::Datanodes(nodes) = nn.call(Request::DatanodeReport).await.unwrap() else {
        panic!("a datanode report");
    };
    assert!(
        nodes.iter().all(|n| n.node.host != "forged-host"),
        "{nodes:?}"
    );
}

// Checks G1 and G2: SIGKILL every namenode and datanode, restart them all, and every file and
// directory written before is there with the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_everything() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut cluster = Cluster::start(Harness::Real, 3).await;
        let client = cluster.client();
        client.mkdirs("/keep/deep/dir").await.unwrap();
        let mut files = Vec::new();
        for (i, len) in [0, 700, BLOCK * 2 + 5].into_iter().enumerate() {
            let data = seeded_bytes(seed + i as u64, len);
            let path = format!("/keep/f{i}");
            must_put(&client, &path, &data).await;
            files.push((path, data));
        }
        cluster.kill_all();
        for id in cluster.namenode_ids() {
            cluster.start_namenode(id);
        }
        for h in cluster.host_names() {
            cluster.start_datanode(&h);
        }
        cluster.must_wait_live(3, Duration::from_secs(30)).await;
        let client = cluster.client();
        assert!(client.exists("/keep/deep/dir").await.unwrap());
        for (path, data) in &files {
            must_equal(&must_read(&client, path).await, data, path);
        }
        let out = cluster.dfs(&["fsck", "/keep"]);
        assert!(
            out.status.success(),
            "fsck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    })
    .await;
}

// Checks G7: the shell gives one-line errors and non-zero exit codes for bad input, and its
// listing, stat, du, mv, rm and report work against a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_commands() {
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Real, 3).await;
        let ok = |args: &[&str]| {
            let out = cluster.dfs(args);
            assert!(
                out.status.success(),
                "dfs {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let fails = |args: &[&str]| {
            let out = cluster.dfs(args);
            assert!(!out.status.success(), "dfs {args:?} should fail");
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(
                err.trim().lines().count(),
                1,
                "one-line error for {args:?}: {err}"
            );
            err
        };
        let local = cluster.dir.path().join("tree");
        std::fs::create_dir_all(local.join("sub")).unwrap();
        std::fs::write(local.join("a.txt"), b"hello\n").unwrap();
        std::fs::write(local.join("sub/b.txt"), b"world\n").unwrap();
        ok(&["mkdir", "/up"]);
        ok(&["put", local.to_str().unwrap(), "/up"]);
        assert_eq!(
            ok(&["cat", "/up/tree/a.txt", "/up/tree/sub/b.txt"]),
            "hello\nworld\n"
        );
        let listing = ok(&["ls", "-R", "/up"]);
        assert!(listing.contains("/up/tree/sub/b.txt"), "{listing}");
        ok(&["mv", "/up/tree/a.txt", "/up/a2.txt"]);
        assert!(ok(&["stat", "/up/a2.txt"]).contains("length: 6"));
        assert!(ok(&["du", "-s", "/up"]).starts_with("12 "));
        fails(&["rm", "/up/tree"]);
        ok(&["rm", "-r", "/up/tree"]);
        fails(&["cat", "/up/tree/sub/b.txt"]);
        // A relative path is under the working directory, and the error says which path.
        let home = dfs::path::working_dir();
        assert!(fails(&["ls", "relative/path"]).contains(&format!("{home}/relative/path")));
        fails(&["ls", "dfs://10.9.9.9:1/x"]);
        let back = cluster.dir.path().join("back");
        std::fs::create_dir_all(&back).unwrap();
        ok(&["get", "/up", back.to_str().unwrap()]);
        assert_eq!(std::fs::read(back.join("up/a2.txt")).unwrap(), b"hello\n");
        let report = ok(&["report"]);
        assert!(
            report.contains("Leader") && report.contains("3 live"),
            "{report}"
        );
        assert!(
            report.contains("capacity") && report.contains("remaining"),
            "datanodes' space in the report: {report}"
        );
        ok(&["setrep", "-w", "2", "/up/a2.txt"]);
        assert!(ok(&["fsck", "/up", "--blocks"]).contains("HEALTHY"));
        // A factor above the 3 live datanodes cannot be reached: -w says so and fails, within
        // a bound (it used to wait forever without a word).
        let started = Instant::now();
        let err = fails(&["setrep", "-w", "5", "/up/a2.txt"]);
        assert!(
            err.contains("cannot be reached with 3 live datanodes"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        must_put_like_the_readme(&cluster);
        check_hadoop_habits(&cluster);
        check_relative_paths(&cluster);
        check_closed_stdout(&cluster);
        check_web_login(&cluster);
    })
    .await;
}

/// `dfs web PATH` prints a login URL for a namenode's pages; visiting it sets an HttpOnly,
/// SameSite=Strict session cookie and redirects to PATH in the file browser, without the
/// token (the login itself is checked in examples' web tests, G8).
fn check_web_login(cluster: &Cluster) {
    use std::io::{Read, Write};
    let url = must_dfs(cluster, &["web", "/up"]);
    let rest = url.trim().strip_prefix("http://").expect("an http URL");
    let (addr, path) = rest.split_at(rest.find('/').expect("a path"));
    let namenode_pages: Vec<String> = cluster
        .config
        .namenodes
        .iter()
        .map(|n| n.web_addr())
        .collect();
    assert!(namenode_pages.iter().any(|a| a == addr), "{url}");
    assert!(
        path.starts_with("/login?token=") && path.ends_with("&next=/browse%3Fpath%3D/up"),
        "{url}"
    );
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let head = answer.split("\r\n\r\n").next().unwrap().to_lowercase();
    assert!(head.starts_with("http/1.1 303"), "{answer}");
    assert!(
        head.lines()
            .any(|l| l.trim() == "location: /browse?path=/up"),
        "{answer}"
    );
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: mrjob_session="));
    let cookie = cookie.unwrap_or_else(|| panic!("no session cookie: {answer}"));
    assert!(
        cookie.contains("httponly") && cookie.contains("samesite=strict"),
        "{cookie}"
    );
}

/// The README's dfs sequence, run as written (relative local names, `MRJOB_CONF`) on a
/// filesystem without `/data`: `put big.bin /data/` makes `/data` a directory (it once made
/// a file named `/data`, and `get /data/big.bin` then failed). Also `put`'s other destination
/// rules: several sources need a directory, and a trailing '/' after a file is an error.
fn must_put_like_the_readme(cluster: &Cluster) {
    let work = cluster.dir.path().join("readme");
    std::fs::create_dir_all(&work).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(work.join("big.bin"), &big).unwrap();
    std::fs::write(work.join("notes.txt"), b"hello dfs\n").unwrap();
    let dfs = |args: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dfs"))
            .current_dir(&work)
            .env("MRJOB_CONF", &cluster.conf_path)
            .args(args.split(' '))
            .output()
            .expect("run dfs");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            err,
        )
    };
    let ok = |args: &str| {
        let (success, out, err) = dfs(args);
        assert!(success, "dfs {args}: {err}");
        out
    };
    ok("put big.bin /data/");
    ok("put notes.txt /data/");
    ok("get /data/big.bin copy.bin");
    assert_eq!(std::fs::read(work.join("copy.bin")).unwrap(), big);
    assert_eq!(ok("cat /data/notes.txt"), "hello dfs\n");
    ok("mv /data/notes.txt /data/readme.txt");
    assert!(ok("stat /data/readme.txt").contains("length: 10"));
    let (success, _, err) = dfs("put big.bin notes.txt /nodir");
    assert!(
        !success && err.contains("/nodir") && err.contains("directory"),
        "{err}"
    );
    let (success, _, err) = dfs("put notes.txt /data/big.bin/");
    assert!(!success && err.contains("is a file"), "{err}");
    ok("put -f big.bin notes.txt /data");
    assert!(ok("ls /data").contains("/data/notes.txt"));
    ok("rm -r /data");
}

/// Runs `dfs ARGS` and returns its stdout; panics if it fails.
fn must_dfs(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.dfs(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dfs {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ls -h`, `du -h`, `du -v`, `ls`'s `Found N items`, block sizes with units, `put`'s usage.
fn check_hadoop_habits(cluster: &Cluster) {
    let local = cluster.dir.path().join("two-k.bin");
    std::fs::write(&local, vec![7u8; 2048]).unwrap();
    let src = local.to_str().unwrap();
    must_dfs(cluster, &["mkdir", "/habits"]);
    must_dfs(
        cluster,
        &["put", "--block-size-bytes", "128KiB", src, "/habits/k"],
    );
    assert!(must_dfs(cluster, &["stat", "/habits/k"]).contains("block size: 131072"));
    must_dfs(
        cluster,
        &["put", "--block-size-bytes", "65536", src, "/habits/raw"],
    );
    assert!(must_dfs(cluster, &["stat", "/habits/raw"]).contains("block size: 65536"));
    let listing = must_dfs(cluster, &["ls", "-h", "/habits"]);
    assert!(listing.starts_with("Found 2 items\n"), "{listing}");
    assert!(
        listing.contains(" 2.0KiB ") && listing.contains("/habits/k"),
        "{listing}"
    );
    assert!(must_dfs(cluster, &["ls", "/habits/k"]).contains(" 2048 "));
    let du = must_dfs(cluster, &["du", "-s", "-h", "-v", "/habits"]);
    let lines: Vec<&str> = du.lines().collect();
    assert!(
        lines[0].starts_with("SIZE ") && lines[0].ends_with("PATH"),
        "{du}"
    );
    // 4 KiB of data, 3 replicas each.
    assert!(
        lines[1].starts_with("4.0KiB ") && lines[1].contains(" 12.0KiB "),
        "{du}"
    );
    let help = must_dfs(cluster, &["du", "--help"]);
    assert!(help.contains("-h, --human-readable"), "{help}");
    let help = must_dfs(cluster, &["put", "--help"]);
    assert!(help.contains("<SRC>... <DST>"), "{help}");
    let bad = cluster.dfs(&["put", "--block-size-bytes", "12XB", src, "/habits/x"]);
    assert_eq!(bad.status.code(), Some(2));
    let help = must_dfs(cluster, &["--help"]);
    assert!(
        help.contains("/user/NAME") && help.contains("Found N items"),
        "{help}"
    );
}

/// Relative paths are under `/user/NAME`, as in Hadoop.
fn check_relative_paths(cluster: &Cluster) {
    let home = dfs::path::working_dir();
    let local = cluster.dir.path().join("rel.txt");
    std::fs::write(&local, b"relative\n").unwrap();
    must_dfs(cluster, &["mkdir", "rel"]);
    must_dfs(cluster, &["put", local.to_str().unwrap(), "rel/r.txt"]);
    let stat = must_dfs(cluster, &["stat", &format!("{home}/rel/r.txt")]);
    assert!(stat.contains("length: 9"), "{stat}");
    assert_eq!(
        must_dfs(cluster, &["cat", "./rel/../rel/r.txt"]),
        "relative\n"
    );
    let listing = must_dfs(cluster, &["ls", "rel"]);
    assert!(listing.contains(&format!("{home}/rel/r.txt")), "{listing}");
    must_dfs(cluster, &["rm", "-r", "rel"]);
    assert!(!cluster
        .dfs(&["stat", &format!("{home}/rel")])
        .status
        .success());
}

/// `dfs cat BIG | head`: the reader goes away after a few bytes; dfs ends quietly with
/// status 0, as any shell tool.
fn check_closed_stdout(cluster: &Cluster) {
    use std::io::Read;
    // Far more than a pipe holds (64 KiB), so dfs is still writing when the reader goes.
    let local = cluster.dir.path().join("big.bin");
    std::fs::write(&local, seeded_bytes(test_seed(), 2 << 20)).unwrap();
    must_dfs(cluster, &["put", local.to_str().unwrap(), "/big.bin"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dfs"))
        .arg("--conf")
        .arg(&cluster.conf_path)
        .args(["cat", "/big.bin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The read end is closed here, as `head` does after its lines.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
    // `println!` to a reader that is gone before the first line (stat prints after its RPC).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dfs"))
        .arg("--conf")
        .arg(&cluster.conf_path)
        .args(["stat", "/big.bin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}

// Checks G3: the background scanner finds a corrupt replica nobody reads; the namenode
// replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanner_reports_unread_corruption() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path(), 3, 4);
        config.scanner_interval_ms = 1_000;
        let cluster = Cluster::start_with(Harness::Real, dir, config).await;
        let client = cluster.client();
        let data = seeded_bytes(seed, 5000);
        must_put(&client, "/scanned", &data).await;
        let blocks = client.block_locations("/scanned").await.unwrap();
        let block = blocks.blocks[0].block.id;
        let victim = blocks.blocks[0].locations[0].host.clone();
        let file = cluster.replica_file(&victim, block).unwrap();
        data_path::flip_byte(&file, 4000);
        // No read: only the scanner can notice. Wait for the namenode to see it as corrupt,
        // then for the replica to be replaced.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let files = client.fsck("/scanned").await.unwrap();
            if files[0].blocks[0].corrupt.contains(&victim) {
                break;
            }
            let gone = cluster.replica_file(&victim, block).is_none();
            if gone {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "scanner never reported the corrupt replica"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        must_wait_replicated(&client, "/scanned", 3, None, Duration::from_secs(60)).await;
        must_equal(
            &must_read(&client, "/scanned").await,
            &data,
            "after scanner repair",
        );
    })
    .await;
}

// Checks G3's "replaced" where every host already holds the block (3 datanodes, replication
// 3): one replica with a flipped byte and, in another file, one with garbage appended to its
// data file, neither read by anyone. The scanner reports both, the namenode copies a good
// replica over each corrupt one on its own host, and each victim's file ends byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replicas_are_replaced_when_every_host_holds_the_block() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path(), 3, 3);
        config.scanner_interval_ms = 1_000;
        assert_eq!(config.replication, 3);
        let cluster = Cluster::start_with(Harness::Real, dir, config).await;
        let client = cluster.client();
        let mut victims = Vec::new();
        for (i, path) in ["/flipped", "/appended"].into_iter().enumerate() {
            let data = seeded_bytes(seed.wrapping_add(i as u64), 5000);
            must_put(&client, path, &data).await;
            let blocks = client.block_locations(path).await.unwrap();
            let block = blocks.blocks[0].block.id;
            assert_eq!(blocks.blocks[0].locations.len(), 3, "{path} on every host");
            let victim = blocks.blocks[0].locations[i].host.clone();
            let file = cluster.replica_file(&victim, block).unwrap();
            if i == 0 {
                data_path::flip_byte(&file, 4000);
            } else {
                let mut raw = std::fs::read(&file).unwrap();
                raw.extend_from_slice(&[0xab; 1500]);
                std::fs::write(&file, raw).unwrap();
            }
            victims.push((path, data, block, victim));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for (path, data, block, victim) in &victims {
            loop {
                let on_disk = cluster.replica_file(victim, *block).map(std::fs::read);
                if matches!(&on_disk, Some(Ok(bytes)) if bytes == data) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{path}: the corrupt replica on {victim} was never replaced"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            must_wait_replicated(&client, path, 3, None, Duration::from_secs(30)).await;
            must_equal(&must_read(&client, path).await, data, "after repair");
        }
    })
    .await;
}

/// Asserts that right now every block of `path` has at least `n` good replicas (finalized,
/// current stamp, exact length, as the namenode's fsck sees them) on hosts other than `not_on`,
/// and that each of those replica files on disk has the block's length.
async fn must_have_replicas_now(
    cluster: &Cluster,
    client: &DfsClient,
    path: &str,
    n: usize,
    not_on: &str,
) {
    let files = client.fsck(path).await.unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    for b in &files[0].blocks {
        let good: Vec<&String> = b.live.iter().filter(|h| h.as_str() != not_on).collect();
        assert!(
            good.len() >= n,
            "block {} has {} good replicas besides {not_on} right after close, want >= {n}: {b:?}",
            b.block.id,
            good.len()
        );
        // On disk too: at least `n` of them, each of the block's length. A replica listed
        // above may be gone by now if it was an excess one (a leader that lost its pipeline
        // records copies instead of waiting), so absence alone is not counted against G2.
        let mut on_disk = 0;
        for host in good {
            let Some(file) = cluster.replica_file(host, b.block.id) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            assert_eq!(meta.len(), b.block.len_bytes, "replica length on {host}");
            on_disk += 1;
        }
        assert!(
            on_disk >= n,
            "block {} is on {on_disk} disks right after close, want >= {n}",
            b.block.id
        );
    }
}

/// Writes `data` as a file of 16-packet blocks and SIGKILLs the middle node of the pipeline
/// in the middle of the second block; returns the victim and how long `close` took.
async fn write_killing_mid_pipeline(
    cluster: &mut Cluster,
    client: &DfsClient,
    path: &str,
    data: &[u8],
    block_size: usize,
) -> (String, Duration) {
    let opts = dfs::client::CreateOptions {
        block_size_bytes: Some(block_size as u64),
        ..Default::default()
    };
    let mut w = client.create(path, opts).await.unwrap();
    let cut = block_size + block_size / 2;
    w.write(&data[..cut]).await.unwrap();
    let pipeline = w.pipeline_hosts();
    assert_eq!(pipeline.len(), 3, "pipeline {pipeline:?}");
    let victim = pipeline[1].clone();
    cluster.kill_datanode(&victim);
    w.write(&data[cut..]).await.unwrap();
    let started = Instant::now();
    w.close()
        .await
        .unwrap_or_else(|e| panic!("close after killing {victim}: {e}"));
    (victim, started.elapsed())
}

// Checks G2: with 4 datanodes and replication 3, a datanode SIGKILLed mid-pipeline. `close`
// returns Ok and, right after it (no waiting for background re-replication), every block has
// three good replicas on the surviving datanodes, including the blocks the victim held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_pipeline_failure_has_full_replication() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut cluster = Cluster::start(Harness::Real, 4).await;
        let client = cluster.client();
        let block_size = 16 * BLOCK;
        let data = seeded_bytes(seed, block_size * 3 + 1000);
        let path = "/g2-full-width";
        let (victim, _) =
            write_killing_mid_pipeline(&mut cluster, &client, path, &data, block_size).await;
        must_have_replicas_now(&cluster, &client, path, 3, &victim).await;
        must_equal(&must_read(&client, path).await, &data, "after close");
    })
    .await;
}

// Checks G2: with only 3 datanodes and one SIGKILLed mid-write, min(replication, live) is 2:
// `close` returns Ok promptly (it does not wait for the dead-node timeout or hang) with every
// block on both survivors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_fewer_live_datanodes_than_replication() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut cluster = Cluster::start(Harness::Real, 3).await;
        let client = cluster.client();
        let block_size = 16 * BLOCK;
        let data = seeded_bytes(seed, block_size * 2 + 3000);
        let path = "/g2-narrow";
        let (victim, took) =
            write_killing_mid_pipeline(&mut cluster, &client, path, &data, block_size).await;
        assert!(took < Duration::from_secs(15), "close took {took:?}");
        must_have_replicas_now(&cluster, &client, path, 2, &victim).await;
        must_equal(&must_read(&client, path).await, &data, "after close");
    })
    .await;
}

/// A cluster whose leases expire fast: soft limit 1 s, hard limit 3 s.
async fn short_lease_cluster(hosts: usize) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), 3, hosts);
    config.lease_soft_limit_ms = 1_000;
    config.lease_hard_limit_ms = 3_000;
    Cluster::start_with(Harness::Real, dir, config).await
}

/// Waits until the namenode recovered the lease of `path` (closed it), then checks that it
/// kept at least `acked` bytes, at most `written`, and reads exactly `data`'s prefix of that
/// length; finally that the recovered blocks return to three replicas.
async fn must_recover_at_acked_length(
    cluster: &Cluster,
    path: &str,
    data: &[u8],
    acked: usize,
    written: usize,
) {
    let client = cluster.client();
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        let s = client.stat(path).await.unwrap();
        if !s.under_construction {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still under construction after the lease limit"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let len = status.len_bytes as usize;
    assert!(
        len >= acked && len <= written,
        "recovered length {len}, acknowledged {acked}, written {written}"
    );
    must_equal(
        &must_read(&client, path).await,
        &data[..len],
        "recovered file",
    );
    must_wait_replicated(&client, path, 3, None, Duration::from_secs(30)).await;
    must_equal(
        &must_read(&client, path).await,
        &data[..len],
        "recovered file after re-replication",
    );
}

// Checks G2: a writer that hflushed N bytes and then crashed (its writer dropped without
// close: connections cut, no more lease renewals). After the hard lease limit the namenode
// recovers the file: closed, with at least the N acknowledged bytes, exactly the written
// prefix readable, and the last block brought back to full replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_writer_is_closed_at_its_acknowledged_length() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = short_lease_cluster(3).await;
        let data = seeded_bytes(seed, BLOCK * 4);
        // Two and a half blocks, chunk-aligned so hflush sends all of it.
        let acked_target = BLOCK * 2 + BLOCK / 2;
        let written = acked_target + BLOCK; // the rest may or may not survive
        let path = "/crashed-writer";
        {
            let writer_client = cluster.client();
            let mut w = writer_client
                .create(path, Default::default())
                .await
                .unwrap();
            w.write(&data[..acked_target]).await.unwrap();
            let acked = w.hflush().await.unwrap();
            assert_eq!(acked, acked_target as u64);
            w.write(&data[acked_target..written]).await.unwrap();
            drop(w); // The crash: no close.
        }
        must_recover_at_acked_length(&cluster, path, &data, acked_target, written).await;
    })
    .await;
}

// Checks G2: the writer crashes after a pipeline rebuild, so the last block exists under two
// generation stamps (the old pipeline's survivors, parked, and the resend to the new
// pipeline). Recovery keeps a length of at least what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_writer_after_pipeline_rebuild_keeps_acknowledged_bytes() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut cluster = short_lease_cluster(4).await;
        let block_size = 16 * BLOCK;
        let data = seeded_bytes(seed, block_size * 3);
        let path = "/crashed-after-rebuild";
        let cut = block_size + block_size / 2;
        let acked_target = cut + block_size / 4;
        let written = acked_target + 3 * BLOCK;
        {
            let writer_client = cluster.client();
            let opts = dfs::client::CreateOptions {
                block_size_bytes: Some(block_size as u64),
                ..Default::default()
            };
            let mut w = writer_client.create(path, opts).await.unwrap();
            w.write(&data[..cut]).await.unwrap();
            let pipeline = w.pipeline_hosts();
            cluster.kill_datanode(&pipeline[1]);
            w.write(&data[cut..acked_target]).await.unwrap();
            let acked = w.hflush().await.unwrap();
            assert_eq!(acked, acked_target as u64);
            w.write(&data[acked_target..written]).await.unwrap();
            drop(w);
        }
        must_recover_at_acked_length(&cluster, path, &data, acked_target, written).await;
    })
    .await;
}

// `dfs report` counts block bytes: after a put, every datanode reports non-zero used bytes
// (replica data plus checksum sidecars).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_shows_used_bytes() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Real, 3).await;
        let client = cluster.client();
        must_put(&client, "/used", &seeded_bytes(seed, BLOCK + 777)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = cluster.dfs(&["report"]);
            assert!(out.status.success());
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let used: Vec<&str> = text
                .lines()
                .filter_map(|l| l.split(" used ").nth(1))
                .filter_map(|rest| rest.split_whitespace().next())
                .collect();
            assert_eq!(used.len(), 3, "{text}");
            if used.iter().all(|u| *u != "0.0B") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "datanodes still report nothing used: {text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// `dfs ARGS`, its exit status and stderr.
fn dfs_cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dfs"))
        .args(args)
        .env_remove("MRJOB_CONF")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dfs cluster start` laid out by `--base-addr/--base-port`: a second start says the cluster
/// already runs, a second cluster on the same addresses fails at once naming the taken one
/// and starts nothing, and `cluster stop` finds the cluster from `--conf`.
#[test]
fn cluster_start_twice_on_taken_ports_and_stop_by_conf() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = port_base().to_string();
    let start = |dir: &std::path::Path| {
        let dir = dir.to_str().unwrap().to_owned();
        let args = ["cluster", "start", "--hosts", "1", "--base-port", &port];
        dfs_cli(&[&args[..], &["--base-addr", "127.0.8.0", "--dir", &dir]].concat())
    };
    let (ok, stderr) = start(a.path());
    let conf = a.path().join("cluster.toml");
    let conf = conf.to_str().unwrap();
    // Stops the cluster even when an assertion below fails.
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            dfs_cli(&["--conf", &self.0, "cluster", "stop"]);
        }
    }
    let _stop = Stop(conf.to_owned());
    assert!(ok, "{stderr}");
    assert!(stderr.contains("cluster is up"), "{stderr}");

    let (ok, stderr) = start(a.path());
    assert!(ok, "{stderr}");
    assert!(stderr.contains("is already running"), "{stderr}");
    assert!(!stderr.contains("started"), "{stderr}");

    let t0 = Instant::now();
    let (ok, stderr) = start(b.path());
    assert!(!ok, "{stderr}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(stderr.contains(&format!("127.0.8.1:{port}")), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    let left = std::fs::read_dir(b.path().join("pids")).map_or(0, |d| d.count());
    assert_eq!(left, 0, "the failed start left pid files");

    let (ok, stderr) = dfs_cli(&["--conf", conf, "cluster", "stop"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("stopped 4 processes"), "{stderr}");
}
