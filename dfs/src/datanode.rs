//! The datanode daemon (`dfs datanode --conf cluster.toml --host H`).
//!
//! It opens the [`BlockStore`], serves the [`crate::transfer`] protocol, and keeps every
//! namenode informed: one reporter task per namenode registers, sends a full block report at
//! start and every `block_report_interval_ms`, heartbeats every `heartbeat_interval_ms`, and
//! forwards incremental reports (received, deleted) and corrupt replicas as they happen. Only the
//! leader puts commands in its heartbeat replies; they are executed here (replicate, delete).
//! A background scanner verifies every replica once per `scanner_interval_ms`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use crate::auth::{names, Gate};
use crate::block_store::{BlockStore, Replica};
use crate::config::{ClusterConfig, HostConfig};
use crate::error::{Error, Result};
use crate::listener::{stop_on_signal, ShutdownTrigger};
use crate::protocol::{
    Block, DatanodeCommand, DatanodeRef, DatanodeUsage, ReplicaState, ReportedReplica, Request,
    Response,
};
use crate::rpc::NamenodeClient;
use crate::transfer::{self, ReplicaEvent, TransferLimits, TransferServer};

/// Events queued per namenode before the queue is dropped in favour of a full report.
const EVENT_QUEUE_LIMIT: usize = 100_000;
/// Replications run at once on one datanode.
const MAX_CONCURRENT_REPLICATIONS: usize = 4;
/// How long free-space figures are reused before `df` is asked again.
const USAGE_REFRESH: Duration = Duration::from_secs(30);

/// A running datanode's shared state.
struct Datanode {
    config: ClusterConfig,
    host: HostConfig,
    store: Arc<BlockStore>,
    server: Arc<TransferServer>,
    namenodes: NamenodeClient,
    events: mpsc::Sender<ReplicaEvent>,
    replications: Arc<Semaphore>,
    usage_cache: std::sync::Mutex<Option<(Instant, u64, u64)>>,
}

/// Runs the datanode for `host` until the process is killed, or until SIGTERM/SIGINT, which
/// it handles by shutting down gracefully and returning `Ok`.
pub async fn run(mut config: ClusterConfig, host: &str) -> Result<()> {
    let host_cfg = config.host(host)?.clone();
    // The namenodes and other datanodes learn this process as `host`'s datanode.
    let authority = config.secrets.authority()?;
    let credentials = authority.member_credentials(&names::datanode(host));
    config.secrets.set_credentials(credentials.clone());
    let dirs = host_cfg.data_dirs.clone();
    for dir in &dirs {
        crate::power_loss::register_root(dir)?;
    }
    let label = host.to_string();
    let drop_behind = config.drop_cache_behind_writes;
    let store = tokio::task::spawn_blocking(move || BlockStore::open(&dirs, &label))
        .await
        .map_err(|e| Error::Malformed(format!("opening the store failed: {e}")))??
        .drop_cache_behind_writes(drop_behind);
    let store = Arc::new(store);
    tracing::info!(
        host,
        replicas = store.replicas().len(),
        "block store opened"
    );
    let listener = TcpListener::bind(&host_cfg.addr)
        .await
        .map_err(|e| Error::io(format!("binding datanode address {}", host_cfg.addr), e))?;
    let (events_tx, events_rx) = mpsc::channel(10_000);
    let server = TransferServer::new(
        store.clone(),
        events_tx.clone(),
        TransferLimits::from_config(&config),
        host,
        credentials,
        Some(authority.clone()),
    );
    let stop = ShutdownTrigger::new();
    let gate = Gate::Authenticate(authority);
    let transfers = tokio::spawn(server.clone().serve(listener, gate, stop.subscribe()));
    tracing::info!(host, addr = %host_cfg.addr, "datanode serving");
    let dn = Arc::new(Datanode {
        namenodes: NamenodeClient::new(&config),
        config,
        host: host_cfg,
        store,
        server,
        events: events_tx,
        replications: Arc::new(Semaphore::new(MAX_CONCURRENT_REPLICATIONS)),
        usage_cache: std::sync::Mutex::new(None),
    });
    let mut queues = Vec::new();
    for id in dn.namenodes.namenode_ids() {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE_LIMIT);
        queues.push(tx);
        tokio::spawn(dn.clone().report_to(id, rx));
    }
    tokio::spawn(dn.clone().scan_forever());
    tokio::spawn(dn.clone().expire_parked_forever());
    // Store events keep flowing to the namenodes while the transfers in hand finish.
    tokio::select! {
        () = fan_out(events_rx, queues) => {}
        () = stop_on_signal(stop, vec![transfers]) => tracing::info!(host, "datanode stopped"),
    }
    Ok(())
}

/// Copies every store event to each namenode's queue. A full queue (namenode down for long)
/// drops the event: the next full block report resynchronises that namenode.
async fn fan_out(mut rx: mpsc::Receiver<ReplicaEvent>, queues: Vec<mpsc::Sender<ReplicaEvent>>) {
    while let Some(ev) = rx.recv().await {
        for q in &queues {
            let _ = q.try_send(ev.clone());
        }
    }
}

fn reported(r: &Replica) -> ReportedReplica {
    ReportedReplica {
        block: Block {
            id: r.block_id,
            gen_stamp: r.gen_stamp,
            len_bytes: r.len_bytes,
        },
        state: ReplicaState::Finalized,
    }
}

impl Datanode {
    fn me(&self) -> DatanodeRef {
        DatanodeRef {
            host: self.host.name.clone(),
            addr: self.host.addr.clone(),
            rack: self.host.rack.clone(),
        }
    }

    /// The reporter loop for namenode `id`.
    async fn report_to(self: Arc<Self>, id: u64, mut events: mpsc::Receiver<ReplicaEvent>) {
        let heartbeat = Duration::from_millis(self.config.heartbeat_interval_ms);
        let full_every = Duration::from_millis(self.config.block_report_interval_ms);
        let mut registered = false;
        let mut last_full = Instant::now();
        let mut pending: Vec<ReplicaEvent> = Vec::new();
        let mut tick = tokio::time::interval(heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if !registered || last_full.elapsed() >= full_every {
                        registered = self.register_and_report(id).await;
                        if registered {
                            last_full = Instant::now();
                            // The full report covers everything queued so far.
                            pending.clear();
                            while events.try_recv().is_ok() {}
                        }
                        continue;
                    }
                    if !self.heartbeat(id).await {
                        registered = false;
                        continue;
                    }
                }
                Some(ev) = events.recv() => {
                    pending.push(ev);
                    while let Ok(ev) = events.try_recv() {
                        pending.push(ev);
                    }
                }
            }
            if registered && !pending.is_empty() && self.send_events(id, &pending).await {
                pending.clear();
            }
        }
    }

    async fn register_and_report(&self, id: u64) -> bool {
        let usage = self.usage().await;
        let reg = Request::Register {
            node: self.me(),
            usage,
        };
        if let Err(e) = self.namenodes.call_one(id, reg).await {
            tracing::debug!(namenode = id, "register failed: {e}");
            return false;
        }
        let report = Request::BlockReport {
            host: self.host.name.clone(),
            replicas: self.store.replicas().iter().map(reported).collect(),
        };
        match self.namenodes.call_one(id, report).await {
            Ok(_) => {
                tracing::info!(namenode = id, "registered and sent a full block report");
                true
            }
            Err(e) => {
                tracing::debug!(namenode = id, "block report failed: {e}");
                false
            }
        }
    }

    /// Sends one heartbeat and runs the commands in the reply. False means "register again".
    async fn heartbeat(self: &Arc<Self>, id: u64) -> bool {
        let req = Request::Heartbeat {
            host: self.host.name.clone(),
            usage: self.usage().await,
        };
        match self.namenodes.call_one(id, req).await {
            Ok(Response::Heartbeat(reply)) => {
                for cmd in reply.commands {
                    if cmd == DatanodeCommand::Reregister {
                        return false;
                    }
                    self.clone().execute(cmd);
                }
                true
            }
            Ok(other) => {
                tracing::warn!(namenode = id, "unexpected heartbeat reply {other:?}");
                true
            }
            Err(e) => {
                // A namenode that is down will answer Reregister when it is back.
                tracing::debug!(namenode = id, "heartbeat failed: {e}");
                true
            }
        }
    }

    /// Sends queued events as one incremental report plus corrupt reports; true when delivered.
    async fn send_events(&self, id: u64, events: &[ReplicaEvent]) -> bool {
        let mut received = Vec::new();
        let mut deleted = Vec::new();
        let mut corrupt = Vec::new();
        for ev in events {
            match ev {
                ReplicaEvent::Received(r) => received.push(reported(r)),
                ReplicaEvent::Deleted(id) => deleted.push(*id),
                ReplicaEvent::Corrupt(r) => corrupt.push(reported(r).block),
            }
        }
        if !received.is_empty() || !deleted.is_empty() {
            let req = Request::IncrementalReport {
                host: self.host.name.clone(),
                received,
                deleted,
            };
            if let Err(e) = self.namenodes.call_one(id, req).await {
                tracing::debug!(namenode = id, "incremental report failed: {e}");
                return false;
            }
        }
        for block in corrupt {
            let req = Request::ReportCorrupt {
                block,
                host: self.host.name.clone(),
            };
            if let Err(e) = self.namenodes.call_one(id, req).await {
                tracing::debug!(namenode = id, "corrupt report failed: {e}");
            }
        }
        true
    }

    fn execute(self: Arc<Self>, cmd: DatanodeCommand) {
        match cmd {
            DatanodeCommand::Replicate { block, targets } => {
                tokio::spawn(async move { self.replicate(block, targets).await });
            }
            DatanodeCommand::Delete { blocks } => {
                tokio::spawn(async move { self.delete(blocks).await });
            }
            DatanodeCommand::Recover { block } => {
                tokio::spawn(async move { self.recover(block).await });
            }
            DatanodeCommand::Reregister => {}
        }
    }

    async fn replicate(&self, block: Block, targets: Vec<DatanodeRef>) {
        let Ok(_permit) = self.replications.clone().acquire_owned().await else {
            return;
        };
        let timeout = Duration::from_millis(self.config.rpc_timeout_ms);
        let hosts: Vec<&str> = targets.iter().map(|t| t.host.as_str()).collect();
        let Ok(credentials) = self.config.secrets.credentials() else {
            return; // Set at start: not reached.
        };
        let store = self.store.clone();
        match transfer::replicate(store, block.id, &targets, credentials, timeout).await {
            Ok(()) => tracing::info!(block = block.id, ?hosts, "replicated"),
            Err(e) => {
                tracing::warn!(block = block.id, ?hosts, "replication failed: {e}");
                if let (Error::Corrupt { .. }, Some(r)) = (&e, self.store.get(block.id)) {
                    let _ = self.events.send(ReplicaEvent::Corrupt(r)).await;
                }
            }
        }
    }

    async fn delete(&self, blocks: Vec<Block>) {
        for b in blocks {
            let stale = matches!(self.store.get(b.id), Some(r) if r.gen_stamp <= b.gen_stamp);
            if !stale {
                continue;
            }
            let store = self.store.clone();
            let removed = tokio::task::spawn_blocking(move || store.delete(b.id))
                .await
                .unwrap_or(false);
            if removed {
                tracing::info!(block = b.id, "deleted replica");
                let _ = self.events.send(ReplicaEvent::Deleted(b.id)).await;
            }
        }
    }

    /// Restamps a finalized replica of the right length (the older lease-recovery command;
    /// today's leader recovers through the transfer port, see [`crate::namenode::block_recovery`]).
    async fn recover(&self, block: Block) {
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            store.restamp(block.id, block.gen_stamp, block.len_bytes)
        })
        .await;
        match result {
            Ok(Ok(replica)) => {
                let _ = self.events.send(ReplicaEvent::Received(replica)).await;
            }
            Ok(Err(e)) => tracing::info!(block = block.id, "cannot recover replica: {e}"),
            Err(e) => tracing::warn!(block = block.id, "recovery task failed: {e}"),
        }
    }

    async fn usage(&self) -> DatanodeUsage {
        let used_bytes = self.store.used_bytes();
        let cached = *crate::lock::lock(&self.usage_cache);
        let (capacity, free) = match cached {
            Some((at, cap, free)) if at.elapsed() < USAGE_REFRESH => (cap, free),
            _ => {
                let dirs = self.host.data_dirs.clone();
                let (cap, free) = tokio::task::spawn_blocking(move || disk_space(&dirs))
                    .await
                    .unwrap_or((0, 0));
                *crate::lock::lock(&self.usage_cache) = Some((Instant::now(), cap, free));
                (cap, free)
            }
        };
        let capacity_bytes = if self.host.capacity_bytes > 0 {
            self.host.capacity_bytes
        } else {
            capacity
        };
        let remaining_bytes = free.min(capacity_bytes.saturating_sub(used_bytes));
        DatanodeUsage {
            capacity_bytes,
            used_bytes,
            remaining_bytes,
            active_transfers: self.server.active_transfers(),
        }
    }

    /// Drops parked partial replicas (see [`crate::block_store`]) once lease recovery has had
    /// ample time to use them: twice the hard lease limit plus a minute.
    async fn expire_parked_forever(self: Arc<Self>) {
        let keep = Duration::from_millis(self.config.lease_hard_limit_ms.saturating_mul(2))
            + Duration::from_secs(60);
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let store = self.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.drop_parked_older_than(keep)).await;
        }
    }

    async fn scan_forever(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.scanner_interval_ms.max(1000));
        loop {
            tokio::time::sleep(every).await;
            let store = self.store.clone();
            // A short pause between replicas keeps the scan from starving foreground I/O.
            let corrupt = tokio::task::spawn_blocking(move || {
                store.scan(|| std::thread::sleep(Duration::from_millis(2)))
            })
            .await
            .unwrap_or_default();
            for r in corrupt {
                let _ = self.events.send(ReplicaEvent::Corrupt(r)).await;
            }
        }
    }
}

/// Total and free bytes of the filesystems under `dirs` (each filesystem counted once), from
/// `df`, so no unsafe `statvfs` call is needed. Zeroes when `df` is unavailable.
fn disk_space(dirs: &[PathBuf]) -> (u64, u64) {
    let mut seen = HashSet::new();
    let mut total = (0u64, 0u64);
    for dir in dirs {
        let Ok(out) = std::process::Command::new("df")
            .arg("-P")
            .arg("-k")
            .arg(dir)
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().nth(1) else {
            continue;
        };
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 6 || !seen.insert(cols[0].to_string()) {
            continue;
        }
        let kib = |s: &str| s.parse::<u64>().unwrap_or(0) * 1024;
        total.0 += kib(cols[1]);
        total.1 += kib(cols[3]);
    }
    total
}
