//! Lease recovery, run by the leader: a file whose writer stopped renewing its lease (past the
//! hard limit, or past the soft limit when another writer asks for the file) is closed at the
//! length of its last block that [`crate::namenode::block_recovery`] chooses, after the
//! replicas were cut to it and restamped.
//!
//! Also the leader's periodic loop (`leader_duties`) that drives it, together with the
//! replication check of the block map.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::namenode::block_recovery::{self, ReplicaReport};
use crate::namenode::namespace::{Entry, Op, OpenFile, Outcome};
use crate::namenode::raft_driver::{RaftHandle, Shared};
use crate::protocol::{Block, DatanodeRef};

/// Lease recoveries on this leader (soft state).
pub(super) type Recovering = Arc<Mutex<RecoveryState>>;

/// Which recoveries are running and which wait before their next attempt.
#[derive(Debug, Default)]
pub(super) struct RecoveryState {
    /// Paths being recovered now, so two recoveries of one file (the periodic check and a
    /// soft-limit takeover) never interleave their generation stamps.
    busy: HashSet<String>,
    /// Paths whose last attempt failed: no new attempt before this time, so a file whose
    /// datanodes are unreachable does not cost a log entry per check.
    retry_at_ms: std::collections::HashMap<String, u64>,
}

/// The leader's periodic duties: replication check and lease recovery.
pub(super) async fn leader_duties(
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
            crate::lock::lock(&shared.leases).clear();
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
pub(super) struct Duty<'a> {
    pub(super) shared: &'a Shared,
    pub(super) raft: &'a RaftHandle,
    pub(super) config: &'a ClusterConfig,
    pub(super) recovering: &'a Recovering,
}

/// Releases a path from [`Recovering`] when its recovery attempt ends, however it ends.
struct RecoveryGuard<'a> {
    recovering: &'a Recovering,
    path: String,
}

impl Drop for RecoveryGuard<'_> {
    fn drop(&mut self) {
        crate::lock::lock(self.recovering).busy.remove(&self.path);
    }
}

impl Duty<'_> {
    /// When another writer holds `path` and has not renewed within the soft limit, recover the
    /// file now (HDFS's soft-limit rule), so the new writer need not wait for the hard limit.
    pub(super) async fn take_over_if_soft_expired(&self, path: &str, client_name: &str) {
        let Some(file) = self.shared.ns().open_file(path) else {
            return;
        };
        if file.holder == client_name || self.shared.check_leader().is_err() {
            return;
        }
        let now = self.shared.now_ms();
        let renewed = crate::lock::lock(&self.shared.leases)
            .get(&file.holder)
            .copied();
        // Unknown to this leader's clock (it just took over): give the holder the soft limit.
        let Some(renewed) = renewed else { return };
        if now.saturating_sub(renewed) > self.config.lease_soft_limit_ms {
            self.recover_file(&file).await;
        }
    }

    /// Recovers files whose writer stopped renewing for longer than the hard limit.
    async fn recover_expired_leases(&self) {
        let now = self.shared.now_ms();
        let open = self.shared.ns().open_files();
        {
            let paths: HashSet<&str> = open.iter().map(|f| f.path.as_str()).collect();
            let mut state = crate::lock::lock(self.recovering);
            state.retry_at_ms.retain(|p, _| paths.contains(p.as_str()));
        }
        let expired: Vec<_> = {
            let mut leases = crate::lock::lock(&self.shared.leases);
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
            now_ms: crate::clock::unix_ms(),
            call: None,
            caller: None,
            op,
        };
        let timeout = Duration::from_millis(self.config.rpc_timeout_ms);
        tokio::time::timeout(timeout, self.raft.propose(entry))
            .await
            .map_err(|_| Error::Unavailable("recovery proposal not committed in time".into()))?
    }

    /// Lease recovery of one file: closes it at the length of its last block that the rule in
    /// [`crate::namenode::block_recovery`] chooses. An attempt that cannot finish (no replica answered,
    /// no replica could be finalized, no quorum) closes nothing and is retried after
    /// `datanode_dead_after_ms` (by then an unreachable datanode is either back or known dead).
    async fn recover_file(&self, file: &OpenFile) {
        let now = self.shared.now_ms();
        {
            let mut state = crate::lock::lock(self.recovering);
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
                let mut state = crate::lock::lock(self.recovering);
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
        let credentials = self.config.secrets.credentials()?.clone();
        let nodes = self.recovery_candidates(last.id);
        let mut asks = tokio::task::JoinSet::new();
        for node in nodes {
            let credentials = credentials.clone();
            asks.spawn(async move {
                let answer =
                    crate::transfer::recovery_info(&node, last.id, &credentials, timeout).await;
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
        let Ok(credentials) = self.config.secrets.credentials().cloned() else {
            return Vec::new(); // The namenode started with them: not reached.
        };
        let from = Block {
            id: block_id,
            gen_stamp: plan.from_gen_stamp,
            len_bytes: plan.len_bytes,
        };
        let nodes = self.shared.block_map().refs(&plan.hosts);
        let mut finishes = tokio::task::JoinSet::new();
        for node in nodes {
            let credentials = credentials.clone();
            finishes.spawn(async move {
                let done =
                    crate::transfer::finish_recovery(&node, from, gen_stamp, &credentials, timeout)
                        .await;
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
