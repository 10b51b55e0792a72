//! Short human-readable renderings shared by ionctl's tables, its dashboard and its logs:
//! ages, sizes, and errors on one line.

use std::time::Duration;

/// "3s", "2m", "1h", "4d": the age of a thing at a glance, like kubectl's AGE column.
pub fn short_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// "512 B", "3.4 kB", "12.0 MB", "1.2 GB": a size at a glance, in SI units as `ls -h --si`.
pub fn short_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The error and its causes on one line, what failed first and then why, each cause once.
/// Many errors already say their cause in their own message (`size 9: a group takes at most
/// 6…`, a retry's "gave up after 8 attempts: `<last error>`"), and walking the chain after them
/// would print it twice; a cause whose text is already on the line is left out.
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = current.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_at_a_glance() {
        assert_eq!(short_bytes(0), "0 B");
        assert_eq!(short_bytes(999), "999 B");
        assert_eq!(short_bytes(1_000), "1.0 kB");
        assert_eq!(short_bytes(3_400), "3.4 kB");
        assert_eq!(short_bytes(999_999), "1.0 MB");
        assert_eq!(short_bytes(12_000_000), "12.0 MB");
        assert_eq!(short_bytes(1_234_000_000), "1.2 GB");
        assert_eq!(short_bytes(u64::MAX), "18446744.1 TB");
    }

    #[test]
    fn each_unit_takes_over_at_two_of_it() {
        let s = Duration::from_secs;
        assert_eq!(short_age(s(0)), "0s");
        assert_eq!(short_age(s(119)), "119s");
        assert_eq!(short_age(s(120)), "2m");
        assert_eq!(short_age(s(7199)), "119m");
        assert_eq!(short_age(s(7200)), "2h");
        assert_eq!(short_age(s(172_800)), "2d");
    }
}
