//! Assignment of free slots: one slot per worker per round, jobs first-in first-out, maps
//! before reduces. Maps wait for locality (node-local at once, rack-local after the locality
//! delay, anywhere after twice that); reduces wait for the slow-start fraction of maps; backups
//! take only the slots regular work left free; and reduces holding every slot are preempted for
//! starved maps.

use crate::diagnosis::JobEvent;

use super::events::{Action, Locality};
use super::ids::{map_task, AttemptId, JobId, TaskId, TaskKind};
use super::table::{Job, LiveAttempt, Phase, Task, Worker};
use super::Scheduler;

/// A placement chosen for a free slot.
#[derive(Debug, Clone, Copy)]
struct Pick {
    task: TaskId,
    locality: Locality,
    speculative: bool,
}

/// The two kinds of assignment pass; backups only get the slots regular work left free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Regular,
    Speculative,
}

/// Assignment of free slots.
impl Scheduler {
    /// Fills free slots with regular work, then (when enabled) with backups for stragglers.
    pub(super) fn assign(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        self.assign_pass(now_ms, Pass::Regular, actions);
        // Speculation is per job and kind (the cluster's setting is the default).
        let any_speculates = self.jobs.values().any(|j| {
            j.is_running()
                && [TaskKind::Map, TaskKind::Reduce]
                    .into_iter()
                    .any(|k| self.config.speculative_for(&j.policy, k))
        });
        if any_speculates {
            self.assign_pass(now_ms, Pass::Speculative, actions);
        }
    }

    /// Fills free slots one per worker per round, so that a burst of tasks spreads over the
    /// cluster instead of filling the first worker by name.
    fn assign_pass(&mut self, now_ms: u64, pass: Pass, actions: &mut Vec<Action>) {
        let mut candidates: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| self.is_reachable(w, now_ms) && w.free_slots() > 0)
            .map(|(name, _)| name.clone())
            .collect();
        while !candidates.is_empty() {
            let mut again = Vec::new();
            for name in candidates {
                let pick = match pass {
                    Pass::Regular => self.pick_regular(&name, now_ms),
                    Pass::Speculative => self.pick_backup(&name, now_ms),
                };
                // A worker nothing fits leaves the rotation: later rounds only take work away.
                let Some(pick) = pick else {
                    continue;
                };
                self.launch(&name, pick, now_ms, actions);
                if self.workers.get(&name).is_some_and(|w| w.free_slots() > 0) {
                    again.push(name);
                }
            }
            candidates = again;
        }
    }

    /// A worker whose heartbeats stopped is not given work even before a tick declares it lost.
    fn is_reachable(&self, worker: &Worker, now_ms: u64) -> bool {
        now_ms.saturating_sub(worker.last_heartbeat_ms) < self.config.worker_timeout_ms
    }

    /// Whether a reachable worker other than `name` has a free slot.
    fn others_free(&self, name: &str, now_ms: u64) -> bool {
        self.workers
            .iter()
            .any(|(n, w)| n != name && w.free_slots() > 0 && self.is_reachable(w, now_ms))
    }

    /// The first job (by id) with a map, else a reduce, for this worker.
    fn pick_regular(&self, name: &str, now_ms: u64) -> Option<Pick> {
        let rack = &self.workers.get(name)?.rack;
        let others_free = self.others_free(name, now_ms);
        let slowstart = self.config.reduce_slowstart();
        for (&id, job) in self.jobs.iter().filter(|(_, j)| j.is_running()) {
            if let Some((index, locality)) = self.pick_map(job, name, rack, now_ms, others_free) {
                let task = map_task(id, index);
                return Some(Pick {
                    task,
                    locality,
                    speculative: false,
                });
            }
            if !job.reduces_may_start(slowstart) {
                continue;
            }
            let reduce = job.pending_reduces.iter().copied().find(|&i| {
                let task = &job.reduces[i as usize];
                !task.avoids(name, others_free)
            });
            if let Some(index) = reduce {
                let task = TaskId {
                    job: id,
                    kind: TaskKind::Reduce,
                    index,
                };
                return Some(Pick {
                    task,
                    locality: Locality::Other,
                    speculative: false,
                });
            }
        }
        None
    }

    /// Delay scheduling: node-local at once; rack-local after the locality delay; maps without
    /// hosts at once; anything after twice the delay.
    fn pick_map(
        &self,
        job: &Job,
        name: &str,
        rack: &str,
        now_ms: u64,
        others_free: bool,
    ) -> Option<(u32, Locality)> {
        let (mut rack_local, mut hostless, mut other) = (None, None, None);
        for &index in &job.pending_maps {
            let task = &job.maps[index as usize];
            if task.avoids(name, others_free) {
                continue;
            }
            if task.hosts.is_empty() {
                hostless.get_or_insert(index);
                continue;
            }
            match self.locality(task, name, rack) {
                Locality::DataLocal => return Some((index, Locality::DataLocal)),
                Locality::RackLocal => rack_local.get_or_insert(index),
                Locality::Other => other.get_or_insert(index),
            };
        }
        let waited_ms = now_ms.saturating_sub(job.locality_wait_from_ms);
        let delay_ms = self.config.locality_delay_ms;
        if let Some(index) = rack_local.filter(|_| waited_ms >= delay_ms) {
            return Some((index, Locality::RackLocal));
        }
        if let Some(index) = hostless {
            return Some((index, Locality::Other));
        }
        other
            .filter(|_| waited_ms >= delay_ms.saturating_mul(2))
            .map(|index| (index, Locality::Other))
    }

    /// How close worker `name` on `rack` is to a replica of the map's split. A host never heard
    /// from has an unknown rack.
    fn locality(&self, task: &Task, name: &str, rack: &str) -> Locality {
        if task.hosts.iter().any(|h| h == name) {
            return Locality::DataLocal;
        }
        let same_rack = |h: &String| self.racks.get(h).is_some_and(|r| r == rack);
        if task.hosts.iter().any(same_rack) {
            return Locality::RackLocal;
        }
        Locality::Other
    }

    /// A backup for the job's worst straggler, on a worker other than the one running it.
    fn pick_backup(&self, name: &str, now_ms: u64) -> Option<Pick> {
        let rack = &self.workers.get(name)?.rack;
        for (&id, job) in self.jobs.iter().filter(|(_, j)| j.is_running()) {
            for kind in [TaskKind::Map, TaskKind::Reduce] {
                if !self.config.speculative_for(&job.policy, kind) {
                    continue;
                }
                if let Some(task) = self.straggler(id, job, kind, name, now_ms) {
                    let locality = match kind {
                        TaskKind::Map => self.locality(&job.maps[task.index as usize], name, rack),
                        TaskKind::Reduce => Locality::Other,
                    };
                    return Some(Pick {
                        task,
                        locality,
                        speculative: true,
                    });
                }
            }
        }
        None
    }

    fn launch(&mut self, name: &str, pick: Pick, now_ms: u64, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(&pick.task.job) else {
            return;
        };
        // Pair assertion with `fail_job` and `finish_job_if_complete`, which end every live
        // attempt of a job they stop: every live attempt belongs to a running job.
        assert!(job.is_running(), "{} launched in a finished job", pick.task);
        let Some(task) = job.task_mut(pick.task) else {
            return;
        };
        // A regular pick is a pending task; a backup races the one attempt of a running task,
        // on another worker (`straggler`). A task never runs beside its commit or after it is
        // done, and never has more than two running attempts.
        let others_here = task.running.iter().any(|a| {
            let live = self.live.get(a);
            live.is_some_and(|l| l.worker == name)
        });
        assert!(
            !task.done
                && task.committing.is_none()
                && task.running.len() == usize::from(pick.speculative)
                && !others_here,
            "{} launched on {name} out of turn",
            pick.task
        );
        let attempt = AttemptId {
            task: pick.task,
            attempt: task.next_attempt,
        };
        task.next_attempt = task.next_attempt.saturating_add(1);
        task.running.insert(attempt);
        task.last_failed_on = None;
        job.sync_pending(pick.task);
        if pick.task.kind == TaskKind::Map {
            // Maps are getting slots: they are not starved (see `preempt_reduces`).
            job.maps_starved_since_ms = None;
        }
        count_launch(job, pick, now_ms);
        // `assign_pass` offers only registered workers with a free slot.
        let worker = self.workers.get_mut(name);
        let Some(worker) = worker.filter(|w| w.free_slots() > 0) else {
            panic!("{attempt} launched on {name}, which has no free slot");
        };
        worker.running.insert(attempt);
        let live = LiveAttempt {
            worker: name.to_string(),
            phase: Phase::Running,
            locality: pick.locality,
            launched_ms: now_ms,
            progress: 0.0,
            progress_changed_ms: now_ms,
        };
        self.live.insert(attempt, live);
        if pick.speculative {
            let host = name.to_string();
            let event = JobEvent::SpeculativeLaunched {
                task: pick.task,
                host,
            };
            self.notes.push((pick.task.job, event));
        }
        actions.push(Action::Launch {
            worker: name.to_string(),
            attempt,
            locality: pick.locality,
        });
    }
}

fn count_launch(job: &mut Job, pick: Pick, now_ms: u64) {
    let status = &mut job.status;
    match pick.task.kind {
        TaskKind::Map => status.launched_maps += 1,
        TaskKind::Reduce => status.launched_reduces += 1,
    }
    if pick.speculative {
        status.speculative_attempts += 1;
    }
    status.first_launch_ms.get_or_insert(now_ms);
    // The locality delay counts from the last node-local launch: a job that keeps getting
    // local slots keeps waiting for them.
    if pick.locality == Locality::DataLocal {
        job.locality_wait_from_ms = now_ms;
    }
}

/// Reduce preemption.
impl Scheduler {
    /// Reduces wait for every map's output while holding their slots. When a job's maps
    /// (re-runs after a lost worker, or maps not yet started) have been pending for a while
    /// with no reachable slot free and no map of the job launched meanwhile, its most
    /// recently launched running reduce is killed to make room; otherwise the reduces and the
    /// maps they wait for would deadlock. Maps that keep getting slots as others finish are
    /// not starved, so a busy map phase does not preempt. The kill does not count as a
    /// failure; the reduce runs again later.
    pub(super) fn preempt_reduces(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        let any_free = self
            .workers
            .values()
            .any(|w| self.is_reachable(w, now_ms) && w.free_slots() > 0);
        let grace_ms = (2 * self.config.locality_delay_ms).max(1_000);
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            let running_reduces: Vec<(u64, AttemptId)> = self
                .live_attempts(id, Some(TaskKind::Reduce))
                .into_iter()
                .filter_map(|a| {
                    let l = self.live.get(&a)?;
                    (l.phase == Phase::Running).then_some((l.launched_ms, a))
                })
                .collect();
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            let starved = job.is_running()
                && !job.pending_maps.is_empty()
                && !any_free
                && !running_reduces.is_empty();
            if !starved {
                job.maps_starved_since_ms = None;
                continue;
            }
            let since = *job.maps_starved_since_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(since) < grace_ms {
                continue;
            }
            // Wait a full grace period again before the next preemption.
            job.maps_starved_since_ms = Some(now_ms);
            let victim = running_reduces.iter().max().map(|(_, a)| *a);
            if let Some(victim) = victim {
                self.kill_attempt(victim, true, actions);
            }
            return;
        }
    }
}
