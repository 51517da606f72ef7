//! The jobtracker pages as HTML, from the data their JSON twins send (pure; maud escapes every
//! job name, host and error).

use dfs::http::page::{bytes, secs};
use dfs::shell::format_time;
use maud::{html, Markup};

use super::{JobPage, JobRow, JobsPage};
use crate::jobtracker::history::AttemptState;
use crate::scheduler::{Locality, TaskKind};

fn progress((done, running, total): (u32, u32, u32)) -> String {
    if total == 0 {
        return "-".into();
    }
    format!("{done}/{total} ({running} running)")
}

fn state_class(state: &str) -> &'static str {
    match state {
        "SUCCEEDED" => "good",
        "FAILED" => "bad",
        _ => "",
    }
}

fn job_rows(jobs: &[JobRow]) -> Markup {
    html! {
        table #jobs {
            tr {
                th { "job" } th { "name" } th { "user" } th { "state" } th { "submitted" }
                th { "duration" } th { "maps" } th { "reduces" }
            }
            @for j in jobs {
                tr.job {
                    td { a href=(format!("/job/{}", j.id)) { (j.id) } }
                    td { a href=(format!("/job/{}", j.id)) { (j.name) } }
                    td { (j.user) }
                    td class=(state_class(j.state)) { (j.state) }
                    td { (format_time(j.submitted_unix_ms)) }
                    td.n { (secs(j.elapsed_ms)) }
                    td { (progress(j.maps)) }
                    td { (progress(j.reduces)) }
                }
            }
        }
    }
}

/// The jobs list and the workers.
pub fn jobs(p: &JobsPage) -> Markup {
    html! {
        h2 { "Jobs" }
        @if p.jobs.is_empty() { p { "No job yet." } } @else { (job_rows(&p.jobs)) }
        h2 { "Workers" }
        table #workers {
            tr { th { "host" } th { "rack" } th { "slots" } th { "running" } th { "last heartbeat" } th { "state" } }
            @for w in &p.workers {
                tr {
                    td { (w.host) }
                    td { (w.rack) }
                    td.n { (w.slots) }
                    td.n { (w.running) }
                    td.n { (secs(w.last_heartbeat_ms)) " ago" }
                    @if w.live { td.good { "live" } } @else { td.bad { "lost" } }
                }
            }
        }
    }
}

fn locality(l: Locality) -> &'static str {
    match l {
        Locality::DataLocal => "data-local",
        Locality::RackLocal => "rack-local",
        Locality::Other => "remote",
    }
}

fn attempt_state(s: AttemptState) -> Markup {
    let class = match s {
        AttemptState::Succeeded => "good",
        AttemptState::Failed => "bad",
        _ => "",
    };
    html! { td class=(class) { (format!("{s:?}")) } }
}

/// The job page: summary, timeline, tasks, attempts, counters, skew, stragglers, failures.
pub fn job(p: &JobPage) -> Markup {
    let j = &p.job;
    html! {
        (job_rows(std::slice::from_ref(j)))
        @if let Some(reason) = &j.reason { p.bad #reason { (reason) } }
        p { "output " code { (p.output) } ", input " (bytes(p.input_bytes)) }
        h2 { "Timeline" }
        @if p.attempts.is_empty() { p { "No attempt recorded by this jobtracker." } }
        @else { (super::timeline::svg(&p.attempts, p.now_unix_ms)) }
        (failures(p))
        (skew_and_stragglers(p))
        h2 { "Tasks" }
        table #tasks {
            tr { th { "task" } th { "state" } th { "attempts" } th { "host" } }
            @for t in &p.tasks {
                tr.task { td { (t.task) } (attempt_state(t.state)) td.n { (t.attempts) } td { (t.host) } }
            }
        }
        (attempts(p))
        h2 { "Counters" }
        table #counters {
            tr { th { "group" } th { "name" } th { "value" } }
            @for c in &p.counters {
                tr { td { (c.group) } td { (c.name) } td.n { (c.value) } }
            }
        }
    }
}

fn attempts(p: &JobPage) -> Markup {
    let started = |ms: u64| secs(ms.saturating_sub(p.job.submitted_unix_ms));
    html! {
        h2 { "Attempts" }
        @if p.attempts_not_kept > 0 { p { (p.attempts_not_kept) " more attempts were not kept." } }
        table #attempts {
            tr {
                th { "attempt" } th { "state" } th { "host" } th { "locality" } th { "started" }
                th { "duration" } th { "input" } th { "records" } th { "output" } th { "status" }
            }
            @for a in &p.attempts {
                tr.attempt {
                    td {
                        a href=(super::logs::url(p.job.id, &a.attempt)) { (a.attempt) }
                        @if a.speculative { " (backup)" }
                    }
                    (attempt_state(a.state))
                    td { (a.host) }
                    td { @if a.kind == TaskKind::Map { (locality(a.locality)) } }
                    td.n { "+" (started(a.start_unix_ms)) }
                    td.n { (secs(a.duration_ms(p.now_unix_ms))) }
                    td.n { (bytes(a.input_bytes)) }
                    td.n { (a.input_records) }
                    td.n { (bytes(a.output_bytes)) }
                    td { (a.status.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}

fn failures(p: &JobPage) -> Markup {
    html! {
        @if !p.failed.is_empty() {
            h2 { "Failed attempts" }
            table #failed {
                tr { th { "attempt" } th { "host" } th { "error" } th { "logs" } }
                @for f in &p.failed {
                    tr {
                        td { (f.attempt) } td { (f.host) } td { pre { (f.error) } }
                        td { a.logs href=(f.logs_url) { "logs" } " or " code { (f.logs) } }
                    }
                }
            }
        }
    }
}

fn skew_and_stragglers(p: &JobPage) -> Markup {
    html! {
        @if let Some(s) = &p.skew {
            h2 { "Reduce input skew" }
            p { "median partition: " (s.median_records) " records" }
            table #skew {
                tr { th { "partition" } th { "records" } th { "bytes" } th { "x median" } }
                @for part in &s.largest {
                    tr {
                        td.n { (part.index) } td.n { (part.records) } td.n { (bytes(part.bytes)) }
                        td.n { (format!("{:.1}", part.ratio)) }
                    }
                }
            }
        }
        @if !p.stragglers.is_empty() {
            h2 { "Stragglers" }
            table #stragglers {
                tr { th { "attempt" } th { "host" } th { "locality" } th { "duration" } th { "median" } }
                @for s in &p.stragglers {
                    tr {
                        td { (s.attempt) @if s.running { " (running)" } }
                        td { (s.host) } td { (locality(s.locality)) }
                        td.n { (secs(s.duration_ms)) } td.n { (secs(s.median_ms)) }
                    }
                }
            }
        }
        p {
            "speculative attempts: " (p.status.speculative_attempts)
            ", killed: " (p.status.killed_attempts)
            ", maps re-run: " (p.status.rerun_maps)
        }
    }
}
