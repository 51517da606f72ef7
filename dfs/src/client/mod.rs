//! The filesystem client library: [`DfsClient`] with metadata calls, [`FileWriter`] (pipeline
//! writes with recovery) and [`FileReader`] (verified streaming and positional reads with
//! replica failover and short-circuit local reads).
//!
//! # Layout
//!
//! - this file: [`DfsClient`], its namenode calls, and where files are opened for writing and
//!   reading.
//! - `writer`: [`FileWriter`]: blocks streamed through datanode pipelines, pipeline recovery,
//!   `hflush` and `close`.
//! - `reader`: [`FileReader`]: verified reads with replica failover and short-circuit local
//!   reads.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Credentials;
use crate::config::ClusterConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{
    Block, ContentSummary, DatanodeStatus, FileBlocks, FileStatus, FsckFile, NamenodeStatus,
    Request, Response,
};
use crate::rpc::NamenodeClient;

macro_rules! expect_response {
    ($resp:expr, $pat:pat => $out:expr) => {
        match $resp {
            $pat => Ok($out),
            other => Err(Error::Malformed(format!(
                "unexpected namenode reply {other:?}"
            ))),
        }
    };
}

mod reader;
mod writer;

pub use reader::{FileReader, READ_WINDOW_BYTES};
pub use writer::FileWriter;

/// Entries asked per `List` page.
const LIST_PAGE: u32 = 1000;

/// Options for [`DfsClient::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Replace an existing file.
    pub overwrite: bool,
    /// Fail with `NotFound` when the parent directory does not exist (instead of creating it).
    pub require_parent: bool,
    /// Replication factor (`None` = cluster default).
    pub replication: Option<u32>,
    /// Block size (`None` = cluster default).
    pub block_size_bytes: Option<u64>,
}

struct Inner {
    namenodes: NamenodeClient,
    config: ClusterConfig,
    client_name: String,
    local_host: Option<String>,
    timeout: Duration,
}

/// A connection to one cluster; cheap to clone and safe to share between tasks.
#[derive(Clone)]
pub struct DfsClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DfsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DfsClient")
            .field("client_name", &self.inner.client_name)
            .field("local_host", &self.inner.local_host)
            .finish()
    }
}

impl DfsClient {
    /// A client for the cluster in `config`. The local host (for short-circuit reads and
    /// first-replica placement) comes from `DFS_LOCAL_HOST` when set; see [`Self::with_local_host`].
    pub fn new(config: ClusterConfig) -> Self {
        let local = std::env::var("DFS_LOCAL_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        Self::build(config, local)
    }

    /// The same client, told that it runs on `host` (a host name from the config), so it reads
    /// local replicas directly from disk and asks for the first replica of new blocks locally.
    pub fn with_local_host(self, host: Option<String>) -> Self {
        Self::build(self.inner.config.clone(), host)
    }

    fn build(config: ClusterConfig, local_host: Option<String>) -> Self {
        let namenodes = NamenodeClient::new(&config);
        let client_name = format!("dfs-client-{:016x}", namenodes.client_id());
        let local_host = local_host.filter(|h| config.host(h).is_ok());
        DfsClient {
            inner: Arc::new(Inner {
                timeout: Duration::from_millis(config.rpc_timeout_ms),
                namenodes,
                config,
                client_name,
                local_host,
            }),
        }
    }

    /// The cluster config this client uses.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The credentials this client authenticates with to datanodes (the namenode client
    /// holds its own copy).
    pub(crate) fn credentials(&self) -> Result<&Credentials> {
        self.inner.config.secrets.credentials()
    }

    async fn call(&self, req: Request) -> Result<Response> {
        self.inner.namenodes.call(req).await
    }

    /// Creates a directory and its missing parents.
    pub async fn mkdirs(&self, path: &str) -> Result<()> {
        let resp = self.call(Request::Mkdirs { path: path.into() }).await?;
        expect_response!(resp, Response::Done => ())
    }

    /// The status of a path.
    pub async fn stat(&self, path: &str) -> Result<FileStatus> {
        let resp = self.call(Request::Stat { path: path.into() }).await?;
        expect_response!(resp, Response::Status(s) => s)
    }

    /// Whether a path exists.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every entry of a directory (a file lists itself), in name order.
    pub async fn list(&self, path: &str) -> Result<Vec<FileStatus>> {
        let mut out: Vec<FileStatus> = Vec::new();
        loop {
            let start_after = out
                .last()
                .map(|s| s.path.rsplit('/').next().unwrap_or("").to_string());
            let resp = self
                .call(Request::List {
                    path: path.into(),
                    start_after,
                    limit: LIST_PAGE,
                })
                .await?;
            let page = expect_response!(resp, Response::Listing(l) => l)?;
            let done = (page.len() as u32) < LIST_PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Totals under a path.
    pub async fn du(&self, path: &str) -> Result<ContentSummary> {
        let resp = self.call(Request::Du { path: path.into() }).await?;
        expect_response!(resp, Response::Summary(s) => s)
    }

    /// Renames `src` to `dst`.
    pub async fn rename(&self, src: &str, dst: &str) -> Result<()> {
        let resp = self
            .call(Request::Rename {
                src: src.into(),
                dst: dst.into(),
            })
            .await?;
        expect_response!(resp, Response::Done => ())
    }

    /// Deletes a path; returns whether something was deleted.
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        let resp = self
            .call(Request::Delete {
                path: path.into(),
                recursive,
            })
            .await?;
        expect_response!(resp, Response::Deleted(d) => d)
    }

    /// Changes a file's replication factor.
    pub async fn set_replication(&self, path: &str, replication: u32) -> Result<()> {
        let resp = self
            .call(Request::SetReplication {
                path: path.into(),
                replication,
            })
            .await?;
        expect_response!(resp, Response::Done => ())
    }

    /// Sets a path's permission bits (`chmod`; at most 0o1777).
    pub async fn set_permission(&self, path: &str, mode: u16) -> Result<()> {
        let resp = self
            .call(Request::SetPermission {
                path: path.into(),
                mode,
            })
            .await?;
        expect_response!(resp, Response::Done => ())
    }

    /// Sets a path's owner and/or group (`chown`).
    pub async fn set_owner(
        &self,
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<()> {
        let resp = self
            .call(Request::SetOwner {
                path: path.into(),
                owner: owner.map(str::to_string),
                group: group.map(str::to_string),
            })
            .await?;
        expect_response!(resp, Response::Done => ())
    }

    /// Per-file block health under a path.
    pub async fn fsck(&self, path: &str) -> Result<Vec<FsckFile>> {
        let resp = self.call(Request::Fsck { path: path.into() }).await?;
        expect_response!(resp, Response::Fsck(f) => f)
    }

    /// Datanodes as the leader sees them.
    pub async fn datanode_report(&self) -> Result<Vec<DatanodeStatus>> {
        let resp = self.call(Request::DatanodeReport).await?;
        expect_response!(resp, Response::Datanodes(d) => d)
    }

    /// Every namenode's own status (or why it did not answer), in config order.
    pub async fn namenode_statuses(&self) -> Vec<(u64, Result<NamenodeStatus>)> {
        let answers = self.inner.namenodes.call_each(Request::Status).await;
        answers
            .into_iter()
            .map(|(id, r)| {
                let status =
                    r.and_then(|resp| expect_response!(resp, Response::NamenodeStatus(s) => s));
                (id, status)
            })
            .collect()
    }

    /// Block locations of a whole file.
    pub async fn block_locations(&self, path: &str) -> Result<FileBlocks> {
        let resp = self
            .call(Request::GetBlockLocations {
                path: path.into(),
                offset_bytes: 0,
                len_bytes: u64::MAX,
                reader_host: self.inner.local_host.clone(),
            })
            .await?;
        expect_response!(resp, Response::Blocks(b) => b)
    }

    /// Creates a file and returns its writer.
    pub async fn create(&self, path: &str, opts: CreateOptions) -> Result<FileWriter> {
        let resp = self
            .call(Request::Create {
                path: path.into(),
                replication: opts.replication,
                block_size_bytes: opts.block_size_bytes,
                overwrite: opts.overwrite,
                require_parent: opts.require_parent,
                client_name: self.inner.client_name.clone(),
            })
            .await?;
        let status = expect_response!(resp, Response::Status(s) => s)?;
        Ok(FileWriter::new(self.clone(), path, &status))
    }

    /// Opens a file for reading.
    pub async fn open(&self, path: &str) -> Result<FileReader> {
        let blocks = self.block_locations(path).await?;
        Ok(FileReader::new(self.clone(), path, blocks))
    }

    /// Writes a whole file in one call (replacing it when `overwrite`).
    pub async fn write_file(&self, path: &str, data: &[u8], overwrite: bool) -> Result<()> {
        let opts = CreateOptions {
            overwrite,
            ..Default::default()
        };
        let mut w = self.create(path, opts).await?;
        w.write(data).await?;
        w.close().await
    }

    /// Reads a whole file into memory.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let mut r = self.open(path).await?;
        r.read_all().await
    }

    async fn report_corrupt(&self, block: Block, host: &str) {
        let req = Request::ReportCorrupt {
            block,
            host: host.to_string(),
        };
        if let Err(e) = self.call(req).await {
            tracing::warn!(
                block = block.id,
                host,
                "could not report a corrupt replica: {e}"
            );
        }
    }
}
