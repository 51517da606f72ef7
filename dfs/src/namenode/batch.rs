//! Batching of what the Raft driver collects while it drains its request queue.
//!
//! [`ProposalBatch`]: raft-rs answers every `propose` call with a broadcast, one `MsgAppend` per
//! follower, and each of those comes back as its own append response. With many clients that is
//! a message pair per follower per write, each encoded, framed, sent, decoded and stepped. The
//! driver therefore collects the proposals it finds in one drain of its queue and steps them as
//! ONE `MsgPropose` with many entries: raft-rs appends them together and replicates them in one
//! `MsgAppend` per follower. Each proposal stays its own log entry with its own context, so the
//! log format, the retry cache and the way results reach their callers do not change. A batch is
//! bounded in entries and bytes so that one message never grows beyond what a follower accepts.
//!
//! [`ReadBatch`]: every raft-rs `read_index` call costs a heartbeat round to the followers. All
//! reads collected in one drain arrived before the driver issues the ReadIndex, so one read
//! index serves them all: the commit index it returns, confirmed by a quorum after the reads
//! arrived, covers every write acknowledged before any of them was sent (linearizable reads).
//!
//! Both are plain data structures (no I/O, no clock) so their rules are tested directly.

use raft::eraftpb::{Entry, Message, MessageType};

/// Most proposals stepped in one `MsgPropose`.
pub const MAX_PROPOSALS_PER_BATCH: usize = 256;
/// Most entry bytes (data + context) stepped in one `MsgPropose`; below the driver's
/// `max_size_per_msg`, so one batch normally travels to a follower in one `MsgAppend`.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Proposals waiting to be stepped into raft-rs together, with whatever the caller keeps per
/// proposal (`T`: the driver keeps its sequence number and reply channel).
#[derive(Debug)]
pub struct ProposalBatch<T> {
    entries: Vec<Entry>,
    waiting: Vec<T>,
    bytes: usize,
}

impl<T> Default for ProposalBatch<T> {
    fn default() -> Self {
        ProposalBatch {
            entries: Vec::new(),
            waiting: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T> ProposalBatch<T> {
    /// Adds one proposal (its encoded entry and context). Returns true when the batch is full
    /// and must be taken before the next push.
    pub fn push(&mut self, data: Vec<u8>, context: Vec<u8>, waiting: T) -> bool {
        self.bytes += data.len() + context.len();
        self.entries.push(Entry {
            data,
            context,
            ..Default::default()
        });
        self.waiting.push(waiting);
        self.is_full()
    }

    /// Whether another push would exceed a limit.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_PROPOSALS_PER_BATCH || self.bytes >= MAX_BATCH_BYTES
    }

    /// Number of proposals held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no proposal is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empties the batch: the `MsgPropose` from node `from` carrying every entry in push order,
    /// and the per-proposal values in the same order. `None` when the batch is empty (raft-rs
    /// treats an empty proposal as a fatal error).
    pub fn take(&mut self, from: u64) -> Option<(Message, Vec<T>)> {
        if self.entries.is_empty() {
            return None;
        }
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = from;
        m.set_entries(std::mem::take(&mut self.entries));
        self.bytes = 0;
        Some((m, std::mem::take(&mut self.waiting)))
    }
}

/// Reads waiting for one shared ReadIndex.
#[derive(Debug)]
pub struct ReadBatch<T> {
    waiting: Vec<T>,
}

impl<T> Default for ReadBatch<T> {
    fn default() -> Self {
        ReadBatch {
            waiting: Vec::new(),
        }
    }
}

impl<T> ReadBatch<T> {
    /// Adds a read that arrived in the current drain.
    pub fn push(&mut self, waiting: T) {
        self.waiting.push(waiting);
    }

    /// Whether no read is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Every read collected so far, to be answered by one ReadIndex issued now.
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_batch_gives_no_message() {
        let mut b = ProposalBatch::<u64>::default();
        assert!(b.is_empty());
        assert!(b.take(1).is_none());
    }

    #[test]
    fn one_message_keeps_push_order_and_contexts() {
        let mut b = ProposalBatch::default();
        for i in 0..5u8 {
            assert!(!b.push(vec![i; 3], vec![100 + i], u64::from(i)));
        }
        assert_eq!(b.len(), 5);
        let (m, waiting) = b.take(7).expect("a message");
        assert_eq!(m.get_msg_type(), MessageType::MsgPropose);
        assert_eq!(m.from, 7);
        assert_eq!(waiting, vec![0, 1, 2, 3, 4]);
        assert_eq!(m.entries.len(), 5);
        for (i, e) in m.entries.iter().enumerate() {
            assert_eq!(&e.data[..], &[i as u8; 3][..]);
            assert_eq!(&e.context[..], &[100 + i as u8][..]);
            assert_eq!(e.index, 0, "raft-rs assigns indexes");
        }
        assert!(b.is_empty());
        assert!(
            b.take(7).is_none(),
            "taking twice must not repeat proposals"
        );
    }

    #[test]
    fn full_by_count() {
        let mut b = ProposalBatch::default();
        for i in 0..MAX_PROPOSALS_PER_BATCH - 1 {
            assert!(!b.push(vec![1], vec![2], i), "full too early at {i}");
        }
        assert!(b.push(vec![1], vec![2], MAX_PROPOSALS_PER_BATCH));
        assert!(b.is_full());
        let (m, waiting) = b.take(1).unwrap();
        assert_eq!(m.entries.len(), MAX_PROPOSALS_PER_BATCH);
        assert_eq!(waiting.len(), MAX_PROPOSALS_PER_BATCH);
        assert!(!b.is_full(), "taking resets the limits");
    }

    #[test]
    fn full_by_bytes_and_reset_after_take() {
        let mut b = ProposalBatch::default();
        let half = MAX_BATCH_BYTES / 2;
        assert!(!b.push(vec![0; half], Vec::new(), ()));
        // Data and context both count: one byte short of the limit is not full yet.
        assert!(!b.push(vec![0; half - 2], vec![0; 1], ()));
        assert!(b.push(vec![0; 1], Vec::new(), ()));
        b.take(1).unwrap();
        assert!(!b.push(vec![0; 10], Vec::new(), ()), "bytes were not reset");
    }

    #[test]
    fn reads_are_taken_together_once() {
        let mut r = ReadBatch::default();
        assert!(r.is_empty());
        r.push(1);
        r.push(2);
        assert!(!r.is_empty());
        assert_eq!(r.take(), vec![1, 2]);
        assert!(r.is_empty());
        assert!(r.take().is_empty());
    }
}
