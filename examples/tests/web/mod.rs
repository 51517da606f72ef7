//! Checks of the daemons' web ports on a running pseudo-distributed cluster, run by the
//! cluster tests on a cluster they already started (a cluster start costs more than these
//! checks): the pages in a real browser (headless chromium), their JSON twins, `/metrics` as
//! Prometheus text whose counters move with the work, and bad input to the HTTP ports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dfs::config::ClusterConfig;

pub mod login;

/// How long chromium may take to load and dump one page.
const BROWSER_PATIENCE: Duration = Duration::from_secs(60);

/// One HTTP answer.
pub struct Http {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// `GET path` on `addr` with a plain HTTP/1.1 request (the test speaks the protocol itself,
/// so nothing between it and the server can hide a malformed answer).
pub fn get(addr: &str, path: &str) -> Http {
    get_with(addr, path, "")
}

/// `GET path` with `headers` (whole lines, each ending in CRLF) added to the request.
pub fn get_with(addr: &str, path: &str, headers: &str) -> Http {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("reading GET {path} from {addr}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head from {addr}{path}: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Http {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `GET path` that must answer 200 with JSON.
pub fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "GET {addr}{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{addr}{path} is not JSON: {e}"))
}

/// Scrapes `addr`'s `/metrics`: it must parse as Prometheus text, and every sample line must
/// be `name{labels} value` with a number for value (the parser alone is lenient).
pub fn metrics(addr: &str) -> prometheus_parse::Scrape {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{addr}/metrics: {}", r.body);
    assert!(
        r.head
            .to_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{}",
        r.head
    );
    assert!(
        r.body.ends_with("# EOF\n"),
        "{addr}/metrics lacks its end marker"
    );
    for line in r.body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{addr}/metrics: no value in {line:?}"));
        let name_ok = name.split('{').next().is_some_and(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        });
        assert!(
            name_ok && (name.contains('{') == name.ends_with('}')),
            "{addr}/metrics: bad sample {line:?}"
        );
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{addr}/metrics: value of {line:?} is not a number"));
    }
    let lines = r.body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("{addr}/metrics: {e}"))
}

/// The sum of the samples named `name` over their labels (0 when absent).
pub fn value(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Bytes the datanodes of `config` have written, summed over them.
pub fn datanode_bytes_written(config: &ClusterConfig) -> f64 {
    config
        .hosts
        .iter()
        .map(|h| {
            value(
                &metrics(&h.datanode_web_addr()),
                "dfs_datanode_written_bytes_total",
            )
        })
        .sum()
}

/// Attempts the jobtracker of `config` has seen succeed.
pub fn tasks_succeeded(config: &ClusterConfig) -> f64 {
    value(
        &metrics(&config.jobtracker_web_addr()),
        "mapreduce_tasks_succeeded_total",
    )
}

/// Debian's chromium, from `scripts/browser-env.sh`, which installs it when it is missing and
/// can be (as `scripts/python-env.sh` builds the Python venv); otherwise the test fails, saying
/// why, rather than skipping.
fn chromium() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/browser-env.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "no chromium for the browser test of the web pages: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// Runs headless chromium on `url` with `action` (`--dump-dom` or `--screenshot=FILE`) and a
/// fresh profile, as on a closed network; returns its stdout.
fn browse(url: &str, action: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(action)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    // Drained while it runs: a page's DOM can outgrow the pipe, and a blocked writer never
    // exits.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_PATIENCE {
            let _ = child.kill();
            panic!("chromium did not finish {action} {url} within {BROWSER_PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success(),
        "chromium {action} {url}: {status:?}: {}",
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8_lossy(&stdout).into_owned()
}

/// The DOM of `url` after chromium loaded it.
pub fn dump_dom(url: &str) -> String {
    browse(url, "--dump-dom")
}

/// A screenshot of `url`: a PNG of some size.
pub fn assert_screenshot(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page.png");
    browse(url, &format!("--screenshot={}", file.display()));
    let png = std::fs::read(&file).unwrap_or_else(|e| panic!("no screenshot of {url}: {e}"));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot of {url} is not a PNG"
    );
    assert!(
        png.len() > 2_000,
        "the screenshot of {url} is {} bytes",
        png.len()
    );
}

/// The namenode whose overview says it leads.
pub fn leader_web(config: &ClusterConfig) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for nn in &config.namenodes {
            let o = get_json(&nn.web_addr(), "/api/overview");
            if o["status"]["role"] == "Leader" {
                return nn.web_addr();
            }
        }
        assert!(Instant::now() < deadline, "no namenode page says Leader");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The namenode pages in the browser: the leader's says so and lists every datanode with the
/// cluster summary; a follower's links to the leader's; the browser and fsck pages show `path`.
pub fn check_namenode_pages(config: &ClusterConfig, file: &str) {
    let leader = leader_web(config);
    let dom = dump_dom(&format!("http://{leader}/"));
    assert!(dom.contains("<td id=\"role\">Leader</td>"), "{dom}");
    for h in &config.hosts {
        assert!(
            dom.contains(&format!("<td>{}</td>", h.name)),
            "datanode {} missing: {dom}",
            h.name
        );
    }
    assert!(
        dom.contains("id=\"summary\"") && dom.contains("HEALTHY"),
        "{dom}"
    );
    assert_screenshot(&format!("http://{leader}/"));
    let follower = config
        .namenodes
        .iter()
        .map(|n| n.web_addr())
        .find(|a| *a != leader)
        .expect("three namenodes");
    let dom = dump_dom(&format!("http://{follower}/"));
    assert!(
        dom.contains(&format!("id=\"leader\" href=\"http://{leader}/\"")),
        "{dom}"
    );
    let (dir, name) = file.rsplit_once('/').unwrap();
    // Plain GETs from here on: each browser run costs about two seconds of CI.
    let page = get(&leader, &format!("/browse?path={dir}"));
    assert!(
        page.body.contains(name),
        "{name} not listed in {dir}: {}",
        page.body
    );
    let browse = get_json(&leader, &format!("/api/browse?path={file}"));
    let blocks = browse["blocks"].as_array().expect("a file's blocks");
    assert!(!blocks.is_empty(), "{browse}");
    for b in blocks {
        assert!(b["block"]["gen_stamp"].as_u64().is_some(), "{b}");
        assert!(!b["locations"].as_array().unwrap().is_empty(), "{b}");
    }
    // The leader counted the namespace writes it proposed and the RPCs it answered.
    let m = metrics(&leader);
    assert!(
        value(&m, "dfs_raft_proposals_total") > 0.0,
        "{:?}",
        m.samples
    );
    assert!(value(&m, "rpc_requests_total") > 0.0, "{:?}", m.samples);
    assert!(value(&m, "dfs_heartbeats_total") > 0.0, "{:?}", m.samples);
    let fsck = get_json(&leader, "/api/fsck?path=/");
    assert_eq!(fsck["summary"]["state"], "HEALTHY", "{fsck}");
    // A path that does not exist is a 404 page, not a crash.
    assert_eq!(get(&leader, "/browse?path=/no/such/file").status, 404);
}

/// The job page of finished job `job` named `name` in the browser: its name, every task, the
/// timeline; its JSON twin has every attempt, each task succeeded.
pub fn check_job_page(config: &ClusterConfig, job: u64, name: &str) {
    let jt = config.jobtracker_web_addr();
    let list = get(&jt, "/").body;
    assert!(
        list.contains(&format!("href=\"/job/{job}\">{name}</a>")),
        "{list}"
    );
    let api = get_json(&jt, &format!("/api/job/{job}"));
    assert_eq!(api["job"]["state"], "SUCCEEDED", "{api}");
    let tasks = api["tasks"].as_array().unwrap();
    let maps = api["status"]["maps_total"].as_u64().unwrap();
    let reduces = api["status"]["reduces_total"].as_u64().unwrap();
    assert_eq!(tasks.len() as u64, maps + reduces, "a row per task: {api}");
    assert!(tasks.iter().all(|t| t["state"] == "Succeeded"), "{api}");
    let url = format!("http://{jt}/job/{job}");
    let dom = dump_dom(&url);
    assert!(dom.contains(&format!("Job {job}: {name}")), "{dom}");
    for t in tasks {
        let task = t["task"].as_str().unwrap();
        assert!(dom.contains(task), "task {task} missing from the job page");
    }
    let bars = dom.matches("class=\"attempt\" x=").count();
    assert_eq!(
        bars,
        api["attempts"].as_array().unwrap().len(),
        "a timeline bar per attempt"
    );
    assert!(dom.contains("id=\"counters\""), "{dom}");
    assert_screenshot(&url);
    // The reduces fetched map outputs from the workers' shuffle servers, which counted them.
    let served: f64 = config
        .hosts
        .iter()
        .map(|h| {
            value(
                &metrics(&h.worker_web_addr()),
                "mapreduce_shuffle_served_bytes_total",
            )
        })
        .sum();
    assert!(served > 0.0, "no shuffle bytes counted");
    assert_eq!(get(&jt, "/job/999999").status, 404);
    assert_eq!(get(&jt, "/api/job/x").status, 400);
}

/// Bad input to the web port at `addr` (checks G7 for HTTP): a malformed request line gets a
/// 400, a 1 MiB header a 431 (or a closed connection), 500 idle connections do not stop the
/// page from answering, and the daemon still serves afterwards.
pub fn check_bad_input(addr: &str) {
    let exchange = |bytes: &[u8]| -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let answer = exchange(b"GARBAGE \x00\x01 /nonsense\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend(b"\r\n\r\n");
    let answer = exchange(&huge);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:?}"
    );
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let started = Instant::now();
    assert_eq!(get(addr, "/").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "slow with idle connections open"
    );
    drop(idle);
    assert_eq!(get(addr, "/metrics").status, 200);
}

/// The page of failed job `job` names its failure, and each failed attempt of `task` with
/// an error containing `cause` and the command that prints its logs; /metrics counted them.
pub fn check_failed_job_page(config: &ClusterConfig, job: u64, task: &str, cause: &str) {
    let jt = config.jobtracker_web_addr();
    let api = get_json(&jt, &format!("/api/job/{job}"));
    assert_eq!(api["job"]["state"], "FAILED", "{api}");
    let failed = api["failed"].as_array().unwrap();
    let of_task: Vec<_> = failed
        .iter()
        .filter(|f| {
            f["attempt"]
                .as_str()
                .unwrap()
                .starts_with(&task.replace("task_", "attempt_"))
        })
        .collect();
    assert!(of_task.len() >= 2, "every retry of {task} failed: {api}");
    for f in &of_task {
        assert!(f["error"].as_str().unwrap().contains(cause), "{f}");
        assert!(
            f["logs"]
                .as_str()
                .unwrap()
                .starts_with(&format!("mrjob logs {job} attempt_")),
            "{f}"
        );
    }
    let page = get(&jt, &format!("/job/{job}"));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("id=\"failed\"") && page.body.contains(cause),
        "{}",
        page.body
    );
    let m = metrics(&jt);
    assert!(
        value(&m, "mapreduce_tasks_failed_total") >= of_task.len() as f64,
        "{:?}",
        m.samples
    );
}
