//! The namenode pages as HTML, from the data their JSON twins send (pure; maud escapes every
//! name and message).

use maud::{html, Markup};

use super::{Browse, Fsck, Overview, Summary};
use crate::http::page::{bytes, query_value, secs};
use crate::protocol::{DatanodeStatus, FileKind, FileStatus};

/// The overview: Raft status, the namenodes, the summary, the datanodes.
pub fn overview(o: &Overview) -> Markup {
    let s = &o.status;
    html! {
        h2 { "Raft" }
        table {
            tr { th { "role" } td #role { (format!("{:?}", s.role)) } }
            tr { th { "term" } td.n { (s.term) } }
            tr { th { "commit index" } td.n { (s.commit_index) } }
            tr { th { "applied index" } td.n { (s.applied_index) } }
            tr { th { "snapshot index" } td.n { (s.snapshot_index) } }
            tr { th { "leader" } td {
                @match o.namenodes.iter().find(|n| n.leader) {
                    Some(l) => a #leader href=(l.url) { "namenode " (l.id) },
                    None => "none known (an election may be under way)",
                }
            } }
        }
        h2 { "Namenodes" }
        table {
            tr { th { "id" } th { "address" } th { "page" } th { "" } }
            @for n in &o.namenodes {
                tr {
                    td { (n.id) }
                    td { (n.addr) }
                    td { a href=(n.url) { (n.url) } }
                    td { @if n.leader { "leader " } @if n.this { "(this page)" } }
                }
            }
        }
        h2 { "Summary" }
        @match &o.summary {
            Some(sum) => (summary(sum, true)),
            None => p { (o.summary_unavailable.as_deref().unwrap_or("")) },
        }
        @if o.summary_age_ms > 0 {
            p { "File and block counts from " (crate::http::page::secs(o.summary_age_ms)) " ago." }
        }
        h2 { "Datanodes" }
        (datanodes(&o.datanodes))
    }
}

/// The summary table; `with_space` adds the datanodes' capacity rows.
pub fn summary(s: &Summary, with_space: bool) -> Markup {
    let class = if s.state == "HEALTHY" { "good" } else { "bad" };
    html! {
        table #summary {
            @if with_space {
                tr { th { "capacity" } td.n { (bytes(s.capacity_bytes)) } }
                tr { th { "used" } td.n { (bytes(s.used_bytes)) } }
                tr { th { "remaining" } td.n { (bytes(s.remaining_bytes)) } }
                tr { th { "datanodes live / dead" } td.n { (s.live_datanodes) " / " (s.dead_datanodes) } }
            }
            tr { th { "files" } td.n { (s.files) } }
            tr { th { "blocks" } td.n { (s.blocks) } }
            tr { th { "under-replicated blocks" } td.n { (s.under_replicated) } }
            tr { th { "blocks with corrupt replicas" } td.n { (s.corrupt) } }
            tr { th { "missing blocks" } td.n { (s.missing) } }
            tr { th { "state" } td class=(class) { (s.state) } }
        }
    }
}

fn datanodes(nodes: &[DatanodeStatus]) -> Markup {
    html! {
        table #datanodes {
            tr {
                th { "host" } th { "address" } th { "rack" } th { "state" } th { "last heartbeat" }
                th { "blocks" } th { "used" } th { "capacity" } th { "transfers" }
                th { "failed scans" }
            }
            @for d in nodes {
                tr.datanode {
                    td { (d.node.host) }
                    td { (d.node.addr) }
                    td { (d.node.rack) }
                    @if d.live { td.good { "live" } } @else { td.bad { "dead" } }
                    td.n {
                        @if d.last_heartbeat_ago_ms == u64::MAX { "never" }
                        @else { (secs(d.last_heartbeat_ago_ms)) " ago" }
                    }
                    td.n { (d.blocks) }
                    td.n { (bytes(d.usage.used_bytes)) }
                    td.n { (bytes(d.usage.capacity_bytes)) }
                    td.n { (d.usage.active_transfers) }
                    td.n { (d.usage.failed_scans) }
                }
            }
        }
    }
}

fn browse_link(path: &str) -> String {
    format!("/browse?path={}", query_value(path))
}

/// The parent of an absolute path (`/` for `/` itself).
fn parent(path: &str) -> &str {
    match path.trim_end_matches('/').rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// A directory's entries, or a file's blocks.
pub fn browse(b: &Browse) -> Markup {
    html! {
        p { a href=(browse_link(parent(&b.path))) { "up" } " · " a href=(format!("/fsck?path={}", query_value(&b.path))) { "fsck this path" } }
        @match b.status.kind {
            FileKind::Dir => (entries(&b.entries)),
            FileKind::File => (file(b)),
        }
    }
}

fn entries(list: &[FileStatus]) -> Markup {
    html! {
        table #entries {
            tr { th { "name" } th { "kind" } th { "size" } th { "replication" } th { "blocks / entries" } }
            @for e in list {
                tr {
                    td { a href=(browse_link(&e.path)) { (e.path.rsplit('/').next().unwrap_or(&e.path)) } }
                    td { @match e.kind { FileKind::Dir => "dir", FileKind::File => "file" } }
                    td.n { (bytes(e.len_bytes)) }
                    td.n { (e.replication) }
                    td.n { (e.count) }
                }
            }
        }
    }
}

fn file(b: &Browse) -> Markup {
    let s = &b.status;
    html! {
        p {
            (bytes(s.len_bytes)) ", replication " (s.replication) ", block size " (bytes(s.block_size_bytes))
            @if s.under_construction { ", being written" }
        }
        table #blocks {
            tr { th { "#" } th { "block" } th { "generation" } th { "offset" } th { "length" } th { "replicas" } th { "corrupt" } }
            @for (i, lb) in b.blocks.iter().enumerate() {
                tr {
                    td.n { (i) }
                    td.n { (lb.block.id) }
                    td.n { (lb.block.gen_stamp) }
                    td.n { (lb.offset_bytes) }
                    td.n { (lb.block.len_bytes) }
                    td { (lb.locations.iter().map(|d| d.host.as_str()).collect::<Vec<_>>().join(", ")) }
                    td.bad { (lb.corrupt.iter().map(|d| d.host.as_str()).collect::<Vec<_>>().join(", ")) }
                }
            }
        }
    }
}

/// Block health under a path, and the unhealthy blocks.
pub fn fsck(f: &Fsck) -> Markup {
    html! {
        (summary(&f.summary, false))
        @if f.problems.is_empty() {
            p { "No unhealthy block." }
        } @else {
            table #problems {
                tr { th { "file" } th { "#" } th { "block" } th { "generation" } th { "health" } th { "live" } th { "corrupt" } }
                @for p in &f.problems {
                    tr {
                        td { a href=(browse_link(&p.path)) { (p.path) } }
                        td.n { (p.index) }
                        td.n { (p.block_id) }
                        td.n { (p.gen_stamp) }
                        td.bad { (p.health.word()) }
                        td { (p.live.len()) "/" (p.replication) " " (p.live.join(", ")) }
                        td { (p.corrupt.join(", ")) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{NamenodeStatus, RaftRole};

    #[test]
    fn parents_of_paths() {
        assert_eq!(parent("/"), "/");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a/b/"), "/a");
    }

    #[test]
    fn the_overview_escapes_names_and_links_the_leader() {
        let o = Overview {
            status: NamenodeStatus {
                id: 2,
                role: RaftRole::Follower,
                term: 7,
                leader_id: 1,
                commit_index: 40,
                applied_index: 39,
                snapshot_index: 0,
                inodes: 3,
                cluster_id: String::new(),
            },
            namenodes: vec![super::super::NamenodeLink {
                id: 1,
                addr: "127.0.0.1:8020".into(),
                url: "http://127.0.0.1:9871/".into(),
                leader: true,
                this: false,
            }],
            summary: None,
            summary_unavailable: Some("<not the leader>".into()),
            summary_age_ms: 0,
            datanodes: vec![crate::protocol::DatanodeStatus {
                node: crate::protocol::DatanodeRef {
                    host: "h<1>".into(),
                    addr: "127.0.1.1:9866".into(),
                    rack: "/r1".into(),
                },
                live: true,
                last_heartbeat_ago_ms: 200,
                usage: crate::protocol::DatanodeUsage {
                    failed_scans: 31337,
                    ..Default::default()
                },
                blocks: 5,
            }],
        };
        let html = overview(&o).into_string();
        assert!(html.contains("<td id=\"role\">Follower</td>"), "{html}");
        assert!(
            html.contains("<a id=\"leader\" href=\"http://127.0.0.1:9871/\">namenode 1</a>"),
            "{html}"
        );
        assert!(html.contains("&lt;not the leader&gt;"), "{html}");
        assert!(html.contains("h&lt;1&gt;"), "{html}");
        assert!(
            html.contains("failed scans") && html.contains(">31337<"),
            "a datanode's failed scans are shown: {html}"
        );
    }
}
