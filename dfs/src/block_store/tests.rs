use std::path::Path;

use super::replica::find_local_replica;
use super::*;
use crate::checksum::CHECKSUM_BYTES;

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn write_block(store: &BlockStore, id: u64, gen: u64, data: &[u8]) -> Replica {
    let mut w = store.create(id, gen).unwrap();
    for packet in data.chunks(64 * 1024) {
        let mut crcs = Vec::new();
        checksum::append_crc_bytes(packet, &mut crcs);
        w.append(packet, &crcs).unwrap();
    }
    store.finalize(w).unwrap()
}

fn append_all(w: &mut BlockWriter, data: &[u8]) {
    for packet in data.chunks(64 * 1024) {
        let mut crcs = Vec::new();
        checksum::append_crc_bytes(packet, &mut crcs);
        w.append(packet, &crcs).unwrap();
    }
}

// Checks G2 (lease recovery): a parked partial replica reports its durable length, is cut
// to a length inside a chunk, restamped and finalized, and reads back verified.
#[test]
fn parked_replica_is_cut_restamped_and_finalized() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
    let data = bytes(10_240);
    let mut w = store.create(9, 3).unwrap();
    append_all(&mut w, &data);
    store.park(w);
    assert_eq!(store.parked_count(), 1);
    assert!(store.get(9).is_none(), "a parked replica is never served");
    let reported = store.recovery_replicas(9).unwrap();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].state, ReplicaState::InProgress);
    assert_eq!(reported[0].block.len_bytes, 10_240);
    let from = Block {
        id: 9,
        gen_stamp: 3,
        len_bytes: 5_000, // inside the tenth chunk
    };
    let r = store.recover(from, 7).unwrap();
    assert_eq!((r.gen_stamp, r.len_bytes), (7, 5_000));
    assert_eq!(store.parked_count(), 0);
    store.verify_replica(9).unwrap();
    let got = store
        .open_replica(9)
        .unwrap()
        .read_verified(0, 5_000)
        .unwrap();
    assert_eq!(&got.data[..5_000], &data[..5_000]);
    // Asking again (a retried recovery) is answered with the same replica.
    assert_eq!(store.recover(from, 7).unwrap(), r);
    // Asking for more than a replica holds fails instead of inventing bytes.
    let mut w = store.create(10, 1).unwrap();
    append_all(&mut w, &data[..1000]);
    store.park(w);
    let too_long = Block {
        id: 10,
        gen_stamp: 1,
        len_bytes: 2000,
    };
    assert!(store.recover(too_long, 2).is_err());
}

/// Bytes of `path` in the page cache, from util-linux's `fincore`; `None` without it.
fn cached_bytes(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

// A store that drops written replicas from the page cache still stores them exactly
// (G2); with `fincore` present, the cache is checked too: dropped with the setting on,
// kept with it off.
#[test]
fn dropped_cache_behind_writes_keeps_the_bytes() {
    let data = bytes(4 << 20);
    for drop in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn")
            .unwrap()
            .drop_cache_behind_writes(drop);
        let mut w = store.create(5, 1).unwrap();
        append_all(&mut w, &data[..3 << 20]);
        let behind = w
            .write_behind(1 << 20)
            .expect("3 MiB written since the last");
        assert!(w.write_behind(1 << 20).is_none(), "nothing new since");
        behind.run();
        append_all(&mut w, &data[3 << 20..]);
        let r = store.finalize(w).unwrap();
        assert_eq!(r.len_bytes, data.len() as u64);
        let (path, _) = replica_paths(dir.path(), 5, 1);
        match cached_bytes(&path) {
            Some(cached) if drop => assert_eq!(cached, 0, "dropped after finalize"),
            Some(cached) => assert!(cached > 0, "kept in the cache when not dropping"),
            None => eprintln!("fincore missing: page cache not checked"),
        }
        let got = store.open_replica(5).unwrap();
        let read = got.read_verified(0, data.len() as u64).unwrap();
        assert_eq!(read.data, data);
    }
}

#[test]
fn a_finalized_replica_is_recovered_by_restamping_at_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
    write_block(&store, 6, 2, &bytes(3000));
    let reported = store.recovery_replicas(6).unwrap();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].state, ReplicaState::Finalized);
    let at = |len_bytes| Block {
        id: 6,
        gen_stamp: 2,
        len_bytes,
    };
    assert!(
        store.recover(at(1000), 9).is_err(),
        "no cutting of finalized replicas"
    );
    let r = store.recover(at(3000), 9).unwrap();
    assert_eq!((r.gen_stamp, r.len_bytes), (9, 3000));
    store.verify_replica(6).unwrap();
}

#[test]
fn parked_replicas_go_when_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
    let mut w = store.create(4, 1).unwrap();
    append_all(&mut w, &bytes(3000));
    store.park(w);
    write_block(&store, 4, 2, &bytes(4000));
    assert_eq!(store.parked_count(), 0);
    // A late old-stamp replica is not kept either.
    let mut w = store.create(4, 1).unwrap();
    append_all(&mut w, &bytes(100));
    store.park(w);
    assert_eq!(store.parked_count(), 0);
    assert_eq!(
        store.used_bytes(),
        4000 + HEADER_BYTES as u64 + 8 * CHECKSUM_BYTES as u64
    );
}

#[test]
fn finalize_then_read_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
    let data = bytes(200_000);
    let r = write_block(&store, 5, 1, &data);
    assert_eq!(r.len_bytes, 200_000);
    let files = store.open_replica(5).unwrap();
    for (off, len) in [
        (0, 1),
        (511, 2),
        (1000, 70_000),
        (199_999, 10),
        (0, 200_000),
    ] {
        let got = files.read_verified(off, len).unwrap();
        let skip = (off - got.offset) as usize;
        let want_end = (off + len).min(200_000) as usize;
        let want = &data[off as usize..want_end];
        assert_eq!(&got.data[skip..skip + want.len()], want);
        assert!(got.offset.is_multiple_of(512));
    }
    store.verify_replica(5).unwrap();
}

#[test]
fn bad_packet_checksum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
    let mut w = store.create(1, 1).unwrap();
    let data = bytes(1024);
    let mut crcs = Vec::new();
    checksum::append_crc_bytes(&data, &mut crcs);
    crcs[0] ^= 1;
    assert!(matches!(w.append(&data, &crcs), Err(Error::Corrupt { .. })));
}

// Checks G3: a flipped byte on disk is caught by reads and by the scanner.
#[test]
fn corruption_is_detected_by_read_and_scan() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
    write_block(&store, 9, 2, &bytes(5000));
    write_block(&store, 10, 2, &bytes(5000));
    let (data, _) = replica_paths(dir.path(), 9, 2);
    let mut raw = fs::read(&data).unwrap();
    raw[4321] ^= 0x40;
    fs::write(&data, raw).unwrap();
    let files = store.open_replica(9).unwrap();
    assert!(
        files.read_verified(0, 1000).is_ok(),
        "untouched chunks still read"
    );
    let err = files.read_verified(4000, 1000).unwrap_err();
    assert!(matches!(err, Error::Corrupt { block: 9, .. }), "{err}");
    let bad: Vec<u64> = store.scan(|| {}).iter().map(|r| r.block_id).collect();
    assert_eq!(bad, vec![9]);
}

// Checks G3: garbage appended to a replica's data file (its sidecar now has fewer CRCs than
// the data has chunks) is caught while the datanode runs, by the scanner and by every read,
// even when the appended bytes would fill whole chunks that no CRC covers.
#[test]
fn appended_garbage_is_detected_by_read_and_scan() {
    for garbage_len in [10, 512, 3000] {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
        write_block(&store, 9, 2, &bytes(4096));
        write_block(&store, 10, 2, &bytes(5000));
        let (data, _) = replica_paths(dir.path(), 9, 2);
        let mut f = fs::OpenOptions::new().append(true).open(&data).unwrap();
        std::io::Write::write_all(&mut f, &vec![0xab; garbage_len]).unwrap();
        drop(f);
        let bad: Vec<u64> = store.scan(|| {}).iter().map(|r| r.block_id).collect();
        assert_eq!(bad, vec![9], "{garbage_len} bytes appended");
        let err = store.open_replica(9).unwrap_err();
        assert!(matches!(err, Error::Corrupt { block: 9, .. }), "{err}");
        assert!(err.to_string().contains("sidecar"), "{err}");
        assert!(store.open_replica(10).is_ok());
    }
}

// Checks G2: after a restart, temporary and half-finalized replicas are gone, finalized ones
// are reported, and an older generation is superseded by a newer one.
#[test]
fn restart_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().to_path_buf();
    {
        let store = BlockStore::open(std::slice::from_ref(&vol), "dn").unwrap();
        write_block(&store, 1, 1, &bytes(700));
        write_block(&store, 2, 1, &bytes(0));
        let mut w = store.create(3, 1).unwrap();
        let d = bytes(512);
        let mut crcs = Vec::new();
        checksum::append_crc_bytes(&d, &mut crcs);
        w.append(&d, &crcs).unwrap();
        // Simulate a crash: the writer is leaked, so its tmp file stays.
        std::mem::forget(w);
    }
    // An interrupted finalize (data renamed, sidecar not) and a stale older generation.
    fs::write(replica_paths(&vol, 4, 1).0, b"abc").unwrap();
    let (d, m) = replica_paths(&vol, 1, 1);
    fs::copy(&d, replica_paths(&vol, 1, 0).0).unwrap();
    let mut old_meta = checksum::build_sidecar(1, 0, &bytes(700));
    old_meta.truncate(old_meta.len());
    fs::write(replica_paths(&vol, 1, 0).1, old_meta).unwrap();
    assert!(m.exists());

    let store = BlockStore::open(std::slice::from_ref(&vol), "dn").unwrap();
    let mut ids: Vec<(u64, u64, u64)> = store
        .replicas()
        .iter()
        .map(|r| (r.block_id, r.gen_stamp, r.len_bytes))
        .collect();
    ids.sort();
    assert_eq!(ids, vec![(1, 1, 700), (2, 1, 0)]);
    assert_eq!(fs::read_dir(vol.join("tmp")).unwrap().count(), 0);
    assert!(!replica_paths(&vol, 4, 1).0.exists());
    assert!(!replica_paths(&vol, 1, 0).0.exists());
    store.verify_replica(1).unwrap();
}

// Checks G2: lease recovery re-stamps a replica without ever leaving zero copies, and the
// result survives a restart.
#[test]
fn restamp_keeps_data_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().to_path_buf();
    let data = bytes(3000);
    {
        let store = BlockStore::open(std::slice::from_ref(&vol), "dn").unwrap();
        write_block(&store, 8, 1, &data);
        assert!(
            store.restamp(8, 2, 2999).is_err(),
            "wrong length is refused"
        );
        let r = store.restamp(8, 5, 3000).unwrap();
        assert_eq!((r.gen_stamp, r.len_bytes), (5, 3000));
        assert!(!replica_paths(&vol, 8, 1).0.exists());
    }
    let store = BlockStore::open(std::slice::from_ref(&vol), "dn").unwrap();
    assert_eq!(store.get(8).unwrap().gen_stamp, 5);
    let got = store
        .open_replica(8)
        .unwrap()
        .read_verified(0, 3000)
        .unwrap();
    assert_eq!(got.data, data);
}

#[test]
fn dropped_writer_leaves_nothing_and_delete_works() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
    drop(store.create(1, 1).unwrap());
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    write_block(&store, 2, 1, &bytes(10));
    assert!(find_local_replica(&[dir.path().to_path_buf()], 2, 1).is_some());
    assert!(store.delete(2));
    assert!(!store.delete(2));
    assert!(find_local_replica(&[dir.path().to_path_buf()], 2, 1).is_none());
}
