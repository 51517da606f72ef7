//! Request/response RPC over frames: a server helper any daemon can use, and the namenode
//! client that finds the Raft leader.
//!
//! Server ([`serve`]): on the shared [`crate::listener`] (bounded connections, idle and read
//! timeouts, graceful shutdown), one request at a time per connection. A frame that is too large,
//! truncated or undecodable gets an error reply when one can still be sent, and the connection
//! is closed, because after a bad length the byte stream cannot be resynchronised; other
//! connections are unaffected and no input can panic the server (G7).
//!
//! Client ([`NamenodeClient`]): knows every namenode, remembers the leader, follows
//! `NotLeader { hint }`, and retries on another namenode until a deadline. Non-idempotent calls
//! carry a [`CallId`] fixed before the first attempt, so the namenode applies a retried call once.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::auth::{Credentials, Gate, Principal};
use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::frame::{decode_msg, encode_msg, read_frame, write_frame, DEFAULT_FRAME_LIMIT_BYTES};
use crate::listener::{Limits, Shutdown};
use crate::protocol::{CallId, Request, RequestFrame, Response, ResponseFrame, WireError};

/// Limits of an RPC server: the connection limits of every server, and its frame limit.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections, timeouts and shutdown grace.
    pub listener: Limits,
    /// Largest accepted frame.
    pub frame_limit_bytes: usize,
}

impl ServerLimits {
    /// Limits from the cluster config.
    pub fn from_config(config: &ClusterConfig) -> Self {
        ServerLimits {
            listener: Limits::from_config(config),
            frame_limit_bytes: DEFAULT_FRAME_LIMIT_BYTES,
        }
    }
}

/// A typed request handler for [`serve`].
pub trait Service: Send + Sync + 'static {
    /// Decoded request type.
    type Request: DeserializeOwned + Send;
    /// Response type.
    type Response: Serialize + Send + Sync;
    /// Handles one request of `caller` (who the connection authenticated as).
    fn call(
        &self,
        caller: &Principal,
        req: Self::Request,
    ) -> impl Future<Output = Self::Response> + Send;
    /// The reply to a frame that could not be read or decoded (sent before closing).
    fn malformed(&self, err: &Error) -> Self::Response;
}

/// Serves each connection with `service` under `limits` on the shared [`crate::listener`],
/// until `shutdown` fires and the requests in hand are answered.
pub async fn serve<S: Service>(
    listener: TcpListener,
    limits: ServerLimits,
    gate: Gate,
    service: Arc<S>,
    shutdown: Shutdown,
) {
    crate::listener::serve(
        listener,
        "rpc",
        limits.listener,
        gate,
        shutdown,
        move |stream, conn| {
            let service = service.clone();
            async move { serve_connection(stream, conn, limits, &*service).await }
        },
    )
    .await
}

async fn serve_connection<S: Service>(
    stream: TcpStream,
    mut conn: crate::listener::Conn,
    limits: ServerLimits,
    service: &S,
) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let caller = conn.caller("an RPC")?.clone();
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let write_timeout = limits.listener.idle_timeout;
    loop {
        let payload = match conn.read_frame(&mut reader, limits.frame_limit_bytes).await {
            Ok(None) => return Ok(()),
            Ok(Some(p)) => p,
            // A silent or stalled peer gets no reply: it would not read one either.
            Err(e @ Error::Timeout(_)) => return Err(e),
            Err(e) => {
                send_reply(&mut writer, &service.malformed(&e), write_timeout).await?;
                return Err(e);
            }
        };
        let req = match decode_msg::<S::Request>(&payload) {
            Ok(r) => r,
            Err(e) => {
                send_reply(&mut writer, &service.malformed(&e), write_timeout).await?;
                return Err(e);
            }
        };
        let resp = service.call(&caller, req).await;
        send_reply(&mut writer, &resp, write_timeout).await?;
    }
}

async fn send_reply<T: Serialize>(
    writer: &mut BufWriter<OwnedWriteHalf>,
    msg: &T,
    timeout: Duration,
) -> Result<()> {
    let bytes = encode_msg(msg)?;
    let io = async {
        write_frame(writer, &bytes).await?;
        writer
            .flush()
            .await
            .map_err(|e| Error::io("flushing reply", e))
    };
    tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| Error::Timeout("writing reply".into()))?
}

/// One open connection to a namenode.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
}

/// Client for the namenodes' RPC port (see the module docs and [`crate::protocol`]).
pub struct NamenodeClient {
    addrs: Vec<(u64, SocketAddr)>,
    leader: AtomicU64,
    client_id: u64,
    next_call_id: AtomicU64,
    next_request_id: AtomicU64,
    pool: Mutex<HashMap<u64, Vec<Conn>>>,
    rpc_timeout: Duration,
    retry_for: Duration,
    /// What every connection authenticates with, or why there is nothing to (reported at
    /// the first call, so a user's tools without a key say so rather than fail to start).
    credentials: std::result::Result<Credentials, String>,
}

impl std::fmt::Debug for NamenodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamenodeClient")
            .field("addrs", &self.addrs)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// Most idle connections kept per namenode.
const POOL_PER_NAMENODE: usize = 64;

impl NamenodeClient {
    /// A client for the config's namenodes; each attempt times out after `rpc_timeout_ms` and a
    /// call keeps retrying for three times that (enough for a leader election).
    pub fn new(config: &ClusterConfig) -> Self {
        let rpc_timeout = Duration::from_millis(config.rpc_timeout_ms);
        Self::with_addrs(
            config.namenode_addrs(),
            config.secrets.credentials().cloned(),
            rpc_timeout,
            rpc_timeout * 3,
        )
    }

    /// A client for explicit `(id, address)` pairs, authenticating with `credentials`.
    pub fn with_addrs(
        addrs: Vec<(u64, SocketAddr)>,
        credentials: Result<Credentials>,
        rpc_timeout: Duration,
        retry_for: Duration,
    ) -> Self {
        let first = addrs.first().map(|a| a.0).unwrap_or(0);
        NamenodeClient {
            addrs,
            leader: AtomicU64::new(first),
            client_id: rand::random(),
            next_call_id: AtomicU64::new(1),
            next_request_id: AtomicU64::new(1),
            pool: Mutex::new(HashMap::new()),
            rpc_timeout,
            retry_for,
            credentials: credentials.map_err(|e| e.to_string()),
        }
    }

    /// This client's random id (also a good unique `client_name` suffix for leases).
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The namenode this client currently believes is the leader.
    pub fn leader_hint(&self) -> u64 {
        self.leader.load(Ordering::Relaxed)
    }

    /// The namenode ids this client knows.
    pub fn namenode_ids(&self) -> Vec<u64> {
        self.addrs.iter().map(|a| a.0).collect()
    }

    /// Sends `req` to the leader, following hints and retrying until the deadline.
    /// Calls that every namenode answers ([`Request::any_namenode`]) go to the first namenode
    /// that answers.
    pub async fn call(&self, req: Request) -> Result<Response> {
        let call = req.is_non_idempotent().then(|| CallId {
            client_id: self.client_id,
            call_id: self.next_call_id.fetch_add(1, Ordering::Relaxed),
        });
        let deadline = Instant::now() + self.retry_for;
        let mut target = self.leader_hint();
        let mut backoff = Duration::from_millis(10);
        // The last failure of each namenode that could not be reached, so that a call ending
        // on "not the leader, namenode N is" can say what is wrong with N instead.
        let mut down: HashMap<u64, Error> = HashMap::new();
        loop {
            let err = match self.attempt(target, call, &req).await {
                Ok(resp) => {
                    self.leader.store(target, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) => e,
            };
            if !is_retriable(&err) || Instant::now() + backoff > deadline {
                return Err(self.explain(err, down));
            }
            target = match err {
                Error::NotLeader { hint: Some(h) } if h != target && self.addr_of(h).is_some() => h,
                _ => {
                    if !matches!(err, Error::NotLeader { .. }) {
                        down.insert(target, err);
                    }
                    // No usable hint (election in progress or node down): wait a little and
                    // try the next namenode in turn.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    self.next_after(target)
                }
            };
        }
    }

    /// The error a call ends with: a last "not the leader" answer that names a leader this
    /// client could not reach becomes that leader's failure, since that is what the user can
    /// act on (start it, or wait for the others to elect a new one).
    fn explain(&self, err: Error, mut down: HashMap<u64, Error>) -> Error {
        let Error::NotLeader { hint: Some(id) } = err else {
            return err;
        };
        match (self.addr_of(id), down.remove(&id)) {
            (Some(addr), Some(source)) => Error::LeaderUnreachable {
                id,
                addr,
                source: Box::new(source),
            },
            _ => err,
        }
    }

    /// Sends `req` to namenode `id` once (no retry, no redirect). A non-idempotent request
    /// still gets a fresh [`CallId`].
    pub async fn call_one(&self, id: u64, req: Request) -> Result<Response> {
        let call = req.is_non_idempotent().then(|| CallId {
            client_id: self.client_id,
            call_id: self.next_call_id.fetch_add(1, Ordering::Relaxed),
        });
        self.attempt(id, call, &req).await
    }

    /// Sends `req` to every namenode concurrently (datanode reports); one result per namenode.
    pub async fn call_each(&self, req: Request) -> Vec<(u64, Result<Response>)> {
        let calls = self.addrs.iter().map(|(id, _)| {
            let req = req.clone();
            async move { (*id, self.call_one(*id, req).await) }
        });
        join_all(calls).await
    }

    fn addr_of(&self, id: u64) -> Option<SocketAddr> {
        self.addrs.iter().find(|a| a.0 == id).map(|a| a.1)
    }

    fn next_after(&self, id: u64) -> u64 {
        let pos = self.addrs.iter().position(|a| a.0 == id).unwrap_or(0);
        self.addrs
            .get((pos + 1) % self.addrs.len().max(1))
            .map(|a| a.0)
            .unwrap_or(0)
    }

    async fn attempt(&self, id: u64, call: Option<CallId>, req: &Request) -> Result<Response> {
        let addr = self
            .addr_of(id)
            .ok_or_else(|| Error::Config(format!("no namenode with id {id}")))?;
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_msg(&RequestFrame {
            request_id,
            call,
            body: req.clone(),
        })?;
        let pooled = crate::lock::lock(&self.pool)
            .get_mut(&id)
            .and_then(|v| v.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect(addr).await?,
        };
        let reply = tokio::time::timeout(self.rpc_timeout, exchange(&mut conn, &frame))
            .await
            .map_err(|_| Error::Timeout(format!("namenode {id} at {addr} did not answer")))??;
        let reply: ResponseFrame = decode_msg(&reply)?;
        if reply.request_id != request_id {
            return Err(Error::Malformed(format!(
                "namenode {id} answered request {} instead of {request_id}",
                reply.request_id
            )));
        }
        let mut pool = crate::lock::lock(&self.pool);
        let idle = pool.entry(id).or_default();
        if idle.len() < POOL_PER_NAMENODE {
            idle.push(conn);
        }
        drop(pool);
        reply.result.map_err(Error::from)
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Conn> {
        let credentials = self
            .credentials
            .as_ref()
            .map_err(|e| Error::Unauthenticated(e.clone()))?;
        let stream =
            crate::auth::connect(&addr.to_string(), "namenode", credentials, self.rpc_timeout)
                .await?;
        let (r, w) = stream.into_split();
        Ok(Conn {
            reader: BufReader::new(r),
            writer: BufWriter::new(w),
        })
    }
}

async fn exchange(conn: &mut Conn, frame: &[u8]) -> Result<bytes::Bytes> {
    write_frame(&mut conn.writer, frame).await?;
    conn.writer
        .flush()
        .await
        .map_err(|e| Error::io("sending request", e))?;
    read_frame(&mut conn.reader, DEFAULT_FRAME_LIMIT_BYTES)
        .await?
        .ok_or_else(|| Error::io("reading reply", std::io::ErrorKind::UnexpectedEof.into()))
}

/// Errors after which another attempt (possibly elsewhere) may succeed.
fn is_retriable(err: &Error) -> bool {
    use crate::error::ErrorKind;
    matches!(
        err,
        Error::Io { .. } | Error::Timeout(_) | Error::NotLeader { .. }
    ) || matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::NotLeader)
}

/// Runs futures concurrently and collects their outputs in order (a tiny `join_all`, to avoid a
/// dependency on the `futures` crate).
async fn join_all<F: Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut handles: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (h, slot) in handles.iter_mut().zip(out.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            match h.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => *slot = Some(v),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

/// The error reply for a namenode request that could not be read or decoded.
pub fn malformed_reply(err: &Error) -> ResponseFrame {
    ResponseFrame {
        request_id: 0,
        result: Err(WireError::from(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Service for Echo {
        type Request = RequestFrame;
        type Response = ResponseFrame;
        async fn call(&self, _: &Principal, req: RequestFrame) -> ResponseFrame {
            let result = match req.body {
                Request::Status => Err(WireError::from(&Error::NotLeader { hint: Some(2) })),
                _ => Ok(Response::Done),
            };
            ResponseFrame {
                request_id: req.request_id,
                result,
            }
        }
        fn malformed(&self, err: &Error) -> ResponseFrame {
            malformed_reply(err)
        }
    }

    /// The test cluster's key: every server here checks it, every client presents it.
    fn key() -> &'static crate::auth::Key {
        static KEY: std::sync::OnceLock<crate::auth::Key> = std::sync::OnceLock::new();
        KEY.get_or_init(crate::auth::Key::generate)
    }

    fn creds() -> Result<Credentials> {
        Ok(Credentials::member("test-client", key()))
    }

    async fn start() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ServerLimits {
            listener: Limits {
                max_connections: 8,
                idle_timeout: Duration::from_secs(5),
                read_timeout: Duration::from_secs(5),
                shutdown_grace: Duration::from_secs(5),
                handshake_timeout: Duration::from_secs(5),
            },
            frame_limit_bytes: 1024,
        };
        let gate = Gate::Authenticate(crate::auth::Authority::new(key().clone()));
        tokio::spawn(serve(
            listener,
            limits,
            gate,
            Arc::new(Echo),
            Shutdown::never(),
        ));
        addr
    }

    // Checks G7: garbage and oversized frames get an error reply or a close; the server keeps
    // serving well-behaved clients.
    #[tokio::test]
    async fn bad_frames_do_not_hurt_other_connections() {
        let addr = start().await;
        let client = NamenodeClient::with_addrs(
            vec![(1, addr)],
            creds(),
            Duration::from_secs(2),
            Duration::from_secs(2),
        );
        for bad in [
            vec![0xff, 0xff, 0xff, 0xff],
            vec![0, 0, 0, 3, 1, 2, 3],
            vec![0, 0, 0, 9, 1],
        ] {
            // Authenticated first: the garbage must reach the RPC decoder, not the handshake.
            let mut s = TcpStream::connect(addr).await.unwrap();
            crate::auth::handshake::connect(&mut s, &creds().unwrap(), "rpc")
                .await
                .unwrap();
            s.write_all(&bad).await.unwrap();
            s.shutdown().await.unwrap();
            let mut buf = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf).await;
            if !buf.is_empty() {
                let mut b = bytes::BytesMut::from(&buf[..]);
                let f = crate::frame::decode_frame(&mut b, 1 << 20)
                    .unwrap()
                    .unwrap();
                let reply: ResponseFrame = decode_msg(&f).unwrap();
                assert!(reply.result.is_err());
            }
            assert_eq!(
                client
                    .call_one(1, Request::Mkdirs { path: "/a".into() })
                    .await
                    .unwrap(),
                Response::Done
            );
        }
    }

    #[tokio::test]
    async fn not_leader_is_followed_until_deadline() {
        let addr = start().await;
        let client = NamenodeClient::with_addrs(
            vec![(1, addr)],
            creds(),
            Duration::from_secs(1),
            Duration::from_millis(200),
        );
        let err = client.call(Request::Status).await.unwrap_err();
        assert!(matches!(err, Error::NotLeader { hint: Some(2) }), "{err}");
    }

    // A follower names namenode 2 as the leader, and 2 refuses connections: the call's error
    // names 2, its address and the refusal, not "not the leader".
    #[tokio::test]
    async fn a_refusing_leader_is_named_in_the_error() {
        let follower = start().await;
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let leader = closed.local_addr().unwrap();
        drop(closed);
        let client = NamenodeClient::with_addrs(
            vec![(1, follower), (2, leader)],
            creds(),
            Duration::from_secs(1),
            Duration::from_millis(300),
        );
        let err = client.call(Request::Status).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::LeaderUnreachable { id: 2, .. }),
            "{text}"
        );
        assert!(
            text.starts_with(&format!(
                "namenode 2 ({leader}), the leader, refused the connection"
            )),
            "{text}"
        );
        assert!(!text.contains("Some("), "{text}");
    }
}
