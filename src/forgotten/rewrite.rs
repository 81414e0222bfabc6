//! Raw landed files rewritten without some of their lines, every other byte unchanged:
//! line endings (LF or CRLF), blank lines, a missing final newline, invalid UTF-8, all
//! of it. Both `stedi forget` (the lines of an erased person) and ingestion (lines of
//! erased people landed later, refused) remove lines this way.
//!
//! A file is read in large blocks of whole lines. The new content replaces the old in
//! one put, so a reader sees the old file or the new one, never half of it.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::TryStreamExt;
use hmac::{Hmac, Mac};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::Sha256;
use tokio::io::AsyncReadExt;

use super::receipt::RawRewrite;
use crate::error::{Result, StediError};
use crate::lakehouse::store::PartsUpload;
use crate::lakehouse::{Lakehouse, layout};

/// Bytes read at a time.
const READ_CHUNK: u64 = 16 * 1024 * 1024;

/// Output above this size is uploaded in parts.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Reads an object in blocks of whole lines (the last block may end without a newline).
pub struct Blocks<'a> {
    store: &'a Arc<dyn ObjectStore>,
    meta: &'a ObjectMeta,
    offset: u64,
    carry: Vec<u8>,
}

impl<'a> Blocks<'a> {
    /// Blocks of the object `meta` names.
    pub fn new(store: &'a Arc<dyn ObjectStore>, meta: &'a ObjectMeta) -> Self {
        Blocks {
            store,
            meta,
            offset: 0,
            carry: Vec::new(),
        }
    }

    /// The next block, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if self.offset >= self.meta.size {
                if self.carry.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.carry)));
            }
            let end = (self.offset + READ_CHUNK).min(self.meta.size);
            let chunk = self
                .store
                .get_range(&self.meta.location, self.offset..end)
                .await?;
            self.offset = end;
            match memchr::memrchr(b'\n', &chunk) {
                None => self.carry.extend_from_slice(&chunk),
                Some(last) => {
                    let mut block = std::mem::take(&mut self.carry);
                    block.extend_from_slice(&chunk[..=last]);
                    self.carry.extend_from_slice(&chunk[last + 1..]);
                    return Ok(Some(block));
                }
            }
        }
    }
}

/// The lines of `bytes`, each with its terminator (`\n`, or none for a last line that has
/// none). Numbered from 1 as ingestion numbers them.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// Appends the lines of `bytes` (numbered from `first`) that are not in `remove` to `out`,
/// byte for byte; returns how many lines `bytes` holds.
pub fn keep_lines(bytes: &[u8], first: u64, remove: &BTreeSet<u64>, out: &mut Vec<u8>) -> u64 {
    let mut n = 0;
    for line in lines(bytes) {
        if !remove.contains(&(first + n)) {
            out.extend_from_slice(line);
        }
        n += 1;
    }
    n
}

/// A keyed digest (HMAC-SHA-256 under the tombstone secret) of file contents: it tells
/// whether a file is one seen before without being a plain hash that anyone could check
/// a guess against.
fn digest(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Rewrites a landed file without the lines numbered in `remove`. Returns what was done;
/// the digests are keyed with `secret` (see [`landed_before_erasure`]).
pub async fn remove_lines(
    lakehouse: &Lakehouse,
    meta: &ObjectMeta,
    remove: &BTreeSet<u64>,
    secret: &[u8],
) -> Result<RawRewrite> {
    let store = lakehouse.store();
    let unwritable = |e: object_store::Error| lakehouse.write_error(&meta.location, &e);
    let (mut before, mut after) = (digest(secret), digest(secret));
    let mut out = Vec::new();
    let mut upload: Option<PartsUpload> = None;
    let mut written = 0u64;
    let mut blocks = Blocks::new(store, meta);
    let mut next_line = 1;
    let rewritten = async {
        while let Some(block) = blocks.next().await? {
            before.update(&block);
            let start = out.len();
            next_line += keep_lines(&block, next_line, remove, &mut out);
            after.update(&out[start..]);
            if out.len() >= PART_SIZE {
                if upload.is_none() {
                    upload = Some(
                        PartsUpload::start(store, &meta.location, PART_SIZE)
                            .await
                            .map_err(unwritable)?,
                    );
                }
                if let Some(parts) = upload.as_mut() {
                    parts.write(&out).await.map_err(unwritable)?;
                }
                written += out.len() as u64;
                out.clear();
            }
        }
        Ok::<_, StediError>(())
    }
    .await;
    if let Err(e) = rewritten {
        // No parts are left behind; the landed file is as it was.
        if let Some(parts) = upload {
            parts.abort().await;
        }
        return Err(e);
    }
    written += out.len() as u64;
    match upload {
        // Small files (and files left empty) are replaced in one put.
        None => {
            store
                .put(&meta.location, PutPayload::from(out))
                .await
                .map_err(unwritable)?;
        }
        Some(mut parts) => {
            let last = parts.write(&out).await;
            match last {
                Ok(()) => parts.finish().await.map_err(unwritable)?,
                Err(e) => {
                    parts.abort().await;
                    return Err(unwritable(e));
                }
            }
        }
    }
    Ok(RawRewrite {
        path: meta.location.to_string(),
        lines_removed: remove.len() as u64,
        bytes_before: meta.size,
        bytes_after: written,
        digest_before: hex::encode(before.finalize().into_bytes()),
        digest_after: hex::encode(after.finalize().into_bytes()),
    })
}

/// Whether the local `file` is what the landed file at `dest` held before an erasure
/// rewrote it: `None` when no erasure ever rewrote `dest`, `Some(same)` otherwise.
///
/// `stedi land` asks this when a file name is already landed with other content, so that
/// landing an original file again (a sync that re-lands a folder) is recognized as
/// already landed rather than refused, and its erased lines stay out.
pub async fn landed_before_erasure(
    lakehouse: &Lakehouse,
    dest: &Path,
    file: &std::path::Path,
) -> Result<Option<bool>> {
    let wanted = dest.to_string();
    let store = lakehouse.store();
    let records: Vec<ObjectMeta> = match store
        .list(Some(&layout::erasures_folder()))
        .try_collect()
        .await
    {
        Ok(records) => records,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut digests = Vec::new();
    for record in records {
        let bytes = store.get(&record.location).await?.bytes().await?;
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let files = value.get("raw_files").and_then(|f| f.as_array());
        for entry in files.into_iter().flatten() {
            if entry.get("path").and_then(|p| p.as_str()) == Some(wanted.as_str())
                && let Some(d) = entry.get("digest_before").and_then(|d| d.as_str())
            {
                digests.push(d.to_string());
            }
        }
    }
    if digests.is_empty() {
        return Ok(None);
    }
    let Some(secret) = super::tombstone::read_secret(lakehouse).await? else {
        return Ok(Some(false));
    };
    let read_err = |e| StediError::ReadInput {
        path: file.to_path_buf(),
        source: e,
    };
    let mut input = tokio::fs::File::open(file).await.map_err(read_err)?;
    let mut mac = digest(&secret);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).await.map_err(read_err)?;
        if n == 0 {
            break;
        }
        mac.update(&buf[..n]);
    }
    let local = hex::encode(mac.finalize().into_bytes());
    Ok(Some(digests.contains(&local)))
}
