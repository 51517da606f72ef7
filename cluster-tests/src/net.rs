//! Hosts and the network between them.
//!
//! With root and `ip`/`iptables` available, every host is its own network namespace with its own
//! address on a private bridge (`10.77.K.0/24`, the test process reaching them through the
//! bridge's `10.77.K.254`), exactly like separate machines on one switch. Faults are then real
//! packet drops: `iptables` rules inside a host's namespace isolate it, cut a group of hosts
//! off, or cut one direction only; `DNAT` rules send one host's connections to a destination
//! through a [`crate::proxy::Proxy`] that delays or corrupts bytes.
//!
//! Without them (not root, a container without namespaces, or `CLUSTER_TESTS_NET=loopback`),
//! hosts get distinct `127.77.K.x` addresses instead and the tests say so; crashes, pauses and
//! disk faults still work, network faults report [`Unsupported`] and the scenarios that need
//! them print that they skipped that part.
//!
//! `K` is a slot taken with a lock file under `/tmp/mrjob-cluster-tests`, so test binaries
//! running at the same time get disjoint subnets and interface names; a slot whose owner died
//! (a killed test run) is cleaned up and reused.

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A network fault that this mode cannot inject (loopback mode has no namespaces).
#[derive(Debug, Clone)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the hosts are separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// One network namespace per host.
    Namespaces,
    /// Distinct loopback addresses in one namespace; the reason namespaces were not used.
    Loopback(String),
}

/// One host: a name, an address and (in namespace mode) its namespace.
#[derive(Debug, Clone)]
pub struct Host {
    /// Host name (`nn1`, `jt`, `h1`, ...).
    pub name: String,
    /// The host's address.
    pub ip: Ipv4Addr,
    ns: Option<String>,
}

/// The hosts of one test cluster and the faults between them.
#[derive(Debug)]
pub struct Network {
    slot: u32,
    mode: NetMode,
    hosts: Vec<Host>,
    bridge: Option<String>,
    lock: PathBuf,
}

const LOCK_DIR: &str = "/tmp/mrjob-cluster-tests";
/// Slots 1..=MAX_SLOT: the third octet of the subnet.
const MAX_SLOT: u32 = 250;

impl Network {
    /// Creates one host per name, in namespaces when possible (see the module doc).
    pub fn create(names: &[&str]) -> Network {
        let (slot, lock) = take_slot();
        let forced = std::env::var("CLUSTER_TESTS_NET").unwrap_or_default();
        let mode = match forced.as_str() {
            "loopback" => NetMode::Loopback("CLUSTER_TESTS_NET=loopback".into()),
            _ => match namespaces_usable() {
                Ok(()) => NetMode::Namespaces,
                Err(why) => NetMode::Loopback(why),
            },
        };
        let mut net = Network {
            slot,
            mode,
            hosts: Vec::new(),
            bridge: None,
            lock,
        };
        if net.mode == NetMode::Namespaces {
            if let Err(e) = net.build_namespaces(names) {
                net.teardown();
                net.mode = NetMode::Loopback(format!("namespace setup failed: {e}"));
            }
        }
        if let NetMode::Loopback(why) = &net.mode {
            if forced == "netns" {
                panic!("CLUSTER_TESTS_NET=netns but network namespaces are unusable: {why}");
            }
            eprintln!("cluster-tests: hosts on 127.77.{slot}.x loopback addresses, not network namespaces ({why}); network faults are skipped");
            net.hosts = names
                .iter()
                .zip(1u8..)
                .map(|(n, i)| Host {
                    name: n.to_string(),
                    ip: Ipv4Addr::new(127, 77, slot as u8, i),
                    ns: None,
                })
                .collect();
        } else {
            eprintln!("cluster-tests: each host in its own network namespace on 10.77.{slot}.0/24");
        }
        net
    }

    fn build_namespaces(&mut self, names: &[&str]) -> Result<(), String> {
        let k = self.slot;
        let bridge = format!("mrtb{k}");
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        self.bridge = Some(bridge.clone());
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", self.gateway()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for (name, i) in names.iter().zip(1u8..) {
            let ns = format!("mrt{k}-{name}");
            let veth = format!("mrt{k}v{i}");
            let ip = Ipv4Addr::new(10, 77, k as u8, i);
            // Leftovers of a slot's previous owner (see `teardown`) would make these fail.
            let _ = run("ip", &["link", "del", &veth]);
            run("ip", &["netns", "add", &ns])?;
            self.hosts.push(Host {
                name: name.to_string(),
                ip,
                ns: Some(ns.clone()),
            });
            run(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            run("ip", &["link", "set", &veth, "master", &bridge, "up"])?;
            run(
                "ip",
                &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            )?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// How the hosts are separated.
    pub fn mode(&self) -> &NetMode {
        &self.mode
    }

    /// True when network faults (partitions, proxied links) can be injected.
    pub fn has_namespaces(&self) -> bool {
        self.mode == NetMode::Namespaces
    }

    /// Every host.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// The address the test process (and a proxy) has on the hosts' network.
    pub fn gateway(&self) -> Ipv4Addr {
        match self.mode {
            NetMode::Namespaces => Ipv4Addr::new(10, 77, self.slot as u8, 254),
            NetMode::Loopback(_) => Ipv4Addr::new(127, 77, self.slot as u8, 254),
        }
    }

    /// A command that runs `program` on host `name` (inside its namespace).
    pub fn command(&self, name: &str, program: &Path) -> Command {
        match &self.host(name).ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn iptables(&self, name: &str, args: &[&str]) -> Result<(), Unsupported> {
        let Some(ns) = &self.host(name).ns else {
            return Err(Unsupported(
                "network faults need network namespaces (run as root with ip and iptables)".into(),
            ));
        };
        let mut full = vec!["netns", "exec", ns, "iptables", "-w"];
        full.extend_from_slice(args);
        run("ip", &full).map_err(Unsupported)
    }

    /// Drops every packet into and out of host `name` (loopback inside the host still works):
    /// the host is alone, the test process included.
    pub fn isolate(&self, name: &str) -> Result<(), Unsupported> {
        self.iptables(name, &["-A", "INPUT", "!", "-i", "lo", "-j", "DROP"])?;
        self.iptables(name, &["-A", "OUTPUT", "!", "-o", "lo", "-j", "DROP"])
    }

    /// Drops the packets `from` sends to `to` (one direction; TCP in either direction between
    /// them stalls, but each host can still talk to everyone else).
    pub fn cut(&self, from: &str, to: &str) -> Result<(), Unsupported> {
        let src = self.host(from).ip.to_string();
        self.iptables(to, &["-A", "INPUT", "-s", &src, "-j", "DROP"])
    }

    /// Cuts every link between a host of `a` and a host of `b`, both ways.
    pub fn partition(&self, a: &[&str], b: &[&str]) -> Result<(), Unsupported> {
        for x in a {
            for y in b {
                self.cut(x, y)?;
                self.cut(y, x)?;
            }
        }
        Ok(())
    }

    /// Removes every drop rule (isolations, cuts, partitions); proxied links stay.
    pub fn heal(&self) -> Result<(), Unsupported> {
        for h in &self.hosts {
            self.iptables(&h.name, &["-F", "INPUT"])?;
            self.iptables(&h.name, &["-F", "OUTPUT"])?;
        }
        Ok(())
    }

    /// Sends host `from`'s TCP connections to `to` through `via` (a proxy on the gateway).
    pub fn redirect(&self, from: &str, to: SocketAddr, via: SocketAddr) -> Result<(), Unsupported> {
        let dst = to.ip().to_string();
        let port = to.port().to_string();
        let target = via.to_string();
        self.iptables(
            from,
            &[
                "-t",
                "nat",
                "-A",
                "OUTPUT",
                "-d",
                &dst,
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "DNAT",
                "--to-destination",
                &target,
            ],
        )
    }

    /// Removes every redirect.
    pub fn clear_redirects(&self) -> Result<(), Unsupported> {
        for h in &self.hosts {
            self.iptables(&h.name, &["-t", "nat", "-F", "OUTPUT"])?;
        }
        Ok(())
    }

    fn teardown(&mut self) {
        for (h, i) in self.hosts.iter().zip(1u8..) {
            if let Some(ns) = &h.ns {
                // The veth goes first and explicitly: a deleted namespace is destroyed
                // asynchronously, and its veth would linger into the next test's setup.
                let _ = run("ip", &["link", "del", &format!("mrt{}v{i}", self.slot)]);
                let _ = run("ip", &["netns", "del", ns]);
            }
        }
        if let Some(b) = self.bridge.take() {
            let _ = run("ip", &["link", "del", &b]);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.teardown();
        let _ = fs::remove_file(&self.lock);
    }
}

/// Runs a setup command; its stderr is the error.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Root, `ip` and `iptables` present.
fn namespaces_usable() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("id -u: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".into());
    }
    run("ip", &["netns", "list"]).map_err(|e| format!("no usable `ip netns`: {e}"))?;
    run("iptables", &["--version"]).map_err(|e| format!("no iptables: {e}"))
}

/// Takes a free slot (see the module doc), cleaning up slots whose owner process is gone.
fn take_slot() -> (u32, PathBuf) {
    fs::create_dir_all(LOCK_DIR).expect("creating the cluster-tests lock directory");
    let me = std::process::id();
    let start = (me % MAX_SLOT) + 1;
    for i in 0..MAX_SLOT {
        let slot = (start + i - 1) % MAX_SLOT + 1;
        let lock = Path::new(LOCK_DIR).join(format!("slot-{slot}"));
        if let Ok(owner) = fs::read_to_string(&lock) {
            let alive = owner
                .trim()
                .parse::<u32>()
                .map(|pid| Path::new(&format!("/proc/{pid}")).exists())
                .unwrap_or(false);
            if alive {
                continue;
            }
            clean_stale_slot(slot);
            let _ = fs::remove_file(&lock);
        }
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
            .and_then(|mut f| std::io::Write::write_all(&mut f, me.to_string().as_bytes()));
        if created.is_ok() {
            return (slot, lock);
        }
    }
    panic!("no free cluster-tests network slot under {LOCK_DIR}");
}

/// Removes the namespaces and bridge a killed test run left behind in `slot`.
fn clean_stale_slot(slot: u32) {
    let prefix = format!("mrt{slot}-");
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(&prefix) {
                // Daemons of the dead run may still be running inside: they go first.
                if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
                    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                        let _ = run("kill", &["-KILL", pid]);
                    }
                }
                let _ = run("ip", &["netns", "del", name]);
            }
        }
    }
    let _ = run("ip", &["link", "del", &format!("mrtb{slot}")]);
}
