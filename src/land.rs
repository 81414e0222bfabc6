//! Land: raw files copied verbatim into `landing/<source>/`.
//!
//! Landed files are immutable. Landing the same file again is a no-op; landing a
//! different file under a name already used is refused, so history is never rewritten
//! by accident.

use std::path::{Path, PathBuf};

use object_store::path::Path as StorePath;

use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::lakehouse::{Lakehouse, layout};

/// Files above this size are uploaded in parts rather than read into memory.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// Copied into the lakehouse at this path.
    Copied {
        /// Path within the lakehouse.
        path: String,
        /// Bytes copied.
        bytes: u64,
    },
    /// The same content was already landed under this path.
    AlreadyLanded {
        /// Path within the lakehouse.
        path: String,
    },
    /// This content was landed under this path before an erasure (`stedi forget`) removed
    /// an erased person's lines from it; the rest of it is landed, and nothing changes.
    AlreadyLandedBeforeErasure {
        /// Path within the lakehouse.
        path: String,
    },
}

/// Lands files of one source. Every file is checked to be readable before anything is
/// copied, so a typo in the last name does not leave half of the files landed.
pub async fn land(lakehouse: &Lakehouse, source: Source, files: &[PathBuf]) -> Result<Vec<Landed>> {
    for file in files {
        let meta = tokio::fs::metadata(file)
            .await
            .map_err(|e| StediError::ReadInput {
                path: file.clone(),
                source: e,
            })?;
        if !meta.is_file() {
            return Err(StediError::ReadInput {
                path: file.clone(),
                source: std::io::Error::other("not a regular file"),
            });
        }
    }
    let mut landed = Vec::with_capacity(files.len());
    for file in files {
        landed.push(land_one(lakehouse, source, file).await?);
    }
    Ok(landed)
}

async fn land_one(lakehouse: &Lakehouse, source: Source, file: &Path) -> Result<Landed> {
    let read_err = |e| StediError::ReadInput {
        path: file.to_path_buf(),
        source: e,
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| read_err(std::io::Error::other("no file name")))?;
    let dest = StorePath::from(format!("{}/{name}", layout::landing_folder(source)));
    let store = lakehouse.store();
    if store.head(&dest).await.is_ok() {
        let landed = store.get(&dest).await?.bytes().await?;
        let local = digest_file(file).await.map_err(read_err)?;
        if Sha256::digest(&landed).as_slice() == local.as_slice() {
            return Ok(Landed::AlreadyLanded {
                path: dest.to_string(),
            });
        }
        return match crate::forgotten::rewrite::landed_before_erasure(lakehouse, &dest, file)
            .await?
        {
            Some(true) => Ok(Landed::AlreadyLandedBeforeErasure {
                path: dest.to_string(),
            }),
            Some(false) => Err(StediError::LandErased {
                source_name: source.name().to_string(),
                name,
            }),
            None => Err(StediError::LandConflict {
                source_name: source.name().to_string(),
                name,
            }),
        };
    }
    let unwritable = |e: object_store::Error| StediError::Unwritable {
        path: format!("{}{}", lakehouse.url(), dest),
        reason: e.to_string(),
    };
    let mut input = tokio::fs::File::open(file).await.map_err(read_err)?;
    let size = input.metadata().await.map_err(read_err)?.len();
    if size as usize <= PART_SIZE {
        let mut bytes = Vec::with_capacity(size as usize);
        input.read_to_end(&mut bytes).await.map_err(read_err)?;
        store
            .put(&dest, PutPayload::from(bytes))
            .await
            .map_err(unwritable)?;
    } else {
        // The object appears only when the upload completes, never half-written.
        let upload = store.put_multipart(&dest).await.map_err(unwritable)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = input.read(&mut buf).await.map_err(read_err)?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(unwritable)?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(unwritable)?;
    }
    Ok(Landed::Copied {
        path: dest.to_string(),
        bytes: size,
    })
}

async fn digest_file(file: &Path) -> std::io::Result<Vec<u8>> {
    let mut input = tokio::fs::File::open(file).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_vec())
}
