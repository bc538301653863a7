//! The operator console's pages at size: `BENCH_CONSOLE_APPS` apps (100;
//! 20 with `BENCH_QUICK`) and `BENCH_CONSOLE_DEAD_LETTERS` dead letters
//! (10,000; 1,000 quick; 0 skips the scenario) in one app's dead-letter
//! queue, on the real RabbitMQ and Redis.
//!
//! An idle fleet (no worker, no scheduler: nothing moves while pages are
//! read) is given the dead letters, published with confirms as the worker
//! dead-letters a job (envelope headers and all). The console runs in this
//! process without sign-in; each page is requested `BENCH_CONSOLE_SAMPLES`
//! times (20) one after the other, as an operator pages, and its server
//! time is read from the answer's `Server-Timing` header (the console's own
//! measure of the request, from routing to the last byte of the page
//! built): the fleet, the dead letters' first page (read live), their
//! middle and last page (from the listing the first deep page read and
//! holds, `console::views`), approvals, leavers and sweeps. Apart, and not
//! under the target: the first read of a deep page, which reads the whole
//! queue (`BENCH_CONSOLE_FIRST_READS` times, 5, each on a console holding
//! nothing); RabbitMQ alone takes 130 to 320 ms to deliver 10,000
//! quorum-queue messages on this project's 2-core machines.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use tokio_util::sync::CancellationToken;

use crate::measure::Percentiles;
use crate::params::{flag, number};

/// Figures of the scenario.
#[derive(Debug)]
pub struct Pages {
    /// Apps configured.
    pub apps: usize,
    /// Dead letters in the first app's queue.
    pub dead_letters: usize,
    /// Server time per page: (page, percentiles).
    pub pages: Vec<(String, Percentiles)>,
    /// Server time of a deep page's first read (the whole queue), not under the target.
    pub first_read: Percentiles,
}

impl Pages {
    /// The figures as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let pages: Vec<serde_json::Value> = self
            .pages
            .iter()
            .map(|(page, p)| serde_json::json!({ "page": page, "server_time": p.to_json() }))
            .collect();
        serde_json::json!({
            "apps": self.apps,
            "dead_letters": self.dead_letters,
            "pages": pages,
            "deep_page_first_read": self.first_read.to_json(),
        })
    }

    /// The slowest page's p99, ms.
    pub fn worst_p99_ms(&self) -> f64 {
        self.pages.iter().map(|(_, p)| p.p99_ms).fold(0.0, f64::max)
    }
}

/// The scenario's size; `None` when skipped.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Apps configured.
    pub apps: usize,
    /// Dead letters in the first app's queue.
    pub dead_letters: usize,
    /// Requests per page.
    pub samples: usize,
    /// First reads of a deep page.
    pub first_reads: usize,
}

/// The scenario's size from the environment; `None` when skipped.
pub fn size() -> anyhow::Result<Option<Size>> {
    let lookup = |name: &str| std::env::var(name).ok();
    let quick = flag(&lookup, "BENCH_QUICK")?;
    let pick = |full: usize, small: usize| if quick { small } else { full };
    let dead_letters = number(&lookup, "BENCH_CONSOLE_DEAD_LETTERS", pick(10_000, 1_000), 0, 1_000_000)?;
    let size = Size {
        apps: number(&lookup, "BENCH_CONSOLE_APPS", pick(100, 20), 1, 1_000)?,
        dead_letters,
        samples: number(&lookup, "BENCH_CONSOLE_SAMPLES", 20, 1, 10_000)?,
        first_reads: number(&lookup, "BENCH_CONSOLE_FIRST_READS", 5, 1, 1_000)?,
    };
    Ok((dead_letters > 0).then_some(size))
}

/// Runs the scenario.
pub async fn run(size: Size) -> anyhow::Result<Pages> {
    // One retry tier and no re-check: four quorum queues per app, not ten,
    // which is what declaring and deleting costs the broker here; the pages
    // read the same figures whatever the number of delay queues.
    let settings = "[worker]\nretry_tiers_ms = [1000]\n[verification]\nrecheck = []\n";
    let policy = (1..=size.apps)
        .fold(PolicyBuilder::new().settings(settings), |b, n| b.app(&format!("app{n:03}"), ""))
        .build();
    let fleet = Fleet::start_idle(&policy).await.map_err(|e| anyhow::anyhow!(e)).context("an idle fleet")?;
    let first = fleet.config.apps[0].id.clone();
    fleet
        .dead_letter(first.as_str(), 0..size.dead_letters)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("dead letters")?;
    let mut config = (*fleet.config).clone();
    config.console.auth = scimfleet_runtime::config::ConsoleAuth::None;
    let config = Arc::new(config);

    let per_page = fleet.config.console.page_size;
    let last = size.dead_letters.div_ceil(per_page).max(1);
    let dlq = |page: usize| format!("/dead-letters?app={first}&page={page}");
    // A console holding nothing reads the whole queue for a deep page.
    let mut first_reads = Vec::with_capacity(size.first_reads);
    for _ in 0..size.first_reads {
        let fresh = Served::start(config.clone()).await?;
        first_reads.push(fresh.time(&dlq(last.div_ceil(2))).await?);
        fresh.stop.cancel();
    }

    let console = Served::start(config).await?;
    let paths = [
        ("fleet".to_owned(), "/".to_owned()),
        ("dead letters, first page".to_owned(), dlq(1)),
        ("dead letters, middle page".to_owned(), dlq(last.div_ceil(2))),
        ("dead letters, last page".to_owned(), dlq(last)),
        ("approvals".to_owned(), "/approvals".to_owned()),
        ("leavers".to_owned(), "/leavers".to_owned()),
        ("sweeps".to_owned(), "/sweeps".to_owned()),
    ];
    let mut pages = Vec::with_capacity(paths.len());
    for (name, path) in paths {
        if name == "dead letters, middle page" {
            // The first deep page an operator opens reads the queue whole
            // (measured apart above); the pages after it are measured here.
            console.time(&path).await?;
        }
        let mut times = Vec::with_capacity(size.samples);
        for _ in 0..size.samples {
            times.push(console.time(&path).await?);
        }
        pages.push((name, Percentiles::of(&times)));
    }
    console.stop.cancel();
    fleet.stop().await.map_err(|e| anyhow::anyhow!(e))?;
    Ok(Pages {
        apps: size.apps,
        dead_letters: size.dead_letters,
        pages,
        first_read: Percentiles::of(&first_reads),
    })
}

/// A console served in this process, and a session on it.
struct Served {
    base: String,
    client: reqwest::Client,
    cookie: String,
    stop: CancellationToken,
}

impl Served {
    async fn start(config: Arc<scimfleet_runtime::Config>) -> anyhow::Result<Self> {
        let console = scimfleet_console::Console::new(config).context("the console")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        tokio::spawn(scimfleet_console::serve(listener, console, stop.clone()));
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let opened = client.get(format!("{base}/")).send().await?;
        let cookie = opened
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("the console opened no session")?
            .to_owned();
        Ok(Self { base, client, cookie, stop })
    }

    /// The server time of one request of `path`.
    async fn time(&self, path: &str) -> anyhow::Result<Duration> {
        let answer =
            self.client.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await?;
        anyhow::ensure!(answer.status().is_success(), "{path} answered {}", answer.status());
        let time = server_time(&answer).with_context(|| format!("{path} sent no Server-Timing"))?;
        let _body = answer.bytes().await?;
        Ok(time)
    }
}

/// `Server-Timing: app;dur=12.3` as a duration.
fn server_time(answer: &reqwest::Response) -> Option<Duration> {
    let value = answer.headers().get("server-timing")?.to_str().ok()?;
    let ms: f64 = value.split("dur=").nth(1)?.trim().parse().ok()?;
    Some(Duration::from_secs_f64(ms / 1000.0))
}
