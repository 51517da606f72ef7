//! Datanode scenarios: a datanode killed in the middle of a pipeline, a datanode lost for good,
//! a replica corrupted on disk while its datanode is down, and a link that corrupts the bytes
//! one datanode receives from the others. Four worker hosts, three namenode hosts, no
//! MapReduce daemons; files are seeded bytes checked by content.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use cluster_tests::cluster::{Cluster, Daemon, Options};
use cluster_tests::proxy::{LinkFault, Proxy};
use cluster_tests::seed;
use common::{must_be_fully_replicated, must_put, must_read, seeded_bytes};
use dfs::client::CreateOptions;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

static TURN: Mutex<()> = Mutex::new(());

fn dfs_only(name: &str, tweak: impl FnOnce(&mut dfs::config::ClusterConfig) + 'static) -> Cluster {
    Cluster::start(
        name,
        Options {
            hosts: 4,
            mapreduce: false,
            tweak: Box::new(tweak),
            ..Options::default()
        },
    )
}

/// Expected bytes of every block of the given files, by block id.
fn expected_blocks(c: &Cluster, files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<u64, Vec<u8>> {
    let client = c.client();
    let mut out = BTreeMap::new();
    for (path, data) in files {
        let layout = c.block_on(client.block_locations(path)).expect("locations");
        for b in layout.blocks {
            let start = b.offset_bytes as usize;
            let end = start + b.block.len_bytes as usize;
            out.insert(b.block.id, data[start..end].to_vec());
        }
    }
    out
}

/// The block id in `blk_<id>_<gen>.data`.
fn block_id(path: &Path) -> u64 {
    let name = path.file_name().unwrap().to_string_lossy();
    name.trim_start_matches("blk_")
        .split('_')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected block file name {name}"))
}

/// Checks G3 on disk: every finalized replica of these files on every host holds exactly the
/// block's bytes (a corrupt replica that was reported may still wait for deletion: `allow`
/// names such (host, block) pairs).
fn must_store_only_good_replicas(
    c: &Cluster,
    files: &BTreeMap<String, Vec<u8>>,
    allow: &[(String, u64)],
) {
    let want = expected_blocks(c, files);
    let mut checked = 0;
    for host in c.worker_hosts() {
        for f in c.block_files(&host) {
            let id = block_id(&f);
            let Some(bytes) = want.get(&id) else { continue };
            if allow.contains(&(host.clone(), id)) {
                continue;
            }
            let stored = match std::fs::read(&f) {
                Ok(stored) => stored,
                // Deleted since the listing (an excess replica removed): no longer stored.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("reading {}: {e}", f.display()),
            };
            assert!(
                stored == *bytes,
                "G3 violated: {} on {host} differs from the data written",
                f.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no replica was checked");
}

// Checks G2: a datanode in the middle of a write pipeline is SIGKILLed; close() succeeds,
// and at that moment every block has three good replicas on the survivors (the writer brought
// a replacement into the pipeline) and the file reads back exactly.
#[test]
fn datanode_killed_mid_pipeline() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("datanode_killed_mid_pipeline");
    let mut rng = StdRng::seed_from_u64(seed);
    // Blocks of 512 KiB (packets stay 64 KiB at most) so a block's pipeline stays open across
    // many writes and the kill lands in the middle of one.
    let mut c = dfs_only("dn-killed-mid-pipeline", |c| {
        c.block_size_bytes = 512 * 1024
    });
    let client = c.client();
    let data = seeded_bytes(seed, 1_000_000 + rng.gen_range(0..100_000));
    let kill_at = rng.gen_range(100_000..600_000);
    let mut w = c
        .block_on(client.create("/f", CreateOptions::default()))
        .expect("create");
    let mut victim = None;
    for chunk in data.chunks(32 * 1024) {
        c.block_on(w.write(chunk)).expect("write");
        let pipeline = w.pipeline_hosts();
        // Between blocks there is no pipeline yet: the kill waits for the next one.
        if victim.is_none() && w.written_bytes() >= kill_at && !pipeline.is_empty() {
            let host = pipeline[rng.gen_range(0..pipeline.len())].clone();
            eprintln!("killing the datanode of {host} (pipeline {pipeline:?}) at byte {kill_at}");
            c.kill(&Daemon::Datanode(host.clone()));
            victim = Some(host);
        }
    }
    c.block_on(w.close())
        .expect("G2: close after a pipeline node died");
    // G2 at the moment close returns: min(replication, live datanodes) = 3 good replicas,
    // without waiting for background re-replication.
    // The victim may still count as live for the dead-node timeout: it does not count here.
    let victim = victim.unwrap();
    let report = c.block_on(client.fsck("/f")).expect("fsck");
    for b in report.iter().flat_map(|f| &f.blocks) {
        let survivors = b.live.iter().filter(|h| **h != victim).count();
        assert!(
            survivors >= 3,
            "G2 violated: block {} on {:?} right after close (victim {victim})",
            b.block.id,
            b.live
        );
    }
    assert!(
        must_read(&c, &client, "/f") == data,
        "G2 violated: bytes differ"
    );
    let files = BTreeMap::from([("/f".to_string(), data)]);
    must_store_only_good_replicas(&c, &files, &[]);
}

// Checks G4: a datanode is lost for good; every block of every file gets back to three live
// replicas on the remaining hosts, and every file still reads back exactly.
#[test]
fn datanode_lost_for_good() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("datanode_lost_for_good");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = dfs_only("dn-lost", |_| {});
    let client = c.client();
    let mut files = BTreeMap::new();
    for i in 0..6 {
        let data = seeded_bytes(seed + i, rng.gen_range(1..400_000));
        let path = format!("/d/f{i}");
        must_put(&c, &client, &path, &data);
        files.insert(path, data);
    }
    let victim = format!("h{}", rng.gen_range(1..=4));
    assert!(
        !c.block_files(&victim).is_empty(),
        "{victim} holds no replica"
    );
    eprintln!("losing {victim} for good");
    c.kill(&Daemon::Datanode(victim.clone()));
    // Until the namenode declares it dead, its replicas still count.
    common::must_eventually(
        "the lost datanode declared dead",
        Duration::from_secs(20),
        || {
            c.block_on(client.datanode_report())
                .is_ok_and(|r| r.iter().any(|d| d.node.host == victim && !d.live))
        },
    );
    must_be_fully_replicated(&c, "/d", 3, Duration::from_secs(40));
    for (path, data) in &files {
        assert!(
            must_read(&c, &client, path) == *data,
            "G4 violated: {path} differs"
        );
    }
    let report = c.block_on(client.fsck("/d")).unwrap();
    assert!(report
        .iter()
        .flat_map(|f| &f.blocks)
        .all(|b| !b.live.contains(&victim)));
}

// Checks G3: while a datanode is down, one of its block files gets a flipped byte and another
// block's checksum sidecar is damaged. After its restart, reads still return the right bytes,
// the bad replicas are reported and replaced, and no host keeps a bad copy.
#[test]
fn replica_corrupted_on_disk() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("replica_corrupted_on_disk");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = dfs_only("replica-corrupt-disk", |c| c.scanner_interval_ms = 1_000);
    let client = c.client();
    let data = seeded_bytes(seed, 6 * 64 * 1024 + 1234);
    must_put(&c, &client, "/f", &data);
    must_be_fully_replicated(&c, "/f", 3, Duration::from_secs(20));
    let victim = c
        .worker_hosts()
        .into_iter()
        .find(|h| c.block_files(h).len() >= 2)
        .expect("a host with two replicas");
    let blocks = c.block_files(&victim);
    c.kill(&Daemon::Datanode(victim.clone()));
    // A flipped byte in one block's data...
    let target = &blocks[rng.gen_range(0..blocks.len())];
    let mut bytes = std::fs::read(target).unwrap();
    let at = rng.gen_range(0..bytes.len());
    bytes[at] ^= 0x20;
    std::fs::write(target, &bytes).unwrap();
    // ...and a damaged checksum in another block's sidecar (past the header).
    let other = blocks.iter().find(|b| *b != target).unwrap();
    let meta = other.with_extension("meta");
    let mut sidecar = std::fs::read(&meta).unwrap();
    let at = rng.gen_range(dfs::checksum::HEADER_BYTES..sidecar.len());
    sidecar[at] ^= 0x01;
    std::fs::write(&meta, &sidecar).unwrap();
    eprintln!(
        "corrupted {} and {} on {victim}",
        target.display(),
        meta.display()
    );
    c.start_daemon(Daemon::Datanode(victim.clone()));
    c.wait_healthy(4, false, Duration::from_secs(30));
    for _ in 0..5 {
        assert!(
            must_read(&c, &client, "/f") == data,
            "G3 violated: a read returned bad bytes"
        );
    }
    must_be_fully_replicated(&c, "/f", 3, Duration::from_secs(40));
    let files = BTreeMap::from([("/f".to_string(), data)]);
    common::must_eventually(
        "the corrupt replicas are deleted or replaced",
        Duration::from_secs(30),
        || {
            let want = expected_blocks(&c, &files);
            c.block_files(&victim).iter().all(|f| {
                want.get(&block_id(f))
                    .is_none_or(|b| std::fs::read(f).map(|s| s == *b).unwrap_or(true))
            }) && std::fs::read(&meta).map(|b| b != sidecar).unwrap_or(true)
        },
    );
    must_store_only_good_replicas(&c, &files, &[]);
}

// Checks G3: the link into one datanode corrupts bytes (a proxy flips bits in what the other
// datanodes send it: pipeline forwarding and re-replication). Every write still closes, every
// read returns exactly the written bytes, and no host stores a replica that differs from them.
#[test]
fn replica_corrupted_on_the_wire() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("replica_corrupted_on_the_wire");
    let mut rng = StdRng::seed_from_u64(seed);
    let c = dfs_only("replica-corrupt-wire", |_| {});
    if !c.net.has_namespaces() {
        eprintln!(
            "replica_corrupted_on_the_wire: skipped, redirecting links needs network namespaces"
        );
        return;
    }
    let victim = format!("h{}", rng.gen_range(1..=4));
    let target: std::net::SocketAddr = c.config.host(&victim).unwrap().addr.parse().unwrap();
    let listen = std::net::SocketAddr::new(c.net.gateway().into(), 19_000);
    let proxy = c
        .block_on(Proxy::start(listen, target, seed))
        .expect("proxy");
    proxy.set(LinkFault {
        corrupt_every_bytes: 20_000,
        ..LinkFault::default()
    });
    for h in c.worker_hosts().iter().filter(|h| **h != victim) {
        c.net.redirect(h, target, proxy.addr()).unwrap();
    }
    let client = c.client();
    let mut files = BTreeMap::new();
    let flipped = || {
        proxy
            .stats()
            .corruptions
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // At least 8 files, and more until one crossed the link: placement is the namenode's
    // (random, not seeded here), and a file whose pipelines never forward into the victim
    // crosses no corrupting link.
    for i in 0..64 {
        if i >= 8 && flipped() > 0 {
            break;
        }
        let data = seeded_bytes(seed + i, rng.gen_range(100_000..400_000));
        let path = format!("/w/f{i}");
        must_put(&c, &client, &path, &data);
        files.insert(path, data);
    }
    let flips = flipped();
    eprintln!("{flips} bits flipped on the way into {victim}");
    assert!(
        flips > 0,
        "the link into {victim} carried no corrupted byte: the test tested nothing"
    );
    for (path, data) in &files {
        assert!(
            must_read(&c, &client, path) == *data,
            "G3 violated: {path} differs"
        );
    }
    must_store_only_good_replicas(&c, &files, &[]);
    // Once the link is clean again, replication gets back to three everywhere.
    proxy.set(LinkFault::default());
    must_be_fully_replicated(&c, "/w", 3, Duration::from_secs(40));
    must_store_only_good_replicas(&c, &files, &[]);
}
