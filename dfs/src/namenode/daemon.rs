//! The namenode process: its storage, Raft node, transport, and the servers of its three
//! ports (client RPC, Raft, web), started in order and stopped together on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::lease_recovery::{leader_duties, Recovering};
use super::raft_driver::{build, DriverSettings};
use super::server::NamenodeService;
use super::storage::Persister;
use super::transport::{serve_raft, Transport};
use crate::auth::{names, Gate};
use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::listener::{stop_on_signal, ShutdownTrigger};
use crate::rpc::{serve, ServerLimits};

fn parse(what: &str, addr: &str) -> Result<SocketAddr> {
    addr.parse()
        .map_err(|e| Error::Config(format!("{what} {addr:?}: {e}")))
}

async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("binding the {what} port {addr}"), e))
}

/// Runs namenode `id` of `config` until a fatal error (storage failure, port in use), or
/// until SIGTERM/SIGINT, which it handles by shutting down gracefully and returning `Ok`.
pub async fn run(mut config: ClusterConfig, id: u64) -> Result<()> {
    config.validate()?;
    // Everything this namenode connects to (peers, datanodes in lease recovery) learns it as
    // namenode `id`.
    let authority = config.secrets.authority()?;
    let credentials = authority.member_credentials(&names::namenode(id));
    config.secrets.set_credentials(credentials.clone());
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
    let (transport, reports) =
        Transport::start(peers, tick * config.raft_election_ticks as u32, credentials);
    let settings = DriverSettings {
        tick,
        election_ticks: config.raft_election_ticks,
        heartbeat_ticks: config.raft_heartbeat_ticks,
        snapshot_every_entries: config.snapshot_every_entries.max(1),
    };
    let (shared, handle, driver) = build(id, persister, snapshot, settings, transport)?;
    tokio::spawn(reports.forward(handle.clone()));
    let config = Arc::new(config);
    let recovering: Recovering = Arc::default();
    let service = Arc::new(NamenodeService::new(
        authority,
        shared.clone(),
        handle.clone(),
        config.clone(),
        recovering.clone(),
    ));
    let stop = ShutdownTrigger::new();
    let servers = start_servers(&config, id, service, handle.clone(), &stop).await?;
    tokio::spawn(leader_duties(shared, handle, config, recovering));
    // The driver keeps running while the servers drain, so the requests in hand can still
    // be committed and answered.
    tokio::select! {
        result = driver.run() => result,
        () = stop_on_signal(stop, servers) => {
            tracing::info!("namenode {id}: stopped");
            Ok(())
        }
    }
}

/// Binds and serves the namenode's ports: Raft, client RPC (both authenticated), and its
/// read-only web pages.
async fn start_servers(
    config: &ClusterConfig,
    id: u64,
    service: Arc<NamenodeService>,
    raft: super::raft_driver::RaftHandle,
    stop: &ShutdownTrigger,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let me = config.namenode(id)?.clone();
    let authority = config.secrets.authority()?;
    let rpc_listener = bind("client RPC", parse("addr", &me.addr)?).await?;
    let raft_listener = bind("raft", parse("raft_addr", &me.raft_addr)?).await?;
    let limits = ServerLimits::from_config(config);
    let raft_server = tokio::spawn(serve_raft(
        raft_listener,
        raft,
        limits.listener,
        Gate::Authenticate(authority.clone()),
        stop.subscribe(),
    ));
    let web = crate::namenode::web::router(service.clone(), authority.clone());
    let web_server = crate::http::start(
        "namenode",
        &me.web_addr(),
        limits.listener,
        stop.subscribe(),
        web,
    )
    .await?;
    crate::metrics::rpc();
    crate::metrics::namenode();
    let rpc_server = tokio::spawn(serve(
        rpc_listener,
        limits,
        Gate::Authenticate(authority),
        service,
        stop.subscribe(),
    ));
    tracing::info!(
        "namenode {id}: clients on {}, raft on {}, state in {}",
        me.addr,
        me.raft_addr,
        me.meta_dir.display()
    );
    Ok(vec![rpc_server, raft_server, web_server])
}
