//! `statsctl history`: what shipped and what rolled back — the deploy history records (`UnitRecord`) appended to
//! the ledger bucket under `deploys/<env>/`, newest first, as one line per unit or as JSON.

use std::fmt::Write as _;

use clap::Args;
use statsctl_core::duration::Span;
use statsctl_core::history::{Outcome, UnitRecord, WeightPoint, LEDGER_KIND};

use crate::context::{duration_arg, Global};
use crate::exit::{CliResult, OK};
use crate::output::{self, emit, Format};
use crate::session::{aws_error, Session};

/// The most records one listing shows.
const MAX_LIMIT: usize = 1000;
/// How many of the newest records one listing looks through at most (with `--unit`, a record's unit is in its
/// body, so it must be read).
const SCAN: usize = 1000;
/// A deploy record is a few kilobytes; anything far larger under the prefix is not one.
const MAX_RECORD_BYTES: i64 = 1 << 20;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// How many records to show, newest first (1–1000; the newest 1000 records are looked through)
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = limit_arg)]
    pub limit: usize,
    /// Only this unit, as `plan` names it (`function.stats-api`, `service.stats-service`, `direct`, `cleanup`)
    #[arg(long, value_name = "ID")]
    pub unit: Option<String>,
    /// Only units that ended within this long before now, e.g. `2h`, `7d`
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub since: Option<Span>,
}

fn limit_arg(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a number of records from 1 to {MAX_LIMIT}\n  (hint: e.g. `--limit 50`; narrow with `--unit ID` or `--since 7d` to see older ones)"
        )),
    }
}

pub async fn run(g: &Global, args: HistoryArgs) -> CliResult {
    let s = Session::open(g, false).await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let cutoff = args
        .since
        .map(|d| now_ms.saturating_sub(u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)));
    let filter = Filter {
        env: &s.env,
        ended_after: cutoff,
        unit: args.unit.as_deref(),
        limit: args.limit,
    };
    let (bucket, found) = newest(&s, &filter).await?;
    let Some(Found { records, warnings }) = found else {
        let note = no_ledger(&s, &bucket);
        if g.output == Format::Json {
            output::progress(&note);
        }
        emit(g.output, &Vec::<UnitRecord>::new(), |out| {
            out.push_str(&note);
            out.push('\n');
        })?;
        return Ok(OK);
    };
    for w in &warnings {
        output::progress(format!("{} {w}", output::yellow("warning:")));
    }
    emit(g.output, &records, |out| {
        if records.is_empty() {
            let _ = writeln!(
                out,
                "No deploy history for {}/{}{}.",
                s.owner.stack,
                s.env,
                filter.describe()
            );
        } else {
            out.push_str(&render(&records));
        }
    })?;
    Ok(OK)
}

/// The newest `limit` deploy-history records of the session's environment, newest first, as a runbook's
/// `history` step shows them: one line per unit, a warning line per object skipped, or why there is none.
pub async fn newest_lines(s: &Session, limit: usize) -> CliResult<Vec<String>> {
    let filter = Filter {
        env: &s.env,
        ended_after: None,
        unit: None,
        limit,
    };
    let (bucket, found) = newest(s, &filter).await?;
    Ok(match found {
        None => vec![no_ledger(s, &bucket)],
        Some(Found { records, warnings }) => {
            let mut lines: Vec<String> = warnings.iter().map(|w| format!("warning: {w}")).collect();
            if records.is_empty() {
                lines.push(format!(
                    "No deploy history for {}/{}.",
                    s.owner.stack, s.env
                ));
            }
            lines.extend(render(&records).lines().map(str::to_string));
            lines
        }
    })
}

fn no_ledger(s: &Session, bucket: &str) -> String {
    format!(
        "No deploy history for {}/{}: the ledger bucket `{bucket}` does not exist yet (the first `statsctl deploy` creates it).",
        s.owner.stack, s.env
    )
}

/// Reads the newest records that match `filter`, looking through at most the newest [`SCAN`] objects, from the
/// ledger bucket it names; `None` when that bucket does not exist yet.
async fn newest(s: &Session, filter: &Filter<'_>) -> CliResult<(String, Option<Found>)> {
    let (account, _) = statsctl_aws::ledger::caller(&s.aws)
        .await
        .map_err(aws_error)?;
    let bucket = statsctl_core::ledger::bucket_name(&s.stack.spec, &s.env, &account);
    let prefix = format!("{LEDGER_KIND}/{}/", s.env);
    // Record keys start with the unix-ms time they were appended (after the unit ended), so listing can start at
    // the cutoff.
    let start_after = filter.ended_after.map(|c| format!("{prefix}{c:015}"));
    let keys = statsctl_aws::ledger::list_keys(&s.aws, &bucket, &prefix, start_after.as_deref())
        .await
        .map_err(aws_error)?;
    let Some(mut keys) = keys else {
        return Ok((bucket, None));
    };
    keys.truncate(SCAN);
    // Read the newest objects a chunk at a time until enough records match: a bad object or another unit's
    // record does not take the place of one that would be shown.
    let mut found = Found::default();
    for chunk in keys.chunks(filter.limit.clamp(10, 100)) {
        let raw = statsctl_aws::ledger::read_objects(&s.aws, &bucket, chunk, MAX_RECORD_BYTES)
            .await
            .map_err(aws_error)?;
        found.add(raw.into_iter().map(|r| (r.key, r.body)), filter);
        if found.records.len() >= filter.limit {
            break;
        }
    }
    Ok((bucket, Some(found.finish(filter.limit))))
}

/// Which records a listing shows.
struct Filter<'a> {
    env: &'a str,
    /// Unix ms: only units that ended at or after it.
    ended_after: Option<u64>,
    unit: Option<&'a str>,
    limit: usize,
}

impl Filter<'_> {
    /// ` matching --unit X` for an empty listing.
    fn describe(&self) -> String {
        match self.unit {
            Some(u) => format!(" for unit `{u}` in the newest {SCAN} records"),
            None if self.ended_after.is_some() => " in that time".to_string(),
            None => String::new(),
        }
    }
}

/// The records found so far, and a warning naming each object skipped.
#[derive(Debug, Default)]
struct Found {
    records: Vec<UnitRecord>,
    warnings: Vec<String>,
}

impl Found {
    /// Sorts out objects read (newest first by key): records that match `f` are kept; an object that is
    /// unreadable, not a deploy record, or another environment's is skipped with a warning naming its key.
    fn add(
        &mut self,
        raw: impl IntoIterator<Item = (String, Result<Vec<u8>, String>)>,
        f: &Filter<'_>,
    ) {
        for (key, body) in raw {
            let parsed = body.and_then(|b| {
                serde_json::from_slice::<UnitRecord>(&b)
                    .map_err(|e| format!("not a deploy record ({e})"))
            });
            match parsed {
                Ok(r) if r.env != f.env => self.warnings.push(format!(
                    "skipped `{key}`: a record of environment `{}` under `{}`",
                    r.env, f.env
                )),
                Ok(r) => {
                    if f.ended_after.is_none_or(|c| r.ended_at >= c)
                        && f.unit.is_none_or(|u| r.unit == u)
                    {
                        self.records.push(r);
                    }
                }
                Err(why) => self.warnings.push(format!("skipped `{key}`: {why}")),
            }
        }
    }

    /// The newest `limit`, newest first by end time.
    fn finish(mut self, limit: usize) -> Found {
        // Stable: records that ended together keep the key order (append order, newest first).
        self.records
            .sort_by_key(|r| std::cmp::Reverse((r.ended_at, r.started_at)));
        self.records.truncate(limit);
        self
    }
}

/// What [`Found`] keeps of `raw` under `f`: the records to show and the warnings.
#[cfg(test)]
fn select(
    raw: Vec<(String, Result<Vec<u8>, String>)>,
    f: &Filter<'_>,
) -> (Vec<UnitRecord>, Vec<String>) {
    let mut found = Found::default();
    found.add(raw, f);
    let Found { records, warnings } = found.finish(f.limit);
    (records, warnings)
}

/// A span of milliseconds, compactly: `0s`, `5s`, `2.5s`, `1m30s`, `2h5m`.
fn span_text(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        let tenths = ms % 1000 / 100;
        if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        }
    } else if secs < 3600 {
        match secs % 60 {
            0 => format!("{}m", secs / 60),
            s => format!("{}m{s}s", secs / 60),
        }
    } else {
        match secs % 3600 / 60 {
            0 => format!("{}h", secs / 3600),
            m => format!("{}h{m}m", secs / 3600),
        }
    }
}

/// The weight timeline compactly: `10%@0s 100%@5s`.
fn timeline_text(points: &[WeightPoint]) -> String {
    points
        .iter()
        .map(|p| format!("{}%@{}", p.percent, span_text(p.at_ms)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn outcome_text(o: Outcome) -> &'static str {
    match o {
        Outcome::Shipped => "shipped",
        Outcome::RolledBack => "rolled_back",
        Outcome::Interrupted => "interrupted",
    }
}

/// `1 → 2`, `(new) → 1`; empty when the unit moved no version (direct units).
fn change_text(r: &UnitRecord) -> String {
    match (&r.from, &r.to) {
        (None, None) => String::new(),
        (from, to) => format!(
            "{} → {}",
            from.as_deref().unwrap_or("(new)"),
            to.as_deref().unwrap_or("?")
        ),
    }
}

/// The caller compactly: the resource part of its ARN (`user/ops`, `assumed-role/Deployer/ci`).
fn who_text(who: &str) -> &str {
    match who.rsplit_once(':') {
        Some((_, tail)) if !tail.is_empty() => tail,
        _ => who,
    }
}

/// One line per unit, newest first: time, unit, from → to, outcome, duration, who, strategy and weight timeline,
/// and what fired or where it was left.
fn render(records: &[UnitRecord]) -> String {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            let mut how = r.strategy.clone();
            if !r.timeline.is_empty() {
                how = format!("{how} {}", timeline_text(&r.timeline));
            }
            if let Some(a) = &r.alarm {
                how = format!("{how} · alarm {}: {}", a.name, a.reason);
            }
            if !r.ignored_alarms.is_empty() {
                how = format!("{how} · ignored {}", r.ignored_alarms.join(", "));
            }
            if r.outcome != Outcome::Shipped {
                if let Some(d) = &r.detail {
                    how = format!("{how} · {d}");
                }
            }
            [
                statsctl_engine::lock::utc(r.started_at / 1000),
                r.unit.clone(),
                change_text(r),
                outcome_text(r.outcome).to_string(),
                span_text(r.ended_at.saturating_sub(r.started_at)),
                who_text(&r.who).to_string(),
                how,
            ]
        })
        .collect();
    let header = ["STARTED", "UNIT", "CHANGE", "OUTCOME", "TOOK", "WHO", "HOW"].map(String::from);
    let mut width = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (w, cell) in width.iter().zip(row) {
            let pad = w - cell.chars().count();
            let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
        }
        line.push_str(&row[6]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::history::{FiredAlarm, UnitKind};

    fn rec(
        unit: &str,
        from: Option<&str>,
        to: Option<&str>,
        ended: u64,
        outcome: Outcome,
    ) -> UnitRecord {
        UnitRecord {
            env: "dev".into(),
            unit: unit.into(),
            kind: UnitKind::Function,
            target: "live-stats-dev-stats-api".into(),
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            started_at: ended.saturating_sub(12_500),
            ended_at: ended,
            who: "arn:aws:iam::123456789012:user/ops".into(),
            strategy: "canary".into(),
            timeline: vec![],
            outcome,
            alarm: None,
            ignored_alarms: vec![],
            detail: None,
        }
    }

    /// `--unit`, the cutoff (unix ms), `--limit`, and the end times of the records expected.
    type SelectCase<'a> = (Option<&'a str>, Option<u64>, usize, &'a [u64]);

    fn filter(unit: Option<&str>, ended_after: Option<u64>, limit: usize) -> Filter<'_> {
        Filter {
            env: "dev",
            ended_after,
            unit,
            limit,
        }
    }

    #[test]
    fn spans_and_timelines_are_compact() {
        for (ms, want) in [
            (0, "0s"),
            (999, "0.9s"),
            (5_000, "5s"),
            (2_500, "2.5s"),
            (60_000, "1m"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (7_500_000, "2h5m"),
            (u64::MAX, "5124095576030h25m"),
        ] {
            assert_eq!(span_text(ms), want, "{ms}");
        }
        let t = [
            WeightPoint {
                at_ms: 0,
                percent: 10,
            },
            WeightPoint {
                at_ms: 5_000,
                percent: 100,
            },
        ];
        assert_eq!(timeline_text(&t), "10%@0s 100%@5s");
        assert_eq!(timeline_text(&[]), "");
    }

    #[test]
    fn one_line_per_unit_says_what_moved_and_how_it_ended() {
        let mut shipped = rec(
            "function.stats-api",
            Some("1"),
            Some("2"),
            1_764_370_212_500,
            Outcome::Shipped,
        );
        shipped.timeline = vec![
            WeightPoint {
                at_ms: 0,
                percent: 10,
            },
            WeightPoint {
                at_ms: 5_000,
                percent: 100,
            },
        ];
        let mut rolled = rec(
            "function.stats-api",
            Some("2"),
            Some("3"),
            1_764_370_300_000,
            Outcome::RolledBack,
        );
        rolled.timeline = vec![WeightPoint {
            at_ms: 0,
            percent: 10,
        }];
        rolled.alarm = Some(FiredAlarm {
            name: "live-stats-dev-lambda-errors-stats-api".into(),
            reason: "Threshold Crossed".into(),
        });
        let mut direct = rec("direct", None, None, 1_764_370_000_000, Outcome::Shipped);
        direct.strategy = "direct".into();
        let mut cut = rec(
            "service.stats-service",
            None,
            Some("svc:4"),
            1_764_370_400_000,
            Outcome::Interrupted,
        );
        cut.who = "odd".into();
        cut.detail = Some("listener left at 10% on green".into());
        cut.ignored_alarms = vec!["a".into()];
        let text = render(&[cut, rolled, shipped, direct]);
        let lines: Vec<&str> = text.lines().collect();
        // Columns line up: every line starts its unit where the header's UNIT starts.
        let unit_col = lines[0].find("UNIT").unwrap();
        for l in &lines[1..] {
            assert_eq!(&l[unit_col - 2..unit_col], "  ", "{text}");
        }
        // And the last column, HOW, starts at the same character in every line (CHANGE holds a multi-byte `→`).
        let how_col = lines[0].chars().count() - "HOW".len();
        for l in &lines {
            let cs: Vec<char> = l.chars().collect();
            assert!(
                cs[how_col - 2..how_col] == [' ', ' '] && cs[how_col] != ' ',
                "{l:?}\n{text}"
            );
        }
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("STARTED"), "{text}");
        for (line, parts) in lines[1..].iter().zip([
            &[
                "2025-11-28T22:53:07Z",
                "service.stats-service",
                "(new) → svc:4",
                "interrupted",
                "12.5s",
                "odd       canary · ignored a · listener left at 10% on green",
            ][..],
            &[
                "function.stats-api",
                "2 → 3",
                "rolled_back",
                "user/ops  canary 10%@0s · alarm live-stats-dev-lambda-errors-stats-api: Threshold Crossed",
            ][..],
            &["function.stats-api", "1 → 2", "shipped", "user/ops  canary 10%@0s 100%@5s"][..],
            &["direct", "shipped", "user/ops  direct"][..],
        ]) {
            for p in parts {
                assert!(line.contains(p), "{p:?} not in {line:?}");
            }
        }
    }

    #[test]
    fn selection_skips_bad_objects_by_key_filters_and_orders_newest_first() {
        let body = |r: &UnitRecord| Ok(serde_json::to_vec(r).unwrap());
        let old = rec(
            "function.stats-api",
            Some("1"),
            Some("2"),
            1_000_000,
            Outcome::Shipped,
        );
        let new = rec(
            "function.stats-api",
            Some("2"),
            Some("3"),
            3_000_000,
            Outcome::RolledBack,
        );
        let direct = rec("direct", None, None, 2_000_000, Outcome::Shipped);
        let mut prod = rec("direct", None, None, 2_500_000, Outcome::Shipped);
        prod.env = "prod".into();
        let raw = || {
            vec![
                (
                    "deploys/dev/9-junk.json".to_string(),
                    Ok(b"{not json".to_vec()),
                ),
                (
                    "deploys/dev/8-big.json".to_string(),
                    Err("too large".to_string()),
                ),
                ("deploys/dev/7.json".to_string(), body(&prod)),
                ("deploys/dev/6.json".to_string(), body(&direct)),
                // Out of order in the bucket: the end time decides.
                ("deploys/dev/5.json".to_string(), body(&new)),
                ("deploys/dev/4.json".to_string(), body(&old)),
                (
                    "deploys/dev/3.json".to_string(),
                    Ok(br#"{"env":"dev"}"#.to_vec()),
                ),
            ]
        };
        let ends = |rs: &[UnitRecord]| rs.iter().map(|r| r.ended_at).collect::<Vec<_>>();
        let (got, warnings) = select(raw(), &filter(None, None, 20));
        assert_eq!(ends(&got), [3_000_000, 2_000_000, 1_000_000]);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        for (w, key) in warnings.iter().zip(["9-junk", "8-big", "7.json", "3.json"]) {
            assert!(w.contains(key), "{w}");
        }
        assert!(warnings[0].contains("not a deploy record"), "{warnings:?}");
        assert!(warnings[2].contains("environment `prod`"), "{warnings:?}");
        let cases: &[SelectCase] = &[
            (None, None, 2, &[3_000_000, 2_000_000]),
            (
                Some("function.stats-api"),
                None,
                20,
                &[3_000_000, 1_000_000],
            ),
            (Some("direct"), None, 20, &[2_000_000]),
            (Some("function.nope"), None, 20, &[]),
            (None, Some(2_000_000), 20, &[3_000_000, 2_000_000]),
            (Some("function.stats-api"), Some(2_000_001), 1, &[3_000_000]),
        ];
        for (unit, after, limit, want) in cases {
            let (got, _) = select(raw(), &filter(*unit, *after, *limit));
            assert_eq!(ends(&got), *want, "{unit:?} {after:?} {limit}");
        }
    }

    #[test]
    fn limit_is_bounded_with_a_hint() {
        assert_eq!(limit_arg("1"), Ok(1));
        assert_eq!(limit_arg("1000"), Ok(1000));
        for bad in ["0", "1001", "-1", "x", "", "99999999999999999999999"] {
            let e = limit_arg(bad).unwrap_err();
            assert!(e.contains("1 to 1000") && e.contains("hint:"), "{bad}: {e}");
        }
    }

    #[test]
    fn who_is_the_resource_part_of_the_arn() {
        for (arn, want) in [
            ("arn:aws:iam::123456789012:user/ops", "user/ops"),
            (
                "arn:aws:sts::1:assumed-role/Deployer/ci",
                "assumed-role/Deployer/ci",
            ),
            ("plain", "plain"),
            ("ends:", "ends:"),
        ] {
            assert_eq!(who_text(arn), want);
        }
    }
}
