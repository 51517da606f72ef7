//! The data path across processes: datanode processes, the client library and the shell, on
//! the in-process fake namenode, so datanode and client are tested on their own. The same bodies
//! (`common::scenarios`) run on the real Raft namenodes in `cluster.rs`.

mod common;

use std::time::{Duration, Instant};

use common::scenarios::*;
use common::*;
use dfs::client::CreateOptions;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_round_trip() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Fake, 3).await;
        round_trip(&cluster, seed).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_kill_datanode_mid_write() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let mut cluster = Cluster::start(Harness::Fake, 4).await;
        let (_, victim) = kill_datanode_mid_write(&mut cluster, seed).await;
        // Every block written after the kill is on three live datanodes (the fake namenode
        // does not re-replicate the first block, finished before the kill).
        let blocks = cluster
            .client()
            .block_locations("/killed-mid-write")
            .await
            .unwrap();
        for b in &blocks.blocks[1..] {
            let hosts = cluster
                .fake
                .as_ref()
                .unwrap()
                .replica_hosts(b.block.id, b.block.gen_stamp);
            let live: Vec<_> = hosts.iter().filter(|h| **h != victim).collect();
            assert!(live.len() >= 3, "block {} on {hosts:?}", b.block.id);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_corrupt_one_replica() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Fake, 3).await;
        let (_, block, victim) = corrupt_one_replica(&cluster, seed).await;
        let reported = cluster.fake.as_ref().unwrap().corrupt_hosts(block);
        assert!(
            reported.contains(&victim),
            "corrupt replica on {victim} not reported: {reported:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_corrupt_all_replicas() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Fake, 3).await;
        corrupt_all_replicas(&cluster, seed).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_garbage_to_datanode() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Fake, 3).await;
        garbage_to_datanode(&cluster, seed).await;
    })
    .await;
}

// Checks G2: a datanode that hangs (SIGSTOP) while a block's last packets are in flight: the
// block's final ack fails after a timeout, the writer resends the whole block to the other
// nodes, and close returns with the block on three live datanodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_hung_datanode_at_block_end() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Fake, 4).await;
        let client = cluster.client();
        let block_size = 16 * BLOCK;
        let data = seeded_bytes(seed, block_size);
        let opts = CreateOptions {
            block_size_bytes: Some(block_size as u64),
            ..Default::default()
        };
        let mut w = client.create("/hung", opts).await.unwrap();
        w.write(&data[..block_size / 2]).await.unwrap();
        let pipeline = w.pipeline_hosts();
        let victim = pipeline[2].clone();
        cluster.pause_datanode(&victim, false);
        w.write(&data[block_size / 2..]).await.unwrap();
        let closed = w.close().await;
        cluster.pause_datanode(&victim, true);
        closed.unwrap();
        must_equal(
            &must_read(&client, "/hung").await,
            &data,
            "after resending the block",
        );
        let blocks = client.block_locations("/hung").await.unwrap();
        let b = &blocks.blocks[0].block;
        let hosts = cluster
            .fake
            .as_ref()
            .unwrap()
            .replica_hosts(b.id, b.gen_stamp);
        let others: Vec<_> = hosts.iter().filter(|h| **h != victim).collect();
        assert!(others.len() >= 3, "block on {hosts:?}");
        let replacement = cluster
            .host_names()
            .into_iter()
            .find(|h| !pipeline.contains(h))
            .unwrap();
        assert!(
            hosts.contains(&replacement),
            "not resent to {replacement}: {hosts:?}"
        );
    })
    .await;
}

// Checks G3: a client on a host with a replica reads it from disk (short-circuit), verified,
// and still gets the right bytes when that local replica is corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_short_circuit_read() {
    let seed = test_seed();
    bounded(LIMIT, async {
        let cluster = Cluster::start(Harness::Fake, 3).await;
        let data = seeded_bytes(seed, BLOCK / 2);
        must_put(&cluster.client(), "/local", &data).await;
        let host = cluster.host_names()[0].clone();
        let local = cluster.client_on(&host);
        must_equal(
            &must_read(&local, "/local").await,
            &data,
            "short-circuit read",
        );
        let blocks = local.block_locations("/local").await.unwrap();
        let file = cluster
            .replica_file(&host, blocks.blocks[0].block.id)
            .unwrap();
        flip_byte(&file, 77);
        must_equal(
            &must_read(&local, "/local").await,
            &data,
            "short-circuit with corrupt local replica",
        );
    })
    .await;
}

/// Throughput of the data path alone (fake namenode, 3 datanode processes): put and get of
/// `BENCH_MIB` MiB (default 256) with replication 1 and 3, against `cp` + fsync on the same disk.
/// Run: `cargo test --release -p dfs --test data_path bench_put_get -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly in release mode"]
async fn bench_put_get() {
    let mib: usize = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let cluster = Cluster::start(Harness::Fake, 3).await;
    let data = seeded_bytes(1, mib << 20);
    let src = cluster.dir.path().join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let started = Instant::now();
    let dst = cluster.dir.path().join("cp.bin");
    std::fs::copy(&src, &dst).unwrap();
    std::fs::File::open(&dst).unwrap().sync_all().unwrap();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "cp+fsync {mib} MiB: {:.0} MB/s",
        (mib << 20) as f64 / secs / 1e6
    );
    let client = cluster.client();
    for replication in [1u32, 3] {
        let path = format!("/bench-r{replication}");
        let opts = CreateOptions {
            replication: Some(replication),
            block_size_bytes: Some(64 << 20),
            ..Default::default()
        };
        let started = Instant::now();
        let mut w = client.create(&path, opts).await.unwrap();
        for piece in data.chunks(4 << 20) {
            w.write(piece).await.unwrap();
        }
        w.close().await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "put r={replication} {mib} MiB: {:.0} MB/s",
            (mib << 20) as f64 / secs / 1e6
        );
        let started = Instant::now();
        let mut r = client.open(&path).await.unwrap();
        let mut total = 0;
        loop {
            let chunk = r.next_chunk().await.unwrap();
            if chunk.is_empty() {
                break;
            }
            total += chunk.len();
        }
        assert_eq!(total, data.len());
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "get r={replication} {mib} MiB: {:.0} MB/s",
            (mib << 20) as f64 / secs / 1e6
        );
    }
}
