//! An independent SCIM 2.0 server for interop tests: python-scim's
//! [`scim2-server`](https://pypi.org/project/scim2-server/), run as a child
//! process, beside devkit's own [`scim_server`](crate::scim_server).
//!
//! Our test server shares its authors' reading of RFC 7643/7644 with the
//! client it tests; a server written by others does not, so provisioning
//! against both catches what one reading alone would miss. `make scim2`
//! (`deploy/scim2-server.sh`) installs the pinned version in a venv under
//! `target/`; [`Scim2Server::start`] runs it on a free loopback port with a
//! random bearer token and the schemas of `devkit/fixtures/scim2/`: RFC 7643's
//! (as scim2-server serves them by default) plus the custom extension
//! [`ACME_USER_SCHEMA`], which the `User` resource type lists beside the
//! enterprise one. Dropping the handle kills and reaps the process.
//!
//! What the server does that ours may not: PATCH answers `204 No Content`
//! (`200` with the resource only when `attributes=` is asked for), every
//! resource has a weak ETag (`W/"<n>"`, from one counter across resources)
//! and `If-Match` is enforced (`412`), `userName` and other `caseExact: false`
//! attributes compare case-insensitively in filters and uniqueness (`409`),
//! and a `User`'s `groups` stays empty when a group lists it as a member.
//!
//! Its output (one access-log line per request, URLs with their filters)
//! goes to the `scim2-server/` subdirectory of
//! [`test_log_dir`]: it is an app's log, which
//! may hold the test people's data like any app's, so it is kept out of the
//! suite's check of scimfleet's own logs, which reads only the top level.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use crate::fleet::test_log_dir;
use crate::wait::{self, WaitError};

/// The custom extension of `User` that the fixtures add: `badgeId`
/// (string), `clearance` (integer) and `remote` (boolean), all singular and
/// `readWrite`.
pub use crate::scim_server::ACME_USER_SCHEMA;

/// How long the server may take to answer once started (Python's start-up
/// and pydantic's model building take about a second on an idle machine).
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long one readiness probe may take before it counts as "not yet".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of a probe's answer read (the configuration is about 1 KiB).
const MAX_PROBE_ANSWER: u64 = 64 * 1024;
/// Starts tried: the port is free when drawn, but another process may take
/// it before the server binds it, and then the server exits at once.
const STARTS: u32 = 3;

/// Why [`Scim2Server::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Scim2Error {
    /// The executable is missing.
    #[error("no scim2-server at {}: run `make scim2` (or `bash deploy/scim2-server.sh`)", path.display())]
    NotInstalled {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// No free loopback port could be drawn.
    #[error("could not draw a free loopback port")]
    Port(#[source] std::io::Error),
    /// The log file could not be created.
    #[error("could not create the scim2-server log {}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error("could not start {}", path.display())]
    Spawn {
        /// The executable.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process ended before it answered.
    #[error("scim2-server exited ({status}) before it answered; its output is in {}", log.display())]
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// Its output.
        log: PathBuf,
    },
    /// It did not answer `200` in time (the process is killed).
    #[error("scim2-server did not answer; its output is in {}", log.display())]
    NotReady {
        /// Its output.
        log: PathBuf,
        /// The wait that gave up.
        #[source]
        source: WaitError,
    },
}

/// A running scim2-server; dropping it kills and reaps the process.
pub struct Scim2Server {
    child: Child,
    base_url: Url,
    /// Sent as `Authorization: Bearer <token>`; never printed.
    token: String,
    log: PathBuf,
}

impl fmt::Debug for Scim2Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scim2Server")
            .field("pid", &self.child.id())
            .field("base_url", &self.base_url.as_str())
            .field("token", &"<redacted>")
            .field("log", &self.log)
            .finish()
    }
}

impl Scim2Server {
    /// Starts the server with the fixtures' schemas and resource types and a
    /// fresh random token, and returns once `GET /v2/ServiceProviderConfig`
    /// answers `200` (within 20 s). On any error no process is left running.
    pub async fn start() -> Result<Self, Scim2Error> {
        Self::start_program(&executable()).await
    }

    /// [`Scim2Server::start`] with the executable `program`.
    async fn start_program(program: &Path) -> Result<Self, Scim2Error> {
        if !program.is_file() {
            return Err(Scim2Error::NotInstalled { path: program.to_owned() });
        }
        let mut attempt = 1;
        loop {
            let mut server = Self::spawn(program)?;
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                Err(Scim2Error::Exited { .. }) if attempt < STARTS => attempt += 1,
                // `server` is dropped here: the process is killed.
                Err(error) => return Err(error),
            }
        }
    }

    /// The SCIM base URL, `http://127.0.0.1:<port>/v2` (no trailing slash):
    /// append `/Users`, `/Groups`, `/Schemas`...
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// The bearer token the server accepts (and the only one).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The file holding the server's output.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// Runs the executable on a port drawn now, its output to a fresh file.
    fn spawn(program: &Path) -> Result<Self, Scim2Error> {
        let port = free_port().map_err(Scim2Error::Port)?;
        let token = hex::encode(rand::random::<[u8; 24]>());
        let dir = test_log_dir().join("scim2-server");
        let log = dir.join(format!("{}-{port}.log", std::process::id()));
        let output = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::File::create(&log))
            .map_err(|source| Scim2Error::Log { path: log.clone(), source })?;
        let errors = output.try_clone().map_err(|source| Scim2Error::Log { path: log.clone(), source })?;
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scim2");
        let child = Command::new(program)
            .arg("--schema")
            .arg(fixtures.join("schemas.json"))
            .arg("--resource-type")
            .arg(fixtures.join("resource-types.json"))
            // On the command line: visible to `ps` on this machine, for a
            // throwaway token of a loopback test server.
            .args(["--bearer-token", &token, "--hostname", "127.0.0.1", "--port", &port.to_string()])
            // Each line reaches the log as written, also when the process is killed.
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|source| Scim2Error::Spawn { path: program.to_owned(), source })?;
        let base_url = Url::parse(&format!("http://127.0.0.1:{port}/v2")).expect("a valid URL");
        Ok(Self { child, base_url, token, log })
    }

    /// Polls the service provider configuration until it answers `200`,
    /// failing at once if the process ends.
    async fn wait_ready(&mut self) -> Result<(), Scim2Error> {
        let mut exited = None;
        let ready = wait::until("scim2-server to answer", READY_WITHIN, async || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return Err("the process exited");
            }
            Ok(probe(&self.base_url, &self.token).await == Some(200))
        })
        .await;
        match (ready, exited) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(status)) => Err(Scim2Error::Exited { status, log: self.log.clone() }),
            (Err(source), None) => Err(Scim2Error::NotReady { log: self.log.clone(), source }),
        }
    }
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        // An error means it has already exited; `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<workspace>/target/scim2-server/venv/bin/scim2-server`, unless
/// `SCIMFLEET_SCIM2_SERVER` names the executable or `SCIM2_VENV` the venv
/// (relative to the workspace root, where `make scim2` runs).
fn executable() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Some(program) = std::env::var_os("SCIMFLEET_SCIM2_SERVER").filter(|p| !p.is_empty()) {
        return root.join(program);
    }
    let venv = std::env::var_os("SCIM2_VENV")
        .filter(|p| !p.is_empty())
        .map_or_else(|| root.join("target/scim2-server/venv"), |venv| root.join(venv));
    venv.join("bin/scim2-server")
}

/// A loopback port nothing listens on now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The status of `GET <base>/ServiceProviderConfig` with the token, or
/// `None` when there is no answer (yet). By hand over TCP: devkit's own
/// code has no HTTP client (reqwest is a dev-dependency only), and a status
/// line is all this needs; the server speaks HTTP/1.0 and closes after it.
async fn probe(base_url: &Url, token: &str) -> Option<u16> {
    let host = base_url.host_str()?;
    let port = base_url.port()?;
    let request = format!(
        "GET {}/ServiceProviderConfig HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/scim+json\r\nConnection: close\r\n\r\n",
        base_url.path()
    );
    let exchange = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        // Read to the end (a small JSON document), so the server never
        // writes to a closed connection and logs a broken pipe.
        let mut answer = Vec::new();
        stream.take(MAX_PROBE_ANSWER).read_to_end(&mut answer).await.ok()?;
        status_code(&answer)
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange).await.ok().flatten()
}

/// The code of an HTTP status line (`HTTP/1.0 200 OK`).
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let mut parts = std::str::from_utf8(line).ok()?.split(' ');
    parts.next().filter(|version| version.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

    async fn send(server: &Scim2Server, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth(server.token())
            .header("Content-Type", "application/scim+json")
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("a body");
        (status, if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON") })
    }

    #[tokio::test]
    async fn serves_the_acme_extension_and_stops_on_drop() {
        let server = Scim2Server::start().await.expect("scim2-server starts");
        let base = server.base_url();
        assert!(base.as_str().ends_with("/v2"), "{base}");
        let http = reqwest::Client::new();

        let (status, schemas) = send(&server, http.get(format!("{base}/Schemas"))).await;
        assert_eq!(status, 200, "{schemas}");
        let acme = schemas["Resources"]
            .as_array()
            .expect("a list")
            .iter()
            .find(|s| s["id"] == ACME_USER_SCHEMA)
            .expect("the acme extension is served");
        assert_eq!(acme["name"], "AcmeUser");
        let attributes: Vec<(&str, &str)> = acme["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .map(|a| (a["name"].as_str().unwrap_or("?"), a["type"].as_str().unwrap_or("?")))
            .collect();
        assert_eq!(attributes, [("badgeId", "string"), ("clearance", "integer"), ("remote", "boolean")]);

        let user = json!({
            "schemas": [USER, ACME_USER_SCHEMA],
            "userName": "interop-1",
            ACME_USER_SCHEMA: {"badgeId": "B-42", "clearance": 2, "remote": true},
        });
        let (status, created) = send(&server, http.post(format!("{base}/Users")).json(&user)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().expect("an id");
        let patch = json!({
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": format!("{ACME_USER_SCHEMA}:clearance"), "value": 3}],
        });
        let (status, _) = send(&server, http.patch(format!("{base}/Users/{id}")).json(&patch)).await;
        assert_eq!(status, 204, "scim2-server answers PATCH without a body");
        let (status, read) = send(&server, http.get(format!("{base}/Users/{id}"))).await;
        assert_eq!(status, 200, "{read}");
        assert_eq!(read[ACME_USER_SCHEMA], json!({"badgeId": "B-42", "clearance": 3, "remote": true}));

        let (status, _) = send(&server, http.get(format!("{base}/Users")).bearer_auth("wrong")).await;
        assert_eq!(status, 401, "only the server's token is accepted");

        let port = base.port().expect("a port");
        drop(server);
        let refused = std::net::TcpStream::connect(("127.0.0.1", port)).expect_err("nothing listens");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn a_missing_server_says_how_to_install_it() {
        let error = Scim2Server::start_program(Path::new("/nowhere/scim2-server")).await.expect_err("fails");
        assert!(matches!(error, Scim2Error::NotInstalled { .. }), "{error:?}");
        assert!(error.to_string().contains("make scim2"), "{error}");
    }

    #[tokio::test]
    async fn a_server_that_exits_is_reported_at_once_with_its_log() {
        let started = tokio::time::Instant::now();
        let error = Scim2Server::start_program(Path::new("/bin/false")).await.expect_err("fails");
        let Scim2Error::Exited { status, ref log } = error else { panic!("{error:?}") };
        assert!(!status.success());
        assert!(log.is_file(), "{}", log.display());
        assert!(started.elapsed() < READY_WITHIN / 2, "{:?}", started.elapsed());
    }

    #[test]
    fn reads_the_status_code_of_a_status_line() {
        assert_eq!(status_code(b"HTTP/1.0 200 OK\r\nServer: x\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.1 401 Unauthorized\r\n"), Some(401));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
    }
}
