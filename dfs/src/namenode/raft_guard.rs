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

use raft::eraftpb::{EntryType, Message, MessageType, Snapshot};

/// The largest term accepted from a peer.
pub const MAX_TERM: u64 = 1 << 48;

/// Why a message was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Addressed to another node.
    NotForMe(u64),
    /// From an id outside the configuration (or from this node's own id).
    NotAMember(u64),
    /// A type peers here never send.
    Type(MessageType),
    /// Term 0 (raft-rs would take it for a local message), or one above [`MAX_TERM`].
    NoTerm(MessageType),
    /// A snapshot that cannot be installed.
    BadSnapshot(String),
    /// Entries a correct leader never sends (see [`check_log`]); raft-rs would abort on them.
    BadEntries(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotForMe(to) => write!(f, "addressed to namenode {to}"),
            Refusal::NotAMember(from) => write!(f, "sender {from} is not a peer"),
            Refusal::Type(t) => write!(f, "{t:?} is never sent between namenodes"),
            Refusal::NoTerm(t) => write!(f, "{t:?} without a term or with an absurd one"),
            Refusal::BadSnapshot(why) => write!(f, "snapshot refused: {why}"),
            Refusal::BadEntries(why) => write!(f, "entries refused: {why}"),
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
    // raft-rs adds 1 to terms (an overflow); no cluster reaches this one (a term a millisecond
    // for 8,900 years).
    if m.term > MAX_TERM {
        return Err(Refusal::NoTerm(t));
    }
    if t == MessageType::MsgSnapshot {
        check_snapshot(m.get_snapshot(), me, is_member, snapshot_ok)?;
    }
    Ok(())
}

/// A snapshot names this cluster's fixed configuration (the namenodes never change it, so
/// learners or a joint configuration can only be forged: raft-rs aborts when it cannot
/// restore one) and carries a namespace that decodes.
fn check_snapshot(
    snap: &Snapshot,
    me: u64,
    is_member: impl Fn(u64) -> bool,
    snapshot_ok: impl FnOnce(&[u8]) -> Result<(), String>,
) -> Result<(), Refusal> {
    let meta = snap.get_metadata();
    // raft-rs reads term 0 for an index it lacks, so a snapshot of term 0 "matches" its log and
    // it commits up to the snapshot's index, past its log: an abort (found by the raft_message
    // fuzz target). A real snapshot has an index and a term.
    if meta.index == 0 || meta.term == 0 {
        return Err(Refusal::BadSnapshot(format!(
            "index {} and term {} (both must be set)",
            meta.index, meta.term
        )));
    }
    let conf = meta.get_conf_state();
    let voters = &conf.voters;
    let mut unique = voters.clone();
    unique.sort_unstable();
    unique.dedup();
    // raft-rs compares the restored configuration with the snapshot's and aborts if they
    // differ, which a repeated voter makes them do.
    if unique.len() != voters.len() {
        return Err(Refusal::BadSnapshot(format!(
            "its configuration {voters:?} repeats a voter"
        )));
    }
    if voters.is_empty() || voters.iter().any(|v| !is_member(*v) && *v != me) {
        return Err(Refusal::BadSnapshot(format!(
            "its configuration {voters:?} is not this cluster's"
        )));
    }
    let joint = !conf.learners.is_empty()
        || !conf.voters_outgoing.is_empty()
        || !conf.learners_next.is_empty()
        || conf.auto_leave;
    if joint {
        return Err(Refusal::BadSnapshot(
            "learners or a joint configuration, which this cluster never has".into(),
        ));
    }
    if !snap.data.is_empty() {
        snapshot_ok(&snap.data).map_err(Refusal::BadSnapshot)?;
    }
    Ok(())
}

/// Everything a message from the network must pass before node `raft` steps it: [`check`]
/// (members of its configuration, to its id) and then [`check_log`] against its log.
/// `snapshot_ok` checks a snapshot's data.
pub fn admit<T: raft::Storage>(
    m: &Message,
    raft: &raft::Raft<T>,
    snapshot_ok: impl FnOnce(&[u8]) -> Result<(), String>,
) -> Result<(), Refusal> {
    check(m, raft.id, |id| raft.prs().get(id).is_some(), snapshot_ok)?;
    let log = &raft.raft_log;
    // raft-rs answers term 0 for an index it does not hold.
    let term_at = |index| log.term(index).ok().filter(|&t| t != 0);
    let view = LogView {
        committed: log.committed,
        last_index: log.last_index(),
        term_at: &term_at,
    };
    check_log(m, &view)
}

/// What [`check_log`] needs to know of this node's Raft log.
pub struct LogView<'a> {
    /// The highest committed index.
    pub committed: u64,
    /// The index of the last entry.
    pub last_index: u64,
    /// The term of the entry at an index, where this node knows it.
    pub term_at: &'a dyn Fn(u64) -> Option<u64>,
}

/// Checks a message that passed [`check`] against this node's log. raft-rs aborts the process
/// on messages a correct leader never sends, where it trusts the leader: entries that replace a
/// committed one ("conflict with committed entry"), entries whose indices do not follow the
/// previous index (an index underflow inside raft-rs), and an append whose previous entry is
/// unknown here but claimed with term 0 (raft-rs reads term 0 for any index it lacks, so the
/// append is taken and its commit index runs past the log). Configuration changes are refused
/// too: the namenodes never make one.
pub fn check_log(m: &Message, log: &LogView<'_>) -> Result<(), Refusal> {
    match m.get_msg_type() {
        MessageType::MsgAppend => check_append(m, log).map_err(Refusal::BadEntries),
        // A follower acknowledges only entries the leader sent it.
        MessageType::MsgAppendResponse if !m.reject && m.index > log.last_index => Err(
            Refusal::BadEntries(format!("acknowledges index {} past the log", m.index)),
        ),
        _ => Ok(()),
    }
}

/// Lowers an admitted heartbeat's commit index to this node's last log index, which raft-rs
/// requires ("to_commit out of range" aborts the process). A leader's heartbeat carries
/// min(its commit, what it believes this node has); after this node's disk was wiped that
/// belief is stale. Knowing less is committed is always safe; the answer then shows the leader
/// the real log, and it sends a snapshot.
pub fn clamp_heartbeat_commit(m: &mut Message, last_index: u64) {
    if m.get_msg_type() == MessageType::MsgHeartbeat {
        m.commit = m.commit.min(last_index);
    }
}

fn check_append(m: &Message, log: &LogView<'_>) -> Result<(), String> {
    if m.log_term == 0 && m.index != 0 {
        return Err(format!("previous entry {} claimed with term 0", m.index));
    }
    let (mut expected, mut term) = (m.index, m.log_term);
    for e in &m.entries {
        // A leader's log rises in term, up to its own; raft-rs takes an entry of term 0 for one
        // it holds.
        if e.term == 0 || e.term < term || e.term > m.term {
            return Err(format!(
                "entry {} has term {} after term {term}",
                e.index, e.term
            ));
        }
        term = e.term;
        expected = expected
            .checked_add(1)
            .ok_or_else(|| "indices overflow".to_string())?;
        if e.index != expected {
            return Err(format!("index {} where {expected} follows", e.index));
        }
        if e.get_entry_type() != EntryType::EntryNormal {
            return Err(format!("a configuration change at index {}", e.index));
        }
        if e.index <= log.committed && (log.term_at)(e.index).is_some_and(|t| t != e.term) {
            return Err(format!(
                "entry {} of term {} replaces a committed one",
                e.index, e.term
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (s.mut_metadata().index, s.mut_metadata().term) = (10, 3);
            s.mut_metadata().mut_conf_state().voters = voters;
            s.data = data.to_vec();
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

    fn log_of(committed: u64, last_index: u64) -> impl Fn(&Message) -> Result<(), Refusal> {
        move |m| {
            // Entries 1..=last_index, all of term 2.
            let term_at = |i| (1..=last_index).contains(&i).then_some(2);
            let view = LogView {
                committed,
                last_index,
                term_at: &term_at,
            };
            check_log(m, &view)
        }
    }

    fn append(index: u64, log_term: u64, entries: &[(u64, u64)]) -> Message {
        let mut m = msg(MessageType::MsgAppend, 2, 1, 3);
        (m.index, m.log_term) = (index, log_term);
        m.entries = entries
            .iter()
            .map(|&(index, term)| raft::eraftpb::Entry {
                index,
                term,
                ..Default::default()
            })
            .collect();
        m
    }

    #[test]
    fn appends_a_leader_sends_pass() {
        let check = log_of(4, 6);
        assert_eq!(check(&append(0, 0, &[(1, 2), (2, 2)])), Ok(()));
        // Replacing uncommitted entries 5 and 6 with the new leader's is Raft's business.
        assert_eq!(check(&append(4, 2, &[(5, 3), (6, 3), (7, 3)])), Ok(()));
        assert_eq!(check(&append(9, 3, &[])), Ok(()));
        let mut beat = msg(MessageType::MsgHeartbeat, 2, 1, 3);
        beat.commit = 9;
        assert_eq!(check(&beat), Ok(()));
        clamp_heartbeat_commit(&mut beat, 6);
        assert_eq!(beat.commit, 6);
    }

    // Appends no correct leader sends. raft-rs aborts the process on some (read in its
    // `maybe_append`, `find_conflict` and `commit_to`): a committed entry replaced, indices that
    // do not follow, an unknown previous entry claimed with term 0, entries of term 0.
    #[test]
    fn appends_raft_rs_would_abort_on_are_refused() {
        let check = log_of(4, 6);
        let refused = |m: &Message| matches!(check(m), Err(Refusal::BadEntries(_)));
        assert!(refused(&append(2, 2, &[(3, 3)])), "replaces committed 3");
        assert!(refused(&append(4, 2, &[(6, 3)])), "skips 5");
        assert!(refused(&append(4, 2, &[(5, 3), (5, 3)])), "repeats 5");
        assert!(refused(&append(u64::MAX, 2, &[(0, 3)])), "overflows");
        assert!(refused(&append(100, 0, &[])), "term 0 for an unknown entry");
        assert!(refused(&append(6, 2, &[(7, 0)])), "entry of term 0");
        assert!(refused(&append(6, 2, &[(7, 3), (8, 2)])), "terms fall");
        assert!(refused(&append(6, 2, &[(7, 9)])), "term above the leader's");
        let mut conf = append(6, 2, &[(7, 3)]);
        conf.entries[0].set_entry_type(EntryType::EntryConfChange);
        assert!(refused(&conf), "configuration change");
    }

    // Found by the raft_message fuzz target: a snapshot of term 0 and an index past the log
    // made raft-rs commit past its log ("to_commit 10 is out of range [last_index 3]").
    #[test]
    fn snapshot_of_term_0_or_repeated_voters_is_refused() {
        let with = |index: u64, term: u64, voters: Vec<u64>| {
            let mut m = msg(MessageType::MsgSnapshot, 2, 1, 4);
            let mut s = Snapshot::default();
            s.mut_metadata().index = index;
            s.mut_metadata().term = term;
            s.mut_metadata().mut_conf_state().voters = voters;
            m.set_snapshot(s);
            m
        };
        assert_eq!(run(&with(10, 3, vec![1, 2, 3])), Ok(()));
        for m in [
            with(10, 0, vec![1, 2, 3]),
            with(0, 3, vec![1, 2, 3]),
            with(10, 3, vec![1, 1, 2]),
        ] {
            assert!(matches!(run(&m), Err(Refusal::BadSnapshot(_))), "{m:?}");
        }
        assert_eq!(
            run(&msg(MessageType::MsgRequestVote, 2, 1, MAX_TERM + 1)),
            Err(Refusal::NoTerm(MessageType::MsgRequestVote))
        );
    }

    #[test]
    fn acknowledgements_past_the_log_are_refused() {
        let check = log_of(4, 6);
        let mut ack = msg(MessageType::MsgAppendResponse, 2, 1, 3);
        ack.index = 6;
        assert_eq!(check(&ack), Ok(()));
        ack.index = 7;
        assert!(matches!(check(&ack), Err(Refusal::BadEntries(_))));
        ack.reject = true;
        assert_eq!(check(&ack), Ok(()));
    }

    #[test]
    fn snapshots_with_learners_or_joint_configurations_are_refused() {
        let mut m = msg(MessageType::MsgSnapshot, 2, 1, 4);
        let mut s = Snapshot::default();
        (s.mut_metadata().index, s.mut_metadata().term) = (10, 3);
        s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        s.mut_metadata().mut_conf_state().learners = vec![2];
        m.set_snapshot(s);
        assert!(matches!(run(&m), Err(Refusal::BadSnapshot(_))));
    }
}
