//! The namenode's web pages and their JSON twins, served on its web port ([`crate::http`]).
//!
//! Every namenode serves its own: the overview says its Raft role, term, commit and applied
//! index, and links to the leader's page. Namespace pages (the summary's file and block counts,
//! the file browser, fsck) need the leader's linearizable reads, so a follower answers them
//! with a link to the leader; the datanode table is soft state every namenode has.
//!
//! Each page gathers one serializable value by asking the namenode's own RPC service in
//! process ([`NamenodeService::read_only`], which refuses anything but reads), as the
//! logged-in user (`dfs web` prints a login URL; [`crate::http::session`]) or else the
//! anonymous `dr.who`, held to that user's file permissions; [`render`]
//! turns it into HTML, and `/api/...` sends it as JSON. Routes (all GET, none changes
//! anything):
//!
//! - `/` and `/api/overview`: Raft status, cluster summary, datanodes;
//! - `/browse?path=P` and `/api/browse?path=P`: a directory's entries, or a file's blocks with
//!   their generation stamps and replica locations;
//! - `/fsck?path=P` and `/api/fsck?path=P`: block health under a path, the unhealthy blocks;
//! - `/login?token=...&next=...`: the web login.

pub mod render;
pub mod summary_cache;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};

use crate::auth::{Authority, Principal};
use crate::http::page::{html_response, json_response, PageError};
use crate::http::session::{with_login, Viewer, WebAuth};
use crate::namenode::server::{NamenodeService, WEB_USER};

use self::summary_cache::SummaryCache;
use crate::protocol::{
    BlockHealth, DatanodeStatus, FileKind, FileStatus, FsckFile, LocatedBlock, NamenodeStatus,
    RaftRole, Request, Response as Answer,
};

/// Most directory entries the browser shows.
pub const MAX_LISTED: u32 = 1_000;
/// Most unhealthy blocks the fsck page lists (the counts cover all).
pub const MAX_PROBLEMS: usize = 1_000;

/// The navigation links of every namenode page.
pub const LINKS: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/browse?path=/", "Browse"),
    ("/fsck?path=/", "Fsck"),
];

type Nn = Arc<NamenodeService>;

/// The command that prints a login URL for these pages.
pub const LOGIN_HINT: &str = "dfs web";

/// The namenode's routes, logins checked with `authority`.
pub fn router(nn: Nn, authority: Authority) -> Router {
    let routes = Router::new()
        .route("/", get(overview_page))
        .route("/api/overview", get(overview_api))
        .route("/browse", get(browse_page))
        .route("/api/browse", get(browse_api))
        .route("/fsck", get(fsck_page))
        .route("/api/fsck", get(fsck_api))
        .layer(Extension(Arc::new(SummaryCache::default())))
        .with_state(nn);
    with_login(routes, WebAuth::new(authority, LOGIN_HINT))
}

/// Whom a request's namenode reads act as.
fn acting(viewer: &Viewer) -> Principal {
    viewer
        .principal
        .clone()
        .unwrap_or_else(|| Principal::User(WEB_USER.into()))
}

/// One namenode of the cluster as the overview links it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamenodeLink {
    /// Raft id.
    pub id: u64,
    /// Client RPC address.
    pub addr: String,
    /// Its web page.
    pub url: String,
    /// The namenode this page's namenode believes leads.
    pub leader: bool,
    /// The namenode serving this page.
    pub this: bool,
}

/// Capacity, namespace and block health over the whole cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Capacity of the live datanodes.
    pub capacity_bytes: u64,
    /// Bytes used by blocks on the live datanodes.
    pub used_bytes: u64,
    /// Bytes free for blocks on the live datanodes.
    pub remaining_bytes: u64,
    /// Datanodes heard from recently.
    pub live_datanodes: usize,
    /// Datanodes not heard from within `datanode_dead_after_ms`.
    pub dead_datanodes: usize,
    /// Files in the namespace.
    pub files: usize,
    /// Blocks of those files.
    pub blocks: u64,
    /// Blocks with fewer live good replicas than their file's replication.
    pub under_replicated: u64,
    /// Blocks with a corrupt replica (and a good one).
    pub corrupt: u64,
    /// Blocks with no live good replica.
    pub missing: u64,
    /// `HEALTHY`, `DEGRADED` (under-replicated or corrupt replicas) or `CORRUPT` (missing
    /// blocks), as `dfs fsck` says.
    pub state: &'static str,
}

/// The overview page's data.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// This namenode's Raft status.
    pub status: NamenodeStatus,
    /// Every namenode, with its page.
    pub namenodes: Vec<NamenodeLink>,
    /// The summary; `None` on a follower (only the leader reads the namespace).
    pub summary: Option<Summary>,
    /// Why there is no summary.
    pub summary_unavailable: Option<String>,
    /// How old the summary's block counts are (they are reused for a few seconds:
    /// [`summary_cache`]).
    pub summary_age_ms: u64,
    /// Datanodes as this namenode sees them.
    pub datanodes: Vec<DatanodeStatus>,
}

/// The browser page's data: a directory's entries or a file's blocks.
#[derive(Debug, Clone, Serialize)]
pub struct Browse {
    /// The path shown.
    pub path: String,
    /// Its status.
    pub status: FileStatus,
    /// A directory's entries, in name order (at most [`MAX_LISTED`]).
    pub entries: Vec<FileStatus>,
    /// A file's blocks with their locations.
    pub blocks: Vec<LocatedBlock>,
}

/// One unhealthy block on the fsck page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file.
    pub path: String,
    /// The block's index in the file.
    pub index: usize,
    /// Block id.
    pub block_id: u64,
    /// Its generation stamp.
    pub gen_stamp: u64,
    /// What is wrong.
    pub health: BlockHealth,
    /// Hosts with a live good replica.
    pub live: Vec<String>,
    /// Hosts with a corrupt replica.
    pub corrupt: Vec<String>,
    /// The file's replication.
    pub replication: u32,
}

/// The fsck page's data.
#[derive(Debug, Clone, Serialize)]
pub struct Fsck {
    /// The path checked.
    pub path: String,
    /// Counts (the datanode fields are zero: fsck looks at blocks only).
    pub summary: Summary,
    /// The unhealthy blocks, at most [`MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
}

/// Sums capacity over live datanodes and block health over `files`, by [`BlockHealth::of`].
pub fn summarize(files: &[FsckFile], nodes: &[DatanodeStatus]) -> Summary {
    with_space(block_counts(files), nodes)
}

/// The datanodes' part of a summary added to `s`.
fn with_space(mut s: Summary, nodes: &[DatanodeStatus]) -> Summary {
    for d in nodes {
        if !d.live {
            s.dead_datanodes += 1;
            continue;
        }
        s.live_datanodes += 1;
        s.capacity_bytes += d.usage.capacity_bytes;
        s.used_bytes += d.usage.used_bytes;
        s.remaining_bytes += d.usage.remaining_bytes;
    }
    s
}

/// The files' part of a summary: files, blocks and their health.
fn block_counts(files: &[FsckFile]) -> Summary {
    let mut s = Summary {
        files: files.len(),
        ..Summary::default()
    };
    for f in files {
        for b in &f.blocks {
            s.blocks += 1;
            match BlockHealth::of(b, f.replication) {
                BlockHealth::Ok => {}
                BlockHealth::UnderReplicated => s.under_replicated += 1,
                BlockHealth::CorruptReplica => s.corrupt += 1,
                BlockHealth::Missing => s.missing += 1,
            }
        }
    }
    s.state = if s.missing > 0 {
        "CORRUPT"
    } else if s.under_replicated > 0 || s.corrupt > 0 {
        "DEGRADED"
    } else {
        "HEALTHY"
    };
    s
}

/// The unhealthy blocks of `files`, at most `limit`.
pub fn problems(files: &[FsckFile], limit: usize) -> Vec<Problem> {
    let all = files.iter().flat_map(|f| {
        f.blocks.iter().enumerate().filter_map(move |(index, b)| {
            let health = BlockHealth::of(b, f.replication);
            (health != BlockHealth::Ok).then(|| Problem {
                path: f.path.clone(),
                index,
                block_id: b.block.id,
                gen_stamp: b.block.gen_stamp,
                health,
                live: b.live.clone(),
                corrupt: b.corrupt.clone(),
                replication: f.replication,
            })
        })
    });
    all.take(limit).collect()
}

/// The `?path=` of the browser and fsck pages; `/` when absent.
#[derive(Debug, Deserialize)]
pub struct PathQuery {
    path: Option<String>,
}

impl PathQuery {
    fn path(&self) -> String {
        self.path.clone().unwrap_or_else(|| "/".into())
    }
}

/// The web page of namenode `id`, if the config has it.
fn page_of(nn: &NamenodeService, id: u64) -> Option<String> {
    let n = nn.config().namenode(id).ok()?;
    Some(format!("http://{}/", n.web_addr()))
}

/// A dfs error as a page error, pointing at the leader's page when this one does not lead.
fn page_error(nn: &NamenodeService, e: &crate::Error) -> PageError {
    let see = match e {
        crate::Error::NotLeader { hint: Some(id) } => page_of(nn, *id),
        _ => None,
    };
    PageError::from_dfs(e, see)
}

async fn ask(nn: &NamenodeService, who: &Principal, req: Request) -> Result<Answer, PageError> {
    nn.read_only(who, req).await.map_err(|e| page_error(nn, &e))
}

/// An answer of the wrong kind: a bug in the namenode, said as such.
fn unexpected(what: &str) -> PageError {
    PageError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        error: format!("the namenode answered {what} with something else"),
        see: None,
    }
}

async fn gather_overview(
    nn: &NamenodeService,
    cache: &SummaryCache,
    who: &Principal,
) -> Result<Overview, PageError> {
    let Answer::NamenodeStatus(status) = ask(nn, who, Request::Status).await? else {
        return Err(unexpected("Status"));
    };
    let Answer::Datanodes(datanodes) = ask(nn, who, Request::DatanodeReport).await? else {
        return Err(unexpected("DatanodeReport"));
    };
    let namenodes = nn
        .config()
        .namenodes
        .iter()
        .map(|n| NamenodeLink {
            id: n.id,
            addr: n.addr.clone(),
            url: format!("http://{}/", n.web_addr()),
            leader: n.id == status.leader_id,
            this: n.id == status.id,
        })
        .collect();
    let counts = match status.role {
        RaftRole::Leader => block_counts_cached(nn, cache, who).await,
        _ => Err("this namenode is not the leader; the leader's page has the summary".into()),
    };
    let (summary, summary_unavailable, summary_age_ms) = match counts {
        Ok((counts, age_ms)) => (Some(with_space(counts, &datanodes)), None, age_ms),
        Err(e) => (None, Some(e), 0),
    };
    Ok(Overview {
        status,
        namenodes,
        summary,
        summary_unavailable,
        summary_age_ms,
        datanodes,
    })
}

/// The block counts of `/` for `who` and their age: an fsck at most every
/// [`summary_cache::MAX_AGE_MS`].
async fn block_counts_cached(
    nn: &NamenodeService,
    cache: &SummaryCache,
    who: &Principal,
) -> Result<(Summary, u64), String> {
    let now_ms = crate::clock::unix_ms();
    if let Some(hit) = cache.get(who, now_ms) {
        return Ok(hit);
    }
    match ask(nn, who, Request::Fsck { path: "/".into() }).await {
        Ok(Answer::Fsck(files)) => {
            let counts = block_counts(&files);
            cache.put(who.clone(), now_ms, counts.clone());
            Ok((counts, 0))
        }
        Ok(_) => Err(unexpected("Fsck").error),
        Err(e) => Err(e.error),
    }
}

async fn gather_browse(
    nn: &NamenodeService,
    who: &Principal,
    path: String,
) -> Result<Browse, PageError> {
    let Answer::Status(status) = ask(nn, who, Request::Stat { path: path.clone() }).await? else {
        return Err(unexpected("Stat"));
    };
    let mut page = Browse {
        path: path.clone(),
        status,
        entries: Vec::new(),
        blocks: Vec::new(),
    };
    let req = match page.status.kind {
        FileKind::Dir => Request::List {
            path,
            start_after: None,
            limit: MAX_LISTED,
        },
        FileKind::File => Request::GetBlockLocations {
            path,
            offset_bytes: 0,
            len_bytes: u64::MAX,
            reader_host: None,
        },
    };
    match ask(nn, who, req).await? {
        Answer::Listing(entries) => page.entries = entries,
        Answer::Blocks(blocks) => page.blocks = blocks.blocks,
        _ => return Err(unexpected("List")),
    }
    Ok(page)
}

async fn gather_fsck(
    nn: &NamenodeService,
    who: &Principal,
    path: String,
) -> Result<Fsck, PageError> {
    let Answer::Fsck(files) = ask(nn, who, Request::Fsck { path: path.clone() }).await? else {
        return Err(unexpected("Fsck"));
    };
    Ok(Fsck {
        path,
        summary: summarize(&files, &[]),
        problems: problems(&files, MAX_PROBLEMS),
    })
}

async fn overview_page(
    State(nn): State<Nn>,
    Extension(cache): Extension<Arc<SummaryCache>>,
    viewer: Viewer,
) -> Response {
    let data = gather_overview(&nn, &cache, &acting(&viewer)).await;
    let title = data.as_ref().map_or("Namenode".to_owned(), |o| {
        format!("Namenode {}", o.status.id)
    });
    html_response(&title, LINKS, data, |o| (render::overview(o), true))
}

async fn overview_api(
    State(nn): State<Nn>,
    Extension(cache): Extension<Arc<SummaryCache>>,
    viewer: Viewer,
) -> Response {
    json_response(gather_overview(&nn, &cache, &acting(&viewer)).await)
}

async fn browse_page(State(nn): State<Nn>, viewer: Viewer, Query(q): Query<PathQuery>) -> Response {
    let path = q.path();
    let data = gather_browse(&nn, &acting(&viewer), path.clone()).await;
    html_response(&format!("Browse {path}"), LINKS, data, |b| {
        (render::browse(b), false)
    })
}

async fn browse_api(State(nn): State<Nn>, viewer: Viewer, Query(q): Query<PathQuery>) -> Response {
    json_response(gather_browse(&nn, &acting(&viewer), q.path()).await)
}

async fn fsck_page(State(nn): State<Nn>, viewer: Viewer, Query(q): Query<PathQuery>) -> Response {
    let path = q.path();
    let data = gather_fsck(&nn, &acting(&viewer), path.clone()).await;
    html_response(&format!("Fsck {path}"), LINKS, data, |f| {
        (render::fsck(f), false)
    })
}

async fn fsck_api(State(nn): State<Nn>, viewer: Viewer, Query(q): Query<PathQuery>) -> Response {
    json_response(gather_fsck(&nn, &acting(&viewer), q.path()).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Block, DatanodeRef, DatanodeUsage, FsckBlock};

    fn block(id: u64, live: &[&str], corrupt: &[&str]) -> FsckBlock {
        FsckBlock {
            block: Block {
                id,
                gen_stamp: 1,
                len_bytes: 10,
            },
            live: live.iter().map(|s| s.to_string()).collect(),
            corrupt: corrupt.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn node(host: &str, live: bool, capacity_bytes: u64) -> DatanodeStatus {
        DatanodeStatus {
            node: DatanodeRef {
                host: host.into(),
                addr: "127.0.0.1:1".into(),
                rack: "/r".into(),
            },
            live,
            last_heartbeat_ago_ms: 0,
            usage: DatanodeUsage {
                capacity_bytes,
                used_bytes: 1,
                remaining_bytes: capacity_bytes - 1,
                active_transfers: 0,
                failed_scans: 2,
            },
            blocks: 1,
        }
    }

    #[test]
    fn the_summary_counts_block_health_as_fsck_does_and_capacity_of_live_nodes() {
        let files = vec![FsckFile {
            path: "/f".into(),
            replication: 2,
            blocks: vec![
                block(1, &["a", "b"], &[]),
                block(2, &["a"], &[]),
                block(3, &["a"], &["b"]),
                block(4, &[], &["b"]),
            ],
        }];
        let s = summarize(&files, &[node("a", true, 100), node("b", false, 50)]);
        assert_eq!((s.files, s.blocks), (1, 4));
        assert_eq!((s.under_replicated, s.corrupt, s.missing), (1, 1, 1));
        assert_eq!(
            (s.live_datanodes, s.dead_datanodes, s.capacity_bytes),
            (1, 1, 100)
        );
        assert_eq!(s.state, "CORRUPT");
        let problems = problems(&files, 2);
        assert_eq!(problems.len(), 2, "bounded by the limit");
        assert_eq!(problems[0].block_id, 2);
        assert_eq!(problems[0].health, BlockHealth::UnderReplicated);
        let healthy = summarize(&[], &[]);
        assert_eq!(healthy.state, "HEALTHY");
    }
}
