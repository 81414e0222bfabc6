//! A lakehouse location is a URL; this is the only place that turns one into storage.
//!
//! A bare path is a local folder. `file://`, `memory://` and `s3://` URLs go through
//! `object_store`, so moving from a laptop to S3 is a change of `--lakehouse`, not of code.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
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
        "memory" => (Arc::new(InMemory::new()), url.path().to_string(), Kind::Memory),
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
}
