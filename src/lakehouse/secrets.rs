//! Where a lakehouse's secrets live: the secret behind `customer_key` and the one behind
//! tombstones. Whoever reads a secret can link pseudonymous keys back to addresses.
//!
//! - A local folder keeps them in its `_stedi/`, readable by their owner only (0600).
//! - On S3, everyone who may read the bucket (Athena users, anyone with `s3:GetObject`)
//!   could read them there, so they are kept outside the bucket, in a folder of the user
//!   running stedi: `$XDG_CONFIG_HOME/stedi/secrets/<bucket>/<id of the lakehouse>/` (by
//!   default `~/.config/stedi/secrets/…`).
//! - `STEDI_SECRETS=/some/dir` puts them in that folder instead, for any lakehouse (a
//!   mounted secret, or the copy a second machine shares).
//!
//! A secret is created once, on first use, with owner-only permissions; a secret file that
//! other users can read is refused.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};
use url::Url;

use super::store::Kind;
use crate::error::{Result, StediError};

/// The variable that names a folder of secrets.
pub const SECRETS_VARIABLE: &str = "STEDI_SECRETS";

/// Where the secrets of one lakehouse are kept.
#[derive(Clone)]
pub enum Secrets {
    /// Files in a local folder (owner-only).
    Folder(PathBuf),
    /// Objects of the lakehouse's own store (an in-memory lakehouse).
    Store(Arc<dyn ObjectStore>),
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secrets::Folder(dir) => write!(f, "Secrets::Folder({})", dir.display()),
            Secrets::Store(_) => f.write_str("Secrets::Store"),
        }
    }
}

impl Secrets {
    /// The default place for the lakehouse at `url` (when `STEDI_SECRETS` names none).
    pub fn for_lakehouse(url: &Url, kind: &Kind, store: &Arc<dyn ObjectStore>) -> Result<Self> {
        match kind {
            Kind::Local(root) => Ok(Secrets::Folder(root.join("_stedi"))),
            Kind::Memory => Ok(Secrets::Store(store.clone())),
            Kind::S3 { bucket } => {
                let config = config_dir().ok_or_else(|| StediError::BadLocation {
                    location: url.to_string(),
                    reason: "no folder to keep its secrets in: neither `HOME` nor `XDG_CONFIG_HOME` is set".into(),
                })?;
                // One folder per lakehouse of the bucket, named by its location.
                let id = hex::encode(Sha256::digest(url.as_str().as_bytes()));
                Ok(Secrets::Folder(
                    config
                        .join("stedi")
                        .join("secrets")
                        .join(bucket)
                        .join(&id[..16]),
                ))
            }
        }
    }

    /// Where the secret `name` is (or would be), for messages.
    pub fn location(&self, name: &str) -> String {
        match self {
            Secrets::Folder(dir) => dir.join(name).display().to_string(),
            Secrets::Store(_) => format!("_stedi/{name}"),
        }
    }

    /// Whether the secrets are kept apart from the lakehouse's storage.
    pub fn outside_storage(&self, kind: &Kind) -> bool {
        match (self, kind) {
            (Secrets::Folder(dir), Kind::Local(root)) => !dir.starts_with(root),
            (Secrets::Folder(_), _) => true,
            (Secrets::Store(_), _) => false,
        }
    }

    /// The secret `name`, or `None` when it does not exist yet.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let text = match self {
            Secrets::Folder(dir) => {
                let path = dir.join(name);
                match std::fs::read(&path) {
                    Ok(text) => {
                        refuse_readable_by_others(&path)?;
                        text
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => {
                        return Err(StediError::ReadInput { path, source: e });
                    }
                }
            }
            Secrets::Store(store) => match store.get(&store_path(name)).await {
                Ok(got) => got.bytes().await?.to_vec(),
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        hex::decode(String::from_utf8_lossy(&text).trim())
            .map(Some)
            .map_err(|e| StediError::BadSecret {
                path: self.location(name),
                reason: format!("it is not a hex secret: {e}"),
            })
    }

    /// Creates the secret `name` with `secret` unless it exists; returns the secret now in
    /// place (another process may have created it first) and whether this call created it.
    pub async fn create(&self, name: &str, secret: &[u8]) -> Result<(Vec<u8>, bool)> {
        let text = hex::encode(secret);
        let created = match self {
            Secrets::Folder(dir) => create_file(dir, name, text.as_bytes(), false)?,
            Secrets::Store(store) => {
                let create = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                match store
                    .put_opts(&store_path(name), PutPayload::from(text), create)
                    .await
                {
                    Ok(_) => true,
                    Err(object_store::Error::AlreadyExists { .. }) => false,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if created {
            return Ok((secret.to_vec(), true));
        }
        let existing = self
            .read(name)
            .await?
            .ok_or_else(|| StediError::BadSecret {
                path: self.location(name),
                reason: "it disappeared while it was being created".into(),
            })?;
        Ok((existing, false))
    }

    /// Replaces the secret `name` (or creates it), atomically: a reader sees the old one
    /// or the new one.
    pub async fn replace(&self, name: &str, secret: &[u8]) -> Result<()> {
        let text = hex::encode(secret);
        match self {
            Secrets::Folder(dir) => {
                create_file(dir, name, text.as_bytes(), true)?;
            }
            Secrets::Store(store) => {
                store.put(&store_path(name), PutPayload::from(text)).await?;
            }
        }
        Ok(())
    }
}

fn store_path(name: &str) -> StorePath {
    StorePath::from(format!("_stedi/{name}"))
}

/// `$XDG_CONFIG_HOME` when it is an absolute path, else `$HOME/.config`.
fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from)
        && dir.is_absolute()
    {
        return Some(dir);
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".config"))
}

/// Writes `dir/name` readable by its owner only: created exclusively unless `replace`
/// (then written beside it and moved over it). Returns false when it existed (and
/// `replace` is off). Folders that have to be made are owner-only too.
fn create_file(dir: &Path, name: &str, content: &[u8], replace: bool) -> Result<bool> {
    let unwritable = |path: &Path, e: std::io::Error| StediError::Unwritable {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| unwritable(dir, e))?;
    }
    let path = dir.join(name);
    let scratch = dir.join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&scratch)
        .map_err(|e| unwritable(&scratch, e))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| unwritable(&scratch, e))?;
    drop(file);
    let done = if replace {
        std::fs::rename(&scratch, &path).map(|()| true)
    } else {
        // A hard link fails when the name exists: the first creator wins, whole.
        match std::fs::hard_link(&scratch, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    };
    let _ = std::fs::remove_file(&scratch);
    done.map_err(|e| unwritable(&path, e))
}

/// Refuses a secret file that users other than its owner may read.
fn refuse_readable_by_others(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| StediError::ReadInput {
                path: path.to_path_buf(),
                source: e,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StediError::InsecureSecret {
                path: path.display().to_string(),
                mode: mode & 0o777,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_secret_is_created_once_for_its_owner_only_and_refused_when_others_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::Folder(dir.path().join("nested"));
        assert_eq!(secrets.read("k.secret").await.unwrap(), None);
        let (first, created) = secrets.create("k.secret", b"one").await.unwrap();
        assert!(created);
        assert_eq!(first, b"one");
        let (again, created) = secrets.create("k.secret", b"two").await.unwrap();
        assert!(!created);
        assert_eq!(again, b"one");
        let path = dir.path().join("nested/k.secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("nested")), 0o700);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = secrets.read("k.secret").await.unwrap_err();
            assert!(err.to_string().contains("other users"), "{err}");
            assert!(err.hint().unwrap().contains("chmod 600"), "{err:?}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        secrets.replace("k.secret", b"three").await.unwrap();
        assert_eq!(secrets.read("k.secret").await.unwrap().unwrap(), b"three");
        // Nothing but the secret is left in the folder.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["k.secret"]);
    }
}
