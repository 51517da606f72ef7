//! Standard output of the command-line tools (`dfs`, `mrjob`): a reader that goes away early
//! (`dfs cat FILE | head`) is a normal end for a shell tool, not an error to report.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `EPIPE` instead of killing the
//! process. Being killed would not do either: under `set -o pipefail` a pipeline whose writer
//! died of SIGPIPE fails (status 141). So the tools end quietly with status 0: errors from
//! explicit writes are made with [`error`] and recognised by [`is_closed`]; the print macros'
//! panic is caught by [`exit_quietly_when_closed`].

use crate::error::Error;

/// The context of every error writing to stdout, which is how [`is_closed`] knows one.
const CONTEXT: &str = "writing to stdout";

/// Wraps an error writing to stdout.
pub fn error(e: std::io::Error) -> Error {
    Error::io(CONTEXT, e)
}

/// Whether `err` says stdout's reader has gone: the command should end quietly with status 0.
/// A broken pipe to anything else (a socket to a datanode) is a real error.
pub fn is_closed(err: &Error) -> bool {
    matches!(err, Error::Io { context, source }
        if context == CONTEXT && source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Makes `print!` and `println!` to a closed stdout end the process quietly with status 0,
/// instead of panicking with "failed printing to stdout: Broken pipe". Other panics go to the
/// hook that was there before.
pub fn exit_quietly_when_closed() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_closed_stdout_panic(message) {
            std::process::exit(0);
        }
        previous(info);
    }));
}

/// Whether a panic message is std's for a print macro whose stdout reader has gone.
fn is_closed_stdout_panic(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn only_a_broken_stdout_is_a_quiet_end() {
        assert!(is_closed(&error(ErrorKind::BrokenPipe.into())));
        assert!(!is_closed(&error(ErrorKind::PermissionDenied.into())));
        assert!(!is_closed(&Error::io(
            "sending to 127.0.1.1:9866",
            ErrorKind::BrokenPipe.into()
        )));
        let from_println = format!(
            "failed printing to stdout: {}",
            std::io::Error::from_raw_os_error(nix::libc::EPIPE)
        );
        assert!(is_closed_stdout_panic(&from_println), "{from_println}");
        assert!(!is_closed_stdout_panic(
            "failed printing to stderr: Broken pipe"
        ));
    }
}
