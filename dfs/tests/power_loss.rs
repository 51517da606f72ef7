//! Simulated power loss of a whole cluster of real `dfs` processes. Every process runs with the
//! power-loss model on (`dfs::power_loss`, one shadow dir each); the test SIGKILLs every process
//! at once while clients are mid-call, rewrites each one's state to what was fsynced (and whose
//! directory entries were fsynced), and restarts them. A SIGKILL alone would not do: the page
//! cache survives it, so an fsync forgotten anywhere would go unnoticed.
//!
//! Each test runs two power losses (the model goes on from what survived the first) and prints
//! its seed; replay with `SEED=`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use dfs::client::{CreateOptions, DfsClient};
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

/// Writes files `/r{round}/w{id}/f{n}` of seeded sizes until aborted; every file whose close
/// returned Ok is recorded with its contents.
async fn write_stream(
    client: DfsClient,
    seed: u64,
    round: usize,
    id: usize,
    closed: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
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
        if client.write_file(&path, &data, false).await.is_ok() {
            closed.lock().unwrap().insert(path, data);
        }
    }
}

// Checks G2: every file whose close() returned Ok reads back byte-identical after every
// datanode and namenode lost power at once, mid-write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_files_survive_power_loss_of_every_node() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(dir.path(), 3, 3);
        let mut cluster = Cluster::start_with_power_loss(dir, config).await;
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
            let run_ms = rng.gen_range(1_500..4_000);
            tokio::time::sleep(Duration::from_millis(run_ms)).await;
            cluster.power_loss();
            for t in &tasks {
                t.abort();
            }
            let closed = std::mem::take(&mut *closed.lock().unwrap());
            eprintln!(
                "round {round}: power lost after {run_ms} ms, {} files closed",
                closed.len()
            );
            assert!(
                !closed.is_empty(),
                "round {round}: no file was closed in {run_ms} ms"
            );
            all_closed.extend(closed);
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
    })
    .await;
}
