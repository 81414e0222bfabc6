//! S3 for the tests: a real S3-compatible server (SeaweedFS) on 127.0.0.1.
//!
//! `.ci/run` starts one for the whole run and names it in `STEDI_TEST_S3_*`; tests that
//! need a server of their own (to stop it in the middle of a run) start one with the
//! `weed` binary named by `STEDI_WEED`. Where neither is configured the S3 tests print a
//! notice and skip; `STEDI_REQUIRE_S3=1` (set by `.ci/run`) makes that a failure.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use stedi::lakehouse::Settings;

/// A bucket on an S3-compatible server and the keys to it.
#[derive(Debug, Clone)]
pub struct S3 {
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub secret: String,
    /// Keys that may read and list the bucket, not write to it.
    pub reader: Option<(String, String)>,
}

fn required() -> bool {
    std::env::var("STEDI_REQUIRE_S3").is_ok_and(|v| v == "1")
}

impl S3 {
    /// The server `.ci/run` started, or `None` (with a printed notice) where there is none.
    pub fn shared() -> Option<S3> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (
            var("STEDI_TEST_S3_ENDPOINT"),
            var("STEDI_TEST_S3_BUCKET"),
            var("STEDI_TEST_S3_KEY"),
            var("STEDI_TEST_S3_SECRET"),
        ) {
            (Some(endpoint), Some(bucket), Some(key), Some(secret)) => Some(S3 {
                endpoint,
                bucket,
                key,
                secret,
                reader: var("STEDI_TEST_S3_READER_KEY").zip(var("STEDI_TEST_S3_READER_SECRET")),
            }),
            _ => {
                assert!(
                    !required(),
                    "an S3 test server is required (STEDI_REQUIRE_S3=1) but STEDI_TEST_S3_ENDPOINT is not set"
                );
                eprintln!(
                    "notice: skipping: no S3 test server (set STEDI_TEST_S3_ENDPOINT, _BUCKET, _KEY, _SECRET, or run .ci/run)"
                );
                None
            }
        }
    }

    /// A fresh lakehouse location in the bucket.
    pub fn location(&self, name: &str) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("s3://{}/{name}-{}", self.bucket, &id[..8])
    }

    /// The `AWS_*` variables of this server, as a child process gets them.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_with(&self.key, &self.secret)
    }

    /// The variables with other keys.
    pub fn env_with(&self, key: &str, secret: &str) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            // Fail fast when the server is stopped on purpose.
            ("AWS_MAX_ATTEMPTS", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Settings for opening a lakehouse on this server in-process, secrets in `secrets`.
    pub fn settings(&self, secrets: &Path) -> Settings {
        Settings {
            storage: self
                .env()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect::<HashMap<_, _>>(),
            secrets: Some(secrets.join("secrets")),
        }
    }

    /// The bucket, as a store of its own (to look at what a lakehouse wrote).
    pub fn bucket_store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(&self.bucket)
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(&self.key)
                .with_secret_access_key(&self.secret)
                .build()
                .unwrap(),
        )
    }
}

/// Runs the `stedi` binary on a lakehouse on `s3`, secrets in `secrets`.
pub fn stedi_on(s3: &S3, lakehouse: &str, secrets: &Path, args: &[&str]) -> std::process::Output {
    command_on(s3, lakehouse, secrets, args).output().unwrap()
}

/// The command line of [`stedi_on`], to start it in the background.
pub fn command_on(s3: &S3, lakehouse: &str, secrets: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stedi"));
    command
        .arg("--lakehouse")
        .arg(lakehouse)
        .args(args)
        .env_remove("STEDI_LAKEHOUSE")
        .envs(s3.env())
        .env("STEDI_SECRETS", secrets.join("secrets"));
    command
}

/// A SeaweedFS server of a test's own, on free ports of 127.0.0.1, stopped when dropped
/// (and killed with the test process, whatever happens).
pub struct Weed {
    binary: PathBuf,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    child: Option<Child>,
    pub s3: S3,
}

/// Free ports on 127.0.0.1 (chosen by the system, then released for the server).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Weed {
    /// Starts a server, or `None` (with a notice) where no `weed` binary is configured.
    pub fn start() -> Option<Weed> {
        let Some(binary) = std::env::var_os("STEDI_WEED").map(PathBuf::from) else {
            assert!(
                !required(),
                "a weed binary is required (STEDI_REQUIRE_S3=1) but STEDI_WEED is not set"
            );
            eprintln!("notice: skipping: no SeaweedFS binary (set STEDI_WEED to `weed`)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s3.json"),
            r#"{"identities":[{"name":"stedi","credentials":[{"accessKey":"k","secretKey":"s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}"#,
        )
        .unwrap();
        // The admin server's gRPC port is its port + 10000: keep the admin port low.
        let ports = loop {
            let ports = free_ports(9);
            if ports[8] < 55000 {
                break ports;
            }
        };
        let port = ports[6];
        let mut weed = Weed {
            binary,
            dir,
            ports,
            child: None,
            s3: S3 {
                endpoint: format!("http://127.0.0.1:{port}"),
                bucket: "stedi-test".into(),
                key: "k".into(),
                secret: "s".into(),
                reader: None,
            },
        };
        weed.start_again();
        Some(weed)
    }

    /// Starts the server (again, after [`Weed::stop`]) on the same ports and data, and
    /// waits until its bucket answers.
    pub fn start_again(&mut self) {
        let p = &self.ports;
        let d = self.dir.path();
        let arg = |name: &str, value: String| format!("-{name}={value}");
        let mut command = Command::new(&self.binary);
        command
            .arg("mini")
            .arg(arg("dir", d.join("data").display().to_string()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(arg("master.port", p[0].to_string()))
            .arg(arg("master.port.grpc", p[1].to_string()))
            .arg(arg("volume.port", p[2].to_string()))
            .arg(arg("volume.port.grpc", p[3].to_string()))
            .arg(arg("filer.port", p[4].to_string()))
            .arg(arg("filer.port.grpc", p[5].to_string()))
            .arg(arg(
                "filer.localSocket",
                d.join("filer.sock").display().to_string(),
            ))
            .arg(arg("s3.port", p[6].to_string()))
            .arg(arg("s3.port.grpc", p[7].to_string()))
            .arg(arg(
                "s3.localSocket",
                d.join("s3.sock").display().to_string(),
            ))
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-admin.ui=false",
            ])
            .arg(arg("admin.port", p[8].to_string()))
            .arg(arg("admin.port.grpc", (p[8] + 10000).to_string()))
            .args([
                "-master.telemetry=false",
                "-s3.autoCreateBucket=false",
                "-bucket=stedi-test",
            ])
            .arg(arg("s3.config", d.join("s3.json").display().to_string()))
            .env("TMPDIR", d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The server dies with the test, even if the test panics or is killed.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(command.spawn().unwrap());
        // Waited for on a thread of its own: callers may be inside a runtime.
        let store = self.s3.bucket_store();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ready = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(2), store.list_with_delimiter(None))
                        .await
                        .is_ok_and(|r| r.is_ok())
                });
                if ready {
                    return;
                }
                assert!(Instant::now() < deadline, "SeaweedFS did not start in 60 s");
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .join()
        .unwrap();
    }

    /// Stops the server at once (as a crash would), keeping its data for a restart.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Sockets it leaves behind when killed.
        let admin = self.ports[8] + 10000;
        for port in self.ports.iter().chain([&admin]) {
            for kind in ["master", "volume", "filer", "s3", "admin"] {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{kind}-grpc-{port}.sock"));
            }
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}
