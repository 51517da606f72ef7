//! The daemons' web ports: where each serves its read-only pages and `/metrics`.
//!
//! Each address may be left empty in `cluster.toml` (and is, in files written before the web
//! pages existed): the daemon then listens on the IP of its service address with the default
//! web port, so a config never needs a web key to work. The generators write every address.

use std::net::SocketAddr;

use super::{parse_addr, ClusterConfig, HostConfig, NamenodeConfig};
use crate::error::Result;

/// Default namenode web port. Hadoop's is 9870, which the worker already has here.
pub const NAMENODE_HTTP_PORT: u16 = 9871;
/// Default datanode web port (Hadoop's).
pub const DATANODE_HTTP_PORT: u16 = 9864;
/// Default worker web port (Hadoop's NodeManager's).
pub const WORKER_HTTP_PORT: u16 = 8042;
/// Default jobtracker web port (Hadoop's ResourceManager's).
pub const JOBTRACKER_HTTP_PORT: u16 = 8088;
/// Ports a local layout takes from its base port: five service ports, four web ports.
pub(super) const LOCAL_PORT_COUNT: u16 = 9;

/// `configured` when set, else `service`'s IP with `port` (`service` was validated, so the
/// fallback is only for a config that skipped validation).
fn web_addr(configured: &str, service: &str, port: u16) -> String {
    if !configured.is_empty() {
        return configured.to_owned();
    }
    match service.parse::<SocketAddr>() {
        Ok(addr) => SocketAddr::new(addr.ip(), port).to_string(),
        Err(_) => format!("127.0.0.1:{port}"),
    }
}

impl NamenodeConfig {
    /// Where this namenode serves its web pages and `/metrics`.
    pub fn web_addr(&self) -> String {
        web_addr(&self.http_addr, &self.addr, NAMENODE_HTTP_PORT)
    }
}

impl HostConfig {
    /// Where this host's datanode serves `/metrics`.
    pub fn datanode_web_addr(&self) -> String {
        web_addr(&self.http_addr, &self.addr, DATANODE_HTTP_PORT)
    }

    /// Where this host's worker serves `/metrics`.
    pub fn worker_web_addr(&self) -> String {
        web_addr(&self.worker_http_addr, &self.worker_addr, WORKER_HTTP_PORT)
    }
}

impl ClusterConfig {
    /// Where the jobtracker serves its web pages and `/metrics`.
    pub fn jobtracker_web_addr(&self) -> String {
        web_addr(
            &self.jobtracker_http_addr,
            &self.jobtracker_addr,
            JOBTRACKER_HTTP_PORT,
        )
    }

    /// Every web address that is set must parse.
    pub(super) fn validate_web_addrs(&self) -> Result<()> {
        let mut set: Vec<(String, &str)> = Vec::new();
        for nn in &self.namenodes {
            set.push((format!("namenode {} http_addr", nn.id), &nn.http_addr));
        }
        for h in &self.hosts {
            set.push((format!("host {:?} http_addr", h.name), &h.http_addr));
            set.push((
                format!("host {:?} worker_http_addr", h.name),
                &h.worker_http_addr,
            ));
        }
        set.push(("jobtracker_http_addr".into(), &self.jobtracker_http_addr));
        for (what, addr) in set.into_iter().filter(|(_, a)| !a.is_empty()) {
            parse_addr(&what, addr)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{local_config, LocalLayout};

    #[test]
    fn an_empty_web_address_is_the_service_ip_with_the_default_port() {
        let config = ClusterConfig::parse(
            "[[namenodes]]\nid = 1\naddr = \"10.0.0.5:8020\"\nraft_addr = \"10.0.0.5:8021\"\n",
        )
        .unwrap();
        assert_eq!(config.namenodes[0].web_addr(), "10.0.0.5:9871");
        assert_eq!(config.hosts[0].datanode_web_addr(), "127.0.0.1:9864");
        assert_eq!(config.hosts[0].worker_web_addr(), "127.0.0.1:8042");
        assert_eq!(config.jobtracker_web_addr(), "127.0.0.1:8088");
    }

    #[test]
    fn local_layouts_give_every_daemon_its_own_web_port() {
        let layout = LocalLayout {
            base_port: Some(20_000),
            ..LocalLayout::default()
        };
        let config = crate::config::local_config_in(2, 1, Path::new("/tmp/c"), &layout);
        assert_eq!(config.namenodes[1].web_addr(), "127.0.0.2:20005");
        assert_eq!(config.hosts[0].datanode_web_addr(), "127.0.1.1:20006");
        assert_eq!(config.hosts[0].worker_web_addr(), "127.0.1.1:20007");
        assert_eq!(config.jobtracker_web_addr(), "127.0.0.1:20008");
        let default = local_config(1, 1, Path::new("/tmp/c"));
        assert_eq!(default.namenodes[0].web_addr(), "127.0.0.1:9871");
    }

    #[test]
    fn a_bad_web_address_is_named() {
        let err = ClusterConfig::parse("jobtracker_http_addr = \"nowhere\"").unwrap_err();
        assert!(err.to_string().contains("jobtracker_http_addr"), "{err}");
        let err = LocalLayout {
            base_port: Some(u16::MAX - 4),
            ..LocalLayout::default()
        }
        .check()
        .unwrap_err();
        assert!(err.to_string().contains("9 consecutive"), "{err}");
    }
}
