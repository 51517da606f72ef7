//! The namenode's RPC service and its leader duties, and [`run`], which starts a namenode.
//!
//! Writes become namespace [`Op`]s proposed through Raft; reads wait for a ReadIndex barrier
//! and then read the local namespace; both are answered only by the leader (others say
//! `NotLeader { hint }`). Datanode reports and the status call are answered by every namenode.
//! The leader also runs a periodic check that queues re-replication and deletion commands and
//! recovers files whose writer's lease expired.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::namenode::raft_driver::{build, DriverSettings, RaftHandle, Shared};
use crate::namenode::storage::Persister;
use crate::namenode::transport::{serve_raft, Transport};
use crate::namespace::{Entry, Namespace, Op, OpenFile, Outcome};
use crate::protocol::{
    Block, CallId, DatanodeCommand, FileBlocks, FsckBlock, FsckFile, HeartbeatReply, LocatedBlock,
    ReplicaState, Request, RequestFrame, Response, ResponseFrame, WireError,
};
use crate::rpc::{malformed_reply, serve, ServerLimits, Service};

/// Most files one `fsck` reports.
pub const MAX_FSCK_FILES: usize = 100_000;

/// Answers client and datanode calls on the namenode's RPC port.
pub struct NamenodeService {
    shared: Arc<Shared>,
    raft: RaftHandle,
    config: Arc<ClusterConfig>,
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
        }
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
            recover_file(&self.shared, &self.raft, &self.config, &file).await;
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
        let locations = self.shared.block_map().refs(&hosts);
        Ok(Response::Block(LocatedBlock {
            block,
            offset_bytes: self.offset_of(&path, block_id),
            locations,
            corrupt: Vec::new(),
        }))
    }

    /// Closes a file once every block has a finalized replica of the right length (HDFS's
    /// minimum replication of 1; the writer's pipeline acks are what make G2 hold for the rest).
    async fn complete(
        &self,
        call: Option<CallId>,
        path: String,
        client_name: String,
        last: Option<Block>,
    ) -> Result<Response> {
        self.shared.check_leader()?;
        self.renew(&client_name);
        let layout = self.shared.ns().file_blocks(&path, 0, u64::MAX)?;
        let (under_construction, mut blocks) = (layout.under_construction, layout.blocks);
        if under_construction {
            if let (Some(l), Some((b, _))) = (last, blocks.last_mut()) {
                if l.id == b.id {
                    b.len_bytes = l.len_bytes;
                }
            }
            // Why one finalized replica and not min(replication, live datanodes): the client
            // (client.rs `FileWriter::complete`) already polls `Complete` until it says true, so
            // waiting for more is protocol-compatible, but the namenode does not know the
            // pipeline a block was written through. After pipeline recovery without a
            // replacement node (or while a dead node still counts as live, for up to
            // `datanode_dead_after_ms`), min(replication, live) can exceed the replicas the
            // writer produced, and re-replication does not touch files under construction, so
            // `close` would spin until its deadline and fail. Raising the bar needs the pipeline
            // hosts to be recorded (e.g. from `UpdatePipeline`/`AddBlock`, in the block map) and
            // the bar to be min(replication, live, pipeline length); until then G2's
            // "on enough replicas" rests on the writer's pipeline acks, as HDFS does.
            let map = self.shared.block_map();
            if blocks.iter().any(|(b, _)| map.finalized_count(b) == 0) {
                return Ok(Response::Completed(false));
            }
        }
        let op = Op::Complete {
            path,
            client_name,
            last,
        };
        match self.write(call, op).await? {
            Outcome::Completed(c) => Ok(Response::Completed(c)),
            other => Err(unexpected(other)),
        }
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

/// The leader's periodic duties: replication check and lease recovery.
async fn leader_duties(shared: Arc<Shared>, raft: RaftHandle, config: Arc<ClusterConfig>) {
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
        recover_expired_leases(&shared, &raft, &config).await;
    }
}

/// Closes files whose writer stopped renewing, at the shortest length any replica of the last
/// block holds (durable on every replica that reported it).
async fn recover_expired_leases(shared: &Shared, raft: &RaftHandle, config: &ClusterConfig) {
    let now = shared.now_ms();
    let open = shared.ns().open_files();
    let expired: Vec<_> = {
        let mut leases = shared.leases.lock().unwrap_or_else(|e| e.into_inner());
        let holders: std::collections::HashSet<&str> =
            open.iter().map(|f| f.holder.as_str()).collect();
        leases.retain(|h, _| holders.contains(h.as_str()));
        open.iter()
            .filter(|f| {
                now.saturating_sub(*leases.entry(f.holder.clone()).or_insert(now))
                    > config.lease_hard_limit_ms
            })
            .cloned()
            .collect()
    };
    for file in expired {
        recover_file(shared, raft, config, &file).await;
    }
}

/// Proposes closing `file` at its recovered length and tells the replicas' holders to match.
async fn recover_file(shared: &Shared, raft: &RaftHandle, config: &ClusterConfig, file: &OpenFile) {
    let now = shared.now_ms();
    let (last, holders) =
        recovered_last_block(shared, file.last_block, now, config.datanode_dead_after_ms);
    let op = Op::RecoverLease {
        path: file.path.clone(),
        holder: file.holder.clone(),
        last,
    };
    let entry = Entry {
        now_ms: wall_ms(),
        call: None,
        op,
    };
    match raft.propose(entry).await {
        Ok(_) => {
            tracing::info!(
                "recovered {} from expired writer {} at {last:?}",
                file.path,
                file.holder
            );
            if let Some(block) = last {
                let mut map = shared.block_map();
                for h in holders {
                    map.push_command(&h, DatanodeCommand::Recover { block });
                }
            }
        }
        Err(e) => tracing::warn!("lease recovery of {}: {e}", file.path),
    }
}

fn recovered_last_block(
    shared: &Shared,
    last: Option<Block>,
    now: u64,
    dead_after_ms: u64,
) -> (Option<Block>, Vec<String>) {
    let Some(b) = last else {
        return (None, Vec::new());
    };
    let map = shared.block_map();
    let replicas: Vec<(String, Block, ReplicaState)> = map
        .reported(b.id)
        .into_iter()
        .filter(|(h, r, _)| r.gen_stamp >= b.gen_stamp && map.is_live(h, now, dead_after_ms))
        .collect();
    let Some(len) = replicas.iter().map(|(_, r, _)| r.len_bytes).min() else {
        return (None, Vec::new());
    };
    let hosts = replicas.into_iter().map(|(h, _, _)| h).collect();
    (
        Some(Block {
            len_bytes: len,
            ..b
        }),
        hosts,
    )
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

/// Runs namenode `id` of `config` until a fatal error (storage failure, port in use).
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
    tokio::spawn(reports.forward(handle.clone()));
    tokio::spawn(serve_raft(
        raft_listener,
        handle.clone(),
        limits.idle_timeout,
    ));
    let service = Arc::new(NamenodeService {
        shared: shared.clone(),
        raft: handle.clone(),
        config: config.clone(),
    });
    tokio::spawn(serve(rpc_listener, limits, service));
    tokio::spawn(leader_duties(shared, handle, config));
    tracing::info!(
        "namenode {id}: clients on {}, raft on {}, state in {}",
        me.addr,
        me.raft_addr,
        me.meta_dir.display()
    );
    driver.run().await
}
