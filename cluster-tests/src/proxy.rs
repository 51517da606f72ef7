//! A userspace TCP fault proxy: what `tc netem` would do to one link, for a machine without it.
//!
//! A [`Proxy`] listens on the gateway address and forwards every connection to one target
//! (a datanode's data port, say); [`crate::net::Network::redirect`] makes chosen hosts connect
//! through it without their knowing. Its [`LinkFault`] can be changed while connections are
//! open: a delay per forwarded chunk, corruption of the bytes flowing towards the target (one
//! bit flipped at seeded random positions, about one per `corrupt_every_bytes`), or a black
//! hole that swallows them. Corruption only touches the direction into the target, so a test
//! knows which hop's checksums must catch it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxied link does to the bytes it carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFault {
    /// Delay before each forwarded chunk, in both directions.
    pub delay_ms: u64,
    /// Flip one bit about once per this many bytes towards the target (0: never).
    pub corrupt_every_bytes: u64,
    /// Swallow everything towards the target (the sender sees a silent peer).
    pub blackhole: bool,
}

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Bytes forwarded towards the target.
    pub bytes_to_target: AtomicU64,
    /// Bits flipped.
    pub corruptions: AtomicU64,
}

/// A running proxy; it stops (and drops its connections) when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    fault: Arc<Mutex<LinkFault>>,
    stats: Arc<ProxyStats>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` and forwards to `target`; `seed` picks the corrupted positions.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        seed: u64,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let fault = Arc::new(Mutex::new(LinkFault::default()));
        let stats = Arc::new(ProxyStats::default());
        let (f, s) = (fault.clone(), stats.clone());
        let accept = tokio::spawn(async move {
            let mut conn_seed = seed;
            while let Ok((inbound, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::Relaxed);
                conn_seed = conn_seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let (f, s) = (f.clone(), s.clone());
                tokio::spawn(async move {
                    // A target that refuses is a closed connection for the sender, as it
                    // would be without the proxy.
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        relay(inbound, outbound, f, s, conn_seed).await;
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            fault,
            stats,
            accept,
        })
    }

    /// The address senders must reach (the redirect's destination).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the fault for every open and future connection.
    pub fn set(&self, fault: LinkFault) {
        *dfs::lock::lock(&self.fault) = fault;
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(
    inbound: TcpStream,
    outbound: TcpStream,
    fault: Arc<Mutex<LinkFault>>,
    stats: Arc<ProxyStats>,
    seed: u64,
) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    let forward = pump(in_r, out_w, fault.clone(), Some(stats), seed);
    let backward = pump(out_r, in_w, fault, None, seed);
    // Each direction ends on its own and passes its end on as a half-close, as TCP does: a
    // peer that sends a last message and closes must have that message delivered, not turned
    // into a reset by the proxy (a datanode's "failed" reply before it hangs up names the node
    // to blame). A reader that stops reading ends its direction with an error.
    tokio::join!(forward, backward);
}

/// Copies one direction; `stats` is set for the direction towards the target, the only one
/// that is corrupted or black-holed.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Arc<Mutex<LinkFault>>,
    stats: Option<Arc<ProxyStats>>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 16 * 1024];
    // Bytes until the next flipped bit.
    let mut next_flip: Option<u64> = None;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let f = *dfs::lock::lock(&fault);
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
        let chunk = &mut buf[..n];
        if let Some(stats) = &stats {
            if f.blackhole {
                continue;
            }
            if f.corrupt_every_bytes > 0 {
                let mut at = 0usize;
                loop {
                    let gap = *next_flip
                        .get_or_insert_with(|| rng.gen_range(1..=2 * f.corrupt_every_bytes));
                    if (at as u64) + gap > n as u64 {
                        next_flip = Some(gap - (n - at) as u64);
                        break;
                    }
                    at += gap as usize;
                    chunk[at - 1] ^= 1 << rng.gen_range(0..8);
                    stats.corruptions.fetch_add(1, Ordering::Relaxed);
                    next_flip = None;
                }
            } else {
                next_flip = None;
            }
            stats.bytes_to_target.fetch_add(n as u64, Ordering::Relaxed);
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(proxy: &Proxy, data: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(data).await.unwrap();
        let mut got = vec![0u8; data.len()];
        s.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn clean_link_forwards_exactly() {
        let target = echo_server().await;
        let p = Proxy::start("127.0.0.1:0".parse().unwrap(), target, 1)
            .await
            .unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(round_trip(&p, &data).await, data);
        assert_eq!(p.stats().corruptions.load(Ordering::Relaxed), 0);
        assert_eq!(p.stats().bytes_to_target.load(Ordering::Relaxed), 200_000);
    }

    #[tokio::test]
    async fn corrupting_link_flips_about_the_asked_rate_of_bits() {
        let target = echo_server().await;
        let p = Proxy::start("127.0.0.1:0".parse().unwrap(), target, 7)
            .await
            .unwrap();
        p.set(LinkFault {
            corrupt_every_bytes: 10_000,
            ..LinkFault::default()
        });
        let data = vec![0u8; 400_000];
        let got = round_trip(&p, &data).await;
        let flipped: u32 = got.iter().map(|b| b.count_ones()).sum();
        let counted = p.stats().corruptions.load(Ordering::Relaxed);
        // Every flip shows as one set bit (the echo back is not corrupted); about 40 expected.
        assert_eq!(flipped as u64, counted);
        assert!((10..=120).contains(&counted), "{counted} flips");
    }

    #[tokio::test]
    async fn blackhole_swallows_and_healing_resumes() {
        let target = echo_server().await;
        let p = Proxy::start("127.0.0.1:0".parse().unwrap(), target, 3)
            .await
            .unwrap();
        p.set(LinkFault {
            blackhole: true,
            ..LinkFault::default()
        });
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"lost").await.unwrap();
        let mut b = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut b)).await;
        assert!(r.is_err(), "a black hole must not answer");
        p.set(LinkFault::default());
        s.write_all(b"seen").await.unwrap();
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"seen");
    }

    #[tokio::test]
    async fn delay_slows_each_chunk() {
        let target = echo_server().await;
        let p = Proxy::start("127.0.0.1:0".parse().unwrap(), target, 5)
            .await
            .unwrap();
        p.set(LinkFault {
            delay_ms: 100,
            ..LinkFault::default()
        });
        let t = std::time::Instant::now();
        assert_eq!(round_trip(&p, b"ping").await, b"ping");
        // One chunk each way: at least two delays.
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
    }
}
