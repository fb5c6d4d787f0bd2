//! Validated values. Each has private fields and a `parse` that returns a
//! `Result`: once a value exists it is valid, and nothing re-checks it.

use std::fmt;

/// Longest id accepted (product, customer, order, message ids, ...).
pub const MAX_ID_LEN: usize = 128;
/// Longest name or subject accepted.
pub const MAX_NAME_LEN: usize = 512;
/// Longest free text accepted (return reasons).
pub const MAX_TEXT_LEN: usize = 4000;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Most levels in a category path.
pub const MAX_CATEGORY_DEPTH: usize = 8;
/// Largest amount accepted anywhere (a price, a line, an order total, a
/// refund), in minor units: 10^12, i.e. ten billion of a two-digit
/// currency. Sums of bounded amounts stay far inside 64 bits, so no stored
/// total can overflow.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;
/// How far in the future a time claimed by a sender (an order's, a
/// return's, a ticket's, a consent's, `customer_since`) may lie: 24 hours,
/// enough for any time-zone mistake, not enough to outrank later records.
pub const MAX_CLAIMED_SKEW_MS: i64 = 24 * 3600 * 1000;

/// Cuts text to at most `max` characters (adding `…` when it did), for
/// echoing input in an error message or a log line without echoing
/// whatever size the sender chose.
pub fn clip(raw: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match raw.char_indices().nth(max) {
        None => raw.into(),
        Some((at, _)) => format!("{}…", &raw[..at]).into(),
    }
}

/// Checks a piece of text against a maximum length (in characters) and
/// rejects control characters. Leading and trailing white space is removed.
pub fn bounded_text(raw: &str, max: usize, required: bool) -> Result<String, String> {
    let s = raw.trim();
    if required && s.is_empty() {
        return Err("is required".into());
    }
    let len = s.chars().count();
    if len > max {
        return Err(format!(
            "is {len} characters long; at most {max} are allowed"
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("contains control characters".into());
    }
    Ok(s.to_owned())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses an id: 1 to 128 characters after trimming, no control
            /// characters.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let s = bounded_text(raw, MAX_ID_LEN, true)?;
                if s.chars().any(char::is_control) {
                    return Err("contains control characters".into());
                }
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The retailer's product (variant) id.
    ProductId
);
id_type!(
    /// The id tying the variants of one style together.
    GroupId
);
id_type!(
    /// The retailer's customer id.
    CustomerId
);
id_type!(
    /// An anonymous browser or device id.
    AnonymousId
);
id_type!(
    /// A loyalty-programme member id.
    LoyaltyId
);
id_type!(
    /// The unique id of one browsing event (Segment `messageId`).
    MessageId
);
id_type!(
    /// The retailer's order id.
    OrderId
);
id_type!(
    /// The returns system's id of one return.
    ReturnId
);
id_type!(
    /// The helpdesk's ticket id.
    TicketId
);

/// An email address, lower-cased so that lookups ignore case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses `local@domain` with a dot in the domain, at most 254 characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() {
            return Err("is required".into());
        }
        if s.len() > 254 {
            return Err("is longer than 254 characters".into());
        }
        let valid = match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !valid {
            return Err("is not an email address".into());
        }
        Ok(Self(s))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number reduced to its digits, with a leading `+` kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a phone number: digits, optionally one leading `+`; spaces,
    /// dots, dashes and brackets are ignored; 6 to 15 digits.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("is required".into());
        }
        let mut out = String::with_capacity(s.len());
        for (i, c) in s.chars().enumerate() {
            match c {
                '+' if i == 0 => out.push('+'),
                '0'..='9' => out.push(c),
                ' ' | '.' | '-' | '(' | ')' => {}
                _ => {
                    return Err(
                        "may hold only digits, a leading +, spaces, dots, dashes and brackets"
                            .into(),
                    );
                }
            }
        }
        let digits = out.trim_start_matches('+').len();
        if !(6..=15).contains(&digits) {
            return Err(format!("has {digits} digits; 6 to 15 are expected"));
        }
        Ok(Self(out))
    }

    /// The normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kinds of identity a customer can be found by, besides their id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A loyalty-programme member id.
    LoyaltyId,
    /// An anonymous browser or device id.
    AnonymousId,
}

impl IdentityKind {
    /// The stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Email => "email",
            IdentityKind::Phone => "phone",
            IdentityKind::LoyaltyId => "loyalty_id",
            IdentityKind::AnonymousId => "anonymous_id",
        }
    }
}

/// A normalised identity of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    kind: IdentityKind,
    value: String,
}

impl Identity {
    /// Parses `raw` as an identity of `kind`, normalising it.
    pub fn parse(kind: IdentityKind, raw: &str) -> Result<Self, String> {
        let value = match kind {
            IdentityKind::Email => Email::parse(raw)?.0,
            IdentityKind::Phone => Phone::parse(raw)?.0,
            IdentityKind::LoyaltyId => LoyaltyId::parse(raw)?.0,
            IdentityKind::AnonymousId => AnonymousId::parse(raw)?.0,
        };
        Ok(Self { kind, value })
    }

    /// The kind.
    pub fn kind(&self) -> IdentityKind {
        self.kind
    }

    /// The normalised value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl From<Email> for Identity {
    fn from(e: Email) -> Self {
        Identity {
            kind: IdentityKind::Email,
            value: e.0,
        }
    }
}

impl From<Phone> for Identity {
    fn from(p: Phone) -> Self {
        Identity {
            kind: IdentityKind::Phone,
            value: p.0,
        }
    }
}

impl From<LoyaltyId> for Identity {
    fn from(l: LoyaltyId) -> Self {
        Identity {
            kind: IdentityKind::LoyaltyId,
            value: l.0,
        }
    }
}

impl From<AnonymousId> for Identity {
    fn from(a: AnonymousId) -> Self {
        Identity {
            kind: IdentityKind::AnonymousId,
            value: a.0,
        }
    }
}

/// How a caller names a customer: by id or by any linked identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerKey {
    /// The retailer's customer id.
    Id(CustomerId),
    /// Any other identity.
    Identity(Identity),
}

/// An ISO 4217 currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses three ASCII letters, upper-casing them.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let b = raw.trim().as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err("must be a three-letter ISO 4217 code such as USD".into());
        }
        Ok(Self([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ]))
    }

    /// The code, e.g. `USD`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point in ordinary use (2 for most).
    pub fn minor_digits(&self) -> u32 {
        match self.as_str() {
            "JPY" | "KRW" | "CLP" | "ISK" | "VND" | "XAF" | "XOF" | "HUF" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" => 3,
            _ => 2,
        }
    }
}

/// An amount in the minor unit of a currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// The currency.
    pub currency: Currency,
    /// The amount in minor units (cents).
    pub minor: i64,
}

impl Money {
    /// An amount between 0 and [`MAX_AMOUNT_MINOR`].
    pub fn non_negative(currency: Currency, minor: i64) -> Result<Self, String> {
        bounded_amount(minor)?;
        Ok(Self { currency, minor })
    }

    /// Converts a decimal amount as found in JSON exports (19.99) into minor
    /// units, rounding half away from zero. The number's shortest decimal
    /// form is read digit by digit, so 0.285 becomes 29 cents, as written,
    /// not the 28 its binary approximation would give. Import boundary only.
    pub fn from_decimal(currency: Currency, amount: f64) -> Result<Self, String> {
        if !amount.is_finite() || amount < 0.0 {
            return Err("must be a non-negative number".into());
        }
        if amount >= 1e15 {
            return Err(format!(
                "is too large: at most {MAX_AMOUNT_MINOR} minor units are allowed"
            ));
        }
        let text = amount.to_string();
        let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
        let digits = currency.minor_digits() as usize;
        let mut minor: i64 = whole.parse().map_err(|_| "is not a number".to_string())?;
        let frac: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
        for i in 0..digits {
            minor = minor * 10 + i64::from(frac.get(i).copied().unwrap_or(0));
        }
        if frac.get(digits).is_some_and(|d| *d >= 5) {
            minor += 1;
        }
        Self::non_negative(currency, minor)
    }
}

/// Checks an amount in minor units: 0 to [`MAX_AMOUNT_MINOR`].
pub fn bounded_amount(minor: i64) -> Result<i64, String> {
    if minor < 0 {
        return Err("must not be negative".into());
    }
    if minor > MAX_AMOUNT_MINOR {
        return Err(format!(
            "is {minor} minor units; at most {MAX_AMOUNT_MINOR} are allowed"
        ));
    }
    Ok(minor)
}

/// What a line of `quantity` items at `unit_minor` each amounts to, within
/// [`MAX_AMOUNT_MINOR`].
pub fn line_amount(quantity: i64, unit_minor: i64) -> Result<i64, String> {
    quantity
        .checked_mul(unit_minor)
        .ok_or_else(|| "is too large".to_string())
        .and_then(|amount| {
            bounded_amount(amount).map_err(|_| {
                format!("quantity × unit price is above the {MAX_AMOUNT_MINOR} minor units allowed")
            })
        })
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        let symbol = match self.currency.as_str() {
            "USD" => Some("$"),
            "EUR" => Some("€"),
            "GBP" => Some("£"),
            "JPY" => Some("¥"),
            _ => None,
        };
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let amount = if digits == 0 {
            abs.to_string()
        } else {
            let unit = 10u64.pow(digits);
            format!(
                "{}.{:0width$}",
                abs / unit,
                abs % unit,
                width = digits as usize
            )
        };
        match symbol {
            Some(s) => write!(f, "{sign}{s}{amount}"),
            None => write!(f, "{sign}{amount} {}", self.currency.as_str()),
        }
    }
}

/// A category path, most general level first ("Footwear > Running").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CategoryPath(Vec<String>);

impl CategoryPath {
    /// The separator used when a path is stored or shown as one string.
    pub const SEPARATOR: &'static str = " > ";

    /// Parses levels; empty levels are rejected, as is a level holding `>`.
    pub fn parse<S: AsRef<str>>(levels: &[S], required: bool) -> Result<Self, String> {
        if levels.is_empty() {
            return if required {
                Err("needs at least one level".into())
            } else {
                Ok(Self::default())
            };
        }
        if levels.len() > MAX_CATEGORY_DEPTH {
            return Err(format!(
                "has {} levels; at most {MAX_CATEGORY_DEPTH} are allowed",
                levels.len()
            ));
        }
        let mut out = Vec::with_capacity(levels.len());
        for (i, level) in levels.iter().enumerate() {
            let level = bounded_text(level.as_ref(), MAX_ID_LEN, true)
                .map_err(|e| format!("level {i} {e}"))?;
            if level.contains('>') {
                return Err(format!("level {i} contains '>'"));
            }
            out.push(level);
        }
        Ok(Self(out))
    }

    /// Splits a stored path ("A > B > C"). Accepts any `>` spacing, so it
    /// also reads paths from exports.
    pub fn from_stored(s: &str) -> Self {
        Self(
            s.split('>')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The levels.
    pub fn levels(&self) -> &[String] {
        &self.0
    }

    /// The most general level, or "" for an empty path.
    pub fn top(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// The most specific level, or "" for an empty path.
    pub fn leaf(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    /// Whether the path has no level.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored form, levels joined by " > ".
    pub fn to_stored(&self) -> String {
        self.0.join(Self::SEPARATOR)
    }
}

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest accepted instant (1970-01-01).
    pub const MIN: Timestamp = Timestamp(0);
    /// The latest accepted instant (9999-12-31).
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// From milliseconds since the epoch, within [`Self::MIN`]..=[`Self::MAX`].
    pub fn from_millis(ms: i64) -> Result<Self, String> {
        if !(Self::MIN.0..=Self::MAX.0).contains(&ms) {
            return Err("is outside the years 1970 to 9999".into());
        }
        Ok(Self(ms))
    }

    /// From seconds and nanoseconds, as in `google.protobuf.Timestamp`.
    pub fn from_parts(seconds: i64, nanos: i32) -> Result<Self, String> {
        if !(0..1_000_000_000).contains(&nanos) {
            return Err("has nanos outside 0..1e9".into());
        }
        let ms = seconds
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(i64::from(nanos / 1_000_000)));
        ms.ok_or_else(|| "is out of range".to_string())
            .and_then(Self::from_millis)
    }

    /// Parses RFC 3339 (`2017-01-01T11:53:26Z`, with or without fraction or
    /// offset), as Segment and most exports write it.
    pub fn parse_rfc3339(raw: &str) -> Result<Self, String> {
        let t =
            time::OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    "is not an RFC 3339 timestamp such as 2024-05-01T12:00:00Z".to_string()
                })?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms)
            .map_err(|_| "is out of range".to_string())
            .and_then(Self::from_millis)
    }

    /// The current time.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds and the remaining nanoseconds.
    pub fn to_parts(self) -> (i64, i32) {
        (
            self.0.div_euclid(1000),
            (self.0.rem_euclid(1000) * 1_000_000) as i32,
        )
    }

    /// Checks a time claimed by a sender: at most [`MAX_CLAIMED_SKEW_MS`]
    /// after `now` (the floor, 1970, holds for every `Timestamp`).
    pub fn claimed(self, now: Timestamp) -> Result<Self, String> {
        if self > now.plus_millis(MAX_CLAIMED_SKEW_MS) {
            return Err(format!(
                "lies more than 24 hours in the future (the service's clock reads {})",
                now.to_rfc3339()
            ));
        }
        Ok(self)
    }

    /// This instant minus a number of days, clamped at the epoch.
    pub fn minus_days(self, days: u32) -> Self {
        Self((self.0 - i64::from(days) * 86_400_000).max(0))
    }

    /// This instant plus milliseconds, clamped at [`Self::MAX`].
    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms).min(Self::MAX.0))
    }

    /// A short human date such as "3 Oct" (with the year when it is not
    /// the year of `now`).
    pub fn short_date(self, now: Timestamp) -> String {
        let to_date = |t: Timestamp| {
            time::OffsetDateTime::from_unix_timestamp(t.0.div_euclid(1000))
                .map(|d| d.date())
                .ok()
        };
        match (to_date(self), to_date(now)) {
            (Some(d), Some(n)) => {
                let month = &d.month().to_string()[..3];
                if d.year() == n.year() {
                    format!("{} {month}", d.day())
                } else {
                    format!("{} {month} {}", d.day(), d.year())
                }
            }
            _ => "an unknown date".into(),
        }
    }

    /// RFC 3339 text, for people and JSON.
    pub fn to_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_lowercased_and_checked() {
        assert_eq!(
            Email::parse(" Jane.Doe@Example.COM ").unwrap().as_str(),
            "jane.doe@example.com"
        );
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "ja ne@example.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn phone_keeps_digits_and_plus() {
        assert_eq!(
            Phone::parse("+1 (555) 010-2000").unwrap().as_str(),
            "+15550102000"
        );
        assert_eq!(Phone::parse("555.010.2000").unwrap().as_str(), "5550102000");
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("555-CALL-NOW").is_err());
        assert!(Phone::parse("1+5550102000").is_err());
    }

    #[test]
    fn ids_are_bounded() {
        assert!(ProductId::parse("").is_err());
        assert!(ProductId::parse("   ").is_err());
        assert!(ProductId::parse(&"x".repeat(129)).is_err());
        assert_eq!(ProductId::parse(" sku-1 ").unwrap().as_str(), "sku-1");
        assert!(ProductId::parse("a\u{0}b").is_err());
    }

    #[test]
    fn money_formats_and_converts() {
        let usd = Currency::parse("usd").unwrap();
        assert_eq!(Money::from_decimal(usd, 19.99).unwrap().minor, 1999);
        assert_eq!(Money::from_decimal(usd, 0.285).unwrap().minor, 29);
        assert_eq!(Money::from_decimal(usd, 3.0).unwrap().minor, 300);
        assert_eq!(Money::from_decimal(usd, 1.005).unwrap().minor, 101);
        assert_eq!(
            Money::from_decimal(Currency::parse("JPY").unwrap(), 1999.5)
                .unwrap()
                .minor,
            2000
        );
        assert_eq!(
            Money {
                currency: usd,
                minor: 1999
            }
            .to_string(),
            "$19.99"
        );
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(
            Money {
                currency: jpy,
                minor: 1999
            }
            .to_string(),
            "¥1999"
        );
        let chf = Currency::parse("CHF").unwrap();
        assert_eq!(
            Money {
                currency: chf,
                minor: 5
            }
            .to_string(),
            "0.05 CHF"
        );
        assert!(Currency::parse("US").is_err());
        assert!(Money::from_decimal(usd, -1.0).is_err());
        assert!(Money::from_decimal(usd, f64::NAN).is_err());
    }

    #[test]
    fn category_path_round_trips() {
        let p = CategoryPath::parse(&["Footwear", "Running"], true).unwrap();
        assert_eq!(p.to_stored(), "Footwear > Running");
        assert_eq!(CategoryPath::from_stored("Footwear > Running"), p);
        assert_eq!(p.top(), "Footwear");
        assert!(CategoryPath::parse::<&str>(&[], true).is_err());
        assert!(CategoryPath::parse(&["a>b"], true).is_err());
    }

    #[test]
    fn timestamps_parse_and_format() {
        let t = Timestamp::parse_rfc3339("2017-01-01T11:53:26Z").unwrap();
        assert_eq!(t.millis(), 1_483_271_606_000);
        assert_eq!(t.to_parts(), (1_483_271_606, 0));
        assert_eq!(
            Timestamp::parse_rfc3339("2017-01-01T12:53:26.5+01:00")
                .unwrap()
                .millis(),
            1_483_271_606_500
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::from_parts(-1, 0).is_err());
        let now = Timestamp::parse_rfc3339("2017-11-21T00:00:00Z").unwrap();
        let oct = Timestamp::parse_rfc3339("2017-10-03T09:00:00Z").unwrap();
        assert_eq!(oct.short_date(now), "3 Oct");
        assert_eq!(
            t.short_date(Timestamp::parse_rfc3339("2018-02-01T00:00:00Z").unwrap()),
            "1 Jan 2017"
        );
    }
}
