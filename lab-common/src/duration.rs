//! Durations as the lab writes them in flags and config files: a whole
//! number and a unit, `500ms`, `2s`, `5m`, `1h`. Plumbing shared by step
//! 09's flags and `lb`'s config.

use std::time::Duration;

/// Writes a duration the way flags and files take it: `2s`, `500ms`.
pub fn show(duration: Duration) -> String {
    if duration.subsec_millis() != 0 || duration.is_zero() {
        format!("{}ms", duration.as_millis())
    } else {
        let secs = duration.as_secs();
        if secs.is_multiple_of(3600) {
            format!("{}h", secs / 3600)
        } else if secs.is_multiple_of(60) {
            format!("{}m", secs / 60)
        } else {
            format!("{secs}s")
        }
    }
}

/// [`parse`], refusing zero: for a timeout or an interval, where zero
/// would mean "at once" or "always".
pub fn parse_nonzero(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        duration if duration.is_zero() => {
            Err(format!("`{}`: must be longer than zero", text.trim()))
        }
        duration => Ok(duration),
    }
}

/// Reads a duration: a whole number and a unit, `ms`, `s`, `m` or `h`
/// (`500ms`, `2s`, `5m`). Fractions and negative numbers are refused
/// with a message that says how to write one.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.len()
        - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let hint = "write a whole number and a unit: 500ms, 2s, 5m, 1h";
    if number.is_empty() {
        return Err(format!("`{text}` is not a duration; {hint}"));
    }
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is too long a duration"))?;
    let millis = match unit.trim() {
        "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        "" => return Err(format!("`{text}` has no unit; {hint}")),
        other => {
            return Err(format!("`{text}`: unknown unit `{other}`; {hint}"));
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_refused_where_it_would_mean_always() {
        assert_eq!(parse_nonzero("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(
            parse_nonzero(" 0ms "),
            Err("`0ms`: must be longer than zero".to_owned())
        );
        assert!(parse_nonzero("2x").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn durations_read_as_written_and_print_back() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse("2").unwrap_err().contains("no unit"));
        assert!(parse("-1s").is_err());
        assert!(parse("1.5s").is_err());
        assert!(parse("2x").unwrap_err().contains("unknown unit"));
        for text in ["500ms", "2s", "5m", "1h", "0ms"] {
            assert_eq!(show(parse(text).unwrap()), text);
        }
    }
}
