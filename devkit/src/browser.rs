//! A real headless Chromium for tests, driven over WebDriver: Debian's
//! `chromium` and `chromium-driver` (`make browser`, `deploy/browser.sh`),
//! never a browser build downloaded at run time.
//!
//! [`Browser::start`] runs a `chromedriver` of its own on a free loopback
//! port, with a Chromium profile (`--user-data-dir`) of its own in the temp
//! directory: nextest runs every test in its own process, so browsers of
//! parallel tests share nothing. It returns once `GET /status` says ready
//! and a session is open; [`Browser::client`] is the [`fantoccini`] client
//! (re-exported here, so tests need no dependency of their own).
//!
//! Shutting down: killing chromedriver alone orphans the Chromium it
//! launched, so the session is deleted first (chromedriver then quits
//! Chromium). [`Browser::close`] does it the async way; dropping the handle
//! does it with a blocking request, then kills chromedriver and removes the
//! profile. Profiles of test processes killed before that are swept at the
//! next start.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub use fantoccini;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::fleet::test_log_dir;
use crate::wait::{self, WaitError};

/// How long chromedriver may take to answer `GET /status` (well under a
/// second on an idle machine).
const DRIVER_READY_WITHIN: Duration = Duration::from_secs(20);
/// How long opening a session (starting Chromium) may take: seconds on a
/// busy two-core machine running other tests beside it.
const SESSION_WITHIN: Duration = Duration::from_secs(60);
/// How long one readiness probe may take before it counts as "not yet".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the blocking session delete of `Drop` may take (Chromium quits
/// in well under a second); after it chromedriver is killed regardless.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts tried: the port is free when drawn, but another test process may
/// take it before chromedriver binds it, and then chromedriver exits at once.
const STARTS: u32 = 3;
/// Chromium's flags. Headless with no GPU (CI has no display); no sandbox,
/// since the tests run as root, where Chromium refuses to start sandboxed;
/// no `/dev/shm`, which is small in containers and crashes the renderer; a
/// fixed window, so screenshots and layouts are the same on every machine.
const CHROMIUM_ARGS: [&str; 5] =
    ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"];
/// Name prefix of the profiles in the temp directory: `<prefix><pid>-<random>`.
const PROFILE_PREFIX: &str = "scimfleet-chromium-";

/// Why [`Browser::start`] or a [`Browser`] method failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// `chromedriver` is not on `PATH`.
    #[error("no chromedriver on PATH: run `bash deploy/browser.sh` to install chromium and chromedriver")]
    NotInstalled,
    /// chromedriver could not be started (no free loopback port, or spawning failed).
    #[error("could not start chromedriver")]
    Start(#[source] std::io::Error),
    /// The profile directory or a screenshot could not be written.
    #[error("could not write {}", path.display())]
    File {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// chromedriver ended before it answered (its output is the test's stderr).
    #[error("chromedriver exited ({0}) before it answered")]
    Exited(ExitStatus),
    /// chromedriver did not say it was ready in time.
    #[error("chromedriver did not answer GET /status")]
    NotReady(#[source] WaitError),
    /// chromedriver could not open a session (Chromium did not start).
    #[error("chromedriver could not start Chromium")]
    Session(#[source] fantoccini::error::NewSessionError),
    /// Opening the session took longer than allowed.
    #[error("Chromium did not start within {0:?}")]
    SessionTimedOut(Duration),
    /// A WebDriver command failed.
    #[error("WebDriver command failed")]
    Command(#[from] fantoccini::error::CmdError),
}

/// A headless Chromium session with its own chromedriver and profile.
/// Dropping it quits Chromium, kills chromedriver and removes the profile.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    /// The WebDriver session id, until the session is deleted.
    session: Option<String>,
    /// Dropped (killed) after `Browser::drop` has deleted the session.
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver and opens a Chromium session (Chromium at
    /// `chromium` on `PATH` where there is one, else chromedriver's own
    /// choice). On an error chromedriver is killed and its profile removed
    /// (a Chromium still starting when the session timed out may outlive it).
    pub async fn start() -> Result<Self, BrowserError> {
        let program = on_path("chromedriver").ok_or(BrowserError::NotInstalled)?;
        sweep_profiles();
        let mut attempt = 1;
        let driver = loop {
            let mut driver = Driver::spawn(&program)?;
            match driver.wait_ready().await {
                Ok(()) => break driver,
                Err(BrowserError::Exited(_)) if attempt < STARTS => attempt += 1,
                // `driver` is dropped here: killed, its profile removed.
                Err(error) => return Err(error),
            }
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities(on_path("chromium").as_deref(), &driver.profile));
        let url = format!("http://127.0.0.1:{}", driver.port);
        let client = tokio::time::timeout(SESSION_WITHIN, builder.connect(&url))
            .await
            .map_err(|_| BrowserError::SessionTimedOut(SESSION_WITHIN))?
            .map_err(BrowserError::Session)?;
        let session = client.session_id().await?;
        Ok(Self { client, session, driver })
    }

    /// The WebDriver client: `goto`, `find`, `wait`, `execute`...
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Saves a PNG of the viewport as `screenshots/<name>.png` under
    /// [`test_log_dir`] and returns its path. `name` should be unique per
    /// test (the test's name): a later screenshot of the same name replaces
    /// it. Characters other than ASCII letters, digits, `-` and `_` become `_`.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf, BrowserError> {
        let png = self.client.screenshot().await?;
        let dir = test_log_dir().join("screenshots");
        let stem: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let path = dir.join(format!("{stem}.png"));
        let written = match tokio::fs::create_dir_all(&dir).await {
            Ok(()) => tokio::fs::write(&path, png).await,
            Err(error) => Err(error),
        };
        written.map_err(|source| BrowserError::File { path: path.clone(), source })?;
        Ok(path)
    }

    /// Deletes the session (Chromium quits), then kills chromedriver and
    /// removes the profile. Errors mean the browser is gone already.
    pub async fn close(mut self) {
        if self.session.take().is_some() {
            let _ = self.client.clone().close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // `Drop` cannot await, and the client's own delete-on-drop runs on
        // the runtime later (or never, at the end of a test): delete the
        // session by hand, blocking, before `driver` is dropped and killed.
        if let Some(session) = self.session.take() {
            let _ = delete_session(self.driver.port, &session);
        }
    }
}

/// A running chromedriver and the profile its Chromium uses; dropping it
/// kills and reaps chromedriver and removes the profile.
#[derive(Debug)]
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    /// Runs `program` on a port drawn now, with a fresh profile directory.
    fn spawn(program: &Path) -> Result<Self, BrowserError> {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .map_err(BrowserError::Start)?
            .port();
        let random = hex::encode(rand::random::<[u8; 8]>());
        let profile = std::env::temp_dir().join(format!("{PROFILE_PREFIX}{}-{random}", std::process::id()));
        std::fs::create_dir_all(&profile)
            .map_err(|source| BrowserError::File { path: profile.clone(), source })?;
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            // Only the start-up banner goes to stdout; warnings and errors
            // go to stderr, which the test runner shows with a failure.
            .stdout(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&profile);
                return Err(BrowserError::Start(source));
            }
        };
        Ok(Self { child, port, profile })
    }

    /// Polls `GET /status` until it says `ready`, failing at once if the
    /// process ends (the port was taken).
    async fn wait_ready(&mut self) -> Result<(), BrowserError> {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let mut exited = None;
        let ready = wait::until("chromedriver to answer GET /status", DRIVER_READY_WITHIN, async || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return Err("the process exited");
            }
            let Ok(answer) = http.get(&url).timeout(PROBE_TIMEOUT).send().await else { return Ok(false) };
            let status = answer.json::<serde_json::Value>().await.unwrap_or_default();
            Ok(status["value"]["ready"] == true)
        })
        .await;
        match (ready, exited) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(status)) => Err(BrowserError::Exited(status)),
            (Err(source), None) => Err(BrowserError::NotReady(source)),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // An error means it has already exited; `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `goog:chromeOptions` with [`CHROMIUM_ARGS`], the profile and, when
/// given, the Chromium executable.
fn capabilities(chromium: Option<&Path>, profile: &Path) -> Capabilities {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| (*arg).to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut options = serde_json::json!({ "args": args });
    if let Some(binary) = chromium {
        options["binary"] = serde_json::json!(binary);
    }
    Capabilities::from_iter([("goog:chromeOptions".to_owned(), options)])
}

/// WebDriver's Delete Session, by hand over blocking TCP: chromedriver
/// answers once Chromium has quit, so reading the first bytes of the
/// answer waits for that.
fn delete_session(port: u16, session: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), QUIT_TIMEOUT)?;
    stream.set_read_timeout(Some(QUIT_TIMEOUT))?;
    stream.set_write_timeout(Some(QUIT_TIMEOUT))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let _answered = stream.read(&mut [0; 512])?;
    Ok(())
}

/// The first file named `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// Removes the profiles of test processes that no longer run (killed before
/// dropping their `Browser`). Only where `/proc` tells which processes run.
fn sweep_profiles() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|name| name.strip_prefix(PROFILE_PREFIX)?.split('-').next());
        if let Some(pid) = pid.filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
