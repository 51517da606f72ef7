//! Connections that have not authenticated yet, counted per peer address and in all, so that
//! strangers holding connections open can neither use up the slots of authenticated peers
//! (those are taken only after the handshake) nor starve other hosts of handshakes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Handshakes in progress at once on one port, from all peers.
pub const MAX_PENDING: usize = 1024;
/// Handshakes in progress at once on one port from one address. A busy host opens many at
/// once (a worker's tasks, a client's pool filling up), and a burst of them can be accepted
/// before their handshakes run (tokio lets an accept loop take up to 128 connections before
/// it yields), so this stays above that; a peer holding more is stalled or hostile.
pub const MAX_PENDING_PER_PEER: usize = 256;

/// The table of handshakes in progress (see the module docs).
#[derive(Debug)]
pub struct Pending {
    limits: (usize, usize),
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One handshake's place in [`Pending`]; dropping it frees the place.
#[derive(Debug)]
pub struct PendingGuard {
    table: Arc<Pending>,
    ip: IpAddr,
}

/// Why a new connection got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// This peer has its share of handshakes in progress.
    Peer,
    /// The port has its total of handshakes in progress.
    Port,
}

impl Pending {
    /// A table with the default limits.
    pub fn new() -> Arc<Pending> {
        Pending::with_limits(MAX_PENDING, MAX_PENDING_PER_PEER)
    }

    /// A table allowing `total` handshakes in progress, at most `per_peer` from one address.
    pub fn with_limits(total: usize, per_peer: usize) -> Arc<Pending> {
        Arc::new(Pending {
            limits: (total, per_peer),
            counts: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a place for a handshake from `ip`, or says which limit is reached.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Result<PendingGuard, Full> {
        let (total_limit, peer_limit) = self.limits;
        let mut counts = crate::lock::lock(&self.counts);
        if counts.0 >= total_limit {
            return Err(Full::Port);
        }
        let of_peer = counts.1.entry(ip).or_insert(0);
        if *of_peer >= peer_limit {
            return Err(Full::Peer);
        }
        *of_peer += 1;
        counts.0 += 1;
        Ok(PendingGuard {
            table: self.clone(),
            ip,
        })
    }

    /// Handshakes in progress.
    pub fn len(&self) -> usize {
        crate::lock::lock(&self.counts).0
    }

    /// Whether no handshake is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut counts = crate::lock::lock(&self.table.counts);
        counts.0 = counts.0.saturating_sub(1);
        if let Some(n) = counts.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // Forgotten at once: the map holds only peers with handshakes in progress.
                counts.1.remove(&self.ip);
            }
        }
    }
}

/// Lets a kind of log line through at most once a second, counting the ones held back: a
/// thousand strangers refused at once are one line, not a thousand.
#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<(Option<std::time::Instant>, u64)>,
}

impl Throttle {
    /// Calls `log` with the number of events held back since the last line, if a second has
    /// passed since it; otherwise counts this event.
    pub fn note(&self, log: impl FnOnce(u64)) {
        let mut state = crate::lock::lock(&self.state);
        let now = std::time::Instant::now();
        let due = state
            .0
            .is_none_or(|last| now.duration_since(last) >= std::time::Duration::from_secs(1));
        if due {
            let held_back = std::mem::take(&mut state.1);
            state.0 = Some(now);
            drop(state);
            log(held_back);
        } else {
            state.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_burst_is_one_line_with_a_count() {
        let throttle = Throttle::default();
        let mut lines = Vec::new();
        for _ in 0..1000 {
            throttle.note(|n| lines.push(n));
        }
        assert_eq!(lines, vec![0], "one line for the burst");
        *crate::lock::lock(&throttle.state) = (None, 999);
        throttle.note(|n| lines.push(n));
        assert_eq!(
            lines,
            vec![0, 999],
            "the next line counts what was held back"
        );
    }

    #[test]
    fn one_peer_cannot_take_every_place() {
        let table = Pending::with_limits(5, 2);
        let a1 = table.enter(ip(1)).unwrap();
        let _a2 = table.enter(ip(1)).unwrap();
        assert_eq!(table.enter(ip(1)).unwrap_err(), Full::Peer);
        let _b = table.enter(ip(2)).unwrap();
        drop(a1);
        let _a3 = table.enter(ip(1)).unwrap();
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn the_port_total_holds_and_places_come_back() {
        let table = Pending::with_limits(2, 2);
        let guards: Vec<_> = (1..=2).map(|i| table.enter(ip(i)).unwrap()).collect();
        assert_eq!(table.enter(ip(3)).unwrap_err(), Full::Port);
        drop(guards);
        assert!(table.is_empty());
        assert!(
            crate::lock::lock(&table.counts).1.is_empty(),
            "no peer left behind"
        );
        table.enter(ip(3)).unwrap();
    }
}
