//! The workload, as data: targets, viewers, their poll interval and arrival pattern, and the stages (ramp, hold,
//! spike, ramp down) that say how many viewers are active at each moment. Pure.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An HTTP target: `http://host:port/path` or `https://host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Path and query.
    pub path: String,
    /// `https://`: TLS, with the host name verified against the certificate (unless the profile is insecure).
    #[serde(default)]
    pub tls: bool,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true)
        } else {
            return Err(format!(
                "`{url}`: only http:// and https:// targets are supported"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("`{url}`: bad port `{p}`"))?,
            ),
            None => (authority.to_string(), if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        if tls {
            crate::tls::server_name(&host).map_err(|e| format!("`{url}`: {e}"))?;
        }
        Ok(Target {
            url: url.to_string(),
            host,
            port,
            path: path.to_string(),
            tls,
        })
    }
}

/// When viewers' polls happen relative to each other.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arrival {
    /// Each viewer's timer starts at a random phase of the poll interval: a steady rate.
    Uniform,
    /// Page-load waves: viewers arrive in `count` waves per poll interval, each within `spread` of its wave, so
    /// their polls stay synchronised (a stream starting, a link posted in chat).
    Waves {
        count: u32,
        #[serde(with = "secs_f64")]
        spread: Duration,
    },
}

/// How many viewers are active: each stage moves from the previous level to `viewers`, linearly (`ramp`) or at
/// once (`hold` starts at its level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    #[serde(with = "secs_f64")]
    pub duration: Duration,
    pub viewers: u64,
    pub ramp: bool,
}

impl Stage {
    pub fn ramp(name: &str, to: u64, over: Duration) -> Stage {
        Stage {
            name: name.into(),
            duration: over,
            viewers: to,
            ramp: true,
        }
    }
    pub fn hold(name: &str, at: u64, for_: Duration) -> Stage {
        Stage {
            name: name.into(),
            duration: for_,
            viewers: at,
            ramp: false,
        }
    }
}

/// The default profile from an event: ramp to N, hold, spike × factor within one second, hold, ramp down.
pub fn event_profile(
    viewers: u64,
    spike_factor: f64,
    ramp: Duration,
    hold: Duration,
) -> Vec<Stage> {
    let spiked = ((viewers as f64) * spike_factor.max(1.0)).round() as u64;
    let mut stages = vec![
        Stage::ramp("ramp up", viewers, ramp),
        Stage::hold("hold", viewers, hold),
    ];
    if spiked > viewers {
        stages.push(Stage::ramp("spike", spiked, Duration::from_secs(1)));
        stages.push(Stage::hold("hold spike", spiked, hold));
    }
    stages.push(Stage::ramp(
        "ramp down",
        0,
        ramp.min(Duration::from_secs(10))
            .max(Duration::from_secs(1)),
    ));
    stages
}

/// Total length of the stages.
pub fn total_duration(stages: &[Stage]) -> Duration {
    stages.iter().map(|s| s.duration).sum()
}

/// The highest number of viewers any stage reaches.
pub fn peak_viewers(stages: &[Stage]) -> u64 {
    stages.iter().map(|s| s.viewers).max().unwrap_or(0)
}

/// Active viewers at `t` (fractional while ramping) and the index of the stage `t` falls in.
pub fn active_at(stages: &[Stage], t: Duration) -> (f64, usize) {
    let mut start = Duration::ZERO;
    let mut level = 0.0;
    for (i, s) in stages.iter().enumerate() {
        let end = start + s.duration;
        if t < end {
            if !s.ramp {
                return (s.viewers as f64, i);
            }
            let frac = (t - start).as_secs_f64() / s.duration.as_secs_f64().max(1e-9);
            return (level + (s.viewers as f64 - level) * frac, i);
        }
        level = s.viewers as f64;
        start = end;
    }
    (0.0, stages.len().saturating_sub(1))
}

/// The fewest viewers in the test at any instant of `[from, until)`. Levels are piecewise linear between stage
/// boundaries, so the minimum is at `from`, just before `until`, or on either side of a boundary inside: a stage of
/// a millisecond between two others is seen, which sampling whole seconds would miss.
pub fn fewest_between(stages: &[Stage], from: Duration, until: Duration) -> f64 {
    const TICK: Duration = Duration::from_nanos(1);
    if until <= from {
        return active_at(stages, from).0;
    }
    let mut fewest = active_at(stages, from)
        .0
        .min(active_at(stages, until - TICK).0);
    let mut end = Duration::ZERO;
    for s in stages {
        end = end.saturating_add(s.duration);
        if end >= until {
            break;
        }
        if end > from {
            fewest = fewest
                .min(active_at(stages, end - TICK).0)
                .min(active_at(stages, end).0);
        }
    }
    fewest
}

/// When viewer `index` first becomes active (`None`: never).
pub fn arrival_time(stages: &[Stage], index: u64) -> Option<Duration> {
    let need = index as f64 + 1.0;
    let mut start = Duration::ZERO;
    let mut level = 0.0;
    for s in stages {
        let target = s.viewers as f64;
        if !s.ramp && target >= need {
            return Some(start);
        }
        if s.ramp && target >= need && level < need {
            let frac = (need - level) / (target - level);
            return Some(start + s.duration.mul_f64(frac.clamp(0.0, 1.0)));
        }
        if s.ramp && level >= need {
            return Some(start);
        }
        level = target;
        start += s.duration;
    }
    None
}

/// What to send, to whom, for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub targets: Vec<Target>,
    #[serde(with = "secs_f64")]
    pub poll_interval: Duration,
    pub arrival: Arrival,
    pub stages: Vec<Stage>,
    #[serde(with = "secs_f64")]
    pub timeout: Duration,
    /// One keep-alive connection per viewer (like a browser), or a shared pool of this many connections per worker.
    pub pool: Option<usize>,
    /// Hard stop, whatever the stages say.
    #[serde(with = "secs_f64")]
    pub max_duration: Duration,
    /// Hard cap on requests sent.
    pub max_requests: u64,
    pub seed: u64,
    /// Worker threads (default: the machine's cores).
    pub workers: usize,
    /// https:// targets: accept any certificate (a self-signed test endpoint); the handshake is still checked.
    #[serde(default)]
    pub insecure: bool,
}

/// A small deterministic PRNG (splitmix64): reproducible schedules from a seed, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// When viewer `index` polls first: its arrival, then its phase within the poll interval.
pub fn first_poll(profile: &Profile, index: u64) -> Option<Duration> {
    let arrival = arrival_time(&profile.stages, index)?;
    let mut rng = Rng::new(profile.seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let p = profile.poll_interval.as_secs_f64();
    let offset = match profile.arrival {
        Arrival::Uniform => rng.unit() * p,
        Arrival::Waves { count, spread } => {
            // Waves leave every poll_interval / count; a viewer who arrives (as the ramp lets it in) joins the
            // next one, within `spread` of it. So a ramp or a spike fills the waves rather than spreading polls
            // out, and every viewer of a wave polls with it from then on.
            let period = p / f64::from(count.max(1));
            let a = arrival.as_secs_f64();
            let next_wave = (a / period).ceil() * period;
            return Some(Duration::from_secs_f64(
                next_wave + rng.unit() * spread.as_secs_f64(),
            ));
        }
    };
    Some(arrival + Duration::from_secs_f64(offset))
}

pub(crate) mod secs_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(v.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fewest_viewers_of_a_span_see_every_stage_inside_it() {
        let stage = |viewers: u64, ms: u64, ramp: bool| Stage {
            name: "s".into(),
            duration: Duration::from_millis(ms),
            viewers,
            ramp,
        };
        let sec = |i: u64| (Duration::from_secs(i), Duration::from_secs(i + 1));
        // A level that flickers for a millisecond at each end of every second is never held.
        let flicker: Vec<Stage> = (0..12)
            .flat_map(|_| {
                [
                    stage(240, 1, false),
                    stage(0, 998, false),
                    stage(240, 1, false),
                ]
            })
            .collect();
        for i in 0..12 {
            let (a, b) = sec(i);
            assert_eq!(fewest_between(&flicker, a, b), 0.0, "second {i}");
            assert_eq!(
                active_at(&flicker, a).0,
                240.0,
                "the old sample point saw 240"
            );
        }
        // A steady hold is held; a ramp holds its lowest point; a dip of 1 ms inside a second counts.
        let steady = [stage(240, 10_000, false)];
        assert_eq!(fewest_between(&steady, sec(3).0, sec(3).1), 240.0);
        let ramp = [stage(100, 10_000, true)];
        assert_eq!(fewest_between(&ramp, sec(5).0, sec(5).1), 50.0);
        let dip = [
            stage(240, 2_500, false),
            stage(10, 1, false),
            stage(240, 5_000, false),
        ];
        assert_eq!(fewest_between(&dip, sec(2).0, sec(2).1), 10.0);
        assert_eq!(fewest_between(&dip, sec(3).0, sec(3).1), 240.0);
        // After the last stage nobody is left.
        assert_eq!(fewest_between(&steady, sec(10).0, sec(10).1), 0.0);
    }

    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8080/matches/1/stats?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/matches/1/stats?x=1")
        );
        assert_eq!(Target::parse("http://example.com").unwrap().port, 80);
        let t = Target::parse("https://stats.example.com/m").unwrap();
        assert_eq!((t.port, t.tls), (443, true));
        assert!(!Target::parse("http://x/").unwrap().tls);
        assert_eq!(Target::parse("https://127.0.0.1:8443/").unwrap().port, 8443);
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("HTTPS://x").is_err());
        assert!(Target::parse("http://:80/").is_err());
        assert!(Target::parse("http://h:99999/").is_err());
    }

    #[test]
    fn stage_levels() {
        let stages = event_profile(1000, 3.0, s(10.0), s(20.0));
        // ramp 10 s, hold 20 s, spike 1 s, hold 20 s, ramp down 10 s
        let cases = [
            (0.0, 0.0),
            (5.0, 500.0),
            (10.0, 1000.0),
            (29.9, 1000.0),
            (30.5, 2000.0),
            (31.0, 3000.0),
            (50.9, 3000.0),
            (56.0, 1500.0),
            (99.0, 0.0),
        ];
        for (t, want) in cases {
            let (v, _) = active_at(&stages, s(t));
            assert!((v - want).abs() < 1.0, "t={t}: {v} != {want}");
        }
        assert_eq!(peak_viewers(&stages), 3000);
        assert_eq!(total_duration(&stages), s(61.0));
    }

    #[test]
    fn the_spike_arrives_within_one_second() {
        let stages = event_profile(1000, 3.0, s(10.0), s(20.0));
        let first_spiked = arrival_time(&stages, 1000).unwrap();
        let last_spiked = arrival_time(&stages, 2999).unwrap();
        assert!(
            first_spiked >= s(30.0) && last_spiked <= s(31.0),
            "{first_spiked:?}..{last_spiked:?}"
        );
        assert_eq!(arrival_time(&stages, 3000), None);
        assert_eq!(arrival_time(&stages, 0).unwrap(), s(0.01));
    }

    fn profile(arrival: Arrival) -> Profile {
        Profile {
            targets: vec![],
            poll_interval: s(15.0),
            arrival,
            stages: vec![Stage::hold("hold", 10_000, s(60.0))],
            timeout: s(1.0),
            pool: None,
            max_duration: s(60.0),
            max_requests: u64::MAX,
            seed: 7,
            workers: 1,
            insecure: false,
        }
    }

    #[test]
    fn arrival_patterns() {
        // Uniform: first polls spread evenly over the interval (each 1.5 s slot holds ~10%).
        let p = profile(Arrival::Uniform);
        let mut slots = [0u32; 10];
        for i in 0..10_000 {
            slots[(first_poll(&p, i).unwrap().as_secs_f64() / 1.5) as usize] += 1;
        }
        assert!(slots.iter().all(|n| (800..1200).contains(n)), "{slots:?}");
        // One wave, 200 ms spread: everyone polls within 200 ms of each other.
        let w = profile(Arrival::Waves {
            count: 1,
            spread: s(0.2),
        });
        let times: Vec<f64> = (0..10_000)
            .map(|i| first_poll(&w, i).unwrap().as_secs_f64())
            .collect();
        let (lo, hi) = times
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), t| (a.min(*t), b.max(*t)));
        assert!(hi - lo <= 0.2 + 1e-9, "{lo}..{hi}");
        // A ramp fills the waves: viewers let in over 10 s poll in the waves at 0, 5 and 10 s, within 50 ms.
        let mut r = profile(Arrival::Waves {
            count: 3,
            spread: s(0.05),
        });
        r.stages = vec![Stage::ramp("ramp", 300, s(10.0))];
        let mut waves = std::collections::BTreeMap::new();
        for i in 0..300 {
            let t = first_poll(&r, i).unwrap().as_secs_f64();
            let wave = (t / 5.0).floor() as u32;
            assert!(
                t - f64::from(wave) * 5.0 <= 0.05 + 1e-9,
                "viewer {i} polls at {t}, outside its wave"
            );
            *waves.entry(wave).or_insert(0) += 1;
        }
        assert_eq!(
            waves.keys().copied().collect::<Vec<_>>(),
            vec![1, 2],
            "{waves:?}"
        );
        assert_eq!(waves[&1] + waves[&2], 300);
        assert!(
            (140..=160).contains(&waves[&1]),
            "half the ramp arrives by the wave at 5 s: {waves:?}"
        );
        // Reproducible from the seed.
        assert_eq!(first_poll(&p, 42), first_poll(&p, 42));
    }
}
