//! What a command costs on object storage: every HTTP request the store sends (retries,
//! list pages and upload parts each count), by kind, and the bytes it moved.
//!
//! On S3 requests are billed and each one waits a round trip, so a change that reads
//! every data file's footer again on each run shows here first: tests bound the requests
//! of a run with nothing new, and `STEDI_LOG=stedi=info` prints each command's figures.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

/// Requests sent and bytes moved so far.
#[derive(Debug, Default)]
pub struct Requests {
    list: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    post: AtomicU64,
    delete: AtomicU64,
    read: AtomicU64,
    written: AtomicU64,
}

/// A copy of the counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// LIST requests (one per page of up to 1,000 keys).
    pub list: u64,
    /// GET requests, ranges included.
    pub get: u64,
    /// HEAD requests.
    pub head: u64,
    /// PUT requests: objects, commits, upload parts.
    pub put: u64,
    /// POST requests: starting and completing multipart uploads, bulk deletes.
    pub post: u64,
    /// DELETE requests (aborted uploads included).
    pub delete: u64,
    /// Bytes received in response bodies.
    pub bytes_read: u64,
    /// Bytes sent in request bodies.
    pub bytes_written: u64,
}

impl RequestCounts {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.list + self.get + self.head + self.put + self.post + self.delete
    }

    /// What was sent between `earlier` and `self`.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            list: self.list - earlier.list,
            get: self.get - earlier.get,
            head: self.head - earlier.head,
            put: self.put - earlier.put,
            post: self.post - earlier.post,
            delete: self.delete - earlier.delete,
            bytes_read: self.bytes_read - earlier.bytes_read,
            bytes_written: self.bytes_written - earlier.bytes_written,
        }
    }
}

impl fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests (LIST {}, GET {}, HEAD {}, PUT {}, POST {}, DELETE {}), {} bytes read, {} written",
            self.total(),
            self.list,
            self.get,
            self.head,
            self.put,
            self.post,
            self.delete,
            self.bytes_read,
            self.bytes_written
        )
    }
}

impl Requests {
    /// The counts now.
    pub fn counts(&self) -> RequestCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RequestCounts {
            list: get(&self.list),
            get: get(&self.get),
            head: get(&self.head),
            put: get(&self.put),
            post: get(&self.post),
            delete: get(&self.delete),
            bytes_read: get(&self.read),
            bytes_written: get(&self.written),
        }
    }
}

/// Makes the HTTP clients of a store, each counting what it sends into one [`Requests`].
#[derive(Debug)]
pub struct CountingConnector {
    requests: Arc<Requests>,
}

impl CountingConnector {
    /// A connector counting into `requests`.
    pub fn new(requests: Arc<Requests>) -> Self {
        CountingConnector { requests }
    }
}

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Counting {
            inner,
            requests: Arc::clone(&self.requests),
        }))
    }
}

#[derive(Debug)]
struct Counting {
    inner: HttpClient,
    requests: Arc<Requests>,
}

#[async_trait::async_trait]
impl HttpService for Counting {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let r = &self.requests;
        let query = req.uri().query().unwrap_or("");
        let is_get = req.method().as_str() == "GET";
        let counter = match req.method().as_str() {
            // ListObjectsV2.
            "GET" if query.contains("list-type=2") => &r.list,
            "GET" => &r.get,
            "HEAD" => &r.head,
            "PUT" => &r.put,
            "DELETE" => &r.delete,
            _ => &r.post,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        r.written
            .fetch_add(req.body().content_length() as u64, Ordering::Relaxed);
        let response = self.inner.execute(req).await?;
        // A HEAD's length is the object's, not bytes received.
        if !is_get {
            return Ok(response);
        }
        let length = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        r.read.fetch_add(length, Ordering::Relaxed);
        Ok(response)
    }
}
