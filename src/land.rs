//! Land: raw files copied verbatim into `landing/<source>/`.
//!
//! Landed files are immutable. Landing the same file again is a no-op; landing a
//! different file under a name already used is refused, so history is never rewritten
//! by accident.

use std::path::{Path, PathBuf};

use object_store::path::Path as StorePath;

use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::lakehouse::store::PartsUpload;
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
    if let Ok(landed) = store.head(&dest).await {
        let size = tokio::fs::metadata(file).await.map_err(read_err)?.len();
        // Compared as streams: memory stays small whatever the file's size.
        if landed.size == size
            && digest_object(store, &dest).await? == digest_file(file).await.map_err(read_err)?
        {
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
    let mut input = tokio::fs::File::open(file).await.map_err(read_err)?;
    let size = input.metadata().await.map_err(read_err)?.len();
    if size as usize <= PART_SIZE {
        let mut bytes = Vec::with_capacity(size as usize);
        input.read_to_end(&mut bytes).await.map_err(read_err)?;
        store
            .put(&dest, PutPayload::from(bytes))
            .await
            .map_err(|e| lakehouse.write_error(&dest, &e))?;
    } else {
        // The object appears only when the upload completes, never half-written; a failed
        // upload leaves no parts behind. Memory stays at a few parts whatever the size.
        let mut upload = PartsUpload::start(store, &dest, PART_SIZE)
            .await
            .map_err(|e| lakehouse.write_error(&dest, &e))?;
        let mut buf = vec![0u8; PART_SIZE];
        let sent = async {
            loop {
                let n = input.read(&mut buf).await.map_err(read_err)?;
                if n == 0 {
                    return Ok(());
                }
                upload
                    .write(&buf[..n])
                    .await
                    .map_err(|e| lakehouse.write_error(&dest, &e))?;
            }
        }
        .await;
        match sent {
            Ok(()) => upload
                .finish()
                .await
                .map_err(|e| lakehouse.write_error(&dest, &e))?,
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        }
    }
    Ok(Landed::Copied {
        path: dest.to_string(),
        bytes: size,
    })
}

async fn digest_object(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    path: &StorePath,
) -> Result<Vec<u8>> {
    use futures::TryStreamExt;
    let mut stream = store.get(path).await?.into_stream();
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.try_next().await? {
        hasher.update(&chunk);
    }
    Ok(hasher.finalize().to_vec())
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
