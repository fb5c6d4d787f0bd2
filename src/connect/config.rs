//! Which senders are connected, with their secrets: from flags, the
//! environment or a JSON file. Secrets are never printed: `Debug` shows
//! only how many there are.

use std::{collections::BTreeMap, fmt, path::Path};

use anyhow::Context as _;

use super::verify::{Scheme, Secrets};

/// A sender with a receiver at `/webhooks/{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Shopify (orders, refunds, customers, products, inventory, compliance).
    Shopify,
    /// Segment or RudderStack (`/webhooks/rudderstack` is the same receiver).
    Segment,
    /// Zendesk (event subscriptions, or triggers with the template).
    Zendesk,
    /// Chatwoot (conversation events).
    Chatwoot,
    /// Gorgias HTTP integration (the template, a static token).
    Gorgias,
    /// Freshdesk automation rule (the template, a static token).
    Freshdesk,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 6] = [
        Source::Shopify,
        Source::Segment,
        Source::Zendesk,
        Source::Chatwoot,
        Source::Gorgias,
        Source::Freshdesk,
    ];

    /// Its name (in paths, metrics and configuration).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Shopify => "shopify",
            Source::Segment => "segment",
            Source::Zendesk => "zendesk",
            Source::Chatwoot => "chatwoot",
            Source::Gorgias => "gorgias",
            Source::Freshdesk => "freshdesk",
        }
    }

    /// A source by name (`rudderstack` is `segment`).
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        if name == "rudderstack" {
            return Some(Source::Segment);
        }
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// How it proves who sent a delivery.
    pub fn scheme(self) -> Scheme {
        match self {
            Source::Shopify => Scheme::Shopify,
            Source::Segment => Scheme::Segment,
            Source::Zendesk => Scheme::Zendesk,
            Source::Chatwoot => Scheme::Chatwoot,
            Source::Gorgias | Source::Freshdesk => Scheme::TokenOnly,
        }
    }
}

/// `SOURCE=VALUE`, a secret or token for one source (as typed on the
/// command line or in `WEBHOOK_SECRETS`). Its `Debug` hides the value.
#[derive(Clone)]
pub struct SourceValue {
    /// The source.
    pub source: Source,
    /// The value.
    pub value: String,
}

impl fmt::Debug for SourceValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=<redacted>", self.source.as_str())
    }
}

impl std::str::FromStr for SourceValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = s
            .split_once('=')
            .ok_or("expected SOURCE=VALUE, e.g. shopify=shpss_…")?;
        let source = Source::parse(name).ok_or_else(|| {
            format!(
                "{name:?} is not a source; use one of shopify, segment, rudderstack, zendesk, chatwoot, gorgias, freshdesk"
            )
        })?;
        let value = value.trim();
        if value.len() < 8 {
            return Err(format!(
                "the {} value is shorter than 8 characters",
                source.as_str()
            ));
        }
        Ok(Self {
            source,
            value: value.to_owned(),
        })
    }
}

/// The connectors' configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectorConfig {
    sources: BTreeMap<Source, Secrets>,
    /// The currency of Shopify product prices (its product webhooks do not
    /// say): the shop's currency.
    pub shop_currency: String,
    /// Days a delivery is kept after it is received (failed and waiting
    /// ones included: a replay must come sooner).
    pub retention_days: u32,
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        Self {
            sources: BTreeMap::new(),
            shop_currency: "USD".into(),
            retention_days: 14,
        }
    }
}

impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let configured: Vec<String> = self
            .sources
            .iter()
            .map(|(s, v)| {
                format!(
                    "{}: {} secrets, {} tokens",
                    s.as_str(),
                    v.signing.len(),
                    v.tokens.len()
                )
            })
            .collect();
        f.debug_struct("ConnectorConfig")
            .field("sources", &configured)
            .field("shop_currency", &self.shop_currency)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

/// The JSON file's form: `{"shopify": {"secrets": ["…"]}, "gorgias":
/// {"tokens": ["…"]}, "shop_currency": "EUR", "retention_days": 14}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSource {
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    tokens: Vec<String>,
}

impl ConnectorConfig {
    /// Adds signing secrets and static tokens (at most two of each per
    /// source: the current one and, while rotating, the previous).
    pub fn with(mut self, secrets: &[SourceValue], tokens: &[SourceValue]) -> anyhow::Result<Self> {
        for s in secrets {
            if s.source.scheme() == Scheme::TokenOnly {
                anyhow::bail!(
                    "{} does not sign its deliveries: give it a --webhook-token instead",
                    s.source.as_str()
                );
            }
            self.sources
                .entry(s.source)
                .or_default()
                .signing
                .push(s.value.clone());
        }
        for t in tokens {
            self.sources
                .entry(t.source)
                .or_default()
                .tokens
                .push(t.value.clone());
        }
        for (source, s) in &self.sources {
            if s.signing.len() > 2 || s.tokens.len() > 2 {
                anyhow::bail!(
                    "{} has more than two secrets or tokens; keep the current one and, while rotating, the previous",
                    source.as_str()
                );
            }
        }
        Ok(self)
    }

    /// Reads the JSON file (see [`FileSource`]) and adds what it holds.
    pub fn with_file(self, path: &Path) -> anyhow::Result<Self> {
        let raw =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut doc: BTreeMap<String, serde_json::Value> = serde_json::from_str(&raw)
            .with_context(|| format!("{} is not a JSON object", path.display()))?;
        let mut config = self;
        if let Some(c) = doc.remove("shop_currency") {
            config.shop_currency = c
                .as_str()
                .context("shop_currency: must be a currency code")?
                .to_owned();
        }
        if let Some(d) = doc.remove("retention_days") {
            config.retention_days = d
                .as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .context("retention_days: must be a whole number")?;
        }
        let (mut secrets, mut tokens) = (Vec::new(), Vec::new());
        for (name, value) in doc {
            let source = Source::parse(&name)
                .with_context(|| format!("{}: {name:?} is not a source", path.display()))?;
            let v: FileSource = serde_json::from_value(value)
                .with_context(|| format!("{}: {name}", path.display()))?;
            for s in v.secrets {
                secrets.push(
                    format!("{}={s}", source.as_str())
                        .parse()
                        .map_err(anyhow::Error::msg)?,
                );
            }
            for t in v.tokens {
                tokens.push(
                    format!("{}={t}", source.as_str())
                        .parse()
                        .map_err(anyhow::Error::msg)?,
                );
            }
        }
        config.with(&secrets, &tokens)
    }

    /// The secrets of a source, if it is connected.
    pub fn secrets(&self, source: Source) -> Option<&Secrets> {
        self.sources.get(&source)
    }

    /// The connected sources.
    pub fn sources(&self) -> Vec<Source> {
        self.sources.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s: SourceValue = "shopify=shpss_topsecret".parse().unwrap();
        let config = ConnectorConfig::default()
            .with(std::slice::from_ref(&s), &[])
            .unwrap();
        assert!(!format!("{s:?}{config:?}").contains("topsecret"));
        assert!("gorgias=short".parse::<SourceValue>().is_err());
        let gorgias: SourceValue = "gorgias=a-long-token".parse().unwrap();
        assert!(ConnectorConfig::default().with(&[gorgias], &[]).is_err());
    }
}
