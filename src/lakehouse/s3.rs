//! An S3 (or S3-compatible) bucket as the home of a lakehouse, configured the way every
//! AWS tool is: the SDK's credential chain, region and endpoint settings.
//!
//! `object_store` reads `AWS_*` variables but not profiles (`AWS_PROFILE`,
//! `~/.aws/config`, `~/.aws/credentials`), SSO or `credential_process`. The AWS SDK's own
//! chain reads all of them, web identity and instance metadata included, so the store
//! asks it for credentials (cached until shortly before they expire: the store asks for
//! them on every request). Nothing here parses a credential file.
//!
//! What the user sets is the AWS convention and nothing of ours:
//!
//! | variable | what it does |
//! |---|---|
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | static credentials |
//! | `AWS_PROFILE` (and `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`) | a profile of `~/.aws/config` / `credentials` |
//! | `AWS_REGION` / `AWS_DEFAULT_REGION` | the bucket's region (else the profile's) |
//! | `AWS_ENDPOINT_URL` (`AWS_ENDPOINT_URL_S3`), `AWS_ALLOW_HTTP=true` | an S3-compatible store (MinIO, SeaweedFS, R2, Ceph) |
//! | `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true` | `bucket.host` addressing instead of `host/bucket` |
//! | `AWS_MAX_ATTEMPTS` | attempts per request, retries of 5xx/503 SlowDown/timeouts/resets included (default 5) |

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredential};
use object_store::{BackoffConfig, ClientOptions, CredentialProvider, ObjectStore, RetryConfig};
use url::Url;

use super::requests::{CountingConnector, Requests};

/// Credentials are refreshed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Attempts per request unless `AWS_MAX_ATTEMPTS` says otherwise.
const DEFAULT_ATTEMPTS: usize = 5;

/// The longest a request is retried for: an unreachable endpoint fails within it.
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// The store of the bucket `url` names (not yet rooted at the lakehouse's prefix), with
/// every request counted in `requests`.
pub async fn bucket_store(
    url: &Url,
    options: &HashMap<String, String>,
    requests: Arc<Requests>,
) -> object_store::Result<Arc<dyn ObjectStore>> {
    let option = |key: &str| options.get(key).filter(|v| !v.is_empty()).cloned();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    // A region given up front spares the SDK its search (instance metadata off EC2).
    if let Some(region) = option("aws_region").or_else(|| option("aws_default_region")) {
        loader = loader.region(aws_config::Region::new(region));
    }
    let sdk = loader.load().await;

    let bucket_url = format!("s3://{}", url.host_str().unwrap_or_default());
    let mut builder = AmazonS3Builder::new()
        .with_url(bucket_url)
        .with_client_options(
            ClientOptions::new()
                .with_timeout(Duration::from_secs(120))
                .with_connect_timeout(Duration::from_secs(5)),
        );
    for (key, value) in options {
        // `AWS_PROFILE` and other settings of the SDK alone are not object_store's.
        if let Ok(key) = key.parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value.clone());
        }
    }
    if builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .is_none()
        && let Some(region) = sdk.region()
    {
        builder = builder.with_region(region.as_ref());
    }
    if builder
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .is_none()
        && let Some(endpoint) = sdk.endpoint_url()
    {
        builder = builder.with_endpoint(endpoint);
    }
    let unsigned = builder
        .get_config_value(&AmazonS3ConfigKey::SkipSignature)
        .is_some_and(|v| v == "true");
    let static_keys = builder
        .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
        .is_some();
    if !unsigned
        && !static_keys
        && let Some(provider) = sdk.credentials_provider()
    {
        builder = builder.with_credentials(Arc::new(SdkCredentials::new(provider)));
    }
    let attempts = option("aws_max_attempts")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_ATTEMPTS)
        .max(1);
    let builder = builder
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: attempts - 1,
            retry_timeout: RETRY_TIMEOUT,
        })
        .with_http_connector(CountingConnector::new(requests));
    Ok(Arc::new(builder.build()?))
}

/// The SDK's credential chain as `object_store` asks for credentials: once per request,
/// answered from a cache until shortly before the credentials expire.
#[derive(Debug)]
struct SdkCredentials {
    provider: SharedCredentialsProvider,
    /// One refresh at a time; the lock is held across it.
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl SdkCredentials {
    fn new(provider: SharedCredentialsProvider) -> Self {
        SdkCredentials {
            provider,
            cached: tokio::sync::Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some((credential, expiry)) = cached.as_ref() {
            let fresh = match expiry {
                // Static keys (variables, a profile's keys) do not expire.
                None => true,
                Some(at) => at
                    .duration_since(now)
                    .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY),
            };
            if fresh {
                return Ok(Arc::clone(credential));
            }
        }
        match self.provider.provide_credentials().await {
            Ok(c) => {
                let credential = Arc::new(AwsCredential {
                    key_id: c.access_key_id().to_string(),
                    secret_key: c.secret_access_key().to_string(),
                    token: c.session_token().map(str::to_string),
                });
                *cached = Some((Arc::clone(&credential), c.expiry()));
                Ok(credential)
            }
            Err(e) => {
                // Keep using credentials that have not expired yet.
                if let Some((credential, Some(at))) = cached.as_ref()
                    && *at > now
                {
                    return Ok(Arc::clone(credential));
                }
                Err(object_store::Error::Unauthenticated {
                    path: String::new(),
                    source: Box::new(e),
                })
            }
        }
    }
}
