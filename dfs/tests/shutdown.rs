//! Graceful shutdown of the real daemons: SIGTERM (how `dfs cluster stop`, `mrjob cluster
//! stop` and systemd stop them) ends a namenode and a datanode with exit status 0 within a few
//! seconds, and their ports are closed.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Well under `dfs cluster stop`'s 10 s before SIGKILL.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

fn spawn(conf: &Path, args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Command::new(env!("CARGO_BIN_EXE_dfs"))
        .arg("--conf")
        .arg(conf)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn dfs")
}

fn must_accept(addr: &str, within: Duration) -> TcpStream {
    let deadline = Instant::now() + within;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("{addr} not listening: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn must_exit(child: &mut Child, within: Duration, log: &Path) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running {within:?} after SIGTERM; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_a_namenode_and_a_datanode_with_status_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path(), 1, 1);
    let conf = dir.path().join("cluster.toml");
    config.save(&conf).unwrap();
    let nn_log = dir.path().join("nn1.log");
    let dn_log = dir.path().join("dn.log");
    let host = config.hosts[0].name.clone();
    let mut namenode = spawn(&conf, &["namenode", "--id", "1"], &nn_log);
    let mut datanode = spawn(&conf, &["datanode", "--host", &host], &dn_log);
    let daemons = [
        (&mut namenode, config.namenodes[0].addr.clone(), nn_log),
        (&mut datanode, config.hosts[0].addr.clone(), dn_log),
    ];
    for (child, addr, log) in daemons {
        // An open, idle client connection does not hold the shutdown up.
        let _idle = must_accept(&addr, Duration::from_secs(20));
        let start = Instant::now();
        sigterm(child);
        let status = must_exit(child, EXIT_WITHIN, &log);
        assert!(
            status.success(),
            "{addr}: {status} after {:?}; log:\n{}",
            start.elapsed(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(logged.contains("SIGTERM: shutting down"), "{logged}");
        assert!(
            TcpStream::connect(&addr).is_err(),
            "{addr} still accepts after exit"
        );
    }
}
