//! The lakehouse: a location (local folder or object store) holding zones of tables.
//!
//! Every command starts by opening one. Reading commands require it to exist; `land`
//! and `demo` create it. What differs between a local folder and a bucket (the store,
//! where secrets are kept, how storage errors read) is decided here and in [`store`]; the
//! pipeline above sees one `ObjectStore`.

pub mod layout;
pub mod lease;
pub mod requests;
mod s3;
pub mod secrets;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::error::{Result, StediError};
use crate::feed::Source;
use layout::TableId;
use requests::{RequestCounts, Requests};
use secrets::Secrets;
pub use store::Kind;

/// An opened lakehouse: where it is and how to reach its storage.
#[derive(Clone)]
pub struct Lakehouse {
    location: String,
    url: Url,
    /// The file system or the bucket: what Delta tables are opened on.
    root: Arc<dyn ObjectStore>,
    /// Rooted at the lakehouse.
    store: Arc<dyn ObjectStore>,
    kind: Kind,
    requests: Arc<Requests>,
    secrets: Secrets,
    options: HashMap<String, String>,
    /// Tables loaded by this process, by folder. Loading one again reads only the commits
    /// made since: a command loads the same table several times (before, during and after
    /// its work), and replaying its whole log each time was most of a quiet run's time.
    loaded: Arc<Mutex<HashMap<String, DeltaTable>>>,
    /// Things the user should know that are not errors (a secret was created, and where),
    /// for the command to print as notes.
    notices: Arc<Mutex<Vec<String>>>,
}

/// How to reach a lakehouse's storage and secrets: what the environment says by
/// default (`AWS_*`, `STEDI_SECRETS`), or given by a program that opens several
/// lakehouses with different settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Storage options: the `AWS_*` variables, lower-cased (`aws_endpoint_url`, …).
    pub storage: HashMap<String, String>,
    /// The folder of the secrets, instead of the lakehouse's default place.
    pub secrets: Option<std::path::PathBuf>,
}

impl Settings {
    /// The settings the environment gives the lakehouse at `location`.
    pub fn from_env(location: &str) -> Result<Settings> {
        let url = store::location_url(location)?;
        Ok(Settings {
            storage: store::storage_options(&url),
            secrets: std::env::var_os(secrets::SECRETS_VARIABLE)
                .filter(|d| !d.is_empty())
                .map(std::path::PathBuf::from),
        })
    }
}

impl Lakehouse {
    /// Opens an existing lakehouse; a location without one is a user mistake with a hint.
    pub async fn open(location: &str) -> Result<Self> {
        Self::open_with(location, Settings::from_env(location)?).await
    }

    /// [`Lakehouse::open`] with the given settings instead of the environment's.
    pub async fn open_with(location: &str, settings: Settings) -> Result<Self> {
        let lakehouse = Self::at(location, settings).await?;
        match lakehouse.store.head(&layout::marker()).await {
            Ok(_) => Ok(lakehouse),
            Err(object_store::Error::NotFound { .. }) => {
                // A HEAD cannot tell a missing bucket from a missing object; a listing can.
                if let Err(e) = lakehouse.store.list_with_delimiter(None).await {
                    return Err(lakehouse.unusable(&e));
                }
                Err(StediError::NoLakehouse {
                    location: location.to_string(),
                })
            }
            Err(e) => Err(lakehouse.unusable_after(&e).await),
        }
    }

    /// [`Lakehouse::unusable`] for a failed HEAD, which carries no body and so no error
    /// code (a 403 could be refused credentials or a missing permission): a listing's
    /// error says which.
    async fn unusable_after(&self, head: &object_store::Error) -> StediError {
        match self.store.list_with_delimiter(None).await {
            Err(listed) => self.unusable(&listed),
            Ok(_) => self.unusable(head),
        }
    }

    /// Opens a lakehouse, creating it (its marker file) when the location holds none.
    pub async fn create(location: &str) -> Result<Self> {
        Self::create_with(location, Settings::from_env(location)?).await
    }

    /// [`Lakehouse::create`] with the given settings instead of the environment's.
    pub async fn create_with(location: &str, settings: Settings) -> Result<Self> {
        let lakehouse = Self::at(location, settings).await?;
        match lakehouse.store.head(&layout::marker()).await {
            Ok(_) => {}
            Err(e) => {
                if !matches!(e, object_store::Error::NotFound { .. })
                    && crate::error::explain_storage(&crate::error::error_chain(&e)).is_some()
                {
                    return Err(lakehouse.unusable_after(&e).await);
                }
                let marker = serde_json::json!({
                    "format": 1,
                    "created": chrono::Utc::now().to_rfc3339(),
                    "by": format!("stedi {}", env!("CARGO_PKG_VERSION")),
                });
                lakehouse
                    .put(&layout::marker(), Bytes::from(marker.to_string()))
                    .await?;
            }
        }
        Ok(lakehouse)
    }

    async fn at(location: &str, settings: Settings) -> Result<Self> {
        let url = store::location_url(location)?;
        let options = settings.storage;
        let storage = store::open(&url, &options).await?;
        let secrets = match settings.secrets {
            Some(dir) => Secrets::Folder(dir),
            None => Secrets::for_lakehouse(&url, &storage.kind, &storage.store)?,
        };
        Ok(Lakehouse {
            location: location.to_string(),
            url,
            root: storage.root,
            store: storage.store,
            kind: storage.kind,
            requests: storage.requests,
            secrets,
            options,
            loaded: Arc::default(),
            notices: Arc::default(),
        })
    }

    /// The error for storage that cannot be used at all (no bucket, refused credentials,
    /// no network), in words a user can act on.
    fn unusable(&self, e: &object_store::Error) -> StediError {
        let text = crate::error::error_chain(e);
        match crate::error::explain_storage(&text) {
            Some((reason, hint)) => StediError::StorageUnusable {
                location: self.location.clone(),
                reason: reason.to_string(),
                hint,
            },
            None => StediError::BadLocation {
                location: self.location.clone(),
                reason: text,
            },
        }
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

    /// What kind of storage the lakehouse is on.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The requests sent to storage so far by this process (counted on S3; zero on a
    /// local folder, which sends none).
    pub fn requests(&self) -> RequestCounts {
        self.requests.counts()
    }

    /// Storage options (credentials, endpoint) that Delta needs for every table.
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// Notes for the user gathered so far (a secret was created, where to back it up),
    /// each returned once.
    pub fn take_notices(&self) -> Vec<String> {
        let mut notices = self.notices.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *notices)
    }

    fn notice(&self, text: String) {
        let mut notices = self.notices.lock().unwrap_or_else(|e| e.into_inner());
        notices.push(text);
    }

    /// The URL of a table's folder.
    pub fn table_url(&self, table: &TableId) -> Url {
        // Joining a relative folder onto a directory URL cannot fail.
        self.url
            .join(&table.folder())
            .unwrap_or_else(|_| self.url.clone())
    }

    /// A builder for the table at `url` on this lakehouse's own store, so that every
    /// request of Delta goes through the same store (its credentials, its retries, its
    /// request counts) instead of one built per table.
    fn delta_builder(&self, url: Url) -> Result<DeltaTableBuilder, DeltaTableError> {
        Ok(DeltaTableBuilder::from_url(url.clone())?
            .with_storage_backend(self.root.clone(), url)
            .with_storage_options(self.options.clone()))
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
            None => match self.delta_builder(url) {
                Ok(builder) => builder.load().await,
                Err(e) => Err(e),
            },
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
        let err = |e| StediError::delta(&table.name, e);
        let mut handle = self
            .delta_builder(url)
            .and_then(|b| b.build())
            .map_err(err)?;
        match handle.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(handle),
            Err(e) => Err(err(e)),
        }
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
            .map_err(|e| self.write_error(path, &e))?;
        Ok(())
    }

    /// The error for a write that failed: the storage's problem in words when it is a
    /// known one (no bucket, no permission), else what could not be written and why.
    pub fn write_error(
        &self,
        path: &object_store::path::Path,
        e: &object_store::Error,
    ) -> StediError {
        let text = crate::error::error_chain(e);
        match crate::error::explain_storage(&text) {
            Some((reason, hint)) => StediError::StorageUnusable {
                location: format!("{}{}", self.url, path),
                reason: reason.to_string(),
                hint,
            },
            None => StediError::Unwritable {
                path: format!("{}{}", self.url, path),
                reason: e.to_string(),
            },
        }
    }

    /// Takes the writer lease for `command` (see [`lease`]): the second of two commands
    /// that would change the lakehouse at once stops with [`StediError::Busy`].
    pub async fn lease(&self, command: &str) -> Result<lease::Lease> {
        lease::Lease::acquire(self.store.clone(), command).await
    }

    /// Where the secret `name` is kept (for messages): `_stedi/` of a local lakehouse,
    /// outside the bucket for one on S3, or `STEDI_SECRETS` (see [`secrets`]).
    pub fn secret_location(&self, name: &str) -> String {
        self.secrets.location(name)
    }

    /// The secret `name`, or `None` when it was never created.
    pub async fn read_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.secrets.read(name).await
    }

    /// The secret `name`, created (random) when it does not exist yet; a secret created
    /// here is announced in a notice saying where it is and to back it up.
    pub async fn create_secret(&self, name: &str, what: &str) -> Result<Vec<u8>> {
        let (secret, created) = self.secrets.create(name, &new_secret()).await?;
        if created && self.secrets.outside_storage(&self.kind) {
            self.notice(format!(
                "created the {what} secret in `{}`, outside the lakehouse's storage; back it up (and copy it to every machine that runs stedi on this lakehouse, or point `{}` at a shared copy)",
                self.secrets.location(name),
                secrets::SECRETS_VARIABLE
            ));
        }
        Ok(secret)
    }

    /// Replaces the customer-key secret with a new random one and returns it. Tables
    /// built with the old secret are rebuilt by the next run (their commits record which
    /// secret they were built with); once replaced, the old keys cannot be linked to an
    /// address any more.
    pub async fn rotate_customer_key_secret(&self) -> Result<Vec<u8>> {
        let secret = new_secret();
        self.set_customer_key_secret(&secret).await?;
        Ok(secret)
    }

    /// Puts a customer-key secret in place: one restored from a backup (or, in tests, the
    /// secret of another lakehouse, so both hold the same keys).
    pub async fn set_customer_key_secret(&self, secret: &[u8]) -> Result<()> {
        self.secrets
            .replace(layout::CUSTOMER_KEY_SECRET, secret)
            .await
    }

    /// The secret that keys pseudonymous customer keys, created on first use.
    ///
    /// It is kept outside every table (see [`secrets`]): without it a customer key cannot
    /// be recomputed from a list of e-mail addresses. When it is missing but curated tables
    /// were already built (with the secret that went missing), this is an error: creating
    /// a new one would silently give every customer new keys.
    pub async fn customer_key_secret(&self) -> Result<Vec<u8>> {
        let name = layout::CUSTOMER_KEY_SECRET;
        if let Some(secret) = self.secrets.read(name).await? {
            return Ok(secret);
        }
        if self.has_built_tables().await? {
            return Err(StediError::MissingSecret {
                path: self.secrets.location(name),
                tables_exist: true,
            });
        }
        self.create_secret(name, "customer-key").await
    }

    /// Whether any trusted or curated table was ever written.
    async fn has_built_tables(&self) -> Result<bool> {
        for zone in [layout::Zone::Trusted, layout::Zone::Curated] {
            let prefix = object_store::path::Path::from(zone.folder());
            let listed = self.store.list_with_delimiter(Some(&prefix)).await?;
            if !listed.common_prefixes.is_empty() || !listed.objects.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// 32 random bytes (two v4 UUIDs: 244 random bits from the operating system's generator).
fn new_secret() -> Vec<u8> {
    let mut secret = Vec::with_capacity(32);
    secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    secret
}
