//! Suggestion ids: what was suggested, to whom, by which variant, signed
//! with the deployment's key, so feedback needs no stored copy of every
//! answer and cannot be forged for another customer or product.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::domain::Timestamp;

/// How long a suggestion id is accepted for feedback, in days.
pub const VALID_DAYS: i64 = 90;
const PREFIX: &str = "s1.";
const SEPARATOR: char = '\u{1f}';
const MAC_BYTES: usize = 16;

/// Who a suggestion was made to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A known customer.
    Customer(String),
    /// An anonymous visitor.
    Anonymous(String),
    /// Someone we know nothing about (no feedback can be tied to them).
    Unknown,
}

/// The contents of a suggestion id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestionToken {
    /// To whom.
    pub recipient: Recipient,
    /// The product suggested.
    pub product_id: String,
    /// Its style.
    pub group_id: String,
    /// The experiment ("" for none).
    pub experiment: String,
    /// The variant.
    pub variant: String,
    /// The reason code name.
    pub reason_code: String,
    /// When suggested.
    pub issued_at: Timestamp,
    /// The curation a curated item came from.
    pub curation_id: Option<String>,
}

fn mac(key: &[u8; 32], payload: &[u8]) -> [u8; MAC_BYTES] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(b"customer-context suggestion id\0");
    hasher.update(payload);
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..MAC_BYTES]);
    out
}

impl SuggestionToken {
    /// The signed id.
    pub fn encode(&self, key: &[u8; 32]) -> String {
        let (kind, id) = match &self.recipient {
            Recipient::Customer(c) => ("c", c.as_str()),
            Recipient::Anonymous(a) => ("a", a.as_str()),
            Recipient::Unknown => ("u", ""),
        };
        let issued = self.issued_at.millis().to_string();
        let mut fields = vec![
            kind,
            id,
            &self.product_id,
            &self.group_id,
            &self.experiment,
            &self.variant,
            &self.reason_code,
            &issued,
        ];
        // Only curated items carry a ninth field, so ids of computed items
        // read as before.
        if let Some(c) = &self.curation_id {
            fields.push(c);
        }
        let payload = fields.join(&SEPARATOR.to_string());
        format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(mac(key, payload.as_bytes()))
        )
    }

    /// Verifies and reads a suggestion id; the error says why it is not
    /// valid (without revealing anything about the key).
    pub fn decode(key: &[u8; 32], token: &str, now: Timestamp) -> Result<Self, String> {
        const NOT_OURS: &str = "is not a suggestion id issued by this service";
        let rest = token.strip_prefix(PREFIX).ok_or(NOT_OURS)?;
        let (payload, signature) = rest.split_once('.').ok_or(NOT_OURS)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| NOT_OURS)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| NOT_OURS)?;
        let expected = mac(key, &payload);
        // Constant time: a timing difference must not reveal how much of a
        // forged signature was right.
        if signature.len() != MAC_BYTES
            || signature
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
        {
            return Err(NOT_OURS.into());
        }
        let payload = String::from_utf8(payload).map_err(|_| NOT_OURS)?;
        let mut fields: Vec<&str> = payload.split(SEPARATOR).collect();
        let curation_id = match fields.len() {
            9 => fields.pop().map(str::to_owned),
            _ => None,
        };
        let [
            kind,
            id,
            product,
            group,
            experiment,
            variant,
            reason,
            issued,
        ] = fields[..]
        else {
            return Err(NOT_OURS.into());
        };
        let issued_at = issued
            .parse::<i64>()
            .ok()
            .and_then(|ms| Timestamp::from_millis(ms).ok())
            .ok_or(NOT_OURS)?;
        if issued_at.millis() < now.millis() - VALID_DAYS * 86_400_000 {
            return Err(format!(
                "has expired: feedback is accepted for {VALID_DAYS} days"
            ));
        }
        let recipient = match kind {
            "c" => Recipient::Customer(id.to_owned()),
            "a" => Recipient::Anonymous(id.to_owned()),
            _ => Recipient::Unknown,
        };
        Ok(Self {
            recipient,
            product_id: product.to_owned(),
            group_id: group.to_owned(),
            experiment: experiment.to_owned(),
            variant: variant.to_owned(),
            reason_code: reason.to_owned(),
            issued_at,
            curation_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SuggestionToken {
        SuggestionToken {
            recipient: Recipient::Customer("c-1".into()),
            product_id: "rain-jacket-m".into(),
            group_id: "rain-jacket".into(),
            experiment: "spring".into(),
            variant: "b".into(),
            reason_code: "bought_together".into(),
            issued_at: Timestamp::from_millis(1_700_000_000_000).unwrap(),
            curation_id: None,
        }
    }

    #[test]
    fn ids_round_trip_and_resist_tampering() {
        let key = [7u8; 32];
        let now = Timestamp::from_millis(1_700_000_100_000).unwrap();
        let id = token().encode(&key);
        assert_eq!(SuggestionToken::decode(&key, &id, now), Ok(token()));
        let curated = SuggestionToken {
            curation_id: Some("cur_0123".into()),
            ..token()
        };
        let id_of_curated = curated.encode(&key);
        assert_eq!(
            SuggestionToken::decode(&key, &id_of_curated, now),
            Ok(curated)
        );
        assert!(
            SuggestionToken::decode(&[8u8; 32], &id, now).is_err(),
            "other key"
        );
        // Another customer's id with this signature.
        let mut other = token();
        other.recipient = Recipient::Customer("c-2".into());
        let forged = format!(
            "{}.{}",
            other.encode(&key).rsplit_once('.').unwrap().0,
            id.rsplit_once('.').unwrap().1
        );
        assert!(SuggestionToken::decode(&key, &forged, now).is_err());
        assert!(SuggestionToken::decode(&key, "s1.x.y", now).is_err());
        assert!(SuggestionToken::decode(&key, "", now).is_err());
        let late = Timestamp::from_millis(1_700_000_000_000 + 91 * 86_400_000).unwrap();
        let err = SuggestionToken::decode(&key, &id, late).unwrap_err();
        assert!(err.contains("expired"), "{err}");
    }
}
