//! The namenode's RPC service, and [`run`], which starts a namenode.
//!
//! Writes become namespace [`Op`]s proposed through Raft; reads wait for a ReadIndex barrier
//! and then read the local namespace; both are answered only by the leader (others say
//! `NotLeader { hint }`). Datanode reports and the status call are answered by every namenode.
//! The leader's periodic duties (replication check, lease recovery) are in
//! [`crate::namenode::lease_recovery`].
//!
//! `Complete` is answered "yes" only when every block has min(replication, usable datanodes)
//! good replicas ([`crate::namenode::completion`]); copies a block lacks beyond what its recorded
//! pipeline will report are ordered from here, so a writer's `close` converges (G2).

use std::sync::Arc;
use std::time::Duration;

use super::access::authorize;
use super::lease_recovery::{Duty, Recovering};
use crate::auth::{Authority, BlockAccess, Principal};
use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::namenode::block_map::ClosingFile;
use crate::namenode::namespace::{Entry, Namespace, Op, Outcome};
use crate::namenode::placement::{self, PipelineChange};
use crate::namenode::raft_driver::{RaftHandle, Shared};
use crate::protocol::{
    Block, CallId, DatanodeCommand, FileBlocks, FsckBlock, FsckFile, HeartbeatReply, LocatedBlock,
    NamenodeStatus, Request, RequestFrame, Response, ResponseFrame, WireError,
};
use crate::rpc::{malformed_reply, Service};

/// Most files one `fsck` reports.
pub const MAX_FSCK_FILES: usize = 100_000;

/// Who the web pages act as without a login: nobody in particular (Hadoop's static web
/// user), so a page shows only what the file permissions let anyone see.
pub const WEB_USER: &str = crate::http::session::ANONYMOUS;

/// Answers client and datanode calls on the namenode's RPC port.
pub struct NamenodeService {
    shared: Arc<Shared>,
    /// The cluster key, to sign block access tokens.
    authority: Authority,
    raft: RaftHandle,
    config: Arc<ClusterConfig>,
    recovering: Recovering,
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

    async fn call(&self, caller: &Principal, req: RequestFrame) -> ResponseFrame {
        let started = std::time::Instant::now();
        let method: &'static str = (&req.body).into();
        let result = self
            .handle(caller, req.call, req.body)
            .await
            .map(|resp| self.with_block_tokens(resp));
        crate::metrics::rpc().observe(method, started);
        ResponseFrame {
            request_id: req.request_id,
            result: result.map_err(|e| WireError::from(&e)),
        }
    }

    fn malformed(&self, err: &Error) -> ResponseFrame {
        malformed_reply(err)
    }
}

/// Who a write is for, as it goes into the log entry: the call's retry identity (for the
/// calls the retry cache keeps) and the user it acts as, whose permissions the apply checks
/// again.
#[derive(Debug, Clone)]
struct Origin {
    call: Option<CallId>,
    user: String,
}

impl Origin {
    /// The same user, for an idempotent operation the retry cache need not keep.
    fn uncached(&self) -> Origin {
        Origin {
            call: None,
            user: self.user.clone(),
        }
    }
}

fn unexpected(outcome: Outcome) -> Error {
    Error::Raft(format!("unexpected outcome {outcome:?}"))
}

impl NamenodeService {
    /// The service of a namenode whose Raft node runs behind `raft`.
    pub(super) fn new(
        authority: Authority,
        shared: Arc<Shared>,
        raft: RaftHandle,
        config: Arc<ClusterConfig>,
        recovering: Recovering,
    ) -> NamenodeService {
        NamenodeService {
            authority,
            shared,
            raft,
            config,
            recovering,
        }
    }

    /// Puts block access tokens into the block locations of a reply: read tokens for a
    /// reader's locations, write tokens for a pipeline's. One place, after every handler
    /// (and its permission checks) said yes.
    fn with_block_tokens(&self, resp: Response) -> Response {
        let now = crate::auth::now_unix_ms();
        let sign = |lb: &mut LocatedBlock, access| {
            lb.token = Some(self.authority.block_token(lb.block.id, access, now));
        };
        match resp {
            Response::Block(mut lb) => {
                sign(&mut lb, BlockAccess::Write);
                Response::Block(lb)
            }
            Response::Blocks(mut fb) => {
                fb.blocks
                    .iter_mut()
                    .for_each(|lb| sign(lb, BlockAccess::Read));
                Response::Blocks(fb)
            }
            other => other,
        }
    }

    /// Lease recovery with this service's state (for the soft-limit takeover in `Create`).
    fn duty(&self) -> Duty<'_> {
        Duty {
            shared: &self.shared,
            raft: &self.raft,
            config: &self.config,
            recovering: &self.recovering,
        }
    }

    fn dead_after_ms(&self) -> u64 {
        self.config.datanode_dead_after_ms
    }

    fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.config.rpc_timeout_ms)
    }

    /// Proposes an op for `origin` and waits for its applied result (a permission error if
    /// the namespace at its turn in the log no longer allows it).
    async fn write(&self, origin: Origin, op: Op) -> Result<Outcome> {
        self.shared.check_leader()?;
        let entry = Entry {
            now_ms: crate::clock::unix_ms(),
            call: origin.call,
            caller: Some(origin.user),
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
        crate::lock::lock(&self.shared.leases).insert(client.to_string(), now);
    }

    /// Answers a read-only request for the web pages as `viewer` (the logged-in user, else
    /// [`WEB_USER`]), in process: the same answer an RPC would get. Anything that could
    /// change the namespace or the block map is refused, so no page can change the cluster.
    pub(crate) async fn read_only(&self, viewer: &Principal, body: Request) -> Result<Response> {
        match body {
            Request::Stat { .. }
            | Request::List { .. }
            | Request::Du { .. }
            | Request::GetBlockLocations { .. }
            | Request::Fsck { .. }
            | Request::DatanodeReport
            | Request::Status => {
                // Held to the viewer's file permissions: a page shows only what it may see
                // (no block tokens either: those are added only on the RPC path).
                self.handle(viewer, None, body).await
            }
            other => Err(Error::Malformed(format!(
                "{} is not a read-only request",
                <&'static str>::from(&other)
            ))),
        }
    }

    /// The cluster config this namenode runs with.
    pub(crate) fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Dispatches a request to the handler of its group: a writer's calls on the file it holds
    /// the lease of (opening, closing, renewing; the blocks and their pipelines), other
    /// namespace calls, or datanode and status calls.
    async fn handle(
        &self,
        caller: &Principal,
        call: Option<CallId>,
        body: Request,
    ) -> Result<Response> {
        if !body.any_namenode() {
            // Checked on the leader's namespace before anything is read or proposed (G8);
            // a follower answers NotLeader rather than judging from a stale view.
            self.shared.check_leader()?;
            authorize(&self.shared.ns(), caller, &body)?;
        }
        let origin = Origin {
            call,
            user: caller.user().to_string(),
        };
        match body {
            Request::Create { .. } | Request::Complete { .. } | Request::RenewLease { .. } => {
                self.handle_writer(origin, body).await
            }
            Request::AddBlock { .. }
            | Request::AbandonBlock { .. }
            | Request::UpdatePipeline { .. }
            | Request::AddDatanode { .. } => self.handle_pipeline(origin, body).await,
            Request::Mkdirs { .. }
            | Request::Rename { .. }
            | Request::Delete { .. }
            | Request::SetReplication { .. }
            | Request::Stat { .. }
            | Request::List { .. }
            | Request::Du { .. }
            | Request::GetBlockLocations { .. }
            | Request::SetPermission { .. }
            | Request::SetOwner { .. }
            | Request::Fsck { .. } => self.handle_namespace(origin, body).await,
            Request::Register { .. }
            | Request::Heartbeat { .. }
            | Request::BlockReport { .. }
            | Request::IncrementalReport { .. }
            | Request::ReportCorrupt { .. }
            | Request::DatanodeReport
            | Request::Status => self.handle_datanode(caller, body),
        }
    }

    /// A writer's calls on its lease: opening a file, closing it, renewing the lease.
    async fn handle_writer(&self, origin: Origin, body: Request) -> Result<Response> {
        match body {
            Request::Create {
                path,
                replication,
                block_size_bytes,
                overwrite,
                require_parent,
                client_name,
            } => {
                self.renew(&client_name);
                self.duty()
                    .take_over_if_soft_expired(&path, &client_name)
                    .await;
                let op = Op::Create {
                    path,
                    replication: replication.unwrap_or(self.config.replication),
                    block_size_bytes: block_size_bytes.unwrap_or(self.config.block_size_bytes),
                    overwrite,
                    require_parent,
                    client_name,
                    owner: origin.user.clone(),
                };
                match self.write(origin, op).await? {
                    Outcome::Status(s) => Ok(Response::Status(s)),
                    other => Err(unexpected(other)),
                }
            }
            Request::Complete {
                path,
                client_name,
                last,
            } => self.complete(origin, path, client_name, last).await,
            Request::RenewLease { client_name } => {
                self.shared.check_leader()?;
                self.renew(&client_name);
                Ok(Response::Done)
            }
            other => unreachable!("handle sends only a writer's calls here, not {other:?}"),
        }
    }

    /// A writer's calls on the blocks of its file and their pipelines.
    async fn handle_pipeline(&self, origin: Origin, body: Request) -> Result<Response> {
        match body {
            Request::AddBlock {
                path,
                client_name,
                previous,
                writer_host,
                excluded_hosts,
            } => {
                self.add_block(
                    origin,
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
                self.write(origin, op).await.map(|_| Response::Done)
            }
            Request::UpdatePipeline {
                path,
                client_name,
                block_id,
                hosts,
            } => {
                self.update_pipeline(origin, path, client_name, block_id, hosts)
                    .await
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
            other => unreachable!("handle sends only pipeline calls here, not {other:?}"),
        }
    }

    /// Namespace calls outside a writer's lease: directory changes and reads.
    async fn handle_namespace(&self, origin: Origin, body: Request) -> Result<Response> {
        let uncached = origin.uncached();
        let owner = origin.user.clone();
        match body {
            Request::Mkdirs { path } => self
                .write(uncached, Op::Mkdirs { path, owner })
                .await
                .map(|_| Response::Done),
            Request::SetPermission { path, mode } => self
                .write(uncached, Op::SetPermission { path, mode })
                .await
                .map(|_| Response::Done),
            Request::SetOwner { path, owner, group } => self
                .write(uncached, Op::SetOwner { path, owner, group })
                .await
                .map(|_| Response::Done),
            Request::Rename { src, dst } => self
                .write(origin, Op::Rename { src, dst })
                .await
                .map(|_| Response::Done),
            Request::Delete { path, recursive } => {
                match self.write(origin, Op::Delete { path, recursive }).await? {
                    Outcome::Deleted(d) => Ok(Response::Deleted(d)),
                    other => Err(unexpected(other)),
                }
            }
            Request::SetReplication { path, replication } => self
                .write(uncached, Op::SetReplication { path, replication })
                .await
                .map(|_| Response::Done),
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
            Request::GetBlockLocations {
                path,
                offset_bytes,
                len_bytes,
                reader_host,
            } => {
                self.locations(&path, offset_bytes, len_bytes, reader_host.as_deref())
                    .await
            }
            Request::Fsck { path } => self.fsck(&path).await,
            other => unreachable!("handle sends only namespace calls here, not {other:?}"),
        }
    }

    /// A datanode speaks only for itself (G8): Register, heartbeats and reports are taken only
    /// from the member that authenticated as that host's datanode, and a Register only with
    /// the address the config gives that host, so nobody can move a host elsewhere.
    fn check_datanode_caller(&self, caller: &Principal, body: &Request) -> Result<()> {
        let (host, addr) = match body {
            Request::Register { node, .. } => (&node.host, Some(&node.addr)),
            Request::Heartbeat { host, .. }
            | Request::BlockReport { host, .. }
            | Request::IncrementalReport { host, .. }
            | Request::ReportCorrupt { host, .. } => (host, None),
            _ => return Ok(()),
        };
        if caller.datanode_host() != Some(host.as_str()) {
            return Err(Error::PermissionDenied(format!(
                "{caller} may not speak for datanode {host}"
            )));
        }
        match (addr, self.config.host(host)) {
            (Some(addr), Ok(h)) if *addr != h.addr => Err(Error::PermissionDenied(format!(
                "datanode {host} registered from {addr}, but the config puts it at {}",
                h.addr
            ))),
            (Some(_), Err(_)) => Err(Error::PermissionDenied(format!(
                "no host {host} in the cluster config"
            ))),
            _ => Ok(()),
        }
    }

    /// Datanode reports and status calls, answered by every namenode from its soft state.
    /// Replica reports are taken only from registered hosts: a report from anyone else (a
    /// forgery, or a datanode this namenode forgot) would plant replicas that no heartbeat
    /// ever expires; a real datanode registers again when told to by its next heartbeat.
    fn handle_datanode(&self, caller: &Principal, body: Request) -> Result<Response> {
        let now = self.shared.now_ms();
        self.check_datanode_caller(caller, &body)?;
        let reporter = match &body {
            Request::BlockReport { host, .. }
            | Request::IncrementalReport { host, .. }
            | Request::ReportCorrupt { host, .. } => Some(host),
            _ => None,
        };
        if let Some(host) = reporter {
            if !self.shared.block_map().is_registered(host) {
                return Err(Error::NotFound(format!(
                    "datanode {host} is not registered with this namenode: register first"
                )));
            }
        }
        Ok(match body {
            Request::Register { node, usage } => {
                self.shared.block_map().register(node, usage, now);
                Response::Done
            }
            Request::Heartbeat { host, usage } => Response::Heartbeat(self.heartbeat(&host, usage)),
            Request::BlockReport { host, replicas } => {
                self.shared.block_map().full_report(&host, &replicas);
                Response::Done
            }
            Request::IncrementalReport {
                host,
                received,
                deleted,
            } => {
                self.shared
                    .block_map()
                    .incremental(&host, &received, &deleted);
                Response::Done
            }
            Request::ReportCorrupt { block, host } => {
                self.shared.block_map().mark_corrupt(&host, &block);
                Response::Done
            }
            Request::DatanodeReport => {
                Response::Datanodes(self.shared.block_map().report(now, self.dead_after_ms()))
            }
            Request::Status => Response::NamenodeStatus(NamenodeStatus {
                cluster_id: self.config.cluster_id.clone(),
                ..self.shared.status()
            }),
            other => unreachable!("handle sends only datanode calls here, not {other:?}"),
        })
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
            map.suspect(h);
        }
        let nodes = map.live_views(now, self.dead_after_ms());
        let rebuilt = placement::rebuild_pipeline(
            &nodes,
            status.replication as usize,
            &change,
            status.block_size_bytes,
            rand::random(),
        );
        map.record_pipeline(block_id, &rebuilt.pipeline);
        let chosen = rebuilt.replacements;
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
            token: None,
        }))
    }

    fn heartbeat(&self, host: &str, usage: crate::protocol::DatanodeUsage) -> HeartbeatReply {
        crate::metrics::namenode().heartbeats.inc();
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
        origin: Origin,
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
            let hosts = placement::choose_targets(
                &nodes,
                status.replication as usize,
                writer_host.as_deref(),
                &[],
                &excluded,
                status.block_size_bytes,
                rand::random(),
            );
            if hosts.is_empty() {
                return Err(no_datanodes(
                    &path,
                    &nodes,
                    &excluded,
                    status.block_size_bytes,
                ));
            }
            map.refs(&hosts)
        };
        let op = Op::AddBlock {
            path: path.clone(),
            client_name,
            previous,
        };
        let Outcome::Block(block) = self.write(origin, op).await? else {
            return Err(Error::Raft("AddBlock returned no block".into()));
        };
        let hosts: Vec<String> = targets.iter().map(|t| t.host.clone()).collect();
        self.shared.block_map().record_pipeline(block.id, &hosts);
        Ok(Response::Block(LocatedBlock {
            block,
            offset_bytes: self.offset_of(&path, block.id),
            locations: targets,
            corrupt: Vec::new(),
            token: None,
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
        origin: Origin,
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
        let Outcome::Block(block) = self.write(origin, op).await? else {
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
            token: None,
        }))
    }

    /// Closes a file once every block has min(replication, usable datanodes) good replicas
    /// (G2; the rule is [`crate::namenode::completion`]). Until then it answers `Completed(false)` and
    /// orders the copies that the block's recorded pipeline will not produce; the writer polls
    /// for a bounded time.
    async fn complete(
        &self,
        origin: Origin,
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
            let file = ClosingFile {
                blocks: &blocks,
                replication: status.replication,
                block_size_bytes: status.block_size_bytes,
            };
            if !self.durable_enough(&path, &file) {
                return Ok(Response::Completed(false));
            }
        }
        let op = Op::Complete {
            path,
            client_name,
            last,
        };
        match self.write(origin, op).await? {
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

    /// Whether every block meets G2's bar; queues copies for blocks short of it. The decision
    /// is [`crate::namenode::block_map::BlockMap::plan_close`]; this takes the lock, queues
    /// the copies and logs them.
    fn durable_enough(&self, path: &str, file: &ClosingFile<'_>) -> bool {
        let now = self.shared.now_ms();
        let retry_after_ms = self
            .config
            .datanode_dead_after_ms
            .max(self.config.heartbeat_interval_ms * 10);
        let mut map = self.shared.block_map();
        let plan = map.plan_close(file, now, self.dead_after_ms(), rand::random());
        for copy in &plan.copies {
            if map.request_copy(copy.block, &copy.source, &copy.targets, now, retry_after_ms) {
                tracing::info!(
                    path,
                    block = copy.block.id,
                    source = copy.source,
                    targets = ?copy.targets,
                    "block short of replicas at close: copying"
                );
            }
        }
        plan.ready
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
                    token: None,
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

/// Why `AddBlock` found no datanode for a block of `path`, in HDFS's words ("could only be
/// written to 0 of the 1 minimum replicas") followed by the counts an operator needs.
fn no_datanodes(
    path: &str,
    live: &[placement::NodeView],
    excluded: &[String],
    block_size_bytes: u64,
) -> Error {
    let excluded_live = live.iter().filter(|n| excluded.contains(&n.host)).count();
    let full = live
        .iter()
        .filter(|n| !excluded.contains(&n.host))
        .filter(|n| !placement::has_room(n.remaining_bytes, block_size_bytes))
        .count();
    let mut why = format!("{} datanodes running", live.len());
    if excluded_live > 0 {
        why.push_str(&format!(", {excluded_live} excluded by this writer"));
    }
    if full > 0 {
        why.push_str(&format!(
            ", {full} without room for a block of {block_size_bytes} bytes"
        ));
    }
    Error::NoDatanodes(format!(
        "{path}: could only be written to 0 of the 1 minimum replicas: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reason a write with no datanode reports: HDFS's words, then the counts.
    #[test]
    fn no_datanodes_says_how_many_run_and_why_none_fits() {
        let msg = no_datanodes("/f", &[], &[], 1024).to_string();
        assert_eq!(
            msg,
            "/f: could only be written to 0 of the 1 minimum replicas: 0 datanodes running"
        );
        let node = |host: &str, remaining_bytes| placement::NodeView {
            host: host.into(),
            rack: "r".into(),
            remaining_bytes,
        };
        let live = [node("h1", 0), node("h2", u64::MAX)];
        let msg = no_datanodes("/f", &live, &["h2".into()], 1024).to_string();
        assert!(
            msg.ends_with(
                "2 datanodes running, 1 excluded by this writer, 1 without room for a block of \
                 1024 bytes"
            ),
            "{msg}"
        );
        assert_eq!(
            Error::from(crate::protocol::WireError::from(&Error::NoDatanodes(
                msg.clone()
            )))
            .to_string(),
            msg,
            "the kind and the sentence survive the wire"
        );
    }
}
