//! The namenode's RPC service and its leader duties, and [`run`], which starts a namenode.
//!
//! Writes become namespace [`Op`]s proposed through Raft; reads wait for a ReadIndex barrier
//! and then read the local namespace; both are answered only by the leader (others say
//! `NotLeader { hint }`). Datanode reports and the status call are answered by every namenode.
//! The leader also runs a periodic check that queues re-replication and deletion commands and
//! recovers files whose writer's lease expired (see [`crate::block_recovery`]).
//!
//! `Complete` is answered "yes" only when every block has min(replication, usable datanodes)
//! good replicas ([`crate::completion`]); copies a block lacks beyond what its recorded
//! pipeline will report are ordered from here, so a writer's `close` converges (G2).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

use crate::block_recovery::{self, ReplicaReport};
use crate::completion::{self, Verdict};
use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::listener::{stop_on_signal, ShutdownTrigger};
use crate::namenode::raft_driver::{build, DriverSettings, RaftHandle, Shared};
use crate::namenode::storage::Persister;
use crate::namenode::transport::{serve_raft, Transport};
use crate::namespace::{Entry, Namespace, Op, OpenFile, Outcome};
use crate::protocol::{
    Block, CallId, DatanodeCommand, DatanodeRef, FileBlocks, FsckBlock, FsckFile, HeartbeatReply,
    LocatedBlock, Request, RequestFrame, Response, ResponseFrame, WireError,
};
use crate::rpc::{malformed_reply, serve, ServerLimits, Service};

/// Most files one `fsck` reports.
pub const MAX_FSCK_FILES: usize = 100_000;

/// Answers client and datanode calls on the namenode's RPC port.
pub struct NamenodeService {
    shared: Arc<Shared>,
    raft: RaftHandle,
    config: Arc<ClusterConfig>,
    recovering: Recovering,
}

/// Lease recoveries on this leader (soft state).
type Recovering = Arc<Mutex<RecoveryState>>;

/// Which recoveries are running and which wait before their next attempt.
#[derive(Debug, Default)]
struct RecoveryState {
    /// Paths being recovered now, so two recoveries of one file (the periodic check and a
    /// soft-limit takeover) never interleave their generation stamps.
    busy: HashSet<String>,
    /// Paths whose last attempt failed: no new attempt before this time, so a file whose
    /// datanodes are unreachable does not cost a log entry per check.
    retry_at_ms: std::collections::HashMap<String, u64>,
}

impl std::fmt::Debug for NamenodeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamenodeService")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Service for NamenodeService {
    type Request = RequestFrame;
    type Response = ResponseFrame;

    async fn call(&self, req: RequestFrame) -> ResponseFrame {
        let result = self.handle(req.call, req.body).await;
        ResponseFrame {
            request_id: req.request_id,
            result: result.map_err(|e| WireError::from(&e)),
        }
    }

    fn malformed(&self, err: &Error) -> ResponseFrame {
        malformed_reply(err)
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unexpected(outcome: Outcome) -> Error {
    Error::Raft(format!("unexpected outcome {outcome:?}"))
}

impl NamenodeService {
    fn dead_after_ms(&self) -> u64 {
        self.config.datanode_dead_after_ms
    }

    fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.config.rpc_timeout_ms)
    }

    /// Proposes an op and waits for its applied result.
    async fn write(&self, call: Option<CallId>, op: Op) -> Result<Outcome> {
        self.shared.check_leader()?;
        let entry = Entry {
            now_ms: wall_ms(),
            call,
            op,
        };
        tokio::time::timeout(self.rpc_timeout(), self.raft.propose(entry))
            .await
            .map_err(|_| Error::Unavailable("the write was not committed in time; retry".into()))?
    }

    /// Runs `f` on the namespace after a linearizable read barrier.
    async fn read<T>(&self, f: impl FnOnce(&Namespace) -> Result<T>) -> Result<T> {
        self.shared.check_leader()?;
        tokio::time::timeout(self.rpc_timeout(), self.raft.read_barrier(&self.shared))
            .await
            .map_err(|_| Error::Unavailable("read barrier timed out; retry".into()))??;
        f(&self.shared.ns())
    }

    fn renew(&self, client: &str) {
        let now = self.shared.now_ms();
        self.shared
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client.to_string(), now);
    }

    async fn handle(&self, call: Option<CallId>, body: Request) -> Result<Response> {
        match body {
            Request::Mkdirs { path } => self
                .write(None, Op::Mkdirs { path })
                .await
                .map(|_| Response::Done),
            Request::Create {
                path,
                replication,
                block_size_bytes,
                overwrite,
                require_parent,
                client_name,
            } => {
                self.renew(&client_name);
                self.take_over_if_soft_expired(&path, &client_name).await;
                let op = Op::Create {
                    path,
                    replication: replication.unwrap_or(self.config.replication),
                    block_size_bytes: block_size_bytes.unwrap_or(self.config.block_size_bytes),
                    overwrite,
                    require_parent,
                    client_name,
                };
                match self.write(call, op).await? {
                    Outcome::Status(s) => Ok(Response::Status(s)),
                    other => Err(unexpected(other)),
                }
            }
            Request::AddBlock {
                path,
                client_name,
                previous,
                writer_host,
                excluded_hosts,
            } => {
                self.add_block(
                    call,
                    path,
                    client_name,
                    previous,
                    writer_host,
                    excluded_hosts,
                )
                .await
            }
            Request::AbandonBlock {
                path,
                client_name,
                block_id,
            } => {
                let op = Op::AbandonBlock {
                    path,
                    client_name,
                    block_id,
                };
                self.write(call, op).await.map(|_| Response::Done)
            }
            Request::UpdatePipeline {
                path,
                client_name,
                block_id,
                hosts,
            } => {
                self.update_pipeline(call, path, client_name, block_id, hosts)
                    .await
            }
            Request::Complete {
                path,
                client_name,
                last,
            } => self.complete(call, path, client_name, last).await,
            Request::RenewLease { client_name } => {
                self.shared.check_leader()?;
                self.renew(&client_name);
                Ok(Response::Done)
            }
            Request::GetBlockLocations {
                path,
                offset_bytes,
                len_bytes,
                reader_host,
            } => {
                self.locations(&path, offset_bytes, len_bytes, reader_host.as_deref())
                    .await
            }
            Request::Stat { path } => self.read(|ns| ns.stat(&path)).await.map(Response::Status),
            Request::List {
                path,
                start_after,
                limit,
            } => self
                .read(|ns| ns.list(&path, start_after.as_deref(), limit as usize))
                .await
                .map(Response::Listing),
            Request::Du { path } => self
                .read(|ns| ns.content_summary(&path))
                .await
                .map(Response::Summary),
            Request::Rename { src, dst } => self
                .write(call, Op::Rename { src, dst })
                .await
                .map(|_| Response::Done),
            Request::Delete { path, recursive } => {
                match self.write(call, Op::Delete { path, recursive }).await? {
                    Outcome::Deleted(d) => Ok(Response::Deleted(d)),
                    other => Err(unexpected(other)),
                }
            }
            Request::SetReplication { path, replication } => self
                .write(None, Op::SetReplication { path, replication })
                .await
                .map(|_| Response::Done),
            Request::Fsck { path } => self.fsck(&path).await,
            Request::DatanodeReport => {
                let now = self.shared.now_ms();
                Ok(Response::Datanodes(
                    self.shared.block_map().report(now, self.dead_after_ms()),
                ))
            }
            Request::Status => Ok(Response::NamenodeStatus(self.shared.status())),
            Request::Register { node, usage } => {
                let now = self.shared.now_ms();
                self.shared.block_map().register(node, usage, now);
                Ok(Response::Done)
            }
            Request::Heartbeat { host, usage } => {
                Ok(Response::Heartbeat(self.heartbeat(&host, usage)))
            }
            Request::BlockReport { host, replicas } => {
                self.shared.block_map().full_report(&host, &replicas);
                Ok(Response::Done)
            }
            Request::IncrementalReport {
                host,
                received,
                deleted,
            } => {
                self.shared
                    .block_map()
                    .incremental(&host, &received, &deleted);
                Ok(Response::Done)
            }
            Request::ReportCorrupt { block, host } => {
                self.shared.block_map().mark_corrupt(&host, &block);
                Ok(Response::Done)
            }
            Request::AddDatanode {
                path,
                client_name,
                block_id,
                existing,
                failed,
                excluded,
            } => {
                let pipeline = PipelineChange {
                    existing,
                    failed,
                    excluded,
                };
                self.add_datanode(path, client_name, block_id, pipeline)
                    .await
            }
        }
    }

    /// Marks the failed hosts as suspects, chooses replacements to bring the pipeline back to
    /// the file's replication, and records the new pipeline for `Complete` and lease recovery.
    async fn add_datanode(
        &self,
        path: String,
        client_name: String,
        block_id: u64,
        change: PipelineChange,
    ) -> Result<Response> {
        self.shared.check_leader()?;
        self.renew(&client_name);
        let status = self.shared.ns().stat(&path)?;
        let holder = self.shared.ns().open_file(&path).map(|f| f.holder);
        if holder.as_deref() != Some(client_name.as_str()) {
            return Err(Error::Lease(format!(
                "{path} is not open for {client_name}"
            )));
        }
        let layout = self.shared.ns().file_blocks(&path, 0, u64::MAX)?;
        let Some((block, offset_bytes)) = layout.blocks.into_iter().find(|(b, _)| b.id == block_id)
        else {
            return Err(Error::NotFound(format!("block {block_id} of {path}")));
        };
        let now = self.shared.now_ms();
        let mut map = self.shared.block_map();
        for h in &change.failed {
            map.suspect(h, now);
        }
        let wanted = (status.replication as usize).saturating_sub(change.existing.len());
        let nodes = map.live_views(now, self.dead_after_ms());
        let avoid: Vec<String> = change
            .excluded
            .iter()
            .chain(&change.failed)
            .cloned()
            .collect();
        let chosen = crate::placement::choose_targets(
            &nodes,
            wanted,
            None,
            &change.existing,
            &avoid,
            status.block_size_bytes,
            rand::random(),
        );
        let mut pipeline = change.existing;
        pipeline.extend(chosen.iter().cloned());
        map.record_pipeline(block_id, &pipeline);
        tracing::info!(
            path,
            block = block_id,
            failed = ?change.failed,
            replacements = ?chosen,
            "pipeline rebuilt"
        );
        Ok(Response::Block(LocatedBlock {
            block,
            offset_bytes,
            locations: map.refs(&chosen),
            corrupt: Vec::new(),
        }))
    }

    /// When another writer holds `path` and has not renewed within the soft limit, recover the
    /// file now (HDFS's soft-limit rule), so the new writer need not wait for the hard limit.
    async fn take_over_if_soft_expired(&self, path: &str, client_name: &str) {
        let Some(file) = self.shared.ns().open_file(path) else {
            return;
        };
        if file.holder == client_name || self.shared.check_leader().is_err() {
            return;
        }
        let now = self.shared.now_ms();
        let renewed = self
            .shared
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&file.holder)
            .copied();
        // Unknown to this leader's clock (it just took over): give the holder the soft limit.
        let Some(renewed) = renewed else { return };
        if now.saturating_sub(renewed) > self.config.lease_soft_limit_ms {
            let duty = Duty {
                shared: &self.shared,
                raft: &self.raft,
                config: &self.config,
                recovering: &self.recovering,
            };
            duty.recover_file(&file).await;
        }
    }

    fn heartbeat(&self, host: &str, usage: crate::protocol::DatanodeUsage) -> HeartbeatReply {
        let now = self.shared.now_ms();
        let leader = self.shared.check_leader().is_ok();
        let mut map = self.shared.block_map();
        if !map.heartbeat(host, usage, now) {
            return HeartbeatReply {
                commands: vec![DatanodeCommand::Reregister],
            };
        }
        let commands = if leader {
            map.take_commands(host)
        } else {
            Vec::new()
        };
        HeartbeatReply { commands }
    }

    async fn add_block(
        &self,
        call: Option<CallId>,
        path: String,
        client_name: String,
        previous: Option<Block>,
        writer_host: Option<String>,
        excluded: Vec<String>,
    ) -> Result<Response> {
        self.shared.check_leader()?;
        self.renew(&client_name);
        let status = self.shared.ns().stat(&path)?;
        let targets = {
            let now = self.shared.now_ms();
            let map = self.shared.block_map();
            let nodes = map.live_views(now, self.dead_after_ms());
            let hosts = crate::placement::choose_targets(
                &nodes,
                status.replication as usize,
                writer_host.as_deref(),
                &[],
                &excluded,
                status.block_size_bytes,
                rand::random(),
            );
            map.refs(&hosts)
        };
        if targets.is_empty() {
            return Err(Error::Unavailable(
                "no live datanode with enough free space".into(),
            ));
        }
        let op = Op::AddBlock {
            path: path.clone(),
            client_name,
            previous,
        };
        let Outcome::Block(block) = self.write(call, op).await? else {
            return Err(Error::Raft("AddBlock returned no block".into()));
        };
        let hosts: Vec<String> = targets.iter().map(|t| t.host.clone()).collect();
        self.shared.block_map().record_pipeline(block.id, &hosts);
        Ok(Response::Block(LocatedBlock {
            block,
            offset_bytes: self.offset_of(&path, block.id),
            locations: targets,
            corrupt: Vec::new(),
        }))
    }

    fn offset_of(&self, path: &str, block_id: u64) -> u64 {
        let ns = self.shared.ns();
        ns.file_blocks(path, 0, u64::MAX)
            .ok()
            .and_then(|layout| {
                layout
                    .blocks
                    .into_iter()
                    .find(|(b, _)| b.id == block_id)
                    .map(|(_, off)| off)
            })
            .unwrap_or(0)
    }

    async fn update_pipeline(
        &self,
        call: Option<CallId>,
        path: String,
        client_name: String,
        block_id: u64,
        hosts: Vec<String>,
    ) -> Result<Response> {
        self.renew(&client_name);
        let op = Op::UpdatePipeline {
            path: path.clone(),
            client_name,
            block_id,
        };
        let Outcome::Block(block) = self.write(call, op).await? else {
            return Err(Error::Raft("UpdatePipeline returned no block".into()));
        };
        let locations = {
            let mut map = self.shared.block_map();
            map.record_pipeline(block_id, &hosts);
            map.refs(&hosts)
        };
        Ok(Response::Block(LocatedBlock {
            block,
            offset_bytes: self.offset_of(&path, block_id),
            locations,
            corrupt: Vec::new(),
        }))
    }

    /// Closes a file once every block has min(replication, usable datanodes) good replicas
    /// (G2; the rule is [`crate::completion`]). Until then it answers `Completed(false)` and
    /// orders the copies that the block's recorded pipeline will not produce; the writer polls
    /// for a bounded time.
    async fn complete(
        &self,
        call: Option<CallId>,
        path: String,
        client_name: String,
        last: Option<Block>,
    ) -> Result<Response> {
        self.shared.check_leader()?;
        self.renew(&client_name);
        let status = self.shared.ns().stat(&path)?;
        let layout = self.shared.ns().file_blocks(&path, 0, u64::MAX)?;
        let mut blocks: Vec<Block> = layout.blocks.into_iter().map(|(b, _)| b).collect();
        if layout.under_construction {
            if let (Some(l), Some(b)) = (last, blocks.last_mut()) {
                if l.id == b.id {
                    b.len_bytes = l.len_bytes;
                }
            }
            if !self.durable_enough(&path, status.replication, status.block_size_bytes, &blocks) {
                return Ok(Response::Completed(false));
            }
        }
        let op = Op::Complete {
            path,
            client_name,
            last,
        };
        match self.write(call, op).await? {
            Outcome::Completed(c) => {
                if c {
                    let mut map = self.shared.block_map();
                    map.forget_pipelines(blocks.iter().map(|b| b.id));
                }
                Ok(Response::Completed(c))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Whether every block meets G2's bar; queues copies for blocks short of it.
    fn durable_enough(
        &self,
        path: &str,
        replication: u32,
        block_size_bytes: u64,
        blocks: &[Block],
    ) -> bool {
        let now = self.shared.now_ms();
        let dead = self.dead_after_ms();
        let retry_after_ms = self
            .config
            .datanode_dead_after_ms
            .max(self.config.heartbeat_interval_ms * 10);
        let mut map = self.shared.block_map();
        let mut ready = true;
        for block in blocks {
            let could_hold = map.usable_count_for(block.id, block_size_bytes, now, dead);
            let need = completion::required_replicas(replication, could_hold);
            let pipeline: Vec<String> = map
                .pipeline(block.id)
                .into_iter()
                .filter(|h| map.is_usable(h, now, dead))
                .collect();
            let views = map.replica_views(block.id, now, dead);
            let (missing, sources) = match completion::judge(block, &views, &pipeline, need) {
                Verdict::Durable => continue,
                Verdict::Waiting { .. } => {
                    ready = false;
                    continue;
                }
                Verdict::Short {
                    missing, sources, ..
                } => (missing, sources),
            };
            ready = false;
            let Some(source) = sources.first() else {
                continue;
            };
            let mut taken = map.holders(block.id);
            taken.extend(pipeline);
            let targets = crate::placement::choose_targets(
                &map.live_views(now, dead),
                missing,
                None,
                &taken,
                &[],
                block_size_bytes,
                rand::random(),
            );
            if map.request_copy(*block, source, &targets, now, retry_after_ms) {
                tracing::info!(
                    path,
                    block = block.id,
                    source,
                    ?targets,
                    "block short of replicas at close: copying"
                );
            }
        }
        ready
    }

    async fn locations(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        reader: Option<&str>,
    ) -> Result<Response> {
        let layout = self.read(|ns| ns.file_blocks(path, offset, len)).await?;
        let now = self.shared.now_ms();
        let ns = self.shared.ns();
        let map = self.shared.block_map();
        let located = layout
            .blocks
            .into_iter()
            .map(|(block, offset_bytes)| {
                let (mut good, bad) = match ns.block(block.id) {
                    Some(owner) => map.health(&owner, now, self.dead_after_ms()),
                    None => (Vec::new(), Vec::new()),
                };
                map.sort_for_reader(&mut good, reader);
                LocatedBlock {
                    block,
                    offset_bytes,
                    locations: map.refs(&good),
                    corrupt: map.refs(&bad),
                }
            })
            .collect();
        Ok(Response::Blocks(FileBlocks {
            len_bytes: layout.len_bytes,
            under_construction: layout.under_construction,
            blocks: located,
        }))
    }

    async fn fsck(&self, path: &str) -> Result<Response> {
        let files = self.read(|ns| ns.files_under(path, MAX_FSCK_FILES)).await?;
        let now = self.shared.now_ms();
        let ns = self.shared.ns();
        let map = self.shared.block_map();
        let out = files
            .into_iter()
            .map(|(path, replication, blocks)| FsckFile {
                path,
                replication,
                blocks: blocks
                    .into_iter()
                    .map(|block| {
                        let (live, corrupt) = ns
                            .block(block.id)
                            .map(|o| map.health(&o, now, self.dead_after_ms()))
                            .unwrap_or_default();
                        FsckBlock {
                            block,
                            live,
                            corrupt,
                        }
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::Fsck(out))
    }
}

/// How the surviving pipeline changed, as a writer reports it in `AddDatanode`.
struct PipelineChange {
    existing: Vec<String>,
    failed: Vec<String>,
    excluded: Vec<String>,
}

/// The leader's periodic duties: replication check and lease recovery.
async fn leader_duties(
    shared: Arc<Shared>,
    raft: RaftHandle,
    config: Arc<ClusterConfig>,
    recovering: Recovering,
) {
    let period = Duration::from_millis(config.replication_check_interval_ms.max(10));
    // Until every datanode had a chance to report, missing replicas are not missing.
    let grace_ms = config.heartbeat_interval_ms * 2;
    let mut was_leader = false;
    loop {
        tokio::time::sleep(period).await;
        let leader = shared.check_leader().is_ok();
        if !leader || !was_leader {
            // A new leader starts every lease clock afresh (lease times are soft state).
            shared
                .leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        was_leader = leader;
        if !leader || shared.now_ms() < grace_ms {
            continue;
        }
        {
            let ns = shared.ns();
            let now = shared.now_ms();
            let retry_after_ms = config
                .datanode_dead_after_ms
                .max(config.heartbeat_interval_ms * 10);
            shared.block_map().check_replication(
                &ns,
                now,
                config.datanode_dead_after_ms,
                retry_after_ms,
                rand::random(),
            );
        }
        let duty = Duty {
            shared: &shared,
            raft: &raft,
            config: &config,
            recovering: &recovering,
        };
        duty.recover_expired_leases().await;
    }
}

/// What lease recovery needs from the leader.
struct Duty<'a> {
    shared: &'a Shared,
    raft: &'a RaftHandle,
    config: &'a ClusterConfig,
    recovering: &'a Recovering,
}

/// Releases a path from [`Recovering`] when its recovery attempt ends, however it ends.
struct RecoveryGuard<'a> {
    recovering: &'a Recovering,
    path: String,
}

impl Drop for RecoveryGuard<'_> {
    fn drop(&mut self) {
        self.recovering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .busy
            .remove(&self.path);
    }
}

impl Duty<'_> {
    /// Recovers files whose writer stopped renewing for longer than the hard limit.
    async fn recover_expired_leases(&self) {
        let now = self.shared.now_ms();
        let open = self.shared.ns().open_files();
        {
            let paths: HashSet<&str> = open.iter().map(|f| f.path.as_str()).collect();
            let mut state = self.recovering.lock().unwrap_or_else(|e| e.into_inner());
            state.retry_at_ms.retain(|p, _| paths.contains(p.as_str()));
        }
        let expired: Vec<_> = {
            let mut leases = self.shared.leases.lock().unwrap_or_else(|e| e.into_inner());
            let holders: HashSet<&str> = open.iter().map(|f| f.holder.as_str()).collect();
            leases.retain(|h, _| holders.contains(h.as_str()));
            open.iter()
                .filter(|f| {
                    now.saturating_sub(*leases.entry(f.holder.clone()).or_insert(now))
                        > self.config.lease_hard_limit_ms
                })
                .cloned()
                .collect()
        };
        for file in expired {
            self.recover_file(&file).await;
        }
    }

    async fn propose(&self, op: Op) -> Result<Outcome> {
        let entry = Entry {
            now_ms: wall_ms(),
            call: None,
            op,
        };
        let timeout = Duration::from_millis(self.config.rpc_timeout_ms);
        tokio::time::timeout(timeout, self.raft.propose(entry))
            .await
            .map_err(|_| Error::Unavailable("recovery proposal not committed in time".into()))?
    }

    /// Lease recovery of one file: closes it at the length of its last block that the rule in
    /// [`crate::block_recovery`] chooses. An attempt that cannot finish (no replica answered,
    /// no replica could be finalized, no quorum) closes nothing and is retried after
    /// `datanode_dead_after_ms` (by then an unreachable datanode is either back or known dead).
    async fn recover_file(&self, file: &OpenFile) {
        let now = self.shared.now_ms();
        {
            let mut state = self.recovering.lock().unwrap_or_else(|e| e.into_inner());
            let waiting = state.retry_at_ms.get(&file.path).is_some_and(|&t| t > now);
            if waiting || !state.busy.insert(file.path.clone()) {
                return;
            }
        }
        let _guard = RecoveryGuard {
            recovering: self.recovering,
            path: file.path.clone(),
        };
        let last = match self.recover_last_block(file).await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!("lease recovery of {} not done yet: {e}", file.path);
                let retry_at = now + self.config.datanode_dead_after_ms;
                let mut state = self.recovering.lock().unwrap_or_else(|e| e.into_inner());
                state.retry_at_ms.insert(file.path.clone(), retry_at);
                return;
            }
        };
        let op = Op::RecoverLease {
            path: file.path.clone(),
            holder: file.holder.clone(),
            last,
        };
        match self.propose(op).await {
            Ok(_) => {
                tracing::info!(
                    "recovered {} from expired writer {} at {last:?}",
                    file.path,
                    file.holder
                );
                let blocks = self.shared.ns().file_blocks(&file.path, 0, u64::MAX);
                let ids: Vec<u64> = blocks
                    .map(|l| l.blocks.iter().map(|(b, _)| b.id).collect())
                    .unwrap_or_default();
                self.shared.block_map().forget_pipelines(ids);
            }
            Err(e) => tracing::warn!("lease recovery of {}: {e}", file.path),
        }
    }

    /// Steps 1-3 of recovering the last block: a fresh generation stamp, the replicas' durable
    /// lengths, and the chosen replicas cut and finalized. `Ok(None)`: no datanode holds any
    /// byte of the block (or the kept length is 0), so the block is dropped.
    async fn recover_last_block(&self, file: &OpenFile) -> Result<Option<Block>> {
        let Some(last) = file.last_block else {
            return Ok(None);
        };
        // A fresh stamp first, through the log: the dead writer's pipelines hold older stamps,
        // so whatever they might still finalize is stale, and the stamp cannot be handed out
        // twice.
        let op = Op::UpdatePipeline {
            path: file.path.clone(),
            client_name: file.holder.clone(),
            block_id: last.id,
        };
        let Outcome::Block(stamped) = self.propose(op).await? else {
            return Err(Error::Raft("UpdatePipeline returned no block".into()));
        };
        let timeout = Duration::from_millis(self.config.rpc_timeout_ms);
        let nodes = self.recovery_candidates(last.id);
        let mut asks = tokio::task::JoinSet::new();
        for node in nodes {
            asks.spawn(async move {
                let answer = crate::transfer::recovery_info(&node, last.id, timeout).await;
                (node.host, answer)
            });
        }
        let (mut reports, mut silent) = (Vec::new(), Vec::new());
        while let Some(joined) = asks.join_next().await {
            match joined {
                Ok((host, Ok(replicas))) => {
                    reports.extend(replicas.into_iter().map(|r| ReplicaReport {
                        host: host.clone(),
                        block: r.block,
                        state: r.state,
                    }))
                }
                Ok((host, Err(e))) => silent.push(format!("{host}: {e}")),
                Err(e) => silent.push(format!("task: {e}")),
            }
        }
        let Some(plan) = block_recovery::plan(last.id, stamped.gen_stamp, &reports) else {
            if silent.is_empty() {
                return Ok(None); // Every datanode asked answered: nobody holds a byte of it.
            }
            return Err(Error::Unavailable(format!(
                "no replica of block {} reported; unreachable: {}",
                last.id,
                silent.join("; ")
            )));
        };
        if plan.len_bytes == 0 {
            return Ok(None);
        }
        let kept = self
            .finish_replicas(&plan, stamped.gen_stamp, last.id)
            .await;
        if kept.is_empty() {
            return Err(Error::Unavailable(format!(
                "no replica of block {} could be finalized at {} bytes",
                last.id, plan.len_bytes
            )));
        }
        tracing::info!(
            path = %file.path,
            block = last.id,
            len_bytes = plan.len_bytes,
            from_gen = plan.from_gen_stamp,
            gen = stamped.gen_stamp,
            ?kept,
            "last block recovered"
        );
        Ok(Some(Block {
            id: last.id,
            gen_stamp: stamped.gen_stamp,
            len_bytes: plan.len_bytes,
        }))
    }

    /// Datanodes that may hold a replica of the block: every host a recorded pipeline of it
    /// went through and every host that reported it; every live datanode when this leader has
    /// no pipeline record (it was elected after the block was allocated).
    fn recovery_candidates(&self, block_id: u64) -> Vec<DatanodeRef> {
        let now = self.shared.now_ms();
        let dead = self.config.datanode_dead_after_ms;
        let map = self.shared.block_map();
        let mut hosts = match map.pipeline_hosts_ever(block_id) {
            Some(hosts) => hosts,
            None => map
                .live_views(now, dead)
                .into_iter()
                .map(|n| n.host)
                .collect(),
        };
        for h in map.holders(block_id) {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        hosts.retain(|h| map.is_live(h, now, dead));
        map.refs(&hosts)
    }

    /// Has every chosen replica cut, restamped and finalized; returns the hosts that did.
    async fn finish_replicas(
        &self,
        plan: &block_recovery::RecoveryPlan,
        gen_stamp: u64,
        block_id: u64,
    ) -> Vec<String> {
        let timeout = Duration::from_millis(self.config.rpc_timeout_ms);
        let from = Block {
            id: block_id,
            gen_stamp: plan.from_gen_stamp,
            len_bytes: plan.len_bytes,
        };
        let nodes = self.shared.block_map().refs(&plan.hosts);
        let mut finishes = tokio::task::JoinSet::new();
        for node in nodes {
            finishes.spawn(async move {
                let done = crate::transfer::finish_recovery(&node, from, gen_stamp, timeout).await;
                (node.host, done)
            });
        }
        let mut kept = Vec::new();
        while let Some(joined) = finishes.join_next().await {
            match joined {
                Ok((host, Ok(len))) if len == plan.len_bytes => kept.push(host),
                Ok((host, Ok(len))) => {
                    tracing::warn!(block = block_id, host, len, "recovered to a wrong length")
                }
                Ok((host, Err(e))) => tracing::warn!(block = block_id, host, "recovery: {e}"),
                Err(e) => tracing::warn!(block = block_id, "recovery task: {e}"),
            }
        }
        kept
    }
}

fn parse(what: &str, addr: &str) -> Result<SocketAddr> {
    addr.parse()
        .map_err(|e| Error::Config(format!("{what} {addr:?}: {e}")))
}

async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("binding the {what} port {addr}"), e))
}

/// Runs namenode `id` of `config` until a fatal error (storage failure, port in use), or
/// until SIGTERM/SIGINT, which it handles by shutting down gracefully and returning `Ok`.
pub async fn run(config: ClusterConfig, id: u64) -> Result<()> {
    config.validate()?;
    let me = config.namenode(id)?.clone();
    let voters = config.namenodes.iter().map(|n| n.id).collect();
    crate::power_loss::register_root(&me.meta_dir)?;
    let (persister, snapshot) = Persister::open(&me.meta_dir, voters)?;
    let peers = config
        .namenodes
        .iter()
        .filter(|n| n.id != id)
        .map(|n| parse("raft_addr", &n.raft_addr).map(|a| (n.id, a)))
        .collect::<Result<Vec<_>>>()?;
    let tick = Duration::from_millis(config.raft_tick_ms);
    let (transport, reports) = Transport::start(peers, tick * config.raft_election_ticks as u32);
    let settings = DriverSettings {
        tick,
        election_ticks: config.raft_election_ticks,
        heartbeat_ticks: config.raft_heartbeat_ticks,
        snapshot_every_entries: config.snapshot_every_entries.max(1),
    };
    let (shared, handle, driver) = build(id, persister, snapshot, settings, transport)?;
    let rpc_listener = bind("client RPC", parse("addr", &me.addr)?).await?;
    let raft_listener = bind("raft", parse("raft_addr", &me.raft_addr)?).await?;
    let config = Arc::new(config);
    let limits = ServerLimits::from_config(&config);
    let stop = ShutdownTrigger::new();
    tokio::spawn(reports.forward(handle.clone()));
    let raft_server = tokio::spawn(serve_raft(
        raft_listener,
        handle.clone(),
        limits.listener,
        stop.subscribe(),
    ));
    let recovering: Recovering = Arc::default();
    let service = Arc::new(NamenodeService {
        shared: shared.clone(),
        raft: handle.clone(),
        config: config.clone(),
        recovering: recovering.clone(),
    });
    let rpc_server = tokio::spawn(serve(rpc_listener, limits, service, stop.subscribe()));
    tokio::spawn(leader_duties(shared, handle, config, recovering));
    tracing::info!(
        "namenode {id}: clients on {}, raft on {}, state in {}",
        me.addr,
        me.raft_addr,
        me.meta_dir.display()
    );
    // The driver keeps running while the servers drain, so the requests in hand can still
    // be committed and answered.
    tokio::select! {
        result = driver.run() => result,
        () = stop_on_signal(stop, vec![rpc_server, raft_server]) => {
            tracing::info!("namenode {id}: stopped");
            Ok(())
        }
    }
}
