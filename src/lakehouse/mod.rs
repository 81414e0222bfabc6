//! The lakehouse: a location (local folder or object store) holding zones of tables.
//!
//! Every command starts by opening one. Reading commands require it to exist; `land`
//! and `demo` create it.

pub mod layout;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};

use bytes::Bytes;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::error::{Result, StediError};
use crate::feed::Source;
use layout::TableId;

/// An opened lakehouse: where it is and how to reach its storage.
#[derive(Clone)]
pub struct Lakehouse {
    location: String,
    url: Url,
    store: Arc<dyn ObjectStore>,
    options: HashMap<String, String>,
    /// Tables loaded by this process, by folder. Loading one again reads only the commits
    /// made since: a command loads the same table several times (before, during and after
    /// its work), and replaying its whole log each time was most of a quiet run's time.
    loaded: Arc<Mutex<HashMap<String, DeltaTable>>>,
}

static REGISTER_HANDLERS: Once = Once::new();

impl Lakehouse {
    /// Opens an existing lakehouse; a location without one is a user mistake with a hint.
    pub async fn open(location: &str) -> Result<Self> {
        let lakehouse = Self::at(location)?;
        match lakehouse.store.head(&layout::marker()).await {
            Ok(_) => Ok(lakehouse),
            Err(object_store::Error::NotFound { .. }) => Err(StediError::NoLakehouse {
                location: location.to_string(),
            }),
            Err(e) => Err(StediError::BadLocation {
                location: location.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Opens a lakehouse, creating it (its marker file) when the location holds none.
    pub async fn create(location: &str) -> Result<Self> {
        let lakehouse = Self::at(location)?;
        if lakehouse.store.head(&layout::marker()).await.is_err() {
            let marker = serde_json::json!({
                "format": 1,
                "created": chrono::Utc::now().to_rfc3339(),
                "by": format!("stedi {}", env!("CARGO_PKG_VERSION")),
            });
            lakehouse
                .put(&layout::marker(), Bytes::from(marker.to_string()))
                .await?;
        }
        Ok(lakehouse)
    }

    fn at(location: &str) -> Result<Self> {
        REGISTER_HANDLERS.call_once(|| deltalake::aws::register_handlers(None));
        let url = store::location_url(location)?;
        let options = store::storage_options(&url);
        let store = store::open_store(&url, &options)?;
        Ok(Lakehouse {
            location: location.to_string(),
            url,
            store,
            options,
            loaded: Arc::default(),
        })
    }

    /// The location as the user gave it, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The root URL of the lakehouse, ending with `/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Storage rooted at the lakehouse.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Storage options (credentials, endpoint) that Delta needs for every table.
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// The URL of a table's folder.
    pub fn table_url(&self, table: &TableId) -> Url {
        // Joining a relative folder onto a directory URL cannot fail.
        self.url
            .join(&table.folder())
            .unwrap_or_else(|_| self.url.clone())
    }

    /// Loads the latest version of a table, or `None` when it was never written.
    pub async fn load_table(&self, table: &TableId) -> Result<Option<DeltaTable>> {
        let url = self.table_url(table);
        if let Ok(dir) = url.to_file_path()
            && !dir.exists()
        {
            return Ok(None);
        }
        let folder = table.folder();
        let earlier = self.loaded_table(&folder);
        let loaded = match earlier {
            Some(mut earlier) => earlier.update_incremental(None).await.map(|()| earlier),
            None => deltalake::open_table_with_storage_options(url, self.options.clone()).await,
        };
        match loaded {
            Ok(t) => {
                self.remember(folder, &t);
                Ok(Some(t))
            }
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(StediError::delta(&table.name, e)),
        }
    }

    fn loaded_table(&self, folder: &str) -> Option<DeltaTable> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded.get(folder).cloned()
    }

    fn remember(&self, folder: String, table: &DeltaTable) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        // A concurrent load may have read further; keep the newer state.
        let newer = loaded
            .get(&folder)
            .is_some_and(|t| t.version() > table.version());
        if !newer {
            loaded.insert(folder, table.clone());
        }
    }

    /// A handle on a table that may not exist yet, to create it.
    pub async fn table_handle(&self, table: &TableId) -> Result<DeltaTable> {
        let url = self.table_url(table);
        // Delta opens local tables only in folders that exist.
        if let Ok(dir) = url.to_file_path() {
            std::fs::create_dir_all(&dir).map_err(|e| StediError::Unwritable {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        deltalake::DeltaTable::try_from_url_with_storage_options(url, self.options.clone())
            .await
            .map_err(|e| StediError::delta(&table.name, e))
    }

    /// Every raw file landed for a source, in name order.
    pub async fn landed_files(&self, source: Source) -> Result<Vec<ObjectMeta>> {
        let prefix = layout::landing_folder(source);
        let mut files: Vec<ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await?;
        files.retain(|f| {
            f.location
                .filename()
                .is_some_and(|name| !name.starts_with('.') && !name.starts_with('_'))
        });
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(files)
    }

    /// Writes an object, turning permission problems into a clear user error.
    pub async fn put(&self, path: &object_store::path::Path, bytes: Bytes) -> Result<()> {
        self.store
            .put(path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| StediError::Unwritable {
                path: format!("{}{}", self.url, path),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Replaces the customer-key secret with a new random one and returns it. Tables
    /// built with the old secret are rebuilt by the next run (their commits record which
    /// secret they were built with); once replaced, the old keys cannot be linked to an
    /// address any more.
    pub async fn rotate_customer_key_secret(&self) -> Result<Vec<u8>> {
        let secret = new_secret();
        self.put(&layout::customer_key_secret(), hex::encode(&secret).into())
            .await?;
        Ok(secret)
    }

    /// The secret that keys pseudonymous customer keys, created on first use.
    ///
    /// It is kept in `_stedi/customer_key.secret`, outside every table: without it a
    /// customer key cannot be recomputed from a list of e-mail addresses.
    pub async fn customer_key_secret(&self) -> Result<Vec<u8>> {
        let path = layout::customer_key_secret();
        match self.store.get(&path).await {
            Ok(got) => {
                let text = got.bytes().await?;
                hex::decode(String::from_utf8_lossy(&text).trim()).map_err(|e| {
                    StediError::BadLocation {
                        location: self.location.clone(),
                        reason: format!("`{path}` is not a hex secret: {e}"),
                    }
                })
            }
            Err(object_store::Error::NotFound { .. }) => {
                let secret = new_secret();
                let create = object_store::PutOptions {
                    mode: object_store::PutMode::Create,
                    ..Default::default()
                };
                match self
                    .store
                    .put_opts(&path, PutPayload::from(hex::encode(&secret)), create)
                    .await
                {
                    Ok(_) => Ok(secret),
                    // Another process created it first: use theirs.
                    Err(object_store::Error::AlreadyExists { .. }) => {
                        Box::pin(self.customer_key_secret()).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// 32 random bytes (two v4 UUIDs: 244 random bits from the operating system's generator).
fn new_secret() -> Vec<u8> {
    let mut secret = Vec::with_capacity(32);
    secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    secret
}
