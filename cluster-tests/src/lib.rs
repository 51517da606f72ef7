//! cluster-tests: real clusters whose nodes are separate hosts on this machine, and the faults
//! real clusters see. The scenarios are in `tests/scenarios.rs`; `README.md` lists them with the
//! guarantee each checks.
//!
//! # Layout
//! - [`net`]: hosts as network namespaces on a bridge (or loopback addresses when that is not
//!   possible); partitions and one-way cuts with iptables; redirects through the proxy.
//! - [`proxy`]: a userspace TCP proxy that delays, corrupts or swallows one link's bytes.
//! - [`cluster`]: every daemon of a cluster as a real process on its host, from the same
//!   config generator as `deploy/` and the Vagrantfile; kill, restart, pause, resume.
//! - [`schedule`]: seeded fault schedules for the randomized scenario (pure).
//! - [`seed`]: the seed every randomized scenario prints and replays from `SEED=`.

pub mod cluster;
pub mod net;
pub mod proxy;
pub mod schedule;

/// The test seed: `SEED` from the environment, else a fresh one; printed either way so a
/// failure can be replayed with `SEED=<n>`.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: SEED={seed}");
    seed
}
