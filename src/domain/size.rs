//! Sizes of apparel and footwear: a label in a size system, with the order
//! that makes "one size up" mean something, and the size domain (a
//! category subtree with one system) a customer's size is kept per.

use std::hash::{Hash, Hasher};

use super::CategoryPath;

/// Longest size label accepted.
pub const MAX_SIZE_LEN: usize = 32;

/// How a size is written, and so how sizes of it are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SizeSystem {
    /// Letters: XXS, XS, S, M, L, XL, XXL, 3XL ...
    Alpha,
    /// A number: shoe sizes (9, 9.5, 42), numeric dress or collar sizes.
    Numeric,
    /// Waist × inside leg, as trousers are sized: 32x30.
    WaistLength,
    /// Anything else (Regular, Petite, One Size, 85B): kept, never ordered.
    Other,
}

impl SizeSystem {
    /// Every system.
    pub const ALL: [SizeSystem; 4] = [
        SizeSystem::Alpha,
        SizeSystem::Numeric,
        SizeSystem::WaistLength,
        SizeSystem::Other,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SizeSystem::Alpha => "alpha",
            SizeSystem::Numeric => "numeric",
            SizeSystem::WaistLength => "waist_length",
            SizeSystem::Other => "other",
        }
    }

    /// Parses a stored or imported name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| "must be one of alpha, numeric, waist_length, other".to_owned())
    }
}

/// The letter sizes in order; `2XL`-style names map onto them.
const ALPHA: [&str; 11] = [
    "4XS", "3XS", "XXS", "XS", "S", "M", "L", "XL", "XXL", "3XL", "4XL",
];

/// Every letter size, smallest first.
pub fn alpha_sizes() -> Vec<Size> {
    ALPHA
        .iter()
        .map(|l| Size {
            label: (*l).to_owned(),
            system: SizeSystem::Alpha,
        })
        .collect()
}

/// A product's size: a normalised label and its system.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Size {
    label: String,
    system: SizeSystem,
}

impl Size {
    /// Parses a label; `system` names its system, or `None` to recognise it
    /// (letters, then a number, then waist×length, else `Other`). Letters
    /// are normalised (`xl`, `X-Large` → `XL`; `XXXL` → `3XL`), numbers
    /// written plainly (`9,5` → `9.5`), waist×length as `32x30`.
    pub fn parse(label: &str, system: Option<SizeSystem>) -> Result<Self, String> {
        let raw = label.split_whitespace().collect::<Vec<_>>().join(" ");
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.chars().count() > MAX_SIZE_LEN || raw.chars().any(char::is_control) {
            return Err(format!(
                "must be at most {MAX_SIZE_LEN} printable characters"
            ));
        }
        let as_system = |s: SizeSystem| -> Option<String> {
            match s {
                SizeSystem::Alpha => alpha(&raw),
                SizeSystem::Numeric => numeric(&raw),
                SizeSystem::WaistLength => waist_length(&raw),
                SizeSystem::Other => Some(raw.clone()),
            }
        };
        match system {
            Some(s) => as_system(s)
                .map(|label| Size { label, system: s })
                .ok_or_else(|| format!("{raw:?} is not a size of the {} system", s.as_str())),
            None => Ok(SizeSystem::ALL
                .into_iter()
                .find_map(|s| as_system(s).map(|label| Size { label, system: s }))
                .unwrap_or_else(|| Size {
                    label: raw.clone(),
                    system: SizeSystem::Other,
                })),
        }
    }

    /// Like [`Size::parse`], but an empty label or "One Size" (and its
    /// spellings) is no size at all: `None`.
    pub fn parse_optional(label: &str, system: Option<SizeSystem>) -> Result<Option<Self>, String> {
        let squashed: String = label
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        if squashed.is_empty() && label.trim().is_empty()
            || matches!(
                squashed.as_str(),
                "onesize" | "os" | "onesizefitsall" | "osfa"
            )
        {
            return Ok(None);
        }
        Self::parse(label, system).map(Some)
    }

    /// A size as stored (label and system name), trusted.
    pub fn from_stored(label: &str, system: &str) -> Self {
        Size {
            label: label.to_owned(),
            system: SizeSystem::parse(system).unwrap_or(SizeSystem::Other),
        }
    }

    /// The normalised label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its system.
    pub fn system(&self) -> SizeSystem {
        self.system
    }

    /// Where it stands among sizes of its system (smaller first); `None`
    /// for sizes that have no order.
    pub fn rank(&self) -> Option<f64> {
        match self.system {
            SizeSystem::Alpha => ALPHA
                .iter()
                .position(|a| *a == self.label)
                .map(|p| p as f64),
            SizeSystem::Numeric => self.label.parse().ok(),
            SizeSystem::WaistLength => {
                let (w, l) = self.label.split_once('x')?;
                Some(w.parse::<f64>().ok()? * 1000.0 + l.parse::<f64>().ok()?)
            }
            SizeSystem::Other => None,
        }
    }
}

fn alpha(raw: &str) -> Option<String> {
    let s: String = raw
        .to_ascii_uppercase()
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '_'))
        .collect();
    let s = match s.as_str() {
        "SMALL" => "S".to_owned(),
        "MEDIUM" => "M".to_owned(),
        "LARGE" => "L".to_owned(),
        "XLARGE" | "EXTRALARGE" => "XL".to_owned(),
        "XSMALL" | "EXTRASMALL" => "XS".to_owned(),
        "XXLARGE" => "XXL".to_owned(),
        "XXSMALL" => "XXS".to_owned(),
        _ => s,
    };
    // "XXXL" and "3XL" are one size; so are "XXL" and "2XL".
    let (count, rest) = match s.strip_suffix('L').or_else(|| s.strip_suffix('S')) {
        Some(prefix) if !prefix.is_empty() => {
            let unit = &s[s.len() - 1..];
            if prefix.chars().all(|c| c == 'X') {
                (prefix.len(), unit)
            } else if let Some(n) = prefix
                .strip_suffix('X')
                .and_then(|d| d.parse::<usize>().ok())
            {
                (n, unit)
            } else {
                return None;
            }
        }
        _ => (0, s.as_str()),
    };
    let label = match (count, rest) {
        (0, r) => r.to_owned(),
        (1, r) => format!("X{r}"),
        (2, r) => format!("XX{r}"),
        (n, r) => format!("{n}X{r}"),
    };
    ALPHA.contains(&label.as_str()).then_some(label)
}

fn numeric(raw: &str) -> Option<String> {
    let s = raw.replace(',', ".").replace('½', ".5");
    let s = s.strip_prefix('.').map_or(s.clone(), |r| format!("0.{r}"));
    let v: f64 = s.trim().parse().ok()?;
    if !(v > 0.0 && v <= 200.0) || (v * 2.0).fract() != 0.0 && (v * 4.0).fract() != 0.0 {
        return None;
    }
    Some(format!("{v}"))
}

fn waist_length(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    let (w, l) = lower
        .split_once('x')
        .or_else(|| lower.split_once('/'))
        .or_else(|| lower.split_once('×'))?;
    let (w, l): (u32, u32) = (w.trim().parse().ok()?, l.trim().parse().ok()?);
    ((10..=80).contains(&w) && (10..=50).contains(&l)).then(|| format!("{w}x{l}"))
}

/// A product's size, when it has one. Absent, it adds nothing to a
/// product's fingerprint, so products stored before sizes existed are not
/// seen as changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductSize(pub Option<Size>);

impl Hash for ProductSize {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if let Some(s) = &self.0 {
            s.hash(state);
        }
    }
}

/// What a customer's size is kept per: a category subtree (the first two
/// levels of the path, "Apparel > Jackets") with one size system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SizeDomain {
    /// "Apparel > Jackets".
    pub category: String,
    /// The system its sizes are written in.
    pub system: SizeSystem,
}

impl SizeDomain {
    /// The domain of a product in `category` with a size of `system`.
    pub fn of(category: &CategoryPath, system: SizeSystem) -> Self {
        SizeDomain {
            category: category
                .levels()
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join(" > "),
            system,
        }
    }

    /// One string for the domain (interned by the suggestion model).
    pub fn key(&self) -> String {
        format!("{}\u{1f}{}", self.category, self.system.as_str())
    }

    /// The domain of a [`SizeDomain::key`].
    pub fn from_key(key: &str) -> Self {
        let (category, system) = key.split_once('\u{1f}').unwrap_or((key, "other"));
        SizeDomain {
            category: category.to_owned(),
            system: SizeSystem::parse(system).unwrap_or(SizeSystem::Other),
        }
    }

    /// How an agent says it: "jackets" for "Apparel > Jackets".
    pub fn spoken(&self) -> String {
        self.category
            .rsplit(" > ")
            .next()
            .unwrap_or(&self.category)
            .to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(s: &str) -> Size {
        Size::parse(s, None).unwrap()
    }

    #[test]
    fn labels_are_recognised_and_normalised() {
        let cases = [
            ("m", "M", SizeSystem::Alpha),
            ("X-Large", "XL", SizeSystem::Alpha),
            ("xxxl", "3XL", SizeSystem::Alpha),
            ("2XL", "XXL", SizeSystem::Alpha),
            ("Medium", "M", SizeSystem::Alpha),
            ("9", "9", SizeSystem::Numeric),
            ("9,5", "9.5", SizeSystem::Numeric),
            ("10½", "10.5", SizeSystem::Numeric),
            ("32x30", "32x30", SizeSystem::WaistLength),
            ("32 / 30", "32x30", SizeSystem::WaistLength),
            ("Petite", "Petite", SizeSystem::Other),
            ("85B", "85B", SizeSystem::Other),
            ("XLL", "XLL", SizeSystem::Other),
        ];
        for (raw, label, system) in cases {
            let s = size(raw);
            assert_eq!((s.label(), s.system()), (label, system), "{raw}");
        }
    }

    #[test]
    fn a_named_system_must_fit() {
        assert!(Size::parse("M", Some(SizeSystem::Numeric)).is_err());
        assert!(Size::parse("9", Some(SizeSystem::Alpha)).is_err());
        assert_eq!(
            Size::parse("M", Some(SizeSystem::Other)).unwrap().label(),
            "M"
        );
        assert!(Size::parse("  ", None).is_err());
        assert!(Size::parse(&"x".repeat(40), None).is_err());
        assert!(Size::parse("0", Some(SizeSystem::Numeric)).is_err());
        assert_eq!(Size::parse_optional("One Size", None), Ok(None));
        assert_eq!(Size::parse_optional("O/S", None), Ok(None));
        assert_eq!(Size::parse_optional("", None), Ok(None));
    }

    #[test]
    fn sizes_are_ordered_within_their_system() {
        let order = ["XXS", "XS", "S", "M", "L", "XL", "XXL", "3XL"];
        for pair in order.windows(2) {
            assert!(size(pair[0]).rank() < size(pair[1]).rank(), "{pair:?}");
        }
        assert!(size("9").rank() < size("9.5").rank());
        assert!(size("9.5").rank() < size("10").rank());
        assert!(size("30x32").rank() < size("32x30").rank());
        assert_eq!(size("Petite").rank(), None);
    }

    #[test]
    fn domains_are_two_levels_and_a_system() {
        let path = CategoryPath::parse(&["Apparel", "Jackets", "Rain"], true).unwrap();
        let d = SizeDomain::of(&path, SizeSystem::Alpha);
        assert_eq!(d.category, "Apparel > Jackets");
        assert_eq!(SizeDomain::from_key(&d.key()), d);
        assert_eq!(d.spoken(), "jackets");
    }
}
