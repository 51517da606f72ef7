//! MapReduce scenarios (G6): workers killed in the map phase, in the middle of the shuffle and
//! in the reduce phase, a worker cut off between finishing a reduce and its commit, and a
//! randomized mix of faults over a run of wordcount and terasort jobs. Every job's output must
//! equal local mode's byte for byte, hold exactly the part files and `_SUCCESS`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_tests::cluster::{Cluster, Daemon, Options};
use cluster_tests::proxy::{LinkFault, Proxy};
use cluster_tests::schedule::{self, Fault};
use cluster_tests::seed;
use common::{local_output, must_equal_output, must_put_dir, write_corpus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

static TURN: Mutex<()> = Mutex::new(());

/// A job's progress as `mrjob status` shows it.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    maps_done: u32,
    maps_total: u32,
    reduces_running: u32,
}

fn progress(c: &Cluster, job: u32) -> Option<Progress> {
    let out = c.mrjob(&["status", &job.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let num = |s: &str| -> u32 {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    };
    let maps = text.split("maps ").nth(1)?;
    let (done, rest) = maps.split_once('/')?;
    let reduces = text.split("reduces ").nth(1)?;
    let running = reduces.split('(').nth(1)?;
    Some(Progress {
        maps_done: num(done),
        maps_total: num(rest),
        reduces_running: num(running),
    })
}

/// Worker hosts where an attempt of `kind` ('m' or 'r') of job `job` has (or had) its
/// directory, i.e. ran there.
fn hosts_with_attempts(c: &Cluster, job: u32, kind: char) -> Vec<String> {
    let tag = format!("_{kind}_");
    c.worker_hosts()
        .into_iter()
        .filter(|h| {
            let dir = c
                .state_dir(h)
                .join("work/jobs")
                .join(format!("job_{job:04}"));
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().contains(&tag))
            })
        })
        .collect()
}

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finish(job: Child, what: &str) -> String {
    let out = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed: {stderr}");
    stderr
}

/// Starts `mrjob wordcount /in /out -r 2` on the cluster in the background.
fn spawn_wordcount(c: &Cluster) -> Child {
    c.mrjob_command(&["wordcount", "/in", "/out", "-r", "2"])
        .spawn()
        .unwrap()
}

/// Input of about 1.8 MB (28 blocks of 64 KiB) in dfs `/in`, and local mode's wordcount.
fn wordcount_input(
    c: &Cluster,
    work: &Path,
    seed: u64,
    reduces: &str,
) -> BTreeMap<String, Vec<u8>> {
    let input = work.join("in");
    write_corpus(&input, seed, 12, 150_000);
    must_put_dir(c, &input, "/in");
    local_output(
        "wordcount",
        &input,
        &work.join("local-wc"),
        &["-r", reduces],
    )
}

// Checks G6: a worker (with its task processes) is SIGKILLed while its map attempts run, and
// restarted two seconds later; the job's output equals local mode.
#[test]
fn worker_killed_mid_map() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("worker_killed_mid_map");
    let work = tempfile::tempdir().unwrap();
    // First map attempts take a second, so the map phase lasts.
    let mut c = Cluster::start(
        "worker-killed-mid-map",
        Options {
            faults: "sleep:m:*:0:1000".into(),
            ..Options::default()
        },
    );
    let want = wordcount_input(&c, work.path(), seed, "2");
    let job = spawn_wordcount(&c);
    let victim = wait_for("a map attempt running", Duration::from_secs(60), || {
        let p = progress(&c, 1)?;
        (p.maps_done >= 1 && p.maps_done < p.maps_total)
            .then(|| hosts_with_attempts(&c, 1, 'm').into_iter().next())
            .flatten()
    });
    eprintln!("killing the worker of {victim} in the map phase");
    c.kill(&Daemon::Worker(victim.clone()));
    std::thread::sleep(Duration::from_secs(2));
    c.start_daemon(Daemon::Worker(victim));
    finish(job, "wordcount");
    must_equal_output(&c, "/out", &want);
}

// Checks G6: a worker whose map outputs the reduces are fetching dies in the middle of the
// shuffle: its shuffle link is slowed by the proxy so fetches from it are in flight when it is
// SIGKILLed. Its maps are re-run and the output equals local mode. (Without network
// namespaces the kill lands between the maps' end and the fetches instead.)
#[test]
fn worker_killed_mid_shuffle() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("worker_killed_mid_shuffle");
    let mut rng = StdRng::seed_from_u64(seed);
    let work = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(
        "worker-killed-mid-shuffle",
        Options {
            faults: "sleep:r:*:0:1500".into(),
            tweak_mapreduce: Box::new(|c| {
                c.reduce_slowstart_percent = 100;
                c.speculative = false;
            }),
            ..Options::default()
        },
    );
    let want = wordcount_input(&c, work.path(), seed, "2");
    let victim = format!("h{}", rng.gen_range(1..=4));
    let proxy = if c.net.has_namespaces() {
        let target: std::net::SocketAddr =
            c.config.host(&victim).unwrap().worker_addr.parse().unwrap();
        let listen = std::net::SocketAddr::new(c.net.gateway().into(), 19_100);
        let p = c.block_on(Proxy::start(listen, target, seed)).unwrap();
        p.set(LinkFault {
            delay_ms: 400,
            ..LinkFault::default()
        });
        for h in c.worker_hosts().iter().filter(|h| **h != victim) {
            c.net.redirect(h, target, p.addr()).unwrap();
        }
        Some(p)
    } else {
        None
    };
    let job = spawn_wordcount(&c);
    wait_for(
        "the shuffle from the victim",
        Duration::from_secs(90),
        || {
            let p = progress(&c, 1)?;
            let maps_done = p.maps_total > 0 && p.maps_done == p.maps_total;
            let victim_mapped = hosts_with_attempts(&c, 1, 'm').contains(&victim);
            let fetching = match &proxy {
                Some(p) => p.stats().bytes_to_target.load(Ordering::Relaxed) > 0,
                None => p.reduces_running > 0,
            };
            (maps_done && victim_mapped && fetching).then_some(())
        },
    );
    eprintln!("killing the worker of {victim} in the shuffle");
    c.kill(&Daemon::Worker(victim.clone()));
    let stderr = finish(job, "wordcount");
    must_equal_output(&c, "/out", &want);
    assert!(stderr.contains("Re-run maps"), "{stderr}");
    drop(proxy);
}

// Checks G6: a worker is SIGKILLed while one of its reduce attempts has written its whole part
// file into the attempt directory but not exited yet (nothing committed): the attempt is lost,
// re-run elsewhere, and exactly one copy of each part file ends up in the output.
#[test]
fn worker_killed_mid_reduce() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("worker_killed_mid_reduce");
    let work = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(
        "worker-killed-mid-reduce",
        Options {
            faults: "sleep-end:r:*:0:4000".into(),
            tweak_mapreduce: Box::new(|c| c.speculative = false),
            ..Options::default()
        },
    );
    let want = wordcount_input(&c, work.path(), seed, "2");
    let job = spawn_wordcount(&c);
    let client = c.client();
    let victim = wait_for(
        "a reduce's part file written, not committed",
        Duration::from_secs(90),
        || {
            let temp = c.block_on(client.list("/out/_temporary")).ok()?;
            for attempt in temp {
                let name = attempt
                    .path
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if !name.contains("_r_") {
                    continue;
                }
                let parts = c.block_on(client.list(&attempt.path)).ok()?;
                if parts.iter().any(|p| p.path.contains("part-r-")) {
                    let job_dir =
                        |h: &String| c.state_dir(h).join("work/jobs/job_0001").join(&name);
                    return c.worker_hosts().into_iter().find(|h| job_dir(h).exists());
                }
            }
            None
        },
    );
    eprintln!("killing the worker of {victim} after its reduce wrote, before the commit");
    c.kill(&Daemon::Worker(victim.clone()));
    c.start_daemon(Daemon::Worker(victim));
    finish(job, "wordcount");
    must_equal_output(&c, "/out", &want);
}

// Checks G6: reduce 0's first attempt finishes its part file, then its host is cut off from
// the network before the worker can report it (the commit happens at the jobtracker after
// the report). The jobtracker declares the worker lost and re-runs the reduce elsewhere; after
// healing, the late report of the first attempt is refused. Output equals local mode.
#[test]
fn worker_partitioned_during_commit() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("worker_partitioned_during_commit");
    let work = tempfile::tempdir().unwrap();
    let c = Cluster::start(
        "worker-partitioned-commit",
        Options {
            faults: "sleep-end:r:0:0:6000".into(),
            tweak_mapreduce: Box::new(|c| c.speculative = false),
            ..Options::default()
        },
    );
    if !c.net.has_namespaces() {
        eprintln!("worker_partitioned_during_commit: skipped, partitions need network namespaces");
        return;
    }
    let want = wordcount_input(&c, work.path(), seed, "2");
    let job = spawn_wordcount(&c);
    let client = c.client();
    let attempt = "attempt_0001_r_000000_0";
    let victim = wait_for(
        "reduce 0's first attempt done writing",
        Duration::from_secs(90),
        || {
            let parts = c
                .block_on(client.list(&format!("/out/_temporary/{attempt}")))
                .ok()?;
            if !parts.iter().any(|p| p.path.ends_with("part-r-00000")) {
                return None;
            }
            let dir = |h: &String| c.state_dir(h).join("work/jobs/job_0001").join(attempt);
            c.worker_hosts().into_iter().find(|h| dir(h).exists())
        },
    );
    // The part file is created when the reduce starts writing; give it a moment to finish
    // (the attempt then sleeps 6 s before exiting).
    std::thread::sleep(Duration::from_millis(1_000));
    eprintln!("cutting {victim} off while {attempt} waits to report");
    c.net.isolate(&victim).unwrap();
    let stderr = finish(job, "wordcount");
    c.net.heal().unwrap();
    // Give the healed worker time to report its stale attempt; nothing may change.
    std::thread::sleep(Duration::from_secs(3));
    must_equal_output(&c, "/out", &want);
    assert!(
        stderr.contains("Killed attempts") || stderr.contains("Failed reduce attempts"),
        "{stderr}"
    );
}

// Checks G6: the jobtracker is SIGKILLed at a seeded moment of a running wordcount (in its map
// or its reduce phase) and restarted two seconds later. The job is resumed under the same id
// from its record in dfs; the submitter follows it through the outage and the output equals
// local mode (never a partial or doubled output).
#[test]
fn jobtracker_restarted_mid_job() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("jobtracker_restarted_mid_job");
    let mut rng = StdRng::seed_from_u64(seed);
    let work = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(
        "jobtracker-restarted",
        Options {
            faults: "sleep:m:*:*:400,sleep:r:*:*:1500".into(),
            ..Options::default()
        },
    );
    let want = wordcount_input(&c, work.path(), seed, "2");
    let job = spawn_wordcount(&c);
    let in_reduce = rng.gen_bool(0.5);
    wait_for("the chosen phase", Duration::from_secs(90), || {
        let p = progress(&c, 1)?;
        let ready = if in_reduce {
            p.maps_total > 0 && p.maps_done == p.maps_total && p.reduces_running > 0
        } else {
            p.maps_done >= 2 && p.maps_done < p.maps_total
        };
        ready.then_some(())
    });
    let phase = if in_reduce { "reduce" } else { "map" };
    eprintln!("killing the jobtracker in the {phase} phase");
    c.kill(&Daemon::Jobtracker);
    std::thread::sleep(Duration::from_secs(2));
    c.start_daemon(Daemon::Jobtracker);
    finish(job, "wordcount across a jobtracker restart");
    must_equal_output(&c, "/out", &want);
}

/// Runs `faults` against the cluster until `stop`, undoing each at its end.
fn inject(
    c: &Arc<Mutex<Cluster>>,
    steps: &[schedule::Step],
    proxies: &BTreeMap<String, Proxy>,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    for step in steps {
        while start.elapsed() < Duration::from_millis(step.at_ms) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let ms = Duration::from_millis(step.fault.duration_ms());
        eprintln!("[{:>6} ms] {:?}", start.elapsed().as_millis(), step.fault);
        match &step.fault {
            Fault::CrashHost { host, .. } => {
                let (dn, w) = (Daemon::Datanode(host.clone()), Daemon::Worker(host.clone()));
                {
                    let mut c = c.lock().unwrap();
                    c.lose_power(&dn);
                    c.kill(&w);
                }
                std::thread::sleep(ms);
                let mut c = c.lock().unwrap();
                c.start_daemon(dn);
                c.start_daemon(w);
            }
            Fault::PauseWorker { host, .. } => {
                let w = Daemon::Worker(host.clone());
                c.lock().unwrap().pause(&w, true);
                std::thread::sleep(ms);
                c.lock().unwrap().pause(&w, false);
            }
            Fault::CrashLeader { .. } => {
                let leader = c.lock().unwrap().leader();
                let Some(id) = leader else { continue };
                let nn = Daemon::Namenode(id);
                c.lock().unwrap().lose_power(&nn);
                std::thread::sleep(ms);
                c.lock().unwrap().start_daemon(nn);
            }
            Fault::IsolateHost { host, .. } => {
                c.lock().unwrap().net.isolate(host).unwrap();
                std::thread::sleep(ms);
                c.lock().unwrap().net.heal().unwrap();
            }
            Fault::CorruptLinkTo { host, .. } => {
                proxies[host].set(LinkFault {
                    corrupt_every_bytes: 30_000,
                    ..LinkFault::default()
                });
                std::thread::sleep(ms);
                proxies[host].set(LinkFault::default());
            }
        }
    }
}

/// The fault-injecting thread of `randomized_mix`. Dropping it (also when a failed check
/// unwinds) stops and joins the thread, so its share of the cluster is released and the
/// cluster's daemons are stopped rather than left running after the test binary exits.
struct Injector {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<BTreeMap<String, Proxy>>>,
}

impl Injector {
    /// Stops the schedule and returns the proxies (`None` if the thread panicked).
    fn finish(&mut self) -> Option<BTreeMap<String, Proxy>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take()?.join().ok()
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.finish();
    }
}

// Checks G1-G6 together: a seeded schedule of faults (power loss of a worker host's datanode
// with its worker, paused workers, power loss of the namenode leader, isolated hosts, links
// that corrupt what a datanode receives) runs while wordcount and terasort jobs run one after
// the other for the schedule's span (2 minutes; `CLUSTER_TESTS_MIX_SECS` changes it). Every
// job must succeed with output equal to local mode.
#[test]
fn randomized_mix() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let seed = seed("randomized_mix");
    let span_ms = std::env::var("CLUSTER_TESTS_MIX_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(120)
        * 1000;
    let work = tempfile::tempdir().unwrap();
    let c = Cluster::start(
        "randomized-mix",
        Options {
            power_loss: true,
            tweak_mapreduce: Box::new(|c| c.task_timeout_ms = 20_000),
            ..Options::default()
        },
    );
    let want_wc = wordcount_input(&c, work.path(), seed, "3");
    let gen = work.path().join("local-gen");
    let st = std::process::Command::new(cluster_tests::cluster::mrjob_bin())
        .args(["teragen", "30000"])
        .arg(&gen)
        .args(["--maps", "3", "--local"])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    must_put_dir(&c, &gen, "/gen");
    let want_ts = local_output(
        "terasort",
        &gen,
        &work.path().join("local-ts"),
        &["-r", "3"],
    );
    let network = c.net.has_namespaces();
    let steps = schedule::plan(seed, &c.worker_hosts(), span_ms, network);
    let mut proxies = BTreeMap::new();
    if network {
        for (h, i) in c.worker_hosts().iter().zip(0u16..) {
            let target: std::net::SocketAddr = c.config.host(h).unwrap().addr.parse().unwrap();
            let listen = std::net::SocketAddr::new(c.net.gateway().into(), 19_200 + i);
            let p = c
                .block_on(Proxy::start(listen, target, seed + u64::from(i)))
                .unwrap();
            for other in c.worker_hosts().iter().filter(|o| *o != h) {
                c.net.redirect(other, target, p.addr()).unwrap();
            }
            proxies.insert(h.clone(), p);
        }
    }
    eprintln!(
        "randomized_mix: {} faults over {} s: {steps:?}",
        steps.len(),
        span_ms / 1000
    );
    let c = Arc::new(Mutex::new(c));
    let stop = Arc::new(AtomicBool::new(false));
    let mut injector = Injector {
        stop: stop.clone(),
        thread: Some({
            let (c, stop, steps) = (c.clone(), stop.clone(), steps.clone());
            // The proxies come back with the thread's result: every host's connections to a
            // datanode go through them, so they must live until the cluster stops.
            std::thread::spawn(move || {
                inject(&c, &steps, &proxies, &stop);
                proxies
            })
        }),
    };
    let start = Instant::now();
    let mut jobs = 0;
    while start.elapsed() < Duration::from_millis(span_ms) || jobs < 2 {
        let (job, out, want) = if jobs % 2 == 0 {
            ("wordcount", format!("/out/wc{jobs}"), &want_wc)
        } else {
            ("terasort", format!("/out/ts{jobs}"), &want_ts)
        };
        let input = if job == "wordcount" { "/in" } else { "/gen" };
        let child = c
            .lock()
            .unwrap()
            .mrjob_command(&[job, input, &out, "-r", "3"])
            .spawn()
            .unwrap();
        finish(child, &format!("{job} #{jobs} (SEED={seed})"));
        must_equal_output(&c.lock().unwrap(), &out, want);
        eprintln!(
            "[{:>6} ms] {job} #{jobs} matches local mode",
            start.elapsed().as_millis()
        );
        jobs += 1;
    }
    let proxies = injector.finish().expect("fault injector");
    assert!(jobs >= 2);
    drop(c);
    drop(proxies);
}
