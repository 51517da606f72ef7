//! How the shell prints what the namenode answers: `ls` lines, times, `fsck` lines.

use crate::namenode::permission::mode_string;
use crate::protocol::{BlockHealth, FileKind, FileStatus, FsckFile};
use crate::units::SizeFormat;

/// Counts over an fsck run, for its summary line.
#[derive(Default)]
pub(super) struct FsckTotals {
    pub(super) blocks: u64,
    pub(super) missing: u64,
    pub(super) corrupt: u64,
    pub(super) under: u64,
}

pub(super) fn fsck_lines(f: &FsckFile, all_blocks: bool, totals: &mut FsckTotals) -> Vec<String> {
    let mut lines = Vec::new();
    let mut bad = 0;
    for (i, b) in f.blocks.iter().enumerate() {
        totals.blocks += 1;
        let health = BlockHealth::of(b, f.replication);
        match health {
            BlockHealth::Missing => totals.missing += 1,
            BlockHealth::CorruptReplica => totals.corrupt += 1,
            BlockHealth::UnderReplicated => totals.under += 1,
            BlockHealth::Ok => {}
        }
        let state = health.word();
        if state != "OK" {
            bad += 1;
        }
        if all_blocks || state != "OK" {
            lines.push(format!(
                "  block {i} id {} gen {} len {}: {state} live {}/{} [{}]{}",
                b.block.id,
                b.block.gen_stamp,
                b.block.len_bytes,
                b.live.len(),
                f.replication,
                b.live.join(","),
                if b.corrupt.is_empty() {
                    String::new()
                } else {
                    format!(" corrupt [{}]", b.corrupt.join(","))
                }
            ));
        }
    }
    let verdict = if bad == 0 { "OK" } else { "UNHEALTHY" };
    lines.insert(
        0,
        format!(
            "{}: {} block(s), replication {}: {verdict}",
            f.path,
            f.blocks.len(),
            f.replication
        ),
    );
    lines
}

/// One `ls` line, as `hadoop fs -ls` prints it: kind and mode, replication, owner, group,
/// size, time, path.
pub(super) fn format_status(s: &FileStatus, size: SizeFormat) -> String {
    let (kind, rep) = match s.kind {
        FileKind::Dir => ("d", "-".to_string()),
        FileKind::File => ("-", s.replication.to_string()),
    };
    let uc = if s.under_construction { " (open)" } else { "" };
    format!(
        "{kind}{} {rep:>3} {} {} {:>14} {} {}{uc}",
        mode_string(s.mode),
        s.owner,
        s.group,
        size.show(s.len_bytes),
        format_time(s.mtime_ms),
        s.path
    )
}

/// `YYYY-MM-DD HH:MM` in UTC, without a date crate.
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil-from-days (Howard Hinnant's algorithm), for dates after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}
