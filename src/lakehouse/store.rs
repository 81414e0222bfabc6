//! A lakehouse location is a URL; this is the only place that turns one into storage.
//!
//! A bare path is a local folder. `file://`, `memory://` and `s3://` URLs go through
//! `object_store`, so moving from a laptop to S3 is a change of `--lakehouse`, not of code.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use super::requests::Requests;
use crate::error::{Result, StediError};

/// Turns what the user typed (`./lakehouse`, `/data/lh`, `s3://bucket/lh`) into a URL
/// that ends with `/`, so that table locations can be joined onto it.
pub fn location_url(location: &str) -> Result<Url> {
    let bad = |reason: String| StediError::BadLocation {
        location: location.to_string(),
        reason,
    };
    let mut url = match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => url,
        // No scheme (or a Windows drive letter): a local path.
        _ => {
            let path = std::path::Path::new(location);
            let absolute = if path.is_absolute() {
                path.to_path_buf()
            } else {
                std::env::current_dir()
                    .map_err(|e| bad(e.to_string()))?
                    .join(path)
            };
            Url::from_directory_path(normalize(&absolute))
                .map_err(|()| bad("not a valid path".into()))?
        }
    };
    match url.scheme() {
        "file" | "memory" | "s3" | "s3a" => {}
        other => return Err(bad(format!("the `{other}://` scheme is not supported"))),
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Removes `.` and `..` components without touching the file system, so that a
/// lakehouse that does not exist yet still gets a clean URL.
fn normalize(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Storage options for a location, taken from the environment (`AWS_*` for S3), so
/// that credentials never travel on the command line.
pub fn storage_options(url: &Url) -> HashMap<String, String> {
    if matches!(url.scheme(), "s3" | "s3a") {
        std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    } else {
        HashMap::new()
    }
}

/// What kind of storage a lakehouse is on: it decides where secrets are kept by default
/// (see `secrets`) and how storage errors are explained. The pipeline never asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A folder of the local file system.
    Local(std::path::PathBuf),
    /// An S3 (or S3-compatible) bucket.
    S3 {
        /// The bucket.
        bucket: String,
    },
    /// In memory, for tests.
    Memory,
}

/// The storage of a lakehouse.
pub struct Storage {
    /// The store Delta tables are opened on: the file system or the bucket, not rooted at
    /// the lakehouse (delta-rs roots it at each table itself).
    pub root: Arc<dyn ObjectStore>,
    /// The same store rooted at the lakehouse: paths handed to it are relative
    /// (`landing/customer/a.json`).
    pub store: Arc<dyn ObjectStore>,
    /// Every request sent to an HTTP store (S3), counted.
    pub requests: Arc<Requests>,
    /// What it is.
    pub kind: Kind,
}

/// Opens the storage that holds the lakehouse at `url`.
pub async fn open(url: &Url, options: &HashMap<String, String>) -> Result<Storage> {
    let bad = |reason: String| StediError::BadLocation {
        location: url.to_string(),
        reason,
    };
    let requests = Arc::new(Requests::default());
    let (root, prefix, kind): (Arc<dyn ObjectStore>, String, Kind) = match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| bad("not a local path".into()))?;
            (
                Arc::new(LocalFileSystem::new()),
                url.path().to_string(),
                Kind::Local(path),
            )
        }
        "memory" => (
            Arc::new(InMemory::new()),
            url.path().to_string(),
            Kind::Memory,
        ),
        "s3" | "s3a" => {
            let bucket = url
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| bad("an S3 location names its bucket: `s3://bucket/prefix`".into()))?
                .to_string();
            let store = super::s3::bucket_store(url, options, requests.clone())
                .await
                .map_err(|e| bad(e.to_string()))?;
            (store, url.path().to_string(), Kind::S3 { bucket })
        }
        other => return Err(bad(format!("the `{other}://` scheme is not supported"))),
    };
    let prefix = Path::from_url_path(prefix.trim_matches('/')).map_err(|e| bad(e.to_string()))?;
    let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
        root.clone()
    } else {
        Arc::new(PrefixStore::new(root.clone(), prefix))
    };
    Ok(Storage {
        root,
        store,
        requests,
        kind,
    })
}

/// An object written in parts (a large landed file, a rewritten raw file): it appears
/// only when [`PartsUpload::finish`] completes it, and an upload that fails or is given up
/// is aborted, so that no parts are left behind (S3 keeps, and bills, the parts of an
/// upload never completed nor aborted).
pub struct PartsUpload {
    writer: object_store::WriteMultipart,
}

/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

impl PartsUpload {
    /// Starts an upload of `path` in parts of `part_size` bytes.
    pub async fn start(
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        part_size: usize,
    ) -> object_store::Result<PartsUpload> {
        let upload = store.put_multipart(path).await?;
        Ok(PartsUpload {
            writer: object_store::WriteMultipart::new_with_chunk_size(upload, part_size),
        })
    }

    /// Adds bytes, waiting while too many parts are in flight.
    pub async fn write(&mut self, bytes: &[u8]) -> object_store::Result<()> {
        self.writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.writer.write(bytes);
        Ok(())
    }

    /// Completes the object; aborts the upload when a part failed.
    pub async fn finish(mut self) -> object_store::Result<()> {
        if let Err(e) = self.writer.wait_for_capacity(0).await {
            let _ = self.writer.abort().await;
            return Err(e);
        }
        // A failed completion aborts the upload itself.
        self.writer.finish().await.map(|_| ())
    }

    /// Gives the upload up, deleting its parts.
    pub async fn abort(self) {
        if let Err(e) = self.writer.abort().await {
            tracing::debug!("cannot abort an upload: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_becomes_an_absolute_directory_url() {
        let url = location_url("some/where/../lh").unwrap();
        assert_eq!(url.scheme(), "file");
        assert!(url.path().ends_with("/some/lh/"), "{url}");
    }

    #[test]
    fn s3_urls_keep_their_bucket_and_gain_a_trailing_slash() {
        let url = location_url("s3://bucket/prefix").unwrap();
        assert_eq!(url.as_str(), "s3://bucket/prefix/");
    }

    #[test]
    fn unknown_schemes_are_refused_with_the_scheme_named() {
        let err = location_url("ftp://host/x").unwrap_err();
        assert!(err.to_string().contains("`ftp://`"), "{err}");
    }

    /// A store whose uploads fail at their second part, remembering aborts.
    #[derive(Debug)]
    struct FailingParts {
        inner: Arc<dyn ObjectStore>,
        aborted: Arc<std::sync::atomic::AtomicBool>,
    }

    impl std::fmt::Display for FailingParts {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("FailingParts")
        }
    }

    #[derive(Debug)]
    struct FailingUpload {
        parts: usize,
        aborted: Arc<std::sync::atomic::AtomicBool>,
    }

    #[async_trait::async_trait]
    impl object_store::MultipartUpload for FailingUpload {
        fn put_part(&mut self, _data: object_store::PutPayload) -> object_store::UploadPart {
            self.parts += 1;
            let fail = self.parts == 2;
            Box::pin(async move {
                if fail {
                    Err(object_store::Error::Generic {
                        store: "test",
                        source: "503 SlowDown".into(),
                    })
                } else {
                    Ok(())
                }
            })
        }
        async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
            panic!("an upload with a failed part must not complete")
        }
        async fn abort(&mut self) -> object_store::Result<()> {
            self.aborted
                .store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for FailingParts {
        async fn put_opts(
            &self,
            location: &Path,
            payload: object_store::PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            _location: &Path,
            _opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            Ok(Box::new(FailingUpload {
                parts: 0,
                aborted: self.aborted.clone(),
            }))
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn an_upload_whose_part_fails_is_aborted_not_left_behind() {
        let aborted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store: Arc<dyn ObjectStore> = Arc::new(FailingParts {
            inner: Arc::new(InMemory::new()),
            aborted: aborted.clone(),
        });
        let mut upload = PartsUpload::start(&store, &Path::from("big.json"), 8)
            .await
            .unwrap();
        let mut failed = None;
        for chunk in [b"0123456789", b"0123456789", b"0123456789"] {
            if let Err(e) = upload.write(chunk).await {
                failed = Some(e);
                break;
            }
        }
        let result = match failed {
            Some(e) => {
                upload.abort().await;
                Err(e)
            }
            None => upload.finish().await,
        };
        assert!(result.unwrap_err().to_string().contains("SlowDown"));
        assert!(aborted.load(std::sync::atomic::Ordering::SeqCst));
    }
}
