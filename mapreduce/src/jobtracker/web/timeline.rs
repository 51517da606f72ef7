//! The job page's timeline: the attempts per host as bars on a time axis, an SVG drawn by the
//! server (pure, from the attempt rows; no script, no asset).
//!
//! Each host gets as many lanes as it ran attempts at once (its slots in use), so bars never
//! hide each other. Colour says kind and end: maps blue, reduces purple, failed red, killed or
//! lost grey, running orange. Each bar's tooltip names the attempt, host, state and duration.

use std::collections::BTreeMap;

use maud::{html, Markup};

use crate::jobtracker::history::{AttemptRow, AttemptState};
use crate::scheduler::TaskKind;

/// Width of the host-name column.
const LABEL_PX: f64 = 110.0;
/// Width of the time axis.
const PLOT_PX: f64 = 860.0;
/// Height of one lane.
const LANE_PX: f64 = 16.0;
/// Height of the axis below the lanes.
const AXIS_PX: f64 = 22.0;

/// Per row of `rows`, its host's position among the hosts (sorted by name) and its lane
/// within the host: the first lane free at its start, in start order.
pub fn lanes(rows: &[AttemptRow], now_unix_ms: u64) -> Vec<(usize, usize)> {
    let hosts: BTreeMap<&str, usize> = rows
        .iter()
        .map(|r| r.host.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, h)| (h, i))
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].start_unix_ms);
    // Per host, when each lane becomes free.
    let mut free_at: Vec<Vec<u64>> = vec![Vec::new(); hosts.len()];
    let mut out = vec![(0, 0); rows.len()];
    for i in order {
        let r = &rows[i];
        let host = hosts[r.host.as_str()];
        let end = r.end_unix_ms.unwrap_or(now_unix_ms).max(r.start_unix_ms);
        let lanes = &mut free_at[host];
        let lane = match lanes.iter().position(|&t| t <= r.start_unix_ms) {
            Some(l) => l,
            None => {
                lanes.push(0);
                lanes.len() - 1
            }
        };
        lanes[lane] = end;
        out[i] = (host, lane);
    }
    out
}

fn colour(r: &AttemptRow) -> &'static str {
    match (r.state, r.kind) {
        (AttemptState::Failed, _) => "#d9534f",
        (AttemptState::Killed | AttemptState::Lost, _) => "#aaaaaa",
        (AttemptState::Running, _) => "#f0ad4e",
        (AttemptState::Succeeded, TaskKind::Map) => "#4a90d9",
        (AttemptState::Succeeded, TaskKind::Reduce) => "#8e44ad",
    }
}

/// The timeline of `rows` up to `now_unix_ms`, as an inline `<svg>` element.
pub fn svg(rows: &[AttemptRow], now_unix_ms: u64) -> Markup {
    let placed = lanes(rows, now_unix_ms);
    let t0 = rows.iter().map(|r| r.start_unix_ms).min().unwrap_or(0);
    let t1 = rows
        .iter()
        .map(|r| r.end_unix_ms.unwrap_or(now_unix_ms))
        .max()
        .unwrap_or(t0);
    let span_ms = (t1.saturating_sub(t0)).max(1) as f64;
    // Lanes per host, and the first lane of each host on the picture.
    let mut host_lanes: BTreeMap<usize, (usize, &str)> = BTreeMap::new();
    for (r, &(h, lane)) in rows.iter().zip(&placed) {
        let e = host_lanes.entry(h).or_insert((0, r.host.as_str()));
        e.0 = e.0.max(lane + 1);
    }
    let mut first_lane = BTreeMap::new();
    let mut total = 0;
    for (h, (n, _)) in &host_lanes {
        first_lane.insert(*h, total);
        total += n;
    }
    let height = total as f64 * LANE_PX + AXIS_PX;
    let x = |t: u64| LABEL_PX + (t.saturating_sub(t0)) as f64 / span_ms * PLOT_PX;
    html! {
        svg #timeline xmlns="http://www.w3.org/2000/svg" width=(LABEL_PX + PLOT_PX + 10.0) height=(height)
            role="img" {
            @for (h, (_, name)) in &host_lanes {
                text x="2" y=(first_lane[h] as f64 * LANE_PX + 12.0) font-size="11" { (name) }
            }
            @for (r, (h, lane)) in rows.iter().zip(&placed) {
                @let y = (first_lane[h] + lane) as f64 * LANE_PX + 1.0;
                @let x0 = x(r.start_unix_ms);
                @let w = (x(r.end_unix_ms.unwrap_or(now_unix_ms)) - x0).max(1.0);
                rect.attempt x=(format!("{x0:.1}")) y=(y) width=(format!("{w:.1}")) height=(LANE_PX - 2.0) fill=(colour(r)) {
                    title { (r.attempt) " on " (r.host) ": " (format!("{:?}", r.state)) ", " (format!("{:.1} s", r.duration_ms(now_unix_ms) as f64 / 1000.0)) }
                }
            }
            line x1=(LABEL_PX) y1=(height - AXIS_PX + 2.0) x2=(LABEL_PX + PLOT_PX) y2=(height - AXIS_PX + 2.0) stroke="#444" {}
            text x=(LABEL_PX) y=(height - 4.0) font-size="11" { "0 s" }
            text x=(LABEL_PX + PLOT_PX - 40.0) y=(height - 4.0) font-size="11" { (format!("{:.1} s", span_ms / 1000.0)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::history::History;
    use crate::scheduler::{AttemptId, Locality, TaskId};

    fn history() -> History {
        let mut h = History::default();
        let a = |kind, index| AttemptId {
            task: TaskId {
                job: 1,
                kind,
                index,
            },
            attempt: 0,
        };
        // host1 runs two maps at once, then a reduce after the first ends.
        h.launched(a(TaskKind::Map, 0), "host1", Locality::DataLocal, 1_000);
        h.launched(a(TaskKind::Map, 1), "host1", Locality::DataLocal, 1_100);
        h.launched(a(TaskKind::Map, 2), "<b>host0</b>", Locality::Other, 1_000);
        h.succeeded(a(TaskKind::Map, 0), &Default::default(), 2_000);
        h.launched(a(TaskKind::Reduce, 0), "host1", Locality::Other, 2_000);
        h.failed(a(TaskKind::Map, 2), "boom", 1_500);
        h
    }

    #[test]
    fn overlapping_attempts_of_a_host_get_their_own_lanes() {
        let h = history();
        let placed = lanes(h.rows(), 3_000);
        // Hosts sort by name: "<b>host0</b>" before "host1".
        assert_eq!(placed, vec![(1, 0), (1, 1), (0, 0), (1, 0)]);
    }

    #[test]
    fn the_svg_has_a_bar_per_attempt_with_escaped_names() {
        let h = history();
        let svg = svg(h.rows(), 3_000).into_string();
        assert_eq!(svg.matches("<rect class=\"attempt\"").count(), 4, "{svg}");
        assert!(svg.contains("&lt;b&gt;host0&lt;/b&gt;"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(
            svg.contains("fill=\"#d9534f\""),
            "the failed map is red: {svg}"
        );
        assert!(
            svg.contains("fill=\"#f0ad4e\""),
            "the running reduce is orange: {svg}"
        );
        // Three lanes (two on host1, one on host0) plus the axis.
        assert!(
            svg.contains(&format!("height=\"{}\"", 3.0 * LANE_PX + AXIS_PX)),
            "{svg}"
        );
        assert!(svg.contains("2.0 s"), "the axis spans 1000..3000 ms: {svg}");
    }
}
