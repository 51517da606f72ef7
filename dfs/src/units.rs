//! Sizes as people write and read them: `64MiB` on a command line, `1.5 GiB` in a listing.
//! One parser for the whole workspace (`dfs put --block-size-bytes`, every `mrjob` size
//! option, `benchtool`), so the same spelling works everywhere.

/// Parses a size such as `4096`, `64K`, `64KiB`, `100MB`, `1G` (binary multiples: `K`, `KB`
/// and `KiB` all mean 1024 bytes). A plain number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(format!(
            "{text:?} is not a size (examples: 4096, 64KiB, 100MiB, 1GiB)"
        ));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    let shift = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        unit => {
            return Err(format!(
                "unknown size unit {unit:?} in {text:?} (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A byte count for people: whole bytes below 1 KiB (`512B`), else one decimal and a binary
/// unit (`1.5KiB`, `64.0MiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1}{}", UNITS[u])
}

/// How a listing prints sizes: exact bytes, or [`human`] (`ls -h`, `du -h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeFormat {
    /// A plain byte count, for scripts.
    Bytes,
    /// `1.5KiB`, for people.
    Human,
}

impl SizeFormat {
    /// The format a `-h` flag asks for.
    pub fn from_flag(human: bool) -> SizeFormat {
        if human {
            SizeFormat::Human
        } else {
            SizeFormat::Bytes
        }
    }

    /// `bytes` in this format.
    pub fn show(self, bytes: u64) -> String {
        match self {
            SizeFormat::Bytes => bytes.to_string(),
            SizeFormat::Human => human(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size(" 2 TB "), Ok(2 << 40));
        assert!(parse_size("abc").is_err());
        assert!(parse_size("-5").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("20000000000T").is_err());
    }

    #[test]
    fn human_sizes_round_to_one_decimal() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.0KiB");
        assert_eq!(human(1536), "1.5KiB");
        assert_eq!(human(64 << 20), "64.0MiB");
        assert_eq!(human(3 << 30), "3.0GiB");
        assert_eq!(human(u64::MAX), "16384.0PiB");
        assert_eq!(SizeFormat::from_flag(false).show(2048), "2048");
        assert_eq!(SizeFormat::from_flag(true).show(2048), "2.0KiB");
    }
}
