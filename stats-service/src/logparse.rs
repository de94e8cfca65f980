//! Game-server log lines → events, pure.
//!
//! The lines the game emits over HTTP logging (a timestamp, then a message):
//!
//! ```text
//! 01/01/1970 - 00:00:00.000 - MatchStatus: Score: 0:0 on map "de_overpass" RoundsPlayed: 0
//! L 11/28/2026 - 20:01:02: "s1mple<12><STEAM_1:0:123><CT>" [10 20 30] killed "ZywOo<13><STEAM_1:1:456><TERRORIST>" [1 2 3] with "awp" (headshot)
//! 11/28/2026 - 20:01:02.250 - "b1t<14><[U:1:789]><CT>" assisted killing "ZywOo<13><STEAM_1:1:456><TERRORIST>"
//! 11/28/2026 - 20:01:01.900 - "s1mple<12><STEAM_1:0:123><CT>" [10 20 30] attacked "ZywOo<13><STEAM_1:1:456><TERRORIST>" [1 2 3] with "awp" (damage "112") (damage_armor "0") (health "0") (armor "0") (hitgroup "head")
//! 11/28/2026 - 20:01:05.000 - World triggered "Round_Start"
//! 11/28/2026 - 20:01:40.000 - Team "CT" triggered "SFUI_Notice_CTs_Win" (CT "1") (T "0")
//! 11/28/2026 - 20:01:40.000 - World triggered "Round_End"
//! ```
//!
//! Anything else — chat, purchases, unknown events, truncated or garbled lines — is `Skipped` with a reason,
//! never an error: a game server sends what it sends, and one odd line must not lose the rest of a batch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A player as the log names them: `Name<userid><steamid><team>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    pub name: String,
    pub steam_id: String,
    /// `CT`, `TERRORIST`, or empty when unassigned.
    pub team: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `MatchStatus: Score: CT:T on map "m" RoundsPlayed: n`
    Status {
        score_ct: i32,
        score_t: i32,
        map: String,
        rounds_played: i32,
    },
    Kill {
        killer: Player,
        victim: Player,
        weapon: String,
        headshot: bool,
    },
    Assist {
        assister: Player,
        victim: Player,
        flash: bool,
    },
    Damage {
        attacker: Player,
        victim: Player,
        weapon: String,
        damage: i32,
        hitgroup: String,
    },
    RoundStart,
    RoundEnd,
    /// `Team "CT" triggered "SFUI_Notice_CTs_Win" (CT "1") (T "0")`
    RoundWon {
        team: String,
        how: String,
        score_ct: i32,
        score_t: i32,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Status { .. } => "status",
            Event::Kill { .. } => "kill",
            Event::Assist { .. } => "assist",
            Event::Damage { .. } => "damage",
            Event::RoundStart => "round_start",
            Event::RoundEnd => "round_end",
            Event::RoundWon { .. } => "round_won",
        }
    }
}

/// One parsed line.
// Most lines of a match log are events, so boxing `Event` would cost an allocation per stored line to shrink a
// value that only lives in the batch being ingested.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Event { logged_at: SystemTime, event: Event },
    Skipped(Skip),
}

/// Why a line was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Blank line.
    Empty,
    /// No `MM/DD/YYYY - HH:MM:SS` timestamp at the start.
    NoTimestamp,
    /// A well-formed line about something the scoreboard does not use (chat, purchases, …).
    Ignored,
    /// A line that looks like a known event but does not parse.
    Malformed,
    /// A NUL byte: PostgreSQL text cannot hold one, and storing it would fail the whole batch.
    NulByte,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Empty => "empty",
            Skip::NoTimestamp => "no_timestamp",
            Skip::Ignored => "ignored",
            Skip::Malformed => "malformed",
            Skip::NulByte => "nul_byte",
        }
    }
}

/// Parses one line.
pub fn parse_line(line: &str) -> Line {
    let line = line.trim_end_matches(['\r', '\n']).trim();
    if line.is_empty() {
        return Line::Skipped(Skip::Empty);
    }
    if line.contains('\0') {
        return Line::Skipped(Skip::NulByte);
    }
    let Some((logged_at, message)) = timestamp(line) else {
        return Line::Skipped(Skip::NoTimestamp);
    };
    match message_event(message) {
        Ok(event) => Line::Event { logged_at, event },
        Err(skip) => Line::Skipped(skip),
    }
}

/// Parses a whole body: every line, in order.
pub fn parse(body: &str) -> Vec<Line> {
    body.lines().map(parse_line).collect()
}

/// `[L ]MM/DD/YYYY - HH:MM:SS[.mmm](: | - )message` → (time, message).
fn timestamp(line: &str) -> Option<(SystemTime, &str)> {
    let s = line.strip_prefix("L ").unwrap_or(line);
    let b = s.as_bytes();
    // MM/DD/YYYY - HH:MM:SS is 21 bytes.
    if b.len() < 21 || !s.is_char_boundary(21) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if &b[2..3] != b"/"
        || &b[5..6] != b"/"
        || &b[10..13] != b" - "
        || &b[15..16] != b":"
        || &b[18..19] != b":"
    {
        return None;
    }
    let (month, day, year) = (num(0..2)?, num(3..5)?, num(6..10)?);
    let (hour, minute, second) = (num(13..15)?, num(16..18)?, num(19..21)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[21..];
    let mut millis = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let d = &frac[..digits];
        // Milliseconds from the first three digits, whatever the precision.
        let padded: String = d.chars().chain("000".chars()).take(3).collect();
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let message = rest
        .strip_prefix(" - ")
        .or_else(|| rest.strip_prefix(": "))?;
    let days = days_from_civil(year as i64, month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    let secs = u64::try_from(secs).ok()?;
    Some((
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(u64::from(millis)),
        message,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn message_event(msg: &str) -> Result<Event, Skip> {
    if let Some(rest) = msg.strip_prefix("MatchStatus: ") {
        // `MatchStatus: Team playing "CT": Name` and others are fine to ignore; only the score line matters.
        return match rest.strip_prefix("Score: ") {
            Some(score) => match_status(score).ok_or(Skip::Malformed),
            None => Err(Skip::Ignored),
        };
    }
    if let Some(rest) = msg.strip_prefix("World triggered \"") {
        let name = rest.split('"').next().unwrap_or("");
        return match name {
            "Round_Start" => Ok(Event::RoundStart),
            "Round_End" => Ok(Event::RoundEnd),
            _ => Err(Skip::Ignored),
        };
    }
    if let Some(rest) = msg.strip_prefix("Team \"") {
        return round_won(rest);
    }
    if msg.starts_with('"') {
        return player_event(msg);
    }
    Err(Skip::Ignored)
}

/// `0:0 on map "de_overpass" RoundsPlayed: 0`
fn match_status(s: &str) -> Option<Event> {
    let (score, rest) = s.split_once(" on map \"")?;
    let (ct, t) = score.split_once(':')?;
    let (map, rest) = rest.split_once('"')?;
    let rounds = rest.trim().strip_prefix("RoundsPlayed:")?.trim();
    let score_ct = small_int(ct.trim())?;
    let score_t = small_int(t.trim())?;
    // `RoundsPlayed: -1` is what the game prints during warmup.
    let rounds_played: i32 = rounds
        .parse()
        .ok()
        .filter(|n: &i32| (-1..=10_000).contains(n))?;
    if map.is_empty() || map.len() > 64 {
        return None;
    }
    Some(Event::Status {
        score_ct,
        score_t,
        map: map.to_string(),
        rounds_played: rounds_played.max(0),
    })
}

fn small_int(s: &str) -> Option<i32> {
    s.parse().ok().filter(|n: &i32| (0..=10_000).contains(n))
}

/// `CT" triggered "SFUI_Notice_CTs_Win" (CT "1") (T "0")`
fn round_won(rest: &str) -> Result<Event, Skip> {
    let (team, rest) = rest.split_once('"').ok_or(Skip::Malformed)?;
    let Some(rest) = rest.strip_prefix(" triggered \"") else {
        return Err(Skip::Ignored);
    };
    let (how, rest) = rest.split_once('"').ok_or(Skip::Malformed)?;
    let props = properties(rest);
    let score = |k: &str| {
        props
            .iter()
            .find(|(n, _)| *n == k)
            .and_then(|(_, v)| small_int(v))
    };
    match (score("CT"), score("T")) {
        (Some(score_ct), Some(score_t)) => Ok(Event::RoundWon {
            team: team.to_string(),
            how: how.to_string(),
            score_ct,
            score_t,
        }),
        // Other team triggers (e.g. `Team "CT" triggered "..."` without scores) are not round results.
        _ => Err(Skip::Ignored),
    }
}

/// `"A<1><S><CT>" [x y z] killed "B<2><S><TERRORIST>" [x y z] with "ak47" (headshot)` and friends.
fn player_event(msg: &str) -> Result<Event, Skip> {
    let (actor, rest) = quoted_player(msg).ok_or(Skip::Malformed)?;
    let rest = skip_position(rest);
    let (verb, rest) = if let Some(r) = rest.strip_prefix("killed ") {
        ("killed", r)
    } else if let Some(r) = rest.strip_prefix("attacked ") {
        ("attacked", r)
    } else if let Some(r) = rest.strip_prefix("assisted killing ") {
        ("assisted", r)
    } else if let Some(r) = rest.strip_prefix("flash-assisted killing ") {
        ("flash-assisted", r)
    } else {
        // Purchases, chat, team switches, "committed suicide", … — not part of the scoreboard.
        return Err(Skip::Ignored);
    };
    if !rest.starts_with('"') {
        // `killed other "chicken"` and the like: not a player.
        return Err(Skip::Ignored);
    }
    let (victim, rest) = quoted_player(rest).ok_or(Skip::Malformed)?;
    let rest = skip_position(rest);
    match verb {
        "assisted" | "flash-assisted" => Ok(Event::Assist {
            assister: actor,
            victim,
            flash: verb == "flash-assisted",
        }),
        _ => {
            let rest = rest.strip_prefix("with \"").ok_or(Skip::Malformed)?;
            let (weapon, rest) = rest.split_once('"').ok_or(Skip::Malformed)?;
            let props = properties(rest);
            if verb == "killed" {
                let headshot = props.iter().any(|(k, v)| *k == "headshot" && v.is_empty());
                Ok(Event::Kill {
                    killer: actor,
                    victim,
                    weapon: weapon.to_string(),
                    headshot,
                })
            } else {
                let get = |k: &str| props.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
                let damage = get("damage")
                    .and_then(|v| v.parse::<i32>().ok())
                    .filter(|d| (0..=100_000).contains(d))
                    .ok_or(Skip::Malformed)?;
                let hitgroup = get("hitgroup").unwrap_or("").to_string();
                Ok(Event::Damage {
                    attacker: actor,
                    victim,
                    weapon: weapon.to_string(),
                    damage,
                    hitgroup,
                })
            }
        }
    }
}

/// `"Name<uid><steamid><team>" rest` → (player, rest after the closing quote and spaces). The name may hold
/// quotes and angle brackets, so the three `<…>` groups are taken from the right of `>"`.
fn quoted_player(s: &str) -> Option<(Player, &str)> {
    let body = s.strip_prefix('"')?;
    // The first `>"` that ends three `<…>` groups: earlier ones belong to the name.
    body.match_indices(">\"").find_map(|(end, _)| {
        let player = player_groups(&body[..=end])?;
        Some((player, body[end + 2..].trim_start()))
    })
}

fn player_groups(inner: &str) -> Option<Player> {
    let mut groups = Vec::with_capacity(3);
    let mut tail = inner;
    for _ in 0..3 {
        let t = tail.strip_suffix('>')?;
        let open = t.rfind('<')?;
        groups.push(&t[open + 1..]);
        tail = &t[..open];
    }
    let (team, steam_id) = (groups[0], groups[1]);
    let name = tail;
    if name.is_empty()
        || steam_id.is_empty()
        || name.len() > 128
        || steam_id.len() > 64
        || team.len() > 32
    {
        return None;
    }
    let team = match team {
        "Unassigned" | "Spectator" => "",
        t => t,
    };
    Some(Player {
        name: name.to_string(),
        steam_id: steam_id.to_string(),
        team: team.to_string(),
    })
}

/// Skips an optional `[x y z] ` position.
fn skip_position(s: &str) -> &str {
    match s.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((_, rest)) => rest.trim_start(),
        None => s,
    }
}

/// ` (damage "27") (headshot) (hitgroup "chest")` → [("damage","27"), ("headshot",""), ("hitgroup","chest")].
fn properties(s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find('(') {
        let Some(len) = rest[start..].find(')') else {
            break;
        };
        let inside = &rest[start + 1..start + len];
        rest = &rest[start + len + 1..];
        match inside.split_once(' ') {
            Some((k, v)) => out.push((k, v.trim().trim_matches('"'))),
            None => out.push((inside, "")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: &str) -> (u64, Event) {
        match parse_line(line) {
            Line::Event { logged_at, event } => (
                logged_at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64,
                event,
            ),
            Line::Skipped(s) => panic!("{line:?} skipped: {s:?}"),
        }
    }

    fn p(name: &str, steam: &str, team: &str) -> Player {
        Player {
            name: name.into(),
            steam_id: steam.into(),
            team: team.into(),
        }
    }

    #[test]
    fn the_mission_line() {
        let (ms, e) = at("01/01/1970 - 00:00:00.000 - MatchStatus: Score: 0:0 on map \"de_overpass\" RoundsPlayed: 0");
        assert_eq!(ms, 0);
        assert_eq!(
            e,
            Event::Status {
                score_ct: 0,
                score_t: 0,
                map: "de_overpass".into(),
                rounds_played: 0
            }
        );
    }

    #[test]
    fn timestamps() {
        let cases = [
            (
                "01/01/1970 - 00:00:01.250 - World triggered \"Round_Start\"",
                1_250,
            ),
            (
                "L 01/02/1970 - 00:00:00: World triggered \"Round_Start\"",
                86_400_000,
            ),
            (
                "11/28/2026 - 20:01:02.5 - World triggered \"Round_Start\"",
                1_795_896_062_500,
            ),
            (
                "02/29/2024 - 12:00:00.000 - World triggered \"Round_Start\"",
                1_709_208_000_000,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(at(line).0, want, "{line}");
        }
    }

    #[test]
    fn events() {
        let s1 = p("s1mple", "STEAM_1:0:123", "CT");
        let zy = p("ZywOo", "STEAM_1:1:456", "TERRORIST");
        let cases: Vec<(&str, Event)> = vec![
            (
                r#"11/28/2026 - 20:01:02.000 - "s1mple<12><STEAM_1:0:123><CT>" [10 20 30] killed "ZywOo<13><STEAM_1:1:456><TERRORIST>" [1 2 3] with "awp" (headshot)"#,
                Event::Kill {
                    killer: s1.clone(),
                    victim: zy.clone(),
                    weapon: "awp".into(),
                    headshot: true,
                },
            ),
            (
                r#"11/28/2026 - 20:01:02.000 - "s1mple<12><STEAM_1:0:123><CT>" killed "ZywOo<13><STEAM_1:1:456><TERRORIST>" with "ak47" (penetrated)"#,
                Event::Kill {
                    killer: s1.clone(),
                    victim: zy.clone(),
                    weapon: "ak47".into(),
                    headshot: false,
                },
            ),
            (
                r#"11/28/2026 - 20:01:02.000 - "s1mple<12><STEAM_1:0:123><CT>" assisted killing "ZywOo<13><STEAM_1:1:456><TERRORIST>""#,
                Event::Assist {
                    assister: s1.clone(),
                    victim: zy.clone(),
                    flash: false,
                },
            ),
            (
                r#"11/28/2026 - 20:01:02.000 - "s1mple<12><STEAM_1:0:123><CT>" flash-assisted killing "ZywOo<13><STEAM_1:1:456><TERRORIST>""#,
                Event::Assist {
                    assister: s1.clone(),
                    victim: zy.clone(),
                    flash: true,
                },
            ),
            (
                r#"11/28/2026 - 20:01:02.000 - "s1mple<12><STEAM_1:0:123><CT>" [1 2 3] attacked "ZywOo<13><STEAM_1:1:456><TERRORIST>" [4 5 6] with "awp" (damage "112") (damage_armor "0") (health "0") (armor "0") (hitgroup "head")"#,
                Event::Damage {
                    attacker: s1.clone(),
                    victim: zy.clone(),
                    weapon: "awp".into(),
                    damage: 112,
                    hitgroup: "head".into(),
                },
            ),
            (
                r#"11/28/2026 - 20:01:40.000 - Team "CT" triggered "SFUI_Notice_CTs_Win" (CT "1") (T "0")"#,
                Event::RoundWon {
                    team: "CT".into(),
                    how: "SFUI_Notice_CTs_Win".into(),
                    score_ct: 1,
                    score_t: 0,
                },
            ),
            (
                r#"11/28/2026 - 20:01:40.000 - World triggered "Round_End""#,
                Event::RoundEnd,
            ),
            // A name with quotes and angle brackets, a bot, an unassigned team.
            (
                r#"11/28/2026 - 20:01:02.000 - "a "<b>" x<3><BOT><Unassigned>" killed "ZywOo<13><STEAM_1:1:456><TERRORIST>" with "knife""#,
                Event::Kill {
                    killer: p("a \"<b>\" x", "BOT", ""),
                    victim: zy.clone(),
                    weapon: "knife".into(),
                    headshot: false,
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(at(line).1, want, "{line}");
        }
    }

    #[test]
    fn skipped_lines_say_why() {
        let cases = [
            ("", Skip::Empty),
            ("   \r", Skip::Empty),
            ("hello world", Skip::NoTimestamp),
            ("13/01/2026 - 00:00:00.000 - World triggered \"Round_Start\"", Skip::NoTimestamp),
            ("01/01/2026 - 25:00:00.000 - World triggered \"Round_Start\"", Skip::NoTimestamp),
            ("01/01/2026 - 00:00:00.000 World triggered", Skip::NoTimestamp),
            (r#"01/01/2026 - 00:00:00.000 - "s1mple<12><STEAM_1:0:123><CT>" say "gl hf""#, Skip::Ignored),
            (r#"01/01/2026 - 00:00:00.000 - "s1mple<12><STEAM_1:0:123><CT>" purchased "awp""#, Skip::Ignored),
            (r#"01/01/2026 - 00:00:00.000 - World triggered "Match_Start" on "de_overpass""#, Skip::Ignored),
            (r#"01/01/2026 - 00:00:00.000 - MatchStatus: Team playing "CT": Vitality"#, Skip::Ignored),
            ("01/01/2026 - 00:00:00.000 - MatchStatus: Score: x:0 on map \"de_overpass\" RoundsPlayed: 0", Skip::Malformed),
            ("01/01/2026 - 00:00:00.000 - MatchStatus: Score: 1:0 on map \"de_overpass", Skip::Malformed),
            (r#"01/01/2026 - 00:00:00.000 - "s1mple<12><STEAM_1:0:123><CT>" killed "ZywOo<13><STE"#, Skip::Malformed),
            (r#"01/01/2026 - 00:00:00.000 - "s1mple<12><STEAM_1:0:123><CT>" attacked "ZywOo<13><S><T>" with "awp" (damage "lots")"#, Skip::Malformed),
            (r#"01/01/2026 - 00:00:00.000 - "no brackets" killed "x""#, Skip::Malformed),
            ("01/01/2026 - 00:00:00.000 - World triggered \"Round_Start\0\"", Skip::NulByte),
            ("\0", Skip::NulByte),
            ("01/01/2026 - 00:00:00.000 - \"s1\0mple<12><STEAM_1:0:123><CT>\" killed \"ZywOo<13><STEAM_1:1:456><TERRORIST>\" with \"awp\"", Skip::NulByte),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), Line::Skipped(want), "{line:?}");
        }
    }

    #[test]
    fn warmup_rounds_are_zero() {
        let (_, e) = at("01/01/2026 - 00:00:00.000 - MatchStatus: Score: 0:0 on map \"de_inferno\" RoundsPlayed: -1");
        assert_eq!(
            e,
            Event::Status {
                score_ct: 0,
                score_t: 0,
                map: "de_inferno".into(),
                rounds_played: 0
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        /// Whatever is stored can be stored: no event carries a NUL into a PostgreSQL text column.
        #[test]
        fn no_event_carries_a_nul(cut in 0usize..200, at in 0usize..200) {
            let line = r#"11/28/2026 - 20:01:02.000 - "s1mple<12><STEAM_1:0:123><CT>" [1 2 3] attacked "ZywOo<13><STEAM_1:1:456><TERRORIST>" [4 5 6] with "awp" (damage "112") (hitgroup "head")"#;
            let mut chars: Vec<char> = line.chars().take(cut.max(1)).collect();
            let at = at % chars.len();
            chars.insert(at, '\0');
            let s: String = chars.into_iter().collect();
            if let Line::Event { event, .. } = parse_line(&s) {
                proptest::prop_assert!(!format!("{event:?}").contains("\\0"), "{s:?} → {event:?}");
            }
        }

        #[test]
        fn never_panics_near_valid(prefix in 0usize..200, noise in "[\\PC\"<>()\\[\\] ]{0,40}") {
            let line = r#"11/28/2026 - 20:01:02.000 - "s1mple<12><STEAM_1:0:123><CT>" [1 2 3] attacked "ZywOo<13><STEAM_1:1:456><TERRORIST>" [4 5 6] with "awp" (damage "112") (hitgroup "head")"#;
            let cut: String = line.chars().take(prefix).collect();
            let _ = parse_line(&format!("{cut}{noise}"));
        }
    }
}
