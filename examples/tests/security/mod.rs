//! G8 on a running pseudo-distributed cluster: every port refuses strangers, and an
//! authenticated caller acts only as itself. Called from a test of `cluster.rs` that already
//! has a cluster up (CI time), before and after which real jobs run on it.

use std::io::{Read, Write};
use std::time::Duration;

use dfs::auth::{handshake, names, Credentials, Key};
use dfs::config::ClusterConfig;
use dfs::frame::{encode_msg, write_frame};
use mapreduce::dfs_fs::DfsFs;
use mapreduce::protocol::{call, AttemptOutcome, JtRequest, JtResponse};
use mapreduce::scheduler::{AttemptId, TaskId, TaskKind};

/// Every port of the cluster, named.
fn ports(config: &ClusterConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for nn in &config.namenodes {
        out.push((format!("namenode {} rpc", nn.id), nn.addr.clone()));
        out.push((format!("namenode {} raft", nn.id), nn.raft_addr.clone()));
    }
    for h in &config.hosts {
        out.push((format!("datanode {}", h.name), h.addr.clone()));
        out.push((format!("worker {}", h.name), h.worker_addr.clone()));
    }
    out.push(("jobtracker".into(), config.jobtracker_addr.clone()));
    out
}

/// Sends `bytes` on a fresh connection without any handshake; returns what came back before
/// the server closed it.
fn raw(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    back
}

/// A real Submit frame, as an unauthenticated client would replay it (issue 14's remote code
/// execution began with one).
fn submit_frame() -> Vec<u8> {
    let spec = mapreduce::protocol::JobSpec {
        conf: mapreduce::job_conf::JobConf::new("wordcount", Default::default()),
        binary: mapreduce::protocol::BinaryRef {
            dfs_path: "/tmp/evil.sh".into(),
            sha256: "00".repeat(32),
        },
        inputs: vec!["/in".into()],
        output: "/pwned".into(),
        input_format: mapreduce::input::InputFormat::Lines,
        reduces: 1,
        user: "root".into(),
        submission: String::new(),
    };
    let body = encode_msg(&JtRequest::Submit(Box::new(spec))).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut frame = Vec::new();
    rt.block_on(write_frame(&mut frame, &body)).unwrap();
    frame
}

/// Checks G8 (and G7) on every port: garbage or a replayed request without a handshake gets
/// nothing back and runs nothing; another cluster's key is refused (the client sees the
/// server cannot prove the key, the server refuses the client); garbage after a valid
/// handshake as a user is a malformed request, not a crash; a user cannot speak for a worker
/// (forged task success) nor read a job's map outputs. The caller then runs jobs on the same
/// cluster, which proves every daemon still serves.
pub fn strangers_are_refused_everywhere(fs: &DfsFs, config: &ClusterConfig) {
    let authority = config.secrets.authority().unwrap();
    let stranger = Credentials::member("admin", &Key::generate());
    let mallory = Credentials::user("mallory", authority.user_key("mallory"));
    let submit = submit_frame();
    for (name, addr) in ports(config) {
        for bytes in [
            submit.clone(),
            vec![0xff; 64],
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        ] {
            let back = raw(&addr, &bytes);
            assert!(
                back.is_empty(),
                "{name} answered an unauthenticated client: {back:?}"
            );
        }
        let err = fs
            .block_on(dfs::auth::connect(
                &addr,
                &name,
                &stranger,
                Duration::from_secs(10),
            ))
            .unwrap_err();
        assert!(
            err.to_string().contains("could not prove"),
            "{name} with another cluster's key: {err}"
        );
        // A valid handshake, then garbage: the decoder refuses it; nobody panics.
        fs.block_on(async {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            handshake::connect(&mut s, &mallory, &name).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = s
                .write_all(&[0, 0, 0, 9, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7])
                .await;
            let _ = s.shutdown().await;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut sink)).await;
        });
    }
    assert!(
        !fs.block_on(fs_exists(fs, "/pwned")),
        "an unauthenticated submit created output"
    );
    forged_task_success_is_refused(fs, config, &mallory);
}

async fn fs_exists(fs: &DfsFs, path: &str) -> bool {
    fs.client().stat(path).await.is_ok()
}

/// Checks G8 and G6: an `AttemptDone` from a user (not the worker running the attempt) is
/// refused with a permission error (issue 14: one forged success made a job exit 0 with no
/// part file); so is a heartbeat in a worker's name.
fn forged_task_success_is_refused(fs: &DfsFs, config: &ClusterConfig, mallory: &Credentials) {
    let attempt = AttemptId {
        task: TaskId {
            job: 1,
            kind: TaskKind::Reduce,
            index: 0,
        },
        attempt: 0,
    };
    let host = config.hosts[0].name.clone();
    let forged = [
        JtRequest::AttemptDone {
            worker: host.clone(),
            attempt,
            outcome: AttemptOutcome::Succeeded {
                counters: Default::default(),
            },
        },
        JtRequest::Heartbeat {
            worker: host.clone(),
            slots: 64,
            running: Vec::new(),
            statuses: Vec::new(),
            wait_ms: 0,
        },
    ];
    let timeout = Duration::from_secs(10);
    for req in forged {
        let resp: JtResponse = fs
            .block_on(call(&config.jobtracker_addr, mallory, &req, timeout))
            .unwrap();
        let text = format!("{resp:?}");
        assert!(text.contains("PermissionDenied"), "{}: {text}", req.name());
    }
    // A worker may not speak for another host either.
    let authority = config.secrets.authority().unwrap();
    let other = authority.member_credentials(&names::worker("not-this-host"));
    let req = JtRequest::AttemptDone {
        worker: host,
        attempt,
        outcome: AttemptOutcome::Failed {
            reason: "forged".into(),
        },
    };
    let resp: JtResponse = fs
        .block_on(call(&config.jobtracker_addr, &other, &req, timeout))
        .unwrap();
    assert!(format!("{resp:?}").contains("PermissionDenied"), "{resp:?}");
}

/// Strangers that hold connections open on every port, from many addresses, reconnecting
/// as soon as a server closes one, until dropped.
pub struct Squatters {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Squatters {
    /// `per_port` connections on each port of `config`, from loopback addresses 127.0.9.x
    /// (other "hosts" than the cluster's, so each address stays within its share).
    pub fn start(config: &ClusterConfig, per_port: usize) -> Squatters {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let addrs: Vec<std::net::SocketAddr> = ports(config)
            .into_iter()
            .map(|(_, a)| a.parse().unwrap())
            .collect();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let mut tasks = tokio::task::JoinSet::new();
                for (p, addr) in addrs.into_iter().enumerate() {
                    for i in 0..per_port {
                        let source: std::net::IpAddr =
                            [127, 0, 9, (1 + (p * 7 + i) % 200) as u8].into();
                        let (flag, opened) = (flag.clone(), opened.clone());
                        tasks.spawn(async move {
                            use tokio::io::AsyncReadExt;
                            while !flag.load(Ordering::Relaxed) {
                                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                                socket.bind((source, 0).into()).unwrap();
                                let Ok(mut s) = socket.connect(addr).await else {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    continue;
                                };
                                opened.fetch_add(1, Ordering::Relaxed);
                                let mut buf = [0u8; 64];
                                // Held until the server closes it (or the test ends).
                                let _ =
                                    tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
                                        .await;
                            }
                        });
                    }
                }
                while !flag.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tasks.abort_all();
                opened.load(Ordering::Relaxed)
            })
        });
        Squatters {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops them; returns how many connections they opened in all.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A stream that keeps a copy of what is written to it: a captured handshake.
struct Recorder {
    inner: tokio::net::TcpStream,
    written: Vec<u8>,
}

impl tokio::io::AsyncRead for Recorder {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Recorder {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if let std::task::Poll::Ready(Ok(n)) = polled {
            self.written.extend_from_slice(&data[..n]);
        }
        polled
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Checks G8: a handshake captured from a real admin client and replayed byte for byte on a
/// new connection, followed by a real request (a namenode `Mkdirs`), is refused on every port
/// (the server's challenge is new, so the captured proof is wrong): nothing is created and
/// the only bytes back are the handshake's own (a challenge and a refusal).
pub fn replayed_handshakes_are_refused(fs: &DfsFs, config: &ClusterConfig) {
    use dfs::protocol::{Request, RequestFrame};
    let admin = config.secrets.credentials().unwrap().clone();
    let mkdirs = encode_msg(&RequestFrame {
        request_id: 1,
        call: None,
        body: Request::Mkdirs {
            path: "/replayed".into(),
        },
    })
    .unwrap();
    for (name, addr) in ports(config) {
        let captured = fs.block_on(async {
            let inner = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut rec = Recorder {
                inner,
                written: Vec::new(),
            };
            handshake::connect(&mut rec, &admin, &name).await.unwrap();
            rec.written
        });
        let mut replay = captured;
        fs.block_on(write_frame(&mut replay, &mkdirs)).unwrap();
        let back = raw(&addr, &replay);
        // A challenge (~70 bytes) and a refusal: never an RPC reply.
        assert!(
            back.len() < 300,
            "{name} answered a replayed handshake with {} bytes",
            back.len()
        );
        let text = String::from_utf8_lossy(&back);
        assert!(text.contains("wrong key"), "{name}: {text:?}");
    }
    assert!(
        !fs.block_on(fs_exists(fs, "/replayed")),
        "a replayed handshake created a directory"
    );
}
