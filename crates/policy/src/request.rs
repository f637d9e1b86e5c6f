//! Criteria that read the request rather than the user: `http_method`, `http_path`,
//! `source_ip`, `cors_preflight`, `date`, `day_of_week`, `time_of_day`.

use std::net::IpAddr;

use serde_json::Value;

use crate::matcher::{StringMatcher, kind, scalar};
use crate::parse::PolicyError;

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr =
            addr.trim().parse().map_err(|_| format!("`{text}` is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: bad prefix length"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_eq(u32::from(net) as u128, u32::from(ip) as u128, self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_eq(u128::from(net), u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

fn mask_eq(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

pub(crate) fn networks(value: &Value, criterion: &str) -> Result<Vec<Network>, PolicyError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|v| {
            let text = v.as_str().ok_or_else(|| {
                PolicyError::new(format!("{criterion}: expected addresses, got {}", kind(v)))
            })?;
            Network::parse(text).map_err(|e| PolicyError::new(format!("{criterion}: {e}")))
        })
        .collect()
}

pub(crate) fn method_matcher(value: &Value) -> Result<StringMatcher, PolicyError> {
    StringMatcher::parse(value, "http_method", |s| s.to_ascii_uppercase())
}

pub(crate) fn path_matcher(value: &Value) -> Result<StringMatcher, PolicyError> {
    StringMatcher::parse(value, "http_path", str::to_owned)
}

/// A time window on dates: `{after: RFC 3339, before: RFC 3339}` (either or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    after: Option<i64>,
    before: Option<i64>,
}

impl DateWindow {
    pub(crate) fn parse(value: &Value) -> Result<DateWindow, PolicyError> {
        let bad = |why: &str| PolicyError::new(format!("date: {why}"));
        let Value::Object(map) = value else { return Err(bad("expected a map with after and/or before")) };
        let mut window = DateWindow { after: None, before: None };
        for (k, v) in map {
            let text = scalar(v).ok_or_else(|| bad("expected an RFC 3339 date-time"))?;
            let at = rfc3339(&text).ok_or_else(|| bad(&format!("`{text}` is not an RFC 3339 date-time")))?;
            match k.as_str() {
                "after" => window.after = Some(at),
                "before" => window.before = Some(at),
                other => return Err(bad(&format!("unknown matcher `{other}` (expected after, before)"))),
            }
        }
        if window.after.is_none() && window.before.is_none() {
            return Err(bad("give after and/or before"));
        }
        Ok(window)
    }

    pub fn matches(&self, now: i64) -> bool {
        self.after.is_none_or(|a| now > a) && self.before.is_none_or(|b| now < b)
    }
}

/// Days of the week (bit 0 = Monday), in a timezone given as a UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    mask: u8,
    offset_secs: i64,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Days {
    /// `mon-fri`, `sat,sun`, a list, or `{days: ..., timezone: "UTC"|"+02:00"}`.
    pub(crate) fn parse(value: &Value) -> Result<Days, PolicyError> {
        let bad = |why: String| PolicyError::new(format!("day_of_week: {why}"));
        let (days, tz) = match value {
            Value::Object(map) => {
                (map.get("days").ok_or_else(|| bad("missing `days`".into()))?, map.get("timezone"))
            }
            other => (other, None),
        };
        let texts: Vec<String> = match days {
            Value::Array(items) => items.iter().filter_map(scalar).collect(),
            other => scalar(other).map(|s| s.split(',').map(str::to_owned).collect()).unwrap_or_default(),
        };
        let mut mask = 0u8;
        for text in texts.iter().map(|s| s.trim().to_ascii_lowercase()) {
            let day = |d: &str| {
                DAY_NAMES
                    .iter()
                    .position(|n| d.starts_with(n))
                    .ok_or_else(|| bad(format!("`{d}` is not a day (mon..sun)")))
            };
            match text.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (day(from.trim())?, day(to.trim())?);
                    let mut d = from;
                    loop {
                        mask |= 1 << d;
                        if d == to {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => mask |= 1 << day(&text)?,
            }
        }
        if mask == 0 {
            return Err(bad("no days given".into()));
        }
        Ok(Days { mask, offset_secs: timezone(tz, "day_of_week")? })
    }

    pub fn matches(&self, now: i64) -> bool {
        let local_days = (now + self.offset_secs).div_euclid(86_400);
        // 1970-01-01 was a Thursday (index 3).
        let weekday = (local_days + 3).rem_euclid(7) as u8;
        self.mask & (1 << weekday) != 0
    }
}

/// A time-of-day window `{after: "HH:MM", before: "HH:MM", timezone?}`; windows that cross
/// midnight (after > before) are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    after: Option<i64>,
    before: Option<i64>,
    offset_secs: i64,
}

impl TimeWindow {
    pub(crate) fn parse(value: &Value) -> Result<TimeWindow, PolicyError> {
        let bad = |why: String| PolicyError::new(format!("time_of_day: {why}"));
        let Value::Object(map) = value else {
            return Err(bad("expected a map with after and/or before".into()));
        };
        let clock = |k: &str| -> Result<Option<i64>, PolicyError> {
            let Some(v) = map.get(k) else { return Ok(None) };
            let text = scalar(v).unwrap_or_default();
            let parts: Vec<&str> = text.split(':').collect();
            let num = |s: &str, max: i64| s.parse::<i64>().ok().filter(|n| (0..=max).contains(n));
            match parts.as_slice() {
                [h, m] => Ok(num(h, 23).zip(num(m, 59)).map(|(h, m)| h * 3600 + m * 60)),
                [h, m, s] => {
                    Ok(num(h, 23).zip(num(m, 59)).zip(num(s, 59)).map(|((h, m), s)| h * 3600 + m * 60 + s))
                }
                _ => Ok(None),
            }
            .and_then(|t| t.map(Some).ok_or_else(|| bad(format!("`{text}` is not a time (HH:MM)"))))
        };
        for k in map.keys() {
            if !matches!(k.as_str(), "after" | "before" | "timezone") {
                return Err(bad(format!("unknown key `{k}` (expected after, before, timezone)")));
            }
        }
        let window = TimeWindow {
            after: clock("after")?,
            before: clock("before")?,
            offset_secs: timezone(map.get("timezone"), "time_of_day")?,
        };
        if window.after.is_none() && window.before.is_none() {
            return Err(bad("give after and/or before".into()));
        }
        Ok(window)
    }

    pub fn matches(&self, now: i64) -> bool {
        let t = (now + self.offset_secs).rem_euclid(86_400);
        match (self.after, self.before) {
            (Some(a), Some(b)) if a > b => t >= a || t < b,
            (a, b) => a.is_none_or(|a| t >= a) && b.is_none_or(|b| t < b),
        }
    }
}

/// `UTC`, `Z`, or a fixed offset such as `+02:00`. Zone names (`Europe/Paris`) need a zone
/// database, which this build does not carry: they are refused rather than guessed.
fn timezone(value: Option<&Value>, criterion: &str) -> Result<i64, PolicyError> {
    let Some(v) = value else { return Ok(0) };
    let text = scalar(v).unwrap_or_default();
    let bad = || {
        PolicyError::new(format!(
            "{criterion}: timezone `{text}` is not supported yet; use UTC or an offset like +02:00"
        ))
    };
    match text.as_str() {
        "UTC" | "utc" | "Z" | "Etc/UTC" => Ok(0),
        t if t.starts_with('+') || t.starts_with('-') => {
            let sign = if t.starts_with('-') { -1 } else { 1 };
            let (h, m) = t[1..].split_once(':').unwrap_or((&t[1..], "0"));
            let h: i64 = h.parse().map_err(|_| bad())?;
            let m: i64 = m.parse().map_err(|_| bad())?;
            if h > 14 || m > 59 {
                return Err(bad());
            }
            Ok(sign * (h * 3600 + m * 60))
        }
        _ => Err(bad()),
    }
}

/// Seconds since the epoch of an RFC 3339 date-time (or a bare date, at midnight UTC).
fn rfc3339(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(['T', 't', ' ']).unwrap_or((text, "00:00:00Z"));
    let mut d = date.split('-');
    let (y, mo, da): (i64, i64, i64) =
        (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => return None,
    };
    let mut c = clock.split(':');
    let h: i64 = c.next()?.parse().ok()?;
    let mi: i64 = c.next()?.parse().ok()?;
    let s: f64 = c.next().unwrap_or("0").parse().ok()?;
    let offset_secs = match offset {
        "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + s as i64 - offset_secs)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses() {
        let net = Network::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped IPv6");
        assert!(Network::parse("2001:db8::/32").unwrap().contains("2001:db8:1::1".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Network::parse("1.2.3.4").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(Network::parse("1.2.3.4/33").is_err());
        assert!(Network::parse("example.com").is_err());
    }

    #[test]
    fn dates_parse_as_rfc3339() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2026-11-29T12:00:00Z"), Some(1_795_953_600));
        assert_eq!(rfc3339("2026-11-29T14:00:00+02:00"), Some(1_795_953_600));
        assert_eq!(rfc3339("2026-11-29"), Some(1_795_910_400));
        assert_eq!(rfc3339("29/11/2026"), None);
    }

    #[test]
    fn days_and_times_in_offsets() {
        // 2026-11-29T12:00:00Z is a Sunday.
        let sunday_noon = 1_795_953_600;
        let weekdays = Days::parse(&Value::String("mon-fri".into())).unwrap();
        assert!(!weekdays.matches(sunday_noon));
        let weekend = Days::parse(&serde_json::json!(["sat", "sun"])).unwrap();
        assert!(weekend.matches(sunday_noon));
        // At +14:00 it is already Monday.
        let kiribati = Days::parse(&serde_json::json!({"days": "mon", "timezone": "+14:00"})).unwrap();
        assert!(kiribati.matches(sunday_noon));
        let office = TimeWindow::parse(&serde_json::json!({"after": "09:00", "before": "17:00"})).unwrap();
        assert!(office.matches(sunday_noon));
        let night = TimeWindow::parse(&serde_json::json!({"after": "22:00", "before": "06:00"})).unwrap();
        assert!(!night.matches(sunday_noon));
        assert!(night.matches(sunday_noon + 11 * 3600));
        assert!(TimeWindow::parse(&serde_json::json!({"after": "9am"})).is_err());
        assert!(Days::parse(&serde_json::json!({"days": "mon", "timezone": "Europe/Paris"})).is_err());
    }
}
