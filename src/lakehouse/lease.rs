//! One writer at a time: the lease a command holds while it changes the lakehouse.
//!
//! Several processes may share one lakehouse (a scheduled `stedi run`, an operator's
//! `stedi forget`, a second machine). Delta's commits are atomic on their own, but a
//! command is many commits, and `stedi forget` vacuums: files a concurrent run has
//! written and not yet committed would be deleted under it. So every command that changes
//! tables holds the lease, and a second one stops at once, saying who holds it.
//!
//! The lease is a log of small objects, `_stedi/lease/<n>.json`, each created with a
//! conditional put (`If-None-Match: *` on S3, an exclusive create on a local folder):
//! whoever creates entry `n + 1` after reading entry `n` holds it, exactly as Delta
//! decides between two commits of the same version. The holder renews it by adding an
//! entry every [`RENEW_EVERY`]; an entry that is not renewed runs out after [`TTL`] (a
//! killed process), or at once when it names a process of this machine that no longer
//! exists. A holder that cannot renew in time (another may have taken over) stops before
//! its next change, so that two writers never overlap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StediError};

/// How long an entry holds the lease after it was written.
pub const TTL: Duration = Duration::from_secs(120);

/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(20);

/// Entries kept behind the newest; older ones are deleted by the holder.
const KEEP: u64 = 4;

/// Attempts to take a free lease when other processes race for it too.
const ATTEMPTS: usize = 8;

fn folder() -> Path {
    Path::from("_stedi/lease")
}

fn entry_path(n: u64) -> Path {
    Path::from(format!("_stedi/lease/{n:020}.json"))
}

/// Who holds (or held) the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// A random id of the holding command.
    pub id: String,
    /// The command, e.g. `stedi run`.
    pub command: String,
    /// User, host and process id, e.g. `ann@laptop (pid 4242)`.
    pub by: String,
    /// Host name, to tell whether the process can be checked here.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// When the command took the lease (RFC 3339, UTC).
    pub started: String,
}

/// One entry of the lease's log.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    holder: Holder,
    /// `held`, or `released` when the holder ended.
    state: String,
    /// Until when this entry holds the lease (RFC 3339, UTC).
    expires: String,
}

impl Entry {
    fn live(&self, now: DateTime<Utc>) -> bool {
        if self.state != "held" {
            return false;
        }
        let expires = DateTime::parse_from_rfc3339(&self.expires)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now);
        if expires <= now {
            return false;
        }
        // A process of this machine that no longer runs holds nothing.
        self.holder.host != host() || process_alive(self.holder.pid)
    }
}

/// The lease, held until [`Lease::release`] (or drop).
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    holder: Holder,
    /// The newest entry this holder wrote.
    newest: Arc<AtomicU64>,
    /// Until when (milliseconds since the epoch) the newest entry holds the lease.
    valid_until: Arc<AtomicU64>,
    /// Set when a renewal found another holder's entry.
    lost: Arc<AtomicBool>,
    renewing: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("holder", &self.holder)
            .finish()
    }
}

impl Lease {
    /// Takes the lease for `command`, or fails with [`StediError::Busy`] naming the
    /// command that holds it.
    pub async fn acquire(store: Arc<dyn ObjectStore>, command: &str) -> Result<Lease> {
        let holder = Holder {
            id: uuid::Uuid::new_v4().simple().to_string(),
            command: command.to_string(),
            by: format!(
                "{}@{} (pid {})",
                std::env::var("USER").unwrap_or_else(|_| "someone".into()),
                host(),
                std::process::id()
            ),
            host: host(),
            pid: std::process::id(),
            started: now_text(Utc::now()),
        };
        for _ in 0..ATTEMPTS {
            let newest = newest_entry(&store).await?;
            let now = Utc::now();
            if let Some((_, entry)) = &newest
                && entry.live(now)
            {
                return Err(StediError::Busy {
                    command: entry.holder.command.clone(),
                    started: entry.holder.started.clone(),
                    by: entry.holder.by.clone(),
                    expires: entry.expires.clone(),
                });
            }
            let next = newest.as_ref().map_or(1, |(n, _)| n + 1);
            let until = now + chrono::Duration::from_std(TTL).unwrap_or_default();
            if write_entry(&store, next, &holder, "held", until).await? {
                let lease = Lease {
                    newest: Arc::new(AtomicU64::new(next)),
                    valid_until: Arc::new(AtomicU64::new(until.timestamp_millis() as u64)),
                    lost: Arc::new(AtomicBool::new(false)),
                    store,
                    holder,
                    renewing: None,
                };
                return Ok(lease.renewing());
            }
            // Another process wrote that entry first: read again.
        }
        Err(StediError::LeaseLost {
            reason: "other processes kept taking it".into(),
        })
    }

    fn renewing(mut self) -> Lease {
        let (store, holder) = (self.store.clone(), self.holder.clone());
        let (newest, valid_until, lost) = (
            self.newest.clone(),
            self.valid_until.clone(),
            self.lost.clone(),
        );
        self.renewing = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let next = newest.load(Ordering::SeqCst) + 1;
                let until = Utc::now() + chrono::Duration::from_std(TTL).unwrap_or_default();
                match write_entry(&store, next, &holder, "held", until).await {
                    Ok(true) => {
                        newest.store(next, Ordering::SeqCst);
                        valid_until.store(until.timestamp_millis() as u64, Ordering::SeqCst);
                        cleanup(&store, next).await;
                    }
                    // Someone else wrote the next entry: the lease was taken over.
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    // Storage unreachable for now: try again; `check` notices if the
                    // lease runs out meanwhile.
                    Err(e) => tracing::debug!("cannot renew the lease: {e}"),
                }
            }
        }));
        self
    }

    /// Fails unless this command still holds the lease for at least `margin`: called
    /// before a change that must not overlap another writer's (a vacuum).
    pub fn check(&self, margin: Duration) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(StediError::LeaseLost {
                reason: "another command took it over".into(),
            });
        }
        let until = self.valid_until.load(Ordering::SeqCst) as i64;
        let left = until - Utc::now().timestamp_millis();
        if left < margin.as_millis() as i64 {
            return Err(StediError::LeaseLost {
                reason: format!(
                    "it was last renewed {} s ago",
                    (TTL.as_millis() as i64 - left) / 1000
                ),
            });
        }
        Ok(())
    }

    /// Who holds it.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Gives the lease back, so that the next command need not wait for it to run out.
    pub async fn release(mut self) {
        if let Some(task) = self.renewing.take() {
            task.abort();
        }
        release(&self.store, &self.holder, &self.newest, &self.lost).await;
    }
}

impl Drop for Lease {
    /// A command dropped without [`Lease::release`] (an error, Ctrl-C) gives the lease back
    /// too, waiting a moment for the write; if even that fails, it runs out after [`TTL`].
    fn drop(&mut self) {
        let Some(task) = self.renewing.take() else {
            return;
        };
        task.abort();
        let (store, holder, newest, lost) = (
            self.store.clone(),
            self.holder.clone(),
            self.newest.clone(),
            self.lost.clone(),
        );
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(3),
                        release(&store, &holder, &newest, &lost),
                    )
                    .await;
                })
            });
        } else {
            handle.spawn(async move { release(&store, &holder, &newest, &lost).await });
        }
    }
}

async fn release(
    store: &Arc<dyn ObjectStore>,
    holder: &Holder,
    newest: &AtomicU64,
    lost: &AtomicBool,
) {
    if lost.load(Ordering::SeqCst) {
        return;
    }
    let next = newest.load(Ordering::SeqCst) + 1;
    if let Ok(true) = write_entry(store, next, holder, "released", Utc::now()).await {
        newest.store(next, Ordering::SeqCst);
        cleanup(store, next).await;
    }
}

/// Writes entry `n` unless it exists; whether this call wrote it.
async fn write_entry(
    store: &Arc<dyn ObjectStore>,
    n: u64,
    holder: &Holder,
    state: &str,
    expires: DateTime<Utc>,
) -> Result<bool> {
    let entry = Entry {
        holder: holder.clone(),
        state: state.to_string(),
        expires: now_text(expires),
    };
    let body = serde_json::to_vec(&entry).map_err(|e| StediError::Output(e.to_string()))?;
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store
        .put_opts(&entry_path(n), PutPayload::from(body), create)
        .await
    {
        Ok(_) => Ok(true),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The newest entry of the lease's log, if any.
async fn newest_entry(store: &Arc<dyn ObjectStore>) -> Result<Option<(u64, Entry)>> {
    let prefix = folder();
    let listed: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
    let mut numbers: Vec<u64> = listed
        .iter()
        .filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    // The newest readable entry (one deleted meanwhile by a cleanup is skipped).
    for n in numbers.into_iter().rev() {
        match store.get(&entry_path(n)).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                if let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) {
                    return Ok(Some((n, entry)));
                }
                // Not ours to read: treat as ended, and write after it.
                return Ok(Some((
                    n,
                    Entry {
                        holder: Holder {
                            id: String::new(),
                            command: String::new(),
                            by: String::new(),
                            host: String::new(),
                            pid: 0,
                            started: String::new(),
                        },
                        state: "unreadable".into(),
                        expires: String::new(),
                    },
                )));
            }
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Deletes entries older than the last few (best effort: a leftover entry is harmless).
async fn cleanup(store: &Arc<dyn ObjectStore>, newest: u64) {
    let Some(below) = newest.checked_sub(KEEP) else {
        return;
    };
    let Ok(listed) = store
        .list(Some(&folder()))
        .try_collect::<Vec<object_store::ObjectMeta>>()
        .await
    else {
        return;
    };
    for meta in listed {
        let n: Option<u64> = meta
            .location
            .filename()
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|f| f.parse().ok());
        if n.is_some_and(|n| n < below) {
            let _ = store.delete(&meta.location).await;
        }
    }
}

fn now_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// This machine's name.
fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `gethostname` writes at most `buf.len()` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".into()
    }
}

/// Whether process `pid` of this machine still runs.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = i32::try_from(pid) else {
        return true;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test(flavor = "multi_thread")]
    async fn one_holder_at_a_time_and_a_released_lease_is_free_again() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let lease = Lease::acquire(store.clone(), "stedi run").await.unwrap();
        let err = Lease::acquire(store.clone(), "stedi forget")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("another stedi run is writing this lakehouse (started "),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("lease runs out at"), "{err:?}");
        lease.check(Duration::from_secs(10)).unwrap();
        lease.release().await;
        let again = Lease::acquire(store.clone(), "stedi forget").await.unwrap();
        drop(again);
        // Dropped without release: given back all the same.
        Lease::acquire(store, "stedi run")
            .await
            .unwrap()
            .release()
            .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_lease_of_a_process_that_no_longer_runs_here_is_free() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let gone = Holder {
            id: "x".into(),
            command: "stedi run".into(),
            by: "someone".into(),
            host: host(),
            // Beyond any real pid.
            pid: i32::MAX as u32,
            started: now_text(Utc::now()),
        };
        let until = Utc::now() + chrono::Duration::seconds(600);
        assert!(write_entry(&store, 1, &gone, "held", until).await.unwrap());
        // On another machine the same entry is live until it runs out.
        let elsewhere = Holder {
            host: "elsewhere".into(),
            ..gone.clone()
        };
        assert!(
            write_entry(&store, 2, &elsewhere, "held", until)
                .await
                .unwrap()
        );
        assert!(Lease::acquire(store.clone(), "stedi run").await.is_err());
        assert!(write_entry(&store, 3, &gone, "held", until).await.unwrap());
        Lease::acquire(store, "stedi run")
            .await
            .unwrap()
            .release()
            .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn racing_processes_take_the_lease_once() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let tries = (0..8).map(|i| {
            let store = store.clone();
            async move { Lease::acquire(store, &format!("stedi run {i}")).await }
        });
        let results = futures::future::join_all(tries).await;
        let held: Vec<&Lease> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(held.len(), 1, "{results:?}");
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, StediError::Busy { .. })),
            "{results:?}"
        );
    }
}
