//! Writes the seed corpus of every fuzz target (`fuzz/corpus/<target>/`): a few real encoded
//! messages and files, made with the project's own encoders. Run from `fuzz/` with
//! `cargo run --example seeds`; the output is committed (small: a few KiB per target).

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use dfs::checksum::build_sidecar;
use dfs::config::local_config;
use dfs::frame::{encode_frame, encode_msg};
use dfs::namenode::namespace::Namespace;
use dfs::namenode::raft_driver::encode_raft_message;
use dfs::namenode::storage::Persister;
use dfs::protocol::{
    Block, CallId, DatanodeRef, ReplicaState, ReportedReplica, Request, RequestFrame, Response,
    ResponseFrame, WireError,
};
use dfs::transfer::{encode_message, Packet, TransferReply, TransferRequest};
use mapreduce::input::InputFormat;
use mapreduce::job_conf::JobConf;
use mapreduce::job_store::{JobRecord, RecordState};
use mapreduce::protocol::{
    AttemptOutcome, BinaryRef, FetchHeader, FetchRequest, JobSpec, JtRequest, JtResponse,
};
use mapreduce::scheduler::{AttemptId, TaskId, TaskKind};
use raft::eraftpb::{ConfState, Entry, Message, MessageType, Snapshot};
use raft::storage::MemStorage;
use raft::{Config, RawNode};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    write(&root, "frame", frames());
    write(&root, "rpc_request", requests());
    write(&root, "rpc_response", responses());
    write(&root, "transfer_packet", packets());
    write(&root, "transfer_message", transfer_messages());
    write(&root, "shuffle", shuffle());
    write(&root, "jobtracker", jobtracker());
    write(&root, "raft_message", raft_messages());
    write(&root, "wal", wal_segments());
    write(&root, "checksum", sidecars());
    write(&root, "config", configs());
    write(&root, "job_record", job_records());
    write(&root, "handshake", handshakes());
    write(&root, "web_token", web_tokens());
}

/// A user's login token and a member's session, as the URL and the cookie carry them.
fn web_tokens() -> Vec<Vec<u8>> {
    use dfs::auth::web_token::encode;
    use dfs::auth::{Authority, Credentials, Key, Principal};
    let authority = Authority::new(Key::from_hex(&"5a".repeat(32)).unwrap());
    let now = 1_700_000_000_000;
    let alice = Credentials::user("alice", authority.user_key("alice"));
    let token = alice.login_token(now).unwrap();
    let session = authority.session(Principal::Member("admin".into()), now);
    vec![encode(&token).into_bytes(), encode(&session).into_bytes()]
}

/// A real client's first handshake message (captured from `handshake::connect`), alone and
/// followed by a proof frame of the right size (which cannot be right: the server's
/// challenge is fresh).
fn handshakes() -> Vec<Vec<u8>> {
    use dfs::auth::{handshake, Credentials, Key};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hello = rt.block_on(async {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let creds = Credentials::member("nn1", &Key::from_hex(&"5a".repeat(32)).unwrap());
        let connect = async move {
            let _ = handshake::connect(&mut client, &creds, "seed").await;
        };
        let first = async {
            let frame = dfs::frame::read_frame(&mut server, 1024).await.unwrap().unwrap();
            drop(server);
            frame
        };
        tokio::join!(connect, first).1
    });
    let mut hello_frame = BytesMut::new();
    encode_frame(&hello, &mut hello_frame).unwrap();
    let mut with_proof = hello_frame.clone();
    encode_frame(&[7u8; 32], &mut with_proof).unwrap();
    vec![hello_frame.to_vec(), with_proof.to_vec()]
}

fn write(root: &Path, target: &str, seeds: Vec<Vec<u8>>) {
    let dir = root.join(target);
    fs::create_dir_all(&dir).unwrap();
    for (i, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
    }
}

fn frames() -> Vec<Vec<u8>> {
    let mut two = BytesMut::new();
    encode_frame(b"hello", &mut two).unwrap();
    encode_frame(
        &encode_msg(&request(Request::Mkdirs { path: "/a".into() })).unwrap(),
        &mut two,
    )
    .unwrap();
    let mut announced_big = BytesMut::new();
    encode_frame(&[7; 64], &mut announced_big).unwrap();
    announced_big[0] = 0x7f;
    vec![two.to_vec(), announced_big.to_vec()]
}

fn request(body: Request) -> RequestFrame {
    RequestFrame {
        request_id: 3,
        call: Some(CallId {
            client_id: 11,
            call_id: 2,
        }),
        body,
    }
}

fn block() -> Block {
    Block {
        id: 1_073_741_825,
        gen_stamp: 1001,
        len_bytes: 4096,
    }
}

fn datanode() -> DatanodeRef {
    DatanodeRef {
        host: "dn2".into(),
        addr: "127.0.0.1:9866".into(),
        rack: "/r1".into(),
    }
}

fn requests() -> Vec<Vec<u8>> {
    let replica = ReportedReplica {
        block: block(),
        state: ReplicaState::Finalized,
    };
    [
        Request::Mkdirs {
            path: "/user/ann".into(),
        },
        Request::GetBlockLocations {
            path: "/in/words.txt".into(),
            offset_bytes: 0,
            len_bytes: u64::MAX,
            reader_host: Some("dn1".into()),
        },
        Request::BlockReport {
            host: "dn1".into(),
            replicas: vec![replica.clone(), replica],
        },
    ]
    .into_iter()
    .map(|r| encode_msg(&request(r)).unwrap())
    .collect()
}

fn responses() -> Vec<Vec<u8>> {
    let ok = ResponseFrame {
        request_id: 3,
        result: Ok(Response::Deleted(true)),
    };
    let err = ResponseFrame {
        request_id: 4,
        result: Err(WireError::from(&dfs::error::Error::NotLeader {
            hint: Some(2),
        })),
    };
    vec![encode_msg(&ok).unwrap(), encode_msg(&err).unwrap()]
}

fn packets() -> Vec<Vec<u8>> {
    let data = Bytes::from((0..1500u32).map(|i| i as u8).collect::<Vec<_>>());
    vec![
        Packet::with_crcs(0, 0, false, data).encode().to_vec(),
        Packet::with_crcs(3, 1536, true, Bytes::new())
            .encode()
            .to_vec(),
    ]
}

fn transfer_messages() -> Vec<Vec<u8>> {
    vec![
        encode_message(&TransferRequest::Read {
            block: block(),
            offset_bytes: 512,
            len_bytes: 1024,
            token: None,
        })
        .unwrap(),
        encode_message(&TransferRequest::Write {
            block: block(),
            downstream: vec![datanode()],
            token: None,
        })
        .unwrap(),
        encode_message(&TransferRequest::FinishRecovery {
            from: block(),
            gen_stamp: 1002,
        })
        .unwrap(),
        encode_message(&TransferReply::Ack { seqno: 9 }).unwrap(),
    ]
}

fn attempt(kind: TaskKind, index: u32) -> AttemptId {
    AttemptId {
        task: TaskId {
            job: 7,
            kind,
            index,
        },
        attempt: 0,
    }
}

fn shuffle() -> Vec<Vec<u8>> {
    vec![
        encode_msg(&FetchRequest {
            map: attempt(TaskKind::Map, 3),
            partition: 1,
        })
        .unwrap(),
        encode_msg(&FetchHeader::Ok {
            len: 1 << 20,
            records: 5000,
            crc32: 0xdead_beef,
        })
        .unwrap(),
    ]
}

fn job_spec() -> JobSpec {
    JobSpec {
        conf: JobConf::new("wordcount", mapreduce::job::Settings::default()),
        binary: BinaryRef {
            dfs_path: "/mrjob/bin/ab".into(),
            sha256: "ab".repeat(32),
        },
        inputs: vec![PathBuf::from("/in")],
        output: "/out".into(),
        input_format: InputFormat::Lines,
        reduces: 3,
        user: "ann".into(),
        submission: "token".into(),
    }
}

fn jobtracker() -> Vec<Vec<u8>> {
    let requests = [
        JtRequest::Submit(Box::new(job_spec())),
        JtRequest::Heartbeat {
            worker: "w1".into(),
            slots: 2,
            running: vec![(attempt(TaskKind::Map, 0), 0.5)],
            statuses: vec![(attempt(TaskKind::Map, 0), "half way".into())],
            wait_ms: 1000,
        },
        JtRequest::AttemptDone {
            worker: "w1".into(),
            attempt: attempt(TaskKind::Reduce, 0),
            outcome: AttemptOutcome::Failed {
                reason: "boom".into(),
            },
        },
    ];
    let mut seeds: Vec<Vec<u8>> = requests.iter().map(|r| encode_msg(r).unwrap()).collect();
    seeds.push(encode_msg(&JtResponse::Submitted { job: 7 }).unwrap());
    seeds
}

/// Messages node 1 receives while nodes 2 and 3 elect node 2 and it replicates a few entries,
/// then a snapshot of an empty namespace; each part is a tick count byte and the message.
fn raft_messages() -> Vec<Vec<u8>> {
    let mut to_me = Vec::new();
    let mut vote = Message::default();
    vote.set_msg_type(MessageType::MsgRequestPreVote);
    (vote.from, vote.to, vote.term) = (2, 1, 2);
    to_me.push(vote);
    let mut append = Message::default();
    append.set_msg_type(MessageType::MsgAppend);
    (append.from, append.to, append.term) = (2, 1, 2);
    append.entries = (1..=3)
        .map(|i| Entry {
            term: 2,
            index: i,
            data: vec![i as u8; 8].into(),
            ..Default::default()
        })
        .collect();
    to_me.push(append);
    let mut beat = Message::default();
    beat.set_msg_type(MessageType::MsgHeartbeat);
    (beat.from, beat.to, beat.term, beat.commit) = (2, 1, 2, 3);
    to_me.push(beat);
    let mut snap = Message::default();
    snap.set_msg_type(MessageType::MsgSnapshot);
    (snap.from, snap.to, snap.term) = (2, 1, 3);
    let mut s = Snapshot::default();
    s.data = Namespace::new().to_snapshot().unwrap().into();
    s.mut_metadata().index = 10;
    s.mut_metadata().term = 3;
    s.mut_metadata()
        .set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    snap.set_snapshot(s);
    to_me.push(snap);
    let parts = |msgs: &[Message], ticks: u8| -> Vec<Vec<u8>> {
        msgs.iter()
            .map(|m| [vec![ticks], encode_raft_message(m).unwrap()].concat())
            .collect()
    };
    let mut seeds = vec![fuzz::join_parts(&parts(&to_me, 0))];
    seeds.push(fuzz::join_parts(&parts(&to_me[..2], 12)));
    seeds.push(fuzz::join_parts(&exchanged()));
    seeds
}

/// What a real raft-rs node 2 sends node 1 while it campaigns and wins with node 3's vote.
fn exchanged() -> Vec<Vec<u8>> {
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let node = |id| {
        let storage = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
        let config = Config {
            id,
            pre_vote: true,
            ..Default::default()
        };
        RawNode::new(&config, storage, &logger).unwrap()
    };
    let (mut n2, mut n3) = (node(2), node(3));
    n2.campaign().unwrap();
    let mut out = Vec::new();
    for _ in 0..6 {
        for (from, to) in [(&mut n2, &mut n3)] {
            pump(from, to, &mut out);
        }
        pump(&mut n3, &mut n2, &mut Vec::new());
    }
    out
}

/// Delivers `from`'s messages for node 3 to `to`, and records (as parts) those for node 1.
fn pump(from: &mut RawNode<MemStorage>, to: &mut RawNode<MemStorage>, to_me: &mut Vec<Vec<u8>>) {
    if !from.has_ready() {
        return;
    }
    let mut ready = from.ready();
    let store = from.raft.raft_log.store.clone();
    store.wl().append(ready.entries()).unwrap();
    if let Some(hs) = ready.hs() {
        store.wl().set_hardstate(hs.clone());
    }
    let mut msgs = ready.take_messages();
    msgs.extend(ready.take_persisted_messages());
    let mut light = from.advance(ready);
    msgs.extend(light.take_messages());
    for m in msgs {
        if m.to == 1 {
            to_me.push([vec![0], encode_raft_message(&m).unwrap()].concat());
        } else if m.to == to.raft.id {
            let _ = to.step(m);
        }
    }
    from.advance_apply();
}

fn wal_segments() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut p, _) = Persister::open(dir.path(), vec![1, 2, 3]).unwrap();
        let ents: Vec<Entry> = (1..=4)
            .map(|i| Entry {
                term: 1,
                index: i,
                data: vec![i as u8; 16].into(),
                ..Default::default()
            })
            .collect();
        p.append(&ents).unwrap();
        let mut hs = raft::eraftpb::HardState::default();
        (hs.term, hs.vote, hs.commit) = (1, 2, 3);
        p.set_hard_state(&hs).unwrap();
        p.sync().unwrap();
    }
    let mut seeds = Vec::new();
    for entry in fs::read_dir(dir.path().join("wal")).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        // The segment is zero-filled ahead of its records; the zeros add nothing.
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        seeds.push(bytes[..end].to_vec());
    }
    seeds
}

fn sidecars() -> Vec<Vec<u8>> {
    let data: Vec<u8> = (0..1300u32).map(|i| (i * 7) as u8).collect();
    let sidecar = build_sidecar(1_073_741_825, 1001, &data);
    vec![
        sidecar.clone(),
        fuzz::join_parts(&[sidecar, data]),
        fuzz::join_parts(&[build_sidecar(5, 1, &[]), vec![]]),
    ]
}

fn configs() -> Vec<Vec<u8>> {
    let dir = Path::new("/var/lib/mrjob");
    let mut seeds = vec![local_config(3, 3, dir).to_toml().unwrap().into_bytes()];
    let mut with_mr = local_config(1, 2, dir).to_toml().unwrap();
    with_mr.push('\n');
    with_mr.push_str(
        &mapreduce::config::MapReduceConfig::default()
            .to_toml()
            .unwrap(),
    );
    seeds.push(with_mr.into_bytes());
    seeds
}

fn job_records() -> Vec<Vec<u8>> {
    let record = JobRecord {
        id: 7,
        spec: job_spec(),
        submitted_unix_ms: 1_700_000_000_000,
        runs: 1,
        state: RecordState::Running,
        history: Default::default(),
    };
    vec![mapreduce::job_store::encode(&record).unwrap()]
}
