use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::auth::{Authority, Credentials, Gate, Key};
use crate::block_store::BlockStore;
use crate::checksum;
use crate::listener::Shutdown;
use crate::protocol::{Block, DatanodeRef};

/// The test cluster's key: every node here checks it.
fn key() -> &'static Key {
    static KEY: std::sync::OnceLock<Key> = std::sync::OnceLock::new();
    KEY.get_or_init(Key::generate)
}

fn authority() -> Authority {
    Authority::new(key().clone())
}

/// A namenode's credentials: the tests drive lease recovery, which only a namenode may.
fn creds() -> Credentials {
    Credentials::member(&crate::auth::names::namenode(1), key())
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 13) as u8).wrapping_add(seed))
        .collect()
}

struct Node {
    store: Arc<BlockStore>,
    node: DatanodeRef,
    _dir: tempfile::TempDir,
    _events: mpsc::Receiver<ReplicaEvent>,
}

async fn start_node(name: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BlockStore::open(&[dir.path().to_path_buf()], name).unwrap());
    let (tx, rx) = mpsc::channel(1000);
    let limits = TransferLimits {
        max_connections: 16,
        idle_timeout: Duration::from_secs(5),
        peer_timeout: Duration::from_secs(2),
    };
    let server = TransferServer::new(store.clone(), tx, limits, name, creds(), Some(authority()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gate = Gate::Authenticate(authority());
    tokio::spawn(server.serve(listener, gate, Shutdown::never()));
    Node {
        store,
        node: DatanodeRef {
            host: name.into(),
            addr,
            rack: "/r".into(),
        },
        _dir: dir,
        _events: rx,
    }
}

fn packets_of(data: &[u8]) -> Vec<Packet> {
    let mut seqno = 0;
    let mut crcs = Vec::new();
    checksum::append_crc_bytes(data, &mut crcs);
    split_packets(
        0,
        Bytes::copy_from_slice(data),
        Bytes::from(crcs),
        &mut seqno,
    )
}

// Checks G2: a pipeline write lands, finalized and identical, on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_write_then_read_every_replica() {
    let nodes = [
        start_node("a").await,
        start_node("b").await,
        start_node("c").await,
    ];
    let targets: Vec<DatanodeRef> = nodes.iter().map(|n| n.node.clone()).collect();
    let data = payload(200_003, 7);
    let block = Block {
        id: 11,
        gen_stamp: 1,
        len_bytes: 0,
    };
    let len = write_block(
        block,
        &targets,
        &packets_of(&data),
        &creds(),
        None,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(len, data.len() as u64);
    for n in &nodes {
        assert_eq!(n.store.get(11).unwrap().len_bytes, data.len() as u64);
        let got = read_range(
            &n.node,
            block,
            1000,
            150_000,
            &creds(),
            None,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(got, &data[1000..151_000]);
    }
    // Re-replication to a fresh node copies the same bytes.
    let d = start_node("d").await;
    replicate(
        nodes[0].store.clone(),
        11,
        std::slice::from_ref(&d.node),
        &creds(),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let got = read_range(
        &d.node,
        block,
        0,
        u64::MAX,
        &creds(),
        None,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(got, data);
}

// Checks G2 (lease recovery): a writer that dies after its packets were acked leaves
// parked replicas on every node; they report their length, and a recovered replica
// (cut inside a chunk, restamped, finalized) reads back verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_pipeline_is_parked_and_recoverable() {
    let nodes = [start_node("a").await, start_node("b").await];
    let targets: Vec<DatanodeRef> = nodes.iter().map(|n| n.node.clone()).collect();
    let data = payload(3 * MAX_PACKET_DATA_BYTES, 5);
    let block = Block {
        id: 21,
        gen_stamp: 4,
        len_bytes: 0,
    };
    let timeout = Duration::from_secs(2);
    let mut pipe = PipelineWriter::open(block, &targets, &creds(), None, timeout)
        .await
        .unwrap();
    for p in packets_of(&data) {
        pipe.send(p.data, p.crcs, false).await.unwrap();
    }
    pipe.wait_acked().await.unwrap();
    drop(pipe); // The writer dies: no final packet.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while nodes.iter().any(|n| n.store.parked_count() == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "replicas never parked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in &nodes {
        let reported = recovery_info(&n.node, 21, &creds(), timeout).await.unwrap();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert_eq!(reported[0].block.len_bytes, data.len() as u64);
        assert_eq!(reported[0].state, crate::protocol::ReplicaState::InProgress);
    }
    let keep = data.len() as u64 - 700;
    let from = Block {
        len_bytes: keep,
        ..block
    };
    for n in &nodes {
        assert_eq!(
            finish_recovery(&n.node, from, 9, &creds(), timeout)
                .await
                .unwrap(),
            keep
        );
        let recovered = Block {
            id: 21,
            gen_stamp: 9,
            len_bytes: keep,
        };
        let got = read_range(&n.node, recovered, 0, u64::MAX, &creds(), None, timeout)
            .await
            .unwrap();
        assert_eq!(got, &data[..keep as usize]);
    }
    let after = recovery_info(&nodes[0].node, 21, &creds(), timeout)
        .await
        .unwrap();
    assert_eq!(
        after.len(),
        1,
        "the parked copy went with the finalize: {after:?}"
    );
    assert_eq!(after[0].state, crate::protocol::ReplicaState::Finalized);
}

// Checks G2: a dead node is named by its position so the writer can rebuild the pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_downstream_is_named() {
    let a = start_node("a").await;
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let targets = vec![
        a.node.clone(),
        DatanodeRef {
            host: "dead".into(),
            addr: dead,
            rack: "/r".into(),
        },
    ];
    let block = Block {
        id: 1,
        gen_stamp: 1,
        len_bytes: 0,
    };
    let err = write_block(
        block,
        &targets,
        &packets_of(&payload(10, 1)),
        &creds(),
        None,
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert_eq!(err.bad_index, 1, "{err}");
    assert!(a.store.get(1).is_none());
}

/// A datanode that dies mid-block: it accepts one pipeline write (the last of its pipeline),
/// takes two packets, then closes with more packets unread, as the kernel closes the sockets
/// of a SIGKILLed process (with a reset).
async fn start_dying_node() -> DatanodeRef {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let now = crate::auth::now_unix_ms();
                crate::auth::handshake::accept(&mut stream, &authority(), now).await?;
                let limit = Duration::from_secs(2);
                wire::recv_frame(&mut stream, limit, "a request").await?;
                let ready = TransferReply::Ready { len_bytes: 0 };
                wire::send_message(&mut stream, &ready).await?;
                for _ in 0..2 {
                    wire::recv_frame(&mut stream, limit, "a packet").await?;
                }
                drop(stream);
                Ok::<(), crate::error::Error>(())
            });
        }
    });
    DatanodeRef {
        host: "dying".into(),
        addr,
        rack: "/r".into(),
    }
}

// Checks G2: when the last node of a pipeline dies mid-block, the writer is told that node,
// not the live one before it. The node before it reports the failure and closes; had it closed
// with packets unread (a reset), the first node's next forward would fail and it would name its
// live neighbour, which the writer would then drop from the pipeline and the namenode would
// stop counting, so a file could be closed with one replica fewer than G2 asks. The close and
// the first node's next forward race, so the write is repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_last_node_is_named_not_its_live_neighbour() {
    let (a, b) = (start_node("a").await, start_node("b").await);
    let targets = vec![a.node.clone(), b.node.clone(), start_dying_node().await];
    let packet = packets_of(&payload(MAX_PACKET_DATA_BYTES, 3)).remove(0);
    for id in 100..120 {
        let block = Block {
            id,
            gen_stamp: 1,
            len_bytes: 0,
        };
        let timeout = Duration::from_secs(2);
        let mut pipe = PipelineWriter::open(block, &targets, &creds(), None, timeout)
            .await
            .unwrap();
        let mut failure = None;
        for _ in 0..200 {
            if let Err(f) = pipe
                .send(packet.data.clone(), packet.crcs.clone(), false)
                .await
            {
                failure = Some(f);
                break;
            }
        }
        let failure = match failure {
            Some(f) => f,
            None => pipe.finish().await.unwrap_err(),
        };
        assert_eq!(failure.bad_index, 2, "block {id}: {failure}");
    }
}

// Checks G3: a corrupt replica is refused with a Corrupt error, never served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replica_is_not_served() {
    let mut a = start_node("a").await;
    let data = payload(5000, 3);
    let block = Block {
        id: 2,
        gen_stamp: 4,
        len_bytes: 0,
    };
    write_block(
        block,
        std::slice::from_ref(&a.node),
        &packets_of(&data),
        &creds(),
        None,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let (path, _) = crate::block_store::replica::replica_paths(a._dir.path(), 2, 4);
    let mut raw = std::fs::read(&path).unwrap();
    raw[2000] ^= 1;
    std::fs::write(&path, raw).unwrap();
    let err = read_range(
        &a.node,
        block,
        0,
        5000,
        &creds(),
        None,
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Corrupt { block: 2, .. }), "{err}");
    let mut saw_corrupt = false;
    while let Ok(ev) = a._events.try_recv() {
        saw_corrupt |= matches!(ev, ReplicaEvent::Corrupt(r) if r.block_id == 2);
    }
    assert!(saw_corrupt);
}

// Checks G7: garbage, oversized and truncated frames get an error or a close, and the
// server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_hurt_the_server() {
    use tokio::io::AsyncReadExt;
    let a = start_node("a").await;
    let garbage: Vec<Vec<u8>> = vec![
        vec![0xff, 0xff, 0xff, 0xff],
        vec![0, 0, 0, 5, b'M', 1, 2, 3, 4],
        vec![0, 0, 0, 50, b'P'],
        vec![0, 0, 0, 1, b'P'],
        vec![0x80, 0, 0, 0, 1, 2],
    ];
    for (bytes, authenticated) in garbage.iter().flat_map(|g| [(g, false), (g, true)]) {
        // Garbage before the handshake, and garbage after a valid one (reaching the decoder).
        let mut s = TcpStream::connect(&a.node.addr).await.unwrap();
        if authenticated {
            crate::auth::handshake::connect(&mut s, &creds(), "dn")
                .await
                .unwrap();
        }
        s.write_all(bytes).await.unwrap();
        s.shutdown().await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .unwrap();
    }
    let data = payload(700, 9);
    let block = Block {
        id: 3,
        gen_stamp: 1,
        len_bytes: 0,
    };
    write_block(
        block,
        std::slice::from_ref(&a.node),
        &packets_of(&data),
        &creds(),
        None,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let got = read_range(
        &a.node,
        block,
        0,
        700,
        &creds(),
        None,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(got, data);
}

// Checks G8: a user (not a member) reads a block only with the namenode's token for it: no
// token, a token for another block or a read token for a write are refused; a valid one
// reads the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_need_the_namenodes_token_for_a_block() {
    use crate::auth::BlockAccess;
    let a = start_node("a").await;
    let data = payload(3000, 4);
    let block = Block {
        id: 31,
        gen_stamp: 1,
        len_bytes: data.len() as u64,
    };
    let node = std::slice::from_ref(&a.node);
    let timeout = Duration::from_secs(2);
    let alice = Credentials::user("alice", authority().user_key("alice"));
    let now = crate::auth::now_unix_ms();
    let read = authority().block_token(31, BlockAccess::Read, now);
    let err = write_block(
        block,
        node,
        &packets_of(&data),
        &alice,
        Some(&read),
        timeout,
    )
    .await
    .unwrap_err();
    assert!(
        err.error.to_string().contains("read token"),
        "{}",
        err.error
    );
    let write = authority().block_token(31, BlockAccess::Write, now);
    write_block(
        block,
        node,
        &packets_of(&data),
        &alice,
        Some(&write),
        timeout,
    )
    .await
    .unwrap();
    let err = read_range(&a.node, block, 0, 3000, &alice, None, timeout)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no block access token"), "{err}");
    let other = authority().block_token(32, BlockAccess::Read, now);
    let err = read_range(&a.node, block, 0, 3000, &alice, Some(&other), timeout)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("for block 32"), "{err}");
    let got = read_range(&a.node, block, 0, 3000, &alice, Some(&read), timeout)
        .await
        .unwrap();
    assert_eq!(got, data);
}
