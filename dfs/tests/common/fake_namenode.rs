//! A single in-process namenode stand-in for testing datanodes and the client on their own:
//! files as lists of blocks, datanodes from register/heartbeat/reports, naive placement, and
//! `Complete` that waits for min(replication, live datanodes) reported replicas and, like the
//! real namenode (`dfs::namenode::completion`), has a holder copy a block that is short (a datanode that
//! died before reporting its replica leaves a block short for good otherwise). No Raft, no
//! persistence, no background re-replication: the real namenode does those.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs::auth::{Authority, Gate, Principal};
use dfs::error::Error;
use dfs::listener::{Limits, Shutdown, SHUTDOWN_GRACE};
use dfs::protocol::*;
use dfs::rpc::{self, ServerLimits, Service};

#[derive(Default)]
struct File {
    blocks: Vec<Block>,
    replication: u32,
    block_size: u64,
    complete: bool,
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, File>,
    dirs: HashSet<String>,
    nodes: HashMap<String, (DatanodeRef, Instant)>,
    /// block id → (host → reported gen stamp)
    replicas: HashMap<u64, HashMap<String, u64>>,
    corrupt: HashMap<u64, HashSet<String>>,
    next_id: u64,
    /// Commands for the next heartbeat reply of each host.
    commands: HashMap<String, Vec<DatanodeCommand>>,
    /// When `Complete` last ordered a copy of a block (one at a time, retried after 2 s).
    copied_at: HashMap<u64, Instant>,
}

/// The fake namenode service.
pub struct FakeNamenode {
    state: Mutex<State>,
    dead_after: Duration,
    block_size: u64,
}

impl FakeNamenode {
    fn live(&self, st: &State) -> Vec<DatanodeRef> {
        let mut v: Vec<_> = st
            .nodes
            .values()
            .filter(|(_, t)| t.elapsed() < self.dead_after)
            .map(|(n, _)| n.clone())
            .collect();
        v.sort_by(|a, b| a.host.cmp(&b.host));
        v
    }

    fn handle(&self, req: Request) -> Result<Response, Error> {
        let mut st = self.state.lock().unwrap();
        let st = &mut *st;
        st.dirs.insert("/".into());
        match req {
            Request::Mkdirs { path } => {
                st.dirs.insert(path);
                Ok(Response::Done)
            }
            Request::Create {
                path,
                replication,
                overwrite,
                block_size_bytes,
                ..
            } => {
                if st.files.contains_key(&path) && !overwrite {
                    return Err(Error::AlreadyExists(path));
                }
                let replication = replication.unwrap_or(3);
                st.files.insert(
                    path.clone(),
                    File {
                        replication,
                        block_size: block_size_bytes.unwrap_or(self.block_size),
                        ..Default::default()
                    },
                );
                Ok(Response::Status(self.status(st, &path)))
            }
            Request::AddBlock {
                path,
                previous,
                excluded_hosts,
                ..
            } => {
                let live = self.live(st);
                st.next_id += 1;
                let id = st.next_id;
                let f = st
                    .files
                    .get_mut(&path)
                    .ok_or(Error::NotFound(path.clone()))?;
                if let (Some(p), Some(last)) = (previous, f.blocks.last_mut()) {
                    *last = p;
                }
                let block = Block {
                    id,
                    gen_stamp: 1,
                    len_bytes: 0,
                };
                f.blocks.push(block);
                let mut targets: Vec<_> = live
                    .into_iter()
                    .filter(|n| !excluded_hosts.contains(&n.host))
                    .collect();
                let shift = (id as usize) % targets.len().max(1);
                targets.rotate_left(shift);
                targets.truncate(f.replication as usize);
                Ok(Response::Block(LocatedBlock {
                    block,
                    offset_bytes: 0,
                    locations: targets,
                    corrupt: vec![],
                    token: None,
                }))
            }
            Request::UpdatePipeline {
                path,
                block_id,
                hosts,
                ..
            } => {
                st.next_id += 1;
                let gs = st.next_id;
                let f = st
                    .files
                    .get_mut(&path)
                    .ok_or(Error::NotFound(path.clone()))?;
                let b = f.blocks.iter_mut().find(|b| b.id == block_id).unwrap();
                b.gen_stamp = gs;
                let block = *b;
                let locations = hosts
                    .iter()
                    .filter_map(|h| st.nodes.get(h).map(|n| n.0.clone()))
                    .collect();
                Ok(Response::Block(LocatedBlock {
                    block,
                    offset_bytes: 0,
                    locations,
                    corrupt: vec![],
                    token: None,
                }))
            }
            Request::AddDatanode {
                path,
                block_id,
                existing,
                failed,
                excluded,
                ..
            } => {
                let live = self.live(st);
                let f = st.files.get(&path).ok_or(Error::NotFound(path.clone()))?;
                let block = *f
                    .blocks
                    .iter()
                    .find(|b| b.id == block_id)
                    .ok_or(Error::NotFound(format!("block {block_id}")))?;
                let wanted = (f.replication as usize).saturating_sub(existing.len());
                let locations: Vec<_> = live
                    .into_iter()
                    .filter(|n| {
                        !existing.contains(&n.host)
                            && !failed.contains(&n.host)
                            && !excluded.contains(&n.host)
                    })
                    .take(wanted)
                    .collect();
                Ok(Response::Block(LocatedBlock {
                    block,
                    offset_bytes: 0,
                    locations,
                    corrupt: vec![],
                    token: None,
                }))
            }
            Request::Complete { path, last, .. } => {
                let live_nodes = self.live(st);
                let live = live_nodes.len() as u32;
                let f = st
                    .files
                    .get_mut(&path)
                    .ok_or(Error::NotFound(path.clone()))?;
                if let (Some(p), Some(b)) = (last, f.blocks.last_mut()) {
                    *b = p;
                }
                let need = f.replication.min(live).max(1) as usize;
                let mut ok = true;
                let mut copies = Vec::new();
                for b in &f.blocks {
                    let holders: Vec<String> = st
                        .replicas
                        .get(&b.id)
                        .map(|m| {
                            m.iter()
                                .filter(|(_, g)| **g == b.gen_stamp)
                                .map(|(h, _)| h.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    if holders.len() >= need {
                        continue;
                    }
                    ok = false;
                    let source = live_nodes.iter().find(|n| holders.contains(&n.host));
                    let due = st
                        .copied_at
                        .get(&b.id)
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
                    if let (Some(source), true) = (source, due) {
                        let targets: Vec<DatanodeRef> = live_nodes
                            .iter()
                            .filter(|n| !holders.contains(&n.host))
                            .take(need - holders.len())
                            .cloned()
                            .collect();
                        copies.push((source.host.clone(), *b, targets));
                    }
                }
                f.complete |= ok;
                for (source, block, targets) in copies {
                    st.copied_at.insert(block.id, Instant::now());
                    st.commands
                        .entry(source)
                        .or_default()
                        .push(DatanodeCommand::Replicate { block, targets });
                }
                Ok(Response::Completed(ok))
            }
            Request::RenewLease { .. } => Ok(Response::Done),
            Request::GetBlockLocations { path, .. } => {
                let live: HashSet<String> = self.live(st).into_iter().map(|n| n.host).collect();
                let f = st.files.get(&path).ok_or(Error::NotFound(path.clone()))?;
                let mut offset = 0;
                let mut blocks = Vec::new();
                for b in &f.blocks {
                    let corrupt = st.corrupt.get(&b.id).cloned().unwrap_or_default();
                    let locations = st
                        .replicas
                        .get(&b.id)
                        .map(|m| {
                            let mut hs: Vec<_> = m
                                .iter()
                                .filter(|(h, g)| {
                                    **g == b.gen_stamp && live.contains(*h) && !corrupt.contains(*h)
                                })
                                .map(|(h, _)| st.nodes[h].0.clone())
                                .collect();
                            hs.sort_by(|a, b| a.host.cmp(&b.host));
                            hs
                        })
                        .unwrap_or_default();
                    blocks.push(LocatedBlock {
                        block: *b,
                        offset_bytes: offset,
                        locations,
                        corrupt: vec![],
                        token: None,
                    });
                    offset += b.len_bytes;
                }
                Ok(Response::Blocks(FileBlocks {
                    len_bytes: offset,
                    under_construction: !f.complete,
                    blocks,
                }))
            }
            Request::Stat { path } => {
                if st.files.contains_key(&path) || st.dirs.contains(&path) {
                    Ok(Response::Status(self.status(st, &path)))
                } else {
                    Err(Error::NotFound(path))
                }
            }
            Request::DatanodeReport => {
                let out = st
                    .nodes
                    .values()
                    .map(|(n, t)| DatanodeStatus {
                        node: n.clone(),
                        live: t.elapsed() < self.dead_after,
                        last_heartbeat_ago_ms: t.elapsed().as_millis() as u64,
                        usage: DatanodeUsage::default(),
                        blocks: 0,
                    })
                    .collect();
                Ok(Response::Datanodes(out))
            }
            Request::Register { node, .. } => {
                st.nodes.insert(node.host.clone(), (node, Instant::now()));
                Ok(Response::Done)
            }
            Request::Heartbeat { host, .. } => match st.nodes.get_mut(&host) {
                Some(n) => {
                    n.1 = Instant::now();
                    let commands = st.commands.remove(&host).unwrap_or_default();
                    Ok(Response::Heartbeat(HeartbeatReply { commands }))
                }
                None => Ok(Response::Heartbeat(HeartbeatReply {
                    commands: vec![DatanodeCommand::Reregister],
                })),
            },
            Request::BlockReport { host, replicas } => {
                for m in st.replicas.values_mut() {
                    m.remove(&host);
                }
                for r in replicas {
                    st.replicas
                        .entry(r.block.id)
                        .or_default()
                        .insert(host.clone(), r.block.gen_stamp);
                }
                Ok(Response::Done)
            }
            Request::IncrementalReport {
                host,
                received,
                deleted,
            } => {
                for r in received {
                    st.replicas
                        .entry(r.block.id)
                        .or_default()
                        .insert(host.clone(), r.block.gen_stamp);
                }
                for id in deleted {
                    if let Some(m) = st.replicas.get_mut(&id) {
                        m.remove(&host);
                    }
                }
                Ok(Response::Done)
            }
            Request::ReportCorrupt { block, host } => {
                st.corrupt.entry(block.id).or_default().insert(host);
                Ok(Response::Done)
            }
            other => Err(Error::Unavailable(format!(
                "fake namenode does not do {other:?}"
            ))),
        }
    }

    fn status(&self, st: &State, path: &str) -> FileStatus {
        let f = st.files.get(path);
        FileStatus {
            path: path.into(),
            kind: if f.is_some() {
                FileKind::File
            } else {
                FileKind::Dir
            },
            len_bytes: f.map_or(0, |f| f.blocks.iter().map(|b| b.len_bytes).sum()),
            replication: f.map_or(0, |f| f.replication),
            block_size_bytes: f.map_or(0, |f| f.block_size),
            mtime_ms: 0,
            under_construction: f.is_some_and(|f| !f.complete),
            count: f.map_or(0, |f| f.blocks.len() as u64),
            owner: "admin".into(),
            group: "supergroup".into(),
            mode: if f.is_some() { 0o644 } else { 0o755 },
        }
    }

    /// Corrupt replicas reported for a block.
    pub fn corrupt_hosts(&self, block_id: u64) -> HashSet<String> {
        self.state
            .lock()
            .unwrap()
            .corrupt
            .get(&block_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Hosts reported to hold `block_id` with `gen_stamp`.
    pub fn replica_hosts(&self, block_id: u64, gen_stamp: u64) -> Vec<String> {
        let st = self.state.lock().unwrap();
        let mut v: Vec<String> = st
            .replicas
            .get(&block_id)
            .map(|m| {
                m.iter()
                    .filter(|(_, g)| **g == gen_stamp)
                    .map(|(h, _)| h.clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Service for FakeNamenode {
    type Request = RequestFrame;
    type Response = ResponseFrame;

    async fn call(&self, _: &Principal, req: RequestFrame) -> ResponseFrame {
        ResponseFrame {
            request_id: req.request_id,
            result: self.handle(req.body).map_err(|e| WireError::from(&e)),
        }
    }

    fn malformed(&self, err: &Error) -> ResponseFrame {
        rpc::malformed_reply(err)
    }
}

/// Starts the fake on `addr` in the current tokio runtime.
pub async fn start(
    addr: &str,
    dead_after: Duration,
    block_size: u64,
    authority: Authority,
) -> Arc<FakeNamenode> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind fake namenode");
    let service = Arc::new(FakeNamenode {
        state: Mutex::new(State::default()),
        dead_after,
        block_size,
    });
    let limits = ServerLimits {
        listener: Limits {
            max_connections: 256,
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            shutdown_grace: SHUTDOWN_GRACE,
            handshake_timeout: Duration::from_secs(5),
        },
        frame_limit_bytes: 64 << 20,
    };
    // The fake lives as long as its test process: nothing ever shuts it down.
    tokio::spawn(rpc::serve(
        listener,
        limits,
        Gate::Authenticate(authority),
        service.clone(),
        Shutdown::never(),
    ));
    service
}
