//! Byte sizes as users write them (`64M`, `64MB`, `65273856`) and as
//! esxstick prints them.

/// Why a size given by the user cannot be understood; each names the
/// text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// A unit that is none of those [`parse`] knows.
    #[error(
        "{text:?}: unknown unit {unit:?} (use bytes, K/M/G/T for powers of 1024, or KB/MB/GB/TB)"
    )]
    UnknownUnit {
        /// The size as given.
        text: String,
        /// The unit, trimmed and lower-cased.
        unit: String,
    },
    /// The number part is not a number (or is negative, or written with
    /// an exponent).
    #[error(
        "{text:?} is not a size: give bytes (65273856) or a number with a unit, K/M/G/T for \
         powers of 1024 or KB/MB/GB/TB for powers of 1000 (64M, 64MB, 1.5G)"
    )]
    NotANumber {
        /// The size as given.
        text: String,
    },
    /// Far less than any stick holds: most likely a unit was left out.
    #[error("{text:?} is {} bytes, far too small for a stick{}", group(*bytes), suggestion(text))]
    TooSmall {
        /// The size as given.
        text: String,
        /// The bytes it means.
        bytes: u64,
    },
    /// More bytes than 64 bits count.
    #[error("{text:?} is too large")]
    TooLarge {
        /// The size as given.
        text: String,
    },
}

/// The smallest target size taken: a size below it is a unit left out.
pub const MIN_TARGET: u64 = 1 << 20;

/// Parses the size of a target ([`parse`]), refusing sizes below
/// [`MIN_TARGET`] with a suggestion (`64` → did you mean `64M`?).
pub fn parse_target(text: &str) -> Result<u64, SizeError> {
    let bytes = parse(text)?;
    if bytes < MIN_TARGET {
        return Err(SizeError::TooSmall {
            text: text.to_string(),
            bytes,
        });
    }
    Ok(bytes)
}

/// What a too-small size probably meant: the same number in MiB or MB
/// when no unit was given.
fn suggestion(text: &str) -> String {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        format!("; did you mean {t}M (MiB) or {t}MB?")
    } else {
        " (sizes are bytes unless a unit follows: 64M, 64MB)".to_string()
    }
}

/// Parses a size: a plain number of bytes, or a number with a unit.
/// `K`, `M`, `G`, `T` and `KiB`…`TiB` are powers of 1024; `KB`…`TB` are
/// powers of 1000 (as printed on sticks). Case does not matter; `_` and
/// `,` between digits are ignored.
pub fn parse(text: &str) -> Result<u64, SizeError> {
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, '_' | ','))
        .collect();
    let split = cleaned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(cleaned.len());
    let (number, unit) = cleaned.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    // "-1" and "1e9" are numbers of another kind, not units.
    let exponent = unit.strip_prefix('e').is_some_and(|e| {
        let e = e.trim_start_matches(['+', '-']);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    if number.is_empty() || exponent {
        return Err(SizeError::NotANumber {
            text: text.to_string(),
        });
    }
    let factor: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(SizeError::UnknownUnit {
                text: text.to_string(),
                unit: other.to_string(),
            })
        }
    };
    let bad = |_| SizeError::NotANumber {
        text: text.to_string(),
    };
    let bytes = match number.split_once('.') {
        None => number.parse::<u64>().map_err(bad)?.checked_mul(factor),
        Some((whole, frac)) => {
            let whole: u64 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(bad)?
            };
            let digits = frac.len().min(9) as u32;
            let frac: u64 = frac
                .get(..digits as usize)
                .unwrap_or("")
                .parse()
                .map_err(bad)?;
            let scale = 10u128.pow(digits);
            let frac = u64::try_from(u128::from(frac) * u128::from(factor) / scale).ok();
            whole.checked_mul(factor).and_then(|w| w.checked_add(frac?))
        }
    };
    bytes.ok_or_else(|| SizeError::TooLarge {
        text: text.to_string(),
    })
}

/// 55323877 → "55,323,877".
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 4194304 → "4.0 MiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Nominal stick sizes, in decimal megabytes as printed on the package.
const COMMON_MB: [u64; 12] = [
    32, 64, 128, 256, 512, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000,
];

/// The smallest nominal stick size (e.g. "128 MB") holding `bytes`.
pub fn common_size_for(bytes: u64) -> String {
    match COMMON_MB.iter().find(|&&mb| mb * 1_000_000 >= bytes) {
        Some(mb) if *mb >= 1_000 => format!("{} GB", mb / 1_000),
        Some(mb) => format!("{mb} MB"),
        None => format!("{} GB", bytes.div_ceil(1_000_000_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("65273856"), Ok(65_273_856));
        assert_eq!(parse("65,273,856"), Ok(65_273_856));
        assert_eq!(parse("64M"), Ok(64 << 20));
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("64MB"), Ok(64_000_000));
        assert_eq!(parse("64 mb"), Ok(64_000_000));
        assert_eq!(parse("1.5G"), Ok(3 << 29));
        assert_eq!(parse("2GB"), Ok(2_000_000_000));
        assert_eq!(parse("0.123456789T"), Ok(135_742_175_033));
        assert!(parse("64X").is_err());
        assert!(parse("").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("99999999999T").is_err());
    }

    #[test]
    fn errors_name_the_text_and_read_as_before() {
        assert_eq!(
            parse("64X").unwrap_err().to_string(),
            "\"64X\": unknown unit \"x\" (use bytes, K/M/G/T for powers of 1024, or KB/MB/GB/TB)"
        );
        assert_eq!(
            parse("1.2.3M"),
            Err(SizeError::NotANumber {
                text: "1.2.3M".into()
            })
        );
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "\"\" is not a size: give bytes (65273856) or a number with a unit, K/M/G/T for \
             powers of 1024 or KB/MB/GB/TB for powers of 1000 (64M, 64MB, 1.5G)"
        );
        for text in ["-1", "1e9", "2E+3"] {
            assert_eq!(
                parse(text),
                Err(SizeError::NotANumber { text: text.into() })
            );
        }
        assert_eq!(
            parse_target("64").unwrap_err().to_string(),
            "\"64\" is 64 bytes, far too small for a stick; did you mean 64M (MiB) or 64MB?"
        );
        assert_eq!(
            parse_target("64K").unwrap_err().to_string(),
            "\"64K\" is 65,536 bytes, far too small for a stick (sizes are bytes unless a unit \
             follows: 64M, 64MB)"
        );
        assert_eq!(parse_target("1M"), Ok(1 << 20));
        assert_eq!(
            parse("99999999999T").unwrap_err().to_string(),
            "\"99999999999T\" is too large"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(group(65_273_856), "65,273,856");
        assert_eq!(group(512), "512");
        assert_eq!(human(4 << 20), "4.0 MiB");
        assert_eq!(human(100), "100 B");
        assert_eq!(common_size_for(67_108_864), "128 MB");
        assert_eq!(common_size_for(64_000_000), "64 MB");
        assert_eq!(common_size_for(1_500_000_000), "2 GB");
    }
}
