//! Test bodies shared by the two harnesses: `data_path.rs` runs them on the fake namenode,
//! `cluster.rs` on the real Raft namenodes (STYLE 10: written once, run on two harnesses).

use std::time::{Duration, Instant};

use dfs::client::CreateOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// The file sizes every round trip covers: empty, tiny, around a checksum chunk, around a block.
pub fn round_trip_sizes() -> Vec<usize> {
    vec![0, 1, 511, 512, BLOCK, BLOCK + 1, BLOCK * 7 / 2]
}

// Checks G2: after close, every new reader sees exactly the written bytes, for sizes at the
// chunk and block edges, through the library and through the shell (put/get/cat).
pub async fn round_trip(cluster: &Cluster, seed: u64) {
    let client = cluster.client();
    client.mkdirs("/rt").await.unwrap();
    for (i, len) in round_trip_sizes().into_iter().enumerate() {
        let data = seeded_bytes(seed + i as u64, len);
        let path = format!("/rt/f{len}");
        must_put(&client, &path, &data).await;
        must_equal(&must_read(&client, &path).await, &data, &path);
        let status = client.stat(&path).await.unwrap();
        assert_eq!(status.len_bytes, len as u64, "{path} length");
        // Positional reads across block boundaries.
        if len > BLOCK {
            let mut r = client.open(&path).await.unwrap();
            let at = (BLOCK - 100) as u64;
            let end = (at as usize + 300).min(len);
            let got = r.read_at(at, 300).await.unwrap();
            must_equal(&got, &data[at as usize..end], "positional read");
        }
    }
    // `write_bytes` (the zero-copy path of `dfs put`) mixed with `write`, in pieces that start
    // and end anywhere relative to chunks, packets and blocks.
    let data = seeded_bytes(seed ^ 0x5eed, BLOCK * 3 + 1234);
    let pieces = [1, 511, 70_000, BLOCK - 3, 64 * 1024, 200_000, 5, 4096];
    let mut w = client
        .create("/rt/mixed", CreateOptions::default())
        .await
        .unwrap();
    let (mut at, mut i) = (0, seed as usize);
    while at < data.len() {
        let end = (at + pieces[i % pieces.len()]).min(data.len());
        if i % 2 == 0 {
            let piece = bytes::Bytes::copy_from_slice(&data[at..end]);
            w.write_bytes(piece).await.unwrap();
        } else {
            w.write(&data[at..end]).await.unwrap();
        }
        (at, i) = (end, i + 1);
    }
    w.close().await.unwrap();
    must_equal(&must_read(&client, "/rt/mixed").await, &data, "/rt/mixed");
    // The shell: put a local file, get it back, cat it.
    let local = cluster.dir.path().join("local.bin");
    let data = seeded_bytes(seed ^ 0xabc, BLOCK * 2 + 17);
    std::fs::write(&local, &data).unwrap();
    let out = cluster.dfs(&["put", local.to_str().unwrap(), "/rt/shell.bin"]);
    assert!(
        out.status.success(),
        "put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = cluster.dir.path().join("back.bin");
    let out = cluster.dfs(&["get", "/rt/shell.bin", back.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    must_equal(&std::fs::read(&back).unwrap(), &data, "shell get");
    let out = cluster.dfs(&["cat", "/rt/shell.bin"]);
    assert!(out.status.success());
    must_equal(&out.stdout, &data, "shell cat");
}

// Checks G2 and G4: SIGKILL a datanode of the pipeline in the middle of a write; close still
// succeeds and every reader sees the written bytes.
pub async fn kill_datanode_mid_write(cluster: &mut Cluster, seed: u64) -> (Vec<u8>, String) {
    let client = cluster.client();
    // Blocks of 16 packets, so a pipeline is open with packets in flight when the node dies.
    let block_size = 16 * BLOCK;
    let data = seeded_bytes(seed, block_size * 3 + 1000);
    let path = "/killed-mid-write".to_string();
    let opts = CreateOptions {
        block_size_bytes: Some(block_size as u64),
        ..Default::default()
    };
    let mut w = client.create(&path, opts).await.unwrap();
    // Write into the middle of the second block, then kill the pipeline's middle node.
    w.write(&data[..block_size + block_size / 2]).await.unwrap();
    let pipeline = w.pipeline_hosts();
    assert_eq!(pipeline.len(), 3, "pipeline {pipeline:?}");
    let victim = pipeline[1].clone();
    cluster.kill_datanode(&victim);
    w.write(&data[block_size + block_size / 2..]).await.unwrap();
    w.close().await.unwrap();
    must_equal(
        &must_read(&client, &path).await,
        &data,
        "after pipeline recovery",
    );
    (data, victim)
}

// Checks G3: a flipped byte in one stored replica is never served: reads return the right
// bytes from another replica, and the bad replica is reported.
pub async fn corrupt_one_replica(cluster: &Cluster, seed: u64) -> (String, u64, String) {
    let client = cluster.client();
    let data = seeded_bytes(seed, BLOCK + 5000);
    let path = "/corrupt-one";
    must_put(&client, path, &data).await;
    let blocks = client.block_locations(path).await.unwrap();
    let first = &blocks.blocks[0];
    // Corrupt the replica the reader tries first.
    let victim = first.locations[0].host.clone();
    let file = cluster
        .replica_file(&victim, first.block.id)
        .expect("replica on disk");
    flip_byte(&file, 1234);
    must_equal(
        &must_read(&client, path).await,
        &data,
        "read with one corrupt replica",
    );
    (path.to_string(), first.block.id, victim)
}

// Checks G3: with every replica of a block corrupt, a read fails with a clear error within a
// bounded time instead of returning bad bytes or hanging.
pub async fn corrupt_all_replicas(cluster: &Cluster, seed: u64) {
    let client = cluster.client();
    let data = seeded_bytes(seed, 3000);
    let path = "/corrupt-all";
    must_put(&client, path, &data).await;
    let blocks = client.block_locations(path).await.unwrap();
    let block = &blocks.blocks[0];
    for node in &block.locations {
        let file = cluster
            .replica_file(&node.host, block.block.id)
            .expect("replica on disk");
        flip_byte(&file, 100);
    }
    let started = Instant::now();
    let err = client
        .read_file(path)
        .await
        .expect_err("read of an all-corrupt block must fail");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("corrupt") || msg.contains("checksum"),
        "unclear error: {msg}"
    );
    let out = cluster.dfs(&["cat", path]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "no bytes of a corrupt block reach stdout"
    );
    // A get that fails after creating its output removes it: no partial file is left that
    // looks like a copy. Into a device, the device stays.
    let local = cluster.dir.path().join("corrupt-all.out");
    let out = cluster.dfs(&["get", path, local.to_str().unwrap()]);
    assert!(!out.status.success(), "get of an all-corrupt block failed");
    assert!(
        !local.exists(),
        "partial output {} left behind",
        local.display()
    );
    let out = cluster.dfs(&["get", path, "/dev/null"]);
    assert!(!out.status.success());
    assert!(std::path::Path::new("/dev/null").exists());
}

// Checks G7: garbage, oversized and truncated frames to a datanode get an error or a closed
// connection, and the datanode keeps serving.
pub async fn garbage_to_datanode(cluster: &Cluster, seed: u64) {
    let addr = cluster.config.hosts[0].addr.clone();
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![0xff; 4],                          // 4 GiB announced
        vec![0x80, 0, 0, 0, 1],                 // "negative" length
        vec![0, 0, 0, 100, b'M', 1, 2],         // truncated
        vec![0, 0, 0, 3, b'M', 0xff, 0xff],     // undecodable message
        vec![0, 0, 0, 30, b'P', 0, 0, 0, 0, 0], // packet where a request belongs, truncated
    ];
    inputs.push(seeded_bytes(seed, 4096));
    for bytes in inputs {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(&bytes).await;
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "datanode neither answered nor closed");
    }
    // Still serving: a full round trip through every datanode.
    let client = cluster.client();
    let data = seeded_bytes(seed + 1, 10_000);
    must_put(&client, "/after-garbage", &data).await;
    must_equal(
        &must_read(&client, "/after-garbage").await,
        &data,
        "after garbage",
    );
}

pub fn flip_byte(path: &std::path::Path, at: usize) {
    let mut raw = std::fs::read(path).unwrap();
    let i = at % raw.len();
    raw[i] ^= 0x5a;
    std::fs::write(path, raw).unwrap();
}
