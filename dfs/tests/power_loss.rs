//! Simulated power loss of a whole cluster of real `dfs` processes. Every process runs with the
//! power-loss model on (`dfs::power_loss`, one shadow dir each); the test SIGKILLs every process
//! at once while clients are mid-call, rewrites each one's state to what was fsynced (and whose
//! directory entries were fsynced), and restarts them. A SIGKILL alone would not do: the page
//! cache survives it, so an fsync forgotten anywhere would go unnoticed.
//!
//! Each test cuts the power more than once (the model goes on from what survived), some of
//! one node or two at a time, and prints its seed; replay with `SEED=`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use dfs::block_store::replica::replica_paths;
use dfs::client::{CreateOptions, DfsClient};
use dfs::protocol::Block;
use rand::{Rng, SeedableRng};

const LIMIT: Duration = Duration::from_secs(240);
const ROUNDS: usize = 2;

/// Starts every namenode and datanode again after a power loss and waits for the datanodes.
async fn restart_all(cluster: &mut Cluster) {
    for id in cluster.namenode_ids() {
        cluster.start_namenode(id);
    }
    for host in cluster.host_names() {
        cluster.start_datanode(&host);
    }
    let hosts = cluster.host_names().len();
    cluster.must_wait_live(hosts, Duration::from_secs(60)).await;
}

/// Creates files `/r{round}/c{client}/f{n}` until aborted; every create acknowledged is pushed to
/// `acked` before the next one starts.
async fn create_stream(client: DfsClient, round: usize, id: usize, acked: Arc<Mutex<Vec<String>>>) {
    for n in 0.. {
        let path = format!("/r{round}/c{id}/f{n}");
        let Ok(writer) = client.create(&path, CreateOptions::default()).await else {
            continue;
        };
        acked.lock().unwrap().push(path);
        let _ = writer.close().await;
    }
}

// Checks G1: every create acknowledged to a client is in the fsynced log of a majority of
// namenodes, so it survives all three losing power at once, mid-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_power_loss_of_every_namenode() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path(), 3, 1);
        // Some seeds compact the log (snapshot file, WAL rewrite) while creates stream in.
        config.snapshot_every_entries = [20, 10_000][rng.gen_range(0..2)];
        eprintln!("snapshot_every_entries = {}", config.snapshot_every_entries);
        let mut cluster = Cluster::start_with_power_loss(dir, config).await;
        let mut all_acked = Vec::new();
        for round in 0..ROUNDS {
            // A leader must be serving before the clock starts, so every round streams creates.
            must_put(&cluster.client(), &format!("/r{round}/ready"), b"").await;
            let acked = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..4)
                .map(|id| tokio::spawn(create_stream(cluster.client(), round, id, acked.clone())))
                .collect();
            let run_ms = rng.gen_range(500..2_000);
            tokio::time::sleep(Duration::from_millis(run_ms)).await;
            cluster.power_loss();
            for t in &tasks {
                t.abort();
            }
            let acked = std::mem::take(&mut *acked.lock().unwrap());
            eprintln!("round {round}: power lost after {run_ms} ms, {} creates acknowledged", acked.len());
            assert!(!acked.is_empty(), "round {round}: no create was acknowledged in {run_ms} ms");
            all_acked.extend(acked);
            restart_all(&mut cluster).await;
            let client = cluster.client();
            let mut missing = Vec::new();
            for path in &all_acked {
                let exists = client
                    .exists(path)
                    .await
                    .unwrap_or_else(|e| panic!("exists {path}: {e}"));
                if !exists {
                    missing.push(path.clone());
                }
            }
            assert!(
                missing.is_empty(),
                "round {round}: {} of {} acknowledged creates lost after power loss (seed {seed}), e.g. {:?}; logs in {}",
                missing.len(),
                all_acked.len(),
                &missing[..missing.len().min(5)],
                cluster.dir.path().display()
            );
        }
    })
    .await;
}

// Checks G1 and G5 against fsync: namenodes lose power one or two at a time (a follower, the
// leader, or a majority) and come back while creates stream in, so each returns with only what
// it had synced, including its Raft vote; then all three lose power. No acknowledged create is
// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_rolling_namenode_power_losses() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path(), 3, 1);
        config.snapshot_every_entries = [20, 10_000][rng.gen_range(0..2)];
        eprintln!("snapshot_every_entries = {}", config.snapshot_every_entries);
        let mut cluster = Cluster::start_with_power_loss(dir, config).await;
        must_put(&cluster.client(), "/ready", b"").await;
        let acked = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..4)
            .map(|id| tokio::spawn(create_stream(cluster.client(), 0, id, acked.clone())))
            .collect();
        let ids = cluster.namenode_ids();
        for cycle in 0..6 {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1_000))).await;
            let down: Vec<u64> = if rng.gen_range(0..3) == 0 {
                // Two at once: the cluster stops until one returns.
                let keep = ids[rng.gen_range(0..ids.len())];
                ids.iter().copied().filter(|&id| id != keep).collect()
            } else {
                vec![ids[rng.gen_range(0..ids.len())]]
            };
            for &id in &down {
                cluster.power_loss_namenode(id);
            }
            let down_ms = rng.gen_range(100..1_500);
            tokio::time::sleep(Duration::from_millis(down_ms)).await;
            for &id in &down {
                cluster.start_namenode(id);
            }
            let so_far = acked.lock().unwrap().len();
            eprintln!("cycle {cycle}: namenodes {down:?} lost power for {down_ms} ms ({so_far} creates acknowledged)");
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1_000))).await;
        cluster.power_loss();
        for t in &tasks {
            t.abort();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        eprintln!("{} creates acknowledged in all", acked.len());
        assert!(!acked.is_empty(), "no create was acknowledged");
        restart_all(&mut cluster).await;
        let client = cluster.client();
        let mut missing = Vec::new();
        for path in &acked {
            if !client.exists(path).await.unwrap_or_else(|e| panic!("exists {path}: {e}")) {
                missing.push(path.clone());
            }
        }
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged creates lost (seed {seed}), e.g. {:?}; logs in {}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)],
            cluster.dir.path().display()
        );
    })
    .await;
}

/// A file whose close returned Ok: its contents and, when the namenode could still be asked,
/// its blocks as (block, offset in the file).
struct Closed {
    data: Vec<u8>,
    blocks: Option<Vec<(Block, u64)>>,
}

/// Writes files `/r{round}/w{id}/f{n}` of seeded sizes until aborted; every file whose close
/// returned Ok is recorded with its contents and blocks.
async fn write_stream(
    client: DfsClient,
    seed: u64,
    round: usize,
    id: usize,
    closed: Arc<Mutex<BTreeMap<String, Closed>>>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((round as u64) << 32) ^ id as u64);
    for n in 0.. {
        let path = format!("/r{round}/w{id}/f{n}");
        // Empty, sub-chunk, exactly one block, and multi-block files with a ragged tail.
        let len = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..2),
            1 => rng.gen_range(1..2_000),
            2 => BLOCK,
            _ => rng.gen_range(BLOCK..3 * BLOCK + 777),
        };
        let data = seeded_bytes(rng.gen(), len);
        if client.write_file(&path, &data, false).await.is_err() {
            continue;
        }
        // Recorded before asking for the blocks: the power may go during that call.
        closed
            .lock()
            .unwrap()
            .insert(path.clone(), Closed { data, blocks: None });
        if let Ok(located) = client.block_locations(&path).await {
            let blocks = located.blocks.iter().map(|b| (b.block, b.offset_bytes));
            if let Some(c) = closed.lock().unwrap().get_mut(&path) {
                c.blocks = Some(blocks.collect());
            }
        }
    }
}

// Checks G2: every file whose close() returned Ok reads back byte-identical after every
// datanode and namenode lost power at once, mid-write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_files_survive_power_loss_of_every_node() {
    let seed = test_seed();
    bounded(LIMIT, write_and_lose_power(seed, false)).await;
}

// Checks G2 through pipeline recovery: one datanode loses power mid-write and comes back
// (writers rebuild their pipelines around it), then every node loses power at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_files_survive_a_datanode_power_loss_then_power_loss_of_every_node() {
    let seed = test_seed();
    bounded(LIMIT, write_and_lose_power(seed, true)).await;
}

/// Rounds of: two writers stream files, (when `one_outage`, one datanode loses power for a
/// while,) every process loses power at once; then every block of every file closed in the
/// round must be on disk on enough datanodes, and every file closed so far must read back.
async fn write_and_lose_power(seed: u64, one_outage: bool) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), 3, 3);
    let mut cluster = Cluster::start_with_power_loss(dir, config).await;
    let hosts = cluster.host_names();
    // While one datanode is down, a file may close on the other two (G2: min(replication, live)).
    let live_min = hosts.len() - usize::from(one_outage);
    let replicas_min = (cluster.config.replication as usize).min(live_min);
    let mut all_closed = BTreeMap::new();
    for round in 0..ROUNDS {
        let closed = Arc::new(Mutex::new(BTreeMap::new()));
        let tasks: Vec<_> = (0..2)
            .map(|id| {
                tokio::spawn(write_stream(
                    cluster.client(),
                    seed,
                    round,
                    id,
                    closed.clone(),
                ))
            })
            .collect();
        if one_outage {
            let host = &hosts[rng.gen_range(0..hosts.len())];
            let before_ms = rng.gen_range(300..1_500);
            let down_ms = rng.gen_range(500..3_000);
            tokio::time::sleep(Duration::from_millis(before_ms)).await;
            cluster.power_loss_datanode(host);
            tokio::time::sleep(Duration::from_millis(down_ms)).await;
            cluster.start_datanode(host);
            eprintln!("round {round}: {host} lost power after {before_ms} ms for {down_ms} ms");
        }
        let run_ms = rng.gen_range(1_500..4_000);
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        cluster.power_loss();
        for t in &tasks {
            t.abort();
        }
        let closed = std::mem::take(&mut *closed.lock().unwrap());
        eprintln!(
            "round {round}: power lost {run_ms} ms later, {} files closed",
            closed.len()
        );
        assert!(!closed.is_empty(), "round {round}: no file was closed");
        let checked = must_have_replicas_on_disk(&cluster, &closed, replicas_min, seed);
        eprintln!("round {round}: {checked} blocks found on >= {replicas_min} datanodes' disks");
        assert!(checked > 0, "round {round}: no block to check on disk");
        all_closed.extend(closed.into_iter().map(|(path, c)| (path, c.data)));
        restart_all(&mut cluster).await;
        let client = cluster.client();
        for (path, want) in &all_closed {
            let got = must_read(&client, path).await;
            must_equal(
                &got,
                want,
                &format!("{path} after power loss (seed {seed})"),
            );
        }
    }
}

/// Checks on disk, after the power loss and before any restart, that every block of every
/// closed file is on at least `replicas_min` datanodes with exactly the file's bytes (G2's
/// "each fsynced": the disks now hold only what was synced).
/// Returns how many blocks it checked.
fn must_have_replicas_on_disk(
    cluster: &Cluster,
    closed: &BTreeMap<String, Closed>,
    replicas_min: usize,
    seed: u64,
) -> usize {
    let hosts = cluster.host_names();
    let mut checked = 0;
    for (path, c) in closed {
        let Some(blocks) = &c.blocks else { continue };
        for (block, offset) in blocks {
            let start = *offset as usize;
            let expected = &c.data[start..start + block.len_bytes as usize];
            let holders: Vec<&String> = hosts
                .iter()
                .filter(|h| {
                    let (data, meta) =
                        replica_paths(&cluster.data_dir(h), block.id, block.gen_stamp);
                    meta.exists() && std::fs::read(data).is_ok_and(|bytes| bytes == expected)
                })
                .collect();
            assert!(
                holders.len() >= replicas_min,
                "{path} block {} gen {}: on {holders:?} after power loss, want {replicas_min} (seed {seed})",
                block.id,
                block.gen_stamp
            );
            checked += 1;
        }
    }
    checked
}
