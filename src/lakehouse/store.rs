//! A lakehouse location is a URL; this is the only place that turns one into storage.
//!
//! A bare path is a local folder. `file://`, `memory://` and `s3://` URLs go through
//! `object_store`, so moving from a laptop to S3 is a change of `--lakehouse`, not of code.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use url::Url;

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
            let path = Path::new(location);
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
fn normalize(path: &Path) -> std::path::PathBuf {
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

/// Opens the object store that holds the lakehouse, rooted at the lakehouse itself:
/// paths handed to it are relative (`landing/customer/a.json`).
pub fn open_store(url: &Url, options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let (store, prefix) =
        object_store::parse_url_opts(url, options.iter()).map_err(|e| StediError::BadLocation {
            location: url.to_string(),
            reason: e.to_string(),
        })?;
    let store: Arc<dyn ObjectStore> = Arc::from(store);
    if prefix.as_ref().is_empty() {
        Ok(store)
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
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
}
