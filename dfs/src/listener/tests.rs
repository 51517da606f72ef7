//! The server's limits and shutdown, over real TCP on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::error::Result;
use crate::frame::{read_frame, write_frame};

/// A payload the echo handler answers only after this long (an "in-flight request").
const SLOW: &[u8] = b"slow";
const SLOW_FOR: Duration = Duration::from_millis(400);

fn limits(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        idle_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(10),
    }
}

/// Echoes every frame back; tells `started` when a slow request arrives.
async fn echo(stream: TcpStream, mut conn: Conn, started: mpsc::UnboundedSender<()>) -> Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    while let Some(frame) = conn.read_frame(&mut r, 1024).await? {
        if frame[..] == *SLOW {
            let _ = started.send(());
            tokio::time::sleep(SLOW_FOR).await;
        }
        write_frame(&mut w, &frame).await?;
    }
    Ok(())
}

struct Server {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    task: JoinHandle<()>,
    started: mpsc::UnboundedReceiver<()>,
}

async fn start(limits: Limits) -> Server {
    start_gated(limits, Gate::Open).await
}

async fn start_gated(limits: Limits, gate: Gate) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let trigger = ShutdownTrigger::new();
    let (tx, started) = mpsc::unbounded_channel();
    let task = tokio::spawn(serve(
        listener,
        "test",
        limits,
        gate,
        trigger.subscribe(),
        move |stream, conn| echo(stream, conn, tx.clone()),
    ));
    Server {
        addr,
        trigger,
        task,
        started,
    }
}

async fn roundtrip(s: &mut TcpStream, payload: &[u8]) -> Option<Vec<u8>> {
    write_frame(s, payload).await.ok()?;
    let reply = tokio::time::timeout(Duration::from_secs(5), read_frame(s, 1024))
        .await
        .expect("no answer within 5 s");
    reply.ok().flatten().map(|b| b.to_vec())
}

/// Reads until the server closes the connection; panics if it stays open for `within`.
async fn must_be_closed(s: &mut TcpStream, within: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 16];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

// Checks the connection limit: the connection past it is closed, the admitted ones are served.
#[tokio::test]
async fn connection_past_the_limit_is_closed_and_the_others_served() {
    let server = start(limits(2)).await;
    let mut a = TcpStream::connect(server.addr).await.unwrap();
    let mut b = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(roundtrip(&mut a, b"a").await.unwrap(), b"a");
    assert_eq!(roundtrip(&mut b, b"b").await.unwrap(), b"b");
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    must_be_closed(&mut extra, Duration::from_secs(5)).await;
    assert_eq!(roundtrip(&mut a, b"a2").await.unwrap(), b"a2");
    assert_eq!(roundtrip(&mut b, b"b2").await.unwrap(), b"b2");
    // A slot freed is a slot again.
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"c").await.unwrap(), b"c");
}

#[tokio::test]
async fn idle_connection_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(300);
    let server = start(Limits {
        idle_timeout: idle,
        ..limits(4)
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(roundtrip(&mut s, b"x").await.unwrap(), b"x");
    let closed_after = must_be_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        closed_after >= idle - Duration::from_millis(50),
        "{closed_after:?}"
    );
}

// A slow-loris peer: it starts a frame and stalls. The read timeout closes it although the
// idle timeout is far away.
#[tokio::test]
async fn frame_stalled_midway_is_closed_after_the_read_timeout() {
    let read = Duration::from_millis(300);
    let server = start(Limits {
        read_timeout: read,
        ..limits(4)
    })
    .await;
    let mut quiet = TcpStream::connect(server.addr).await.unwrap();
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
    let closed_after = must_be_closed(&mut stalled, Duration::from_secs(5)).await;
    assert!(
        closed_after >= read - Duration::from_millis(50),
        "{closed_after:?}"
    );
    // The connection that sent nothing is only idle, and stays open.
    assert_eq!(roundtrip(&mut quiet, b"q").await.unwrap(), b"q");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_waits_for_the_request_in_flight() {
    let mut server = start(limits(4)).await;
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(roundtrip(&mut idle, b"i").await.unwrap(), b"i");
    write_frame(&mut busy, SLOW).await.unwrap();
    server.started.recv().await.unwrap();
    let start = Instant::now();
    server.trigger.trigger();
    // The idle connection is closed at once; new ones are refused.
    must_be_closed(&mut idle, Duration::from_secs(1)).await;
    let refused = async {
        while TcpStream::connect(server.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), refused)
        .await
        .expect("the port still accepts after shutdown");
    assert!(
        !server.task.is_finished(),
        "did not wait for the request in flight"
    );
    // The request in hand is answered, then its connection is closed.
    let reply = read_frame(&mut busy, 1024).await.unwrap().unwrap();
    assert_eq!(&reply[..], SLOW);
    must_be_closed(&mut busy, Duration::from_secs(1)).await;
    tokio::time::timeout(Duration::from_secs(2), server.task)
        .await
        .expect("serve did not return after its connections ended")
        .unwrap();
    assert!(start.elapsed() >= SLOW_FOR - Duration::from_millis(100));
}

#[tokio::test]
async fn shutdown_gives_up_on_connections_after_the_grace_period() {
    let grace = Duration::from_millis(100);
    let mut server = start(Limits {
        shutdown_grace: grace,
        ..limits(4)
    })
    .await;
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    write_frame(&mut busy, SLOW).await.unwrap();
    server.started.recv().await.unwrap();
    let start = Instant::now();
    server.trigger.trigger();
    tokio::time::timeout(Duration::from_secs(2), server.task)
        .await
        .expect("serve outlived its grace period")
        .unwrap();
    assert!(start.elapsed() < SLOW_FOR, "{:?}", start.elapsed());
    must_be_closed(&mut busy, Duration::from_secs(1)).await;
}

// Refused clients that never read nor write do not hold up the accept loop nor the client
// being served, and the slot goes to the next client once free.
#[tokio::test]
async fn refused_clients_cannot_stall_anyone() {
    let server = start(limits(1)).await;
    let mut served = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(roundtrip(&mut served, b"1").await.unwrap(), b"1");
    let mut refused = Vec::new();
    for _ in 0..20 {
        refused.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let start = Instant::now();
    assert_eq!(roundtrip(&mut served, b"2").await.unwrap(), b"2");
    assert!(start.elapsed() < Duration::from_secs(1));
    for r in &mut refused {
        must_be_closed(r, Duration::from_secs(2)).await;
    }
    drop(served);
    let next = async {
        loop {
            let mut s = TcpStream::connect(server.addr).await.unwrap();
            if let Some(reply) = roundtrip(&mut s, b"3").await {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let reply = tokio::time::timeout(Duration::from_secs(2), next)
        .await
        .unwrap();
    assert_eq!(reply, b"3");
}

#[test]
fn accept_back_off_doubles_up_to_its_cap() {
    let mut b = ACCEPT_BACKOFF_MIN;
    let mut seen = vec![b];
    for _ in 0..10 {
        b = next_backoff(b);
        seen.push(b);
    }
    assert_eq!(seen[1], ACCEPT_BACKOFF_MIN * 2);
    assert!(seen.windows(2).all(|w| w[1] >= w[0]));
    assert_eq!(b, ACCEPT_BACKOFF_MAX);
}

#[test]
fn a_dropped_trigger_is_not_a_shutdown() {
    let shutdown = ShutdownTrigger::new().subscribe();
    assert!(!shutdown.is_shutdown());
    let trigger = ShutdownTrigger::new();
    let s = trigger.subscribe();
    trigger.trigger();
    assert!(s.is_shutdown());
}

/// A server that authenticates with a fresh key, and credentials it accepts.
async fn start_authenticating(limits: Limits) -> (Server, crate::auth::Credentials) {
    let key = crate::auth::Key::generate();
    let creds = crate::auth::Credentials::member("test", &key);
    let gate = Gate::Authenticate(crate::auth::Authority::new(key));
    (start_gated(limits, gate).await, creds)
}

/// A connection from `source` (another loopback address: another "host").
async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

// Checks G8: a connection that does not authenticate never reaches the handler (its frame is
// not echoed), and one that does is served.
#[tokio::test]
async fn only_authenticated_connections_reach_the_handler() {
    let (server, creds) = start_authenticating(limits(4)).await;
    let mut stranger = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(roundtrip(&mut stranger, b"hi").await, None);
    let wrong = crate::auth::Credentials::member("test", &crate::auth::Key::generate());
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let err = crate::auth::handshake::connect(&mut s, &wrong, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, crate::Error::Unauthenticated(_)), "{err}");
    let mut member = TcpStream::connect(server.addr).await.unwrap();
    crate::auth::handshake::connect(&mut member, &creds, "test")
        .await
        .unwrap();
    assert_eq!(roundtrip(&mut member, b"hi").await.unwrap(), b"hi");
}

// Checks G7 and G8: strangers holding many silent connections take no slot of authenticated
// peers (the limit here is 2), are closed after the handshake timeout, and one host cannot
// hold more than its share of handshakes in progress.
#[tokio::test]
async fn silent_strangers_take_no_slot_and_are_closed() {
    let mut l = limits(2);
    l.handshake_timeout = Duration::from_millis(500);
    let (server, creds) = start_authenticating(l).await;
    let mut strangers = Vec::new();
    for _ in 0..(MAX_PENDING_PER_PEER + 20) {
        strangers.push(connect_from([127, 0, 9, 9], server.addr).await);
    }
    let start = Instant::now();
    for _ in 0..2 {
        let mut member = TcpStream::connect(server.addr).await.unwrap();
        crate::auth::handshake::connect(&mut member, &creds, "test")
            .await
            .unwrap();
        assert_eq!(roundtrip(&mut member, b"x").await.unwrap(), b"x");
        strangers.push(member);
    }
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    // Past its share, a stranger is closed at once; within it, after the handshake timeout.
    let took = must_be_closed(
        &mut strangers[MAX_PENDING_PER_PEER + 5],
        Duration::from_secs(2),
    )
    .await;
    assert!(took < Duration::from_millis(400), "{took:?}");
    let took = must_be_closed(&mut strangers[0], Duration::from_secs(3)).await;
    assert!(took <= Duration::from_millis(600), "{took:?}");
}
