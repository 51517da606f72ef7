//! Which Raft messages from the network reach raft-rs.
//!
//! raft-rs trusts its caller: a network message of a type only the node itself makes
//! (`MsgHup`, `MsgBeat`, ...), a forwarded type with its term set (`MsgPropose`,
//! `MsgTransferLeader`: "term should not be set", a process abort), an append with term 0
//! (taken as a local message, so accepted from anyone as if from the leader), or a snapshot
//! whose namespace does not decode (an error in the ready loop, which ends the namenode) is
//! not its problem but ours. This module decides, purely, before anything is stepped.
//!
//! The namenodes here never forward proposals or reads (a follower answers `NotLeader`) and
//! never transfer leadership, so only the replication and election messages peers exchange
//! are accepted, each with a term, from a member of the configuration to this node. Which
//! member really sent it is the transport's handshake's business (authentication).

use raft::eraftpb::{Message, MessageType};

/// Why a message was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Addressed to another node.
    NotForMe(u64),
    /// From an id outside the configuration (or from this node's own id).
    NotAMember(u64),
    /// A type peers here never send.
    Type(MessageType),
    /// Term 0: raft-rs would take it for a local message.
    NoTerm(MessageType),
    /// A snapshot that cannot be installed.
    BadSnapshot(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotForMe(to) => write!(f, "addressed to namenode {to}"),
            Refusal::NotAMember(from) => write!(f, "sender {from} is not a peer"),
            Refusal::Type(t) => write!(f, "{t:?} is never sent between namenodes"),
            Refusal::NoTerm(t) => write!(f, "{t:?} without a term"),
            Refusal::BadSnapshot(why) => write!(f, "snapshot refused: {why}"),
        }
    }
}

/// Whether peers may send a message of this type.
fn peer_type(t: MessageType) -> bool {
    use MessageType::*;
    matches!(
        t,
        MsgAppend
            | MsgAppendResponse
            | MsgRequestVote
            | MsgRequestVoteResponse
            | MsgRequestPreVote
            | MsgRequestPreVoteResponse
            | MsgSnapshot
            | MsgHeartbeat
            | MsgHeartbeatResponse
    )
}

/// Checks a message from the network for node `me`. `is_member` says whether an id is in
/// the current configuration; `snapshot_ok` checks a snapshot's data (the namespace decodes).
pub fn check(
    m: &Message,
    me: u64,
    is_member: impl Fn(u64) -> bool,
    snapshot_ok: impl FnOnce(&[u8]) -> Result<(), String>,
) -> Result<(), Refusal> {
    let t = m.get_msg_type();
    if m.to != me {
        return Err(Refusal::NotForMe(m.to));
    }
    if m.from == me || !is_member(m.from) {
        return Err(Refusal::NotAMember(m.from));
    }
    if !peer_type(t) {
        return Err(Refusal::Type(t));
    }
    if m.term == 0 {
        return Err(Refusal::NoTerm(t));
    }
    if t == MessageType::MsgSnapshot {
        let snap = m.get_snapshot();
        let voters = &snap.get_metadata().get_conf_state().voters;
        if voters.is_empty() || voters.iter().any(|v| !is_member(*v) && *v != me) {
            return Err(Refusal::BadSnapshot(format!(
                "its configuration {voters:?} is not this cluster's"
            )));
        }
        if !snap.data.is_empty() {
            snapshot_ok(&snap.data).map_err(Refusal::BadSnapshot)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::Snapshot;

    fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(t);
        m.from = from;
        m.to = to;
        m.term = term;
        m
    }

    fn members(id: u64) -> bool {
        (1..=3).contains(&id)
    }

    fn run(m: &Message) -> Result<(), Refusal> {
        check(m, 1, members, |d| {
            if d == b"good" {
                Ok(())
            } else {
                Err("does not decode".into())
            }
        })
    }

    #[test]
    fn replication_and_election_messages_pass() {
        use MessageType::*;
        for t in [
            MsgAppend,
            MsgAppendResponse,
            MsgRequestVote,
            MsgRequestPreVoteResponse,
            MsgHeartbeat,
            MsgHeartbeatResponse,
        ] {
            assert_eq!(run(&msg(t, 2, 1, 5)), Ok(()), "{t:?}");
        }
    }

    // The forged messages that aborted or confused a namenode (issue 14).
    #[test]
    fn forged_and_local_messages_are_refused() {
        use MessageType::*;
        for t in [
            MsgTransferLeader,
            MsgPropose,
            MsgReadIndex,
            MsgHup,
            MsgBeat,
            MsgTimeoutNow,
        ] {
            assert_eq!(run(&msg(t, 2, 1, 7)), Err(Refusal::Type(t)), "{t:?}");
        }
        assert_eq!(
            run(&msg(MsgAppend, 2, 1, 0)),
            Err(Refusal::NoTerm(MsgAppend))
        );
        assert_eq!(
            run(&msg(MsgRequestVote, 99, 1, u64::MAX)),
            Err(Refusal::NotAMember(99))
        );
        assert_eq!(run(&msg(MsgAppend, 1, 1, 3)), Err(Refusal::NotAMember(1)));
        assert_eq!(run(&msg(MsgAppend, 2, 3, 3)), Err(Refusal::NotForMe(3)));
    }

    #[test]
    fn snapshots_must_decode_and_name_this_cluster() {
        let with = |voters: Vec<u64>, data: &[u8]| {
            let mut m = msg(MessageType::MsgSnapshot, 2, 1, 4);
            let mut s = Snapshot::default();
            s.mut_metadata().mut_conf_state().voters = voters;
            s.data = data.to_vec().into();
            m.set_snapshot(s);
            m
        };
        assert_eq!(run(&with(vec![1, 2, 3], b"good")), Ok(()));
        assert!(matches!(
            run(&with(vec![1, 2, 3], b"trunc")),
            Err(Refusal::BadSnapshot(_))
        ));
        assert!(matches!(
            run(&with(vec![1, 7], b"good")),
            Err(Refusal::BadSnapshot(_))
        ));
        assert!(matches!(
            run(&with(vec![], b"good")),
            Err(Refusal::BadSnapshot(_))
        ));
    }
}
