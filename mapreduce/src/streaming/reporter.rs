//! A Streaming child's stderr: the `reporter:` protocol and the tail kept for errors.
//!
//! As in Hadoop Streaming, a line `reporter:counter:GROUP,NAME,AMOUNT` adds to a user
//! counter and `reporter:status:MESSAGE` sets the task's status; every other line is the
//! child's own diagnostics, passed through to the task's stderr. The last lines are kept so
//! that a failed task's error shows them (a Python traceback ends there).

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};

/// Lines of stderr kept for the error message.
pub const TAIL_LINES: usize = 20;
/// Bytes of stderr kept for the error message.
pub const TAIL_BYTES: usize = 4096;
/// Longest stderr line looked at; the rest of a longer line is passed through unparsed.
const LINE_LIMIT_BYTES: usize = 4096;

/// What a child said on stderr, gathered by the time it exits.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StderrSummary {
    /// `reporter:counter:` increments, summed by (group, name).
    pub counters: BTreeMap<(String, String), u64>,
    /// The last `reporter:status:` message.
    pub status: Option<String>,
    /// The last plain lines (at most [`TAIL_LINES`] and about [`TAIL_BYTES`]).
    pub tail: VecDeque<String>,
    tail_bytes: usize,
}

/// One stderr line, understood.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `reporter:counter:GROUP,NAME,AMOUNT`.
    Counter(&'a str, &'a str, u64),
    /// `reporter:status:MESSAGE`.
    Status(&'a str),
    /// Anything else, including malformed `reporter:` lines (shown, so the user sees them).
    Plain,
}

/// Parses one stderr line (without its newline).
pub fn parse(line: &str) -> Line<'_> {
    if let Some(rest) = line.strip_prefix("reporter:counter:") {
        let mut parts = rest.splitn(3, ',');
        if let (Some(g), Some(n), Some(a)) = (parts.next(), parts.next(), parts.next()) {
            if let Ok(amount) = a.trim().parse::<u64>() {
                return Line::Counter(g, n, amount);
            }
        }
        return Line::Plain;
    }
    match line.strip_prefix("reporter:status:") {
        Some(msg) => Line::Status(msg),
        None => Line::Plain,
    }
}

impl StderrSummary {
    /// Takes one line into account.
    pub fn note(&mut self, line: &str) {
        match parse(line) {
            Line::Counter(g, n, amount) => {
                let v = self
                    .counters
                    .entry((g.to_owned(), n.to_owned()))
                    .or_default();
                *v = v.saturating_add(amount);
            }
            Line::Status(msg) => {
                tracing::info!("task status: {msg}");
                crate::task_process::set_status(msg);
                self.status = Some(msg.to_owned());
            }
            Line::Plain => self.keep(line),
        }
    }

    fn keep(&mut self, line: &str) {
        self.tail.push_back(line.to_owned());
        self.tail_bytes += line.len();
        while self.tail.len() > TAIL_LINES || (self.tail_bytes > TAIL_BYTES && self.tail.len() > 1)
        {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len();
            }
        }
    }
}

/// Reads a child's stderr to end of file: reporter lines are taken, other lines written to
/// `own` (this process's stderr: the task's log) and kept in the tail.
pub fn read_stderr(mut stderr: impl Read, own: &mut dyn Write) -> StderrSummary {
    let mut summary = StderrSummary::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                take_line(&mut summary, own, &line);
                line.clear();
            } else if line.len() < LINE_LIMIT_BYTES {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        take_line(&mut summary, own, &line);
    }
    summary
}

fn take_line(summary: &mut StderrSummary, own: &mut dyn Write, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    if parse(text) == Line::Plain {
        let _ = writeln!(own, "{text}");
    }
    summary.note(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporter_lines_are_parsed_and_others_are_plain() {
        assert_eq!(
            parse("reporter:counter:Words,total,12"),
            Line::Counter("Words", "total", 12)
        );
        assert_eq!(
            parse("reporter:counter:g,name with, comma,3"),
            Line::Plain,
            "the amount must be a number"
        );
        assert_eq!(parse("reporter:counter:g,n"), Line::Plain);
        assert_eq!(parse("reporter:counter:g,n,-1"), Line::Plain);
        assert_eq!(parse("reporter:status:half way"), Line::Status("half way"));
        assert_eq!(parse("Traceback (most recent call last):"), Line::Plain);
    }

    #[test]
    fn stderr_is_summed_and_its_tail_bounded() {
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!("line {i}\nreporter:counter:G,n,2\n"));
        }
        text.push_str("reporter:status:done\nlast line without newline");
        let mut shown = Vec::new();
        let s = read_stderr(text.as_bytes(), &mut shown);
        let shown = String::from_utf8(shown).unwrap();
        assert!(shown.starts_with("line 0\nline 1\n") && !shown.contains("reporter:"));
        assert_eq!(s.counters[&("G".to_owned(), "n".to_owned())], 200);
        assert_eq!(s.status.as_deref(), Some("done"));
        assert_eq!(s.tail.len(), TAIL_LINES);
        assert_eq!(s.tail.back().unwrap(), "last line without newline");
        assert_eq!(s.tail.front().unwrap(), "line 81");
        let long = "x".repeat(3000);
        let s = read_stderr(
            format!("{long}\n{long}\n{long}\n").as_bytes(),
            &mut std::io::sink(),
        );
        assert!(
            s.tail.len() == 1 && s.tail_bytes <= TAIL_BYTES,
            "{}",
            s.tail.len()
        );
    }
}
