//! Logging setup shared by every process a job binary becomes: the command line, the
//! daemons, and task processes. It sits below them all so that none depends on another
//! just to log.

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    init_logging_at("warn");
}

/// Logs to stderr, filtered by `RUST_LOG` (default: `level`).
pub fn init_logging_at(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal: a daemon's stderr is its log file, where escape codes are
    // noise (`cat -v logs/nn1.log`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
