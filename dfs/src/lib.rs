//! dfs: a replicated block filesystem.
//!
//! # Layout
//!
//! - [`error`]: the crate's one error type and its wire kinds.
//! - [`frame`]: length-prefixed framing with limits, and the binary message format.
#![deny(missing_docs)]

pub mod error;
pub mod frame;

pub use error::{Error, ErrorKind, Result};
