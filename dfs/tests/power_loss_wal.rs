//! The write-ahead log under the power-loss model, in one process: its own test binary, because
//! the model is switched on for the whole process by `DFS_TEST_POWER_LOSS_DIR`, read once.

use std::path::Path;

use dfs::power_loss;
use dfs::wal::Wal;

fn record(i: usize) -> Vec<u8> {
    format!("record {i:04} of the namenode's log").into_bytes()
}

fn append(wal: &mut Wal, i: usize) {
    wal.append(&[&record(i)]).unwrap();
}

fn reopen(dir: &Path) -> Vec<Vec<u8>> {
    Wal::open(dir, SEGMENT_BYTES).unwrap().1
}

/// Small, so the log rolls over several segments.
const SEGMENT_BYTES: u64 = 300;

// Checks G1 (what the namenode acknowledges is in its fsynced log): in a log created fresh,
// records synced by `Wal::sync` and by an off-thread `SegmentSync` survive a power loss, across
// segment rolls; a record flushed after the `SegmentSync` was taken does not. Before the log's
// directory and first segment were created durably, the whole log was lost here.
#[test]
fn synced_records_of_a_fresh_log_survive_power_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let shadow = tmp.path().join("shadow");
    let root = tmp.path().join("meta");
    // The only test in this binary: nothing has read the variable yet.
    std::env::set_var(power_loss::ENV_VAR, &shadow);
    power_loss::register_root(&root).unwrap();
    let dir = root.join("wal");

    let (mut wal, got) = Wal::open(&dir, SEGMENT_BYTES).unwrap();
    assert!(got.is_empty());
    for i in 0..19 {
        append(&mut wal, i);
        if i % 3 == 0 {
            wal.sync().unwrap();
        }
    }
    // Records 14 to 20 share the third segment (seven 41-byte records fit in 300 bytes).
    append(&mut wal, 19);
    let covers_19 = wal.flush_for_sync().unwrap();
    // Flushed into the same file, but after the sync above was asked for: not covered by it.
    append(&mut wal, 20);
    let _never_run = wal.flush_for_sync().unwrap();
    std::thread::spawn(move || covers_19.sync_data())
        .join()
        .unwrap()
        .unwrap();
    drop(wal);

    power_loss::materialize(&shadow).unwrap();
    let want: Vec<Vec<u8>> = (0..=19).map(record).collect();
    assert_eq!(reopen(&dir), want);

    // The model goes on from what survived: a second power loss keeps the new synced record and
    // drops the unsynced one (in a fourth segment whose name alone was made durable).
    let (mut wal, _) = Wal::open(&dir, SEGMENT_BYTES).unwrap();
    append(&mut wal, 20);
    wal.sync().unwrap();
    append(&mut wal, 21);
    drop(wal);
    power_loss::materialize(&shadow).unwrap();
    let want: Vec<Vec<u8>> = (0..=20).map(record).collect();
    assert_eq!(reopen(&dir), want);
}
