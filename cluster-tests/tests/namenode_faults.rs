//! Namenode scenarios: the Raft leader killed, isolated in a minority, paused. Each one runs
//! three namenode hosts and three datanode hosts (no MapReduce daemons) and checks a history:
//! every namespace operation acknowledged to a client is there afterwards, and an isolated old
//! leader answers nothing.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_tests::cluster::{Cluster, Daemon, Options};
use cluster_tests::seed;
use dfs::client::CreateOptions;
use dfs::protocol::RaftRole;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One cluster at a time: this machine has two cores.
static TURN: Mutex<()> = Mutex::new(());

fn dfs_only(name: &str) -> Cluster {
    Cluster::start(
        name,
        Options {
            hosts: 3,
            mapreduce: false,
            ..Options::default()
        },
    )
}

/// Clients creating (create + close) empty files under `/c` until `stop`; returns the paths
/// whose create was acknowledged and every path attempted.
fn create_stream(
    c: &Cluster,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Vec<String>, Vec<String>)>> {
    (0..clients)
        .map(|k| {
            let client = c.client();
            let stop = stop.clone();
            c.spawn(async move {
                let (mut acked, mut tried) = (Vec::new(), Vec::new());
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/c/k{k}-{i}");
                    i += 1;
                    tried.push(path.clone());
                    let done = match client.create(&path, CreateOptions::default()).await {
                        Ok(w) => w.close().await,
                        Err(e) => Err(e),
                    };
                    match done {
                        Ok(()) => acked.push(path),
                        // Unknown outcome (a timeout while the leader died): it may or
                        // may not exist, and both are fine.
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                (acked, tried)
            })
        })
        .collect()
}

/// Asserts the creates history: every acknowledged path exists, nothing unattempted does.
fn must_hold_history(c: &Cluster, acked: &[String], tried: &[String]) {
    let client = c.client();
    let listed: BTreeSet<String> = c
        .block_on(client.list("/c"))
        .expect("list /c")
        .into_iter()
        .map(|s| s.path)
        .collect();
    let tried: BTreeSet<&String> = tried.iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|p| !listed.contains(*p)).collect();
    assert!(
        lost.is_empty(),
        "G1 violated: acknowledged creates lost: {lost:?}"
    );
    let invented: Vec<&String> = listed.iter().filter(|p| !tried.contains(p)).collect();
    assert!(invented.is_empty(), "files nobody created: {invented:?}");
}

fn join_all(
    c: &Cluster,
    handles: Vec<tokio::task::JoinHandle<(Vec<String>, Vec<String>)>>,
) -> (Vec<String>, Vec<String>) {
    let (mut acked, mut tried) = (Vec::new(), Vec::new());
    for h in handles {
        let (a, t) = c.block_on(h).unwrap();
        acked.extend(a);
        tried.extend(t);
    }
    (acked, tried)
}

/// Waits until namenode `id` has applied (almost) everything the current leader committed,
/// and, with `follower`, follows it.
fn must_catch_up(c: &Cluster, id: u64, follower: bool, what: &str) {
    common::must_eventually(what, Duration::from_secs(20), || {
        let st = c.block_on(c.client().namenode_statuses());
        let get = |id| {
            st.iter()
                .find(|(i, _)| *i == id)
                .and_then(|(_, s)| s.as_ref().ok())
        };
        match (get(id), c.leader().and_then(get)) {
            (Some(o), Some(l)) => {
                (!follower || o.role == RaftRole::Follower)
                    && o.applied_index >= l.commit_index.saturating_sub(2)
            }
            _ => false,
        }
    });
}

// Checks G1 and G5: the leader is SIGKILLed in the middle of a stream of creates from four
// clients; a new leader answers within seconds, and every acknowledged create survives (also
// after the old leader is restarted and has caught up).
#[test]
fn leader_killed_during_creates() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("leader_killed_during_creates");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = dfs_only("leader-killed");
    let leader = c.must_leader(Duration::from_secs(20));
    let stop = Arc::new(AtomicBool::new(false));
    let handles = create_stream(&c, 4, stop.clone());
    std::thread::sleep(Duration::from_millis(rng.gen_range(500..2_000)));
    c.kill(&Daemon::Namenode(leader));
    let killed_at = Instant::now();
    let new_leader = c.must_leader(Duration::from_secs(15));
    let failover = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    eprintln!("new leader {new_leader} {failover:?} after killing {leader}");
    std::thread::sleep(Duration::from_millis(rng.gen_range(500..1_500)));
    c.start_daemon(Daemon::Namenode(leader));
    std::thread::sleep(Duration::from_millis(1_000));
    stop.store(true, Ordering::Relaxed);
    let (acked, tried) = join_all(&c, handles);
    assert!(
        acked.len() > 20,
        "only {} creates acknowledged",
        acked.len()
    );
    must_hold_history(&c, &acked, &tried);
    // The restarted node catches up: its applied index reaches the leader's commit index.
    must_catch_up(&c, leader, false, "restarted namenode catches up");
}

// Checks G5: the leader is cut off from the other two namenodes (clients can still reach it).
// It serves nothing — neither a read nor a write through it succeeds — while a new leader takes
// over the majority side; after healing, the old leader follows and catches up.
#[test]
fn leader_isolated_in_minority() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("leader_isolated_in_minority");
    let c = dfs_only("leader-isolated");
    if !c.net.has_namespaces() {
        eprintln!("leader_isolated_in_minority: skipped, partitions need network namespaces");
        return;
    }
    let old = c.must_leader(Duration::from_secs(20));
    let client = c.client();
    c.block_on(client.mkdirs("/before")).unwrap();
    let old_host = format!("nn{old}");
    let others: Vec<String> = (1..=3)
        .filter(|i| *i != old)
        .map(|i| format!("nn{i}"))
        .collect();
    let others: Vec<&str> = others.iter().map(String::as_str).collect();
    c.net.partition(&[&old_host], &others).unwrap();
    let cut_at = Instant::now();
    // A new leader on the majority side within seconds (the old one may still believe it leads
    // until check_quorum makes it step down, but no majority follows it).
    common::must_eventually(
        "a new leader on the majority side",
        Duration::from_secs(15),
        || c.leader().is_some_and(|l| l != old),
    );
    eprintln!(
        "new leader {:?} after {:?} (seed {seed})",
        c.leader(),
        cut_at.elapsed()
    );
    c.block_on(client.mkdirs("/after"))
        .expect("write through the new leader");
    // The isolated node: a write must not be acknowledged, a read must not be answered (it
    // would be stale: /after is missing there).
    let isolated = c.client_of_namenode(old);
    let write = c.block_on(isolated.mkdirs("/from-old-leader"));
    assert!(
        write.is_err(),
        "G5 violated: the isolated old leader acknowledged a write"
    );
    let read = c.block_on(isolated.stat("/after"));
    assert!(
        read.is_err(),
        "G5 violated: the isolated old leader answered a read: {read:?}"
    );
    let exists = c.block_on(isolated.exists("/before"));
    assert!(
        exists.is_err(),
        "G5 violated: the isolated old leader answered a read: {exists:?}"
    );
    c.net.heal().unwrap();
    must_catch_up(
        &c,
        old,
        true,
        "old leader rejoins as a follower and catches up",
    );
    assert!(c.block_on(client.exists("/after")).unwrap());
    assert!(
        !c.block_on(client.exists("/from-old-leader")).unwrap(),
        "a write the old leader never acknowledged must not appear after healing either"
    );
}

// Checks G5 and G1: the leader is SIGSTOPped past the election timeout while clients create
// files, then resumed. A new leader serves in the meantime, the resumed node steps down and
// catches up, and every acknowledged create is there.
#[test]
fn leader_paused_past_election_timeout() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("leader_paused_past_election_timeout");
    let mut rng = StdRng::seed_from_u64(seed);
    let c = dfs_only("leader-paused");
    let old = c.must_leader(Duration::from_secs(20));
    let stop = Arc::new(AtomicBool::new(false));
    let handles = create_stream(&c, 3, stop.clone());
    std::thread::sleep(Duration::from_millis(rng.gen_range(300..1_000)));
    c.pause(&Daemon::Namenode(old), true);
    common::must_eventually(
        "a new leader while the old one is paused",
        Duration::from_secs(15),
        || c.leader().is_some_and(|l| l != old),
    );
    std::thread::sleep(Duration::from_millis(rng.gen_range(1_000..2_500)));
    c.pause(&Daemon::Namenode(old), false);
    std::thread::sleep(Duration::from_millis(1_500));
    stop.store(true, Ordering::Relaxed);
    let (acked, tried) = join_all(&c, handles);
    assert!(
        acked.len() > 20,
        "only {} creates acknowledged",
        acked.len()
    );
    must_hold_history(&c, &acked, &tried);
    must_catch_up(&c, old, false, "resumed node follows and catches up");
}

// Checks G5 with an asymmetric partition: the followers' packets to the leader are dropped,
// while the leader's still reach them (its heartbeats arrive, their answers do not). The
// leader must step down rather than go on acknowledging, the majority must elect a leader and
// serve writes within seconds, and after healing one leader remains with every write.
#[test]
fn one_way_cut_to_the_leader() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let _seed = seed("one_way_cut_to_the_leader");
    let c = dfs_only("one-way-cut");
    if !c.net.has_namespaces() {
        eprintln!("one_way_cut_to_the_leader: skipped, cuts need network namespaces");
        return;
    }
    let old = c.must_leader(Duration::from_secs(20));
    let client = c.client();
    c.block_on(client.mkdirs("/before")).unwrap();
    let old_host = format!("nn{old}");
    for i in (1..=3).filter(|i| *i != old) {
        c.net.cut(&format!("nn{i}"), &old_host).unwrap();
    }
    let cut_at = Instant::now();
    // A write must be acknowledged within seconds, by whichever leader has a majority.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.block_on(client.mkdirs("/during")) {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no write acknowledged during the cut: {e}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    eprintln!("write acknowledged {:?} after the cut", cut_at.elapsed());
    // The old leader hears nobody: it must not acknowledge anything on its own.
    let alone = c.client_of_namenode(old);
    assert!(
        c.block_on(alone.mkdirs("/from-cut-leader")).is_err(),
        "G5 violated: a leader that hears no follower acknowledged a write"
    );
    c.net.heal().unwrap();
    let leader = c.must_leader(Duration::from_secs(20));
    eprintln!("leader {leader} after healing (was {old})");
    for p in ["/before", "/during"] {
        assert!(c.block_on(client.exists(p)).unwrap(), "{p} lost");
    }
    assert!(!c.block_on(client.exists("/from-cut-leader")).unwrap());
}
