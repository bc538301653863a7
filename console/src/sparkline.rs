//! Throughput and error sparklines of the fleet page: each app's jobs of
//! the last [`MINUTES`] minutes, per minute, from the workers' counts
//! (`runtime::store::Activity`), drawn as inline SVG (no script, no
//! request of its own, so the page's Content-Security-Policy stays as it is).

use std::collections::HashMap;
use std::fmt::Write as _;

use scimfleet_runtime::Store;
use scimfleet_runtime::config::Config;
use scimfleet_runtime::store::{ActivityKind, MinuteCounts};

/// Minutes drawn.
pub const MINUTES: usize = 60;

const WIDTH: usize = 2 * MINUTES;
const HEIGHT: u64 = 24;

/// Each app's per-minute counts, oldest first: (done, failed); and its
/// requests' rate-limit waits over the same minutes.
#[derive(Debug, Default)]
pub struct Activity {
    by_app: HashMap<String, Vec<(u64, u64)>>,
    waits: HashMap<String, u64>,
}

impl Activity {
    /// The last [`MINUTES`] minutes of `apps`, the current one last; `None`
    /// when Redis cannot be read (the page is shown without them).
    pub async fn read(config: &Config, apps: &[&str]) -> Option<Self> {
        let last = chrono::Utc::now().timestamp().div_euclid(60);
        let read = async {
            let store = Store::connect(&config.redis, &config.namespace).await?;
            store.activity().read(last, MINUTES, apps).await
        };
        match read.await {
            Ok(minutes) => Some(Self::of(apps, &minutes)),
            Err(error) => {
                tracing::warn!(%error, "the console could not read the apps' activity");
                None
            }
        }
    }

    fn of(apps: &[&str], minutes: &[MinuteCounts]) -> Self {
        let count = |m: &MinuteCounts, app: &str, kind| m.get(&(app.to_owned(), kind)).copied().unwrap_or(0);
        let by_app = apps
            .iter()
            .map(|app| {
                let series = minutes
                    .iter()
                    .map(|m| {
                        let failed =
                            count(m, app, ActivityKind::Retried) + count(m, app, ActivityKind::DeadLettered);
                        (count(m, app, ActivityKind::Done), failed)
                    })
                    .collect();
                ((*app).to_owned(), series)
            })
            .collect();
        let waits = apps
            .iter()
            .map(|app| {
                ((*app).to_owned(), minutes.iter().map(|m| count(m, app, ActivityKind::RateLimitWait)).sum())
            })
            .collect();
        Self { by_app, waits }
    }

    /// `app`'s SCIM requests that waited for its rate limit (or a
    /// `Retry-After` pause) in the last [`MINUTES`] minutes; `None` unread.
    pub fn waits(&self, app: &str) -> Option<u64> {
        self.waits.get(app).copied()
    }

    /// `app`'s sparkline: jobs done per minute, failures (retried or
    /// dead-lettered) beneath in red, on one scale; a title with the totals.
    pub fn svg(&self, app: &str) -> String {
        let Some(series) = self.by_app.get(app) else { return String::new() };
        let (done, failed): (u64, u64) = series.iter().fold((0, 0), |(d, f), (x, y)| (d + x, f + y));
        let peak = series.iter().map(|(d, f)| (*d).max(*f)).max().unwrap_or(0).max(1);
        let mut svg = format!(
            "<svg class=\"spark\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">\
             <title>last {MINUTES} min: {done} done, {failed} failed (retried or dead-lettered); peak {peak}/min</title>"
        );
        for (values, colour) in [
            (series.iter().map(|s| s.0).collect::<Vec<_>>(), "#2b6cb0"),
            (series.iter().map(|s| s.1).collect(), "#c53030"),
        ] {
            if values.iter().all(|v| *v == 0) {
                continue;
            }
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{},{}", 2 * i, HEIGHT - 1 - v * (HEIGHT - 2) / peak))
                .collect();
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
                points.join(" ")
            );
        }
        let _ = write!(svg, "</svg> <span class=\"muted\">{done}/{failed}</span>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_draws_done_and_failed_on_one_scale_and_says_the_totals() {
        let mut minutes = vec![MinuteCounts::new(); MINUTES];
        minutes[MINUTES - 1].insert(("git".to_owned(), ActivityKind::Done), 10);
        minutes[MINUTES - 2].insert(("git".to_owned(), ActivityKind::Retried), 3);
        minutes[MINUTES - 2].insert(("git".to_owned(), ActivityKind::DeadLettered), 2);
        minutes[0].insert(("git".to_owned(), ActivityKind::RateLimitWait), 4);
        minutes[MINUTES - 1].insert(("git".to_owned(), ActivityKind::RateLimitWait), 1);
        let activity = Activity::of(&["git", "chat"], &minutes);
        let svg = activity.svg("git");
        assert!(svg.contains("10 done, 5 failed") && svg.contains("peak 10/min"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        // The last minute's 10 is the top of the scale: y = 1.
        assert!(svg.contains(&format!("{},1\"", 2 * (MINUTES - 1))), "{svg}");
        let idle = activity.svg("chat");
        assert!(idle.contains("0 done, 0 failed") && !idle.contains("<polyline"), "{idle}");
        assert_eq!(activity.svg("absent"), "");
        assert_eq!(
            (activity.waits("git"), activity.waits("chat"), activity.waits("absent")),
            (Some(5), Some(0), None)
        );
    }
}
