//! The `context` subcommand: calls a running server and prints what an
//! agent would see, for a human or as JSON (the protobuf JSON mapping).

use anyhow::Context as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity};

use crate::proto::{
    self as pb, customer_context_service_client::CustomerContextServiceClient,
    customer_ref::Identity,
};

/// How to reach a server.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `http://host:port` or `https://host:port`.
    pub server: String,
    /// API key sent as `authorization: Bearer ...`.
    pub api_key: Option<String>,
    /// CA certificate (PEM) to trust, for https.
    pub ca_cert: Option<Vec<u8>>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl Connection {
    /// Opens a channel.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let mut endpoint =
            Endpoint::from_shared(self.server.clone()).context("parsing the server address")?;
        if self.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca_cert {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &self.client_identity {
                tls = tls.identity(TlsIdentity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(tls).context("configuring TLS")?;
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.server))
    }
}

/// Fetches a context.
pub async fn fetch(
    connection: &Connection,
    request: pb::GetCustomerContextRequest,
) -> anyhow::Result<pb::CustomerContext> {
    let mut client = CustomerContextServiceClient::new(connection.channel().await?);
    let mut request = tonic::Request::new(request);
    if let Some(key) = &connection.api_key {
        let value = format!("Bearer {key}")
            .parse()
            .context("the API key is not valid metadata")?;
        request.metadata_mut().insert("authorization", value);
    }
    match client.get_customer_context(request).await {
        Ok(response) => Ok(response.into_inner()),
        Err(status) if status.code() == tonic::Code::Unauthenticated => anyhow::bail!(
            "{}: {} (pass --api-key or set CUSTOMER_CONTEXT_API_KEY)",
            status.code(),
            status.message()
        ),
        Err(status) => anyhow::bail!("{}: {}", status.code(), status.message()),
    }
}

/// The request for one identity.
pub fn request(identity: Identity, lookback_days: u32) -> pb::GetCustomerContextRequest {
    pb::GetCustomerContextRequest {
        customer: Some(pb::CustomerRef {
            identity: Some(identity),
        }),
        lookback_days,
        ..Default::default()
    }
}

/// The canonical protobuf JSON of a context (as grpcurl prints it).
pub fn to_json(context: &pb::CustomerContext) -> anyhow::Result<String> {
    let pool =
        DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).context("decoding the descriptor set")?;
    let descriptor = pool
        .get_message_by_name("customer_context.v1.CustomerContext")
        .context("CustomerContext is in the descriptor set")?;
    let message = DynamicMessage::decode(descriptor, context.encode_to_vec().as_slice())?;
    let mut out = serde_json::Serializer::pretty(Vec::new());
    message.serialize_with_options(
        &mut out,
        &SerializeOptions::new().use_proto_field_name(true),
    )?;
    Ok(String::from_utf8(out.into_inner())?)
}

fn money(m: &Option<pb::Money>) -> String {
    match m {
        Some(pb::Money {
            currency_code,
            amount_minor,
        }) => match crate::domain::Currency::parse(currency_code) {
            Ok(c) => crate::domain::Money {
                currency: c,
                minor: *amount_minor,
            }
            .to_string(),
            Err(_) => format!("{amount_minor} {currency_code}"),
        },
        None => "-".into(),
    }
}

fn date(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| crate::domain::Timestamp::from_parts(t.seconds, t.nanos).ok())
        .map(|t| {
            let s = t.to_rfc3339();
            s.get(..16).map(|d| d.replace('T', " ")).unwrap_or(s)
        })
        .unwrap_or_else(|| "-".into())
}

fn product(p: &Option<pb::ProductSnapshot>) -> String {
    let Some(p) = p else { return "?".into() };
    let name = if p.name.is_empty() {
        p.product_id.as_str()
    } else {
        p.name.as_str()
    };
    let stock = if !p.in_catalog {
        " [not in catalog]".to_owned()
    } else if !p.available {
        " [unavailable]".to_owned()
    } else {
        String::new()
    };
    format!("{name} ({}){stock}", money(&p.price))
}

fn label<E: std::fmt::Debug>(value: Result<E, prost::UnknownEnumValue>) -> String {
    value
        .map(|v| format!("{v:?}").to_lowercase())
        .unwrap_or_else(|_| "unknown".into())
}

/// A plain-text rendering for people.
pub fn to_text(c: &pb::CustomerContext) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let who = if c.customer_id.is_empty() {
        format!("anonymous visitor {}", c.anonymous_id)
    } else {
        format!("customer {}", c.customer_id)
    };
    let _ = writeln!(s, "== {who} (as of {})", date(&c.as_of));
    if !c.agent_brief.is_empty() {
        let _ = writeln!(s, "\n{}\n", c.agent_brief);
    }
    if let Some(p) = &c.profile {
        let _ = writeln!(s, "Profile");
        let _ = writeln!(s, "  name      {}", p.display_name);
        let _ = writeln!(
            s,
            "  email     {}   phone {}   loyalty {}",
            p.email, p.phone, p.loyalty_id
        );
        let spend: Vec<String> = p
            .lifetime_spend
            .iter()
            .map(|m| money(&Some(m.clone())))
            .collect();
        let _ = writeln!(
            s,
            "  since     {}   orders {}   spent {}   return rate {:.0}%",
            date(&p.customer_since),
            p.order_count,
            if spend.is_empty() {
                "-".into()
            } else {
                spend.join(" + ")
            },
            p.return_rate * 100.0
        );
        let cats: Vec<String> = p
            .top_categories
            .iter()
            .map(|a| format!("{} ({})", a.name, a.units))
            .collect();
        let brands: Vec<String> = p
            .top_brands
            .iter()
            .map(|a| format!("{} ({})", a.name, a.units))
            .collect();
        let _ = writeln!(s, "  likes     {} | {}", cats.join(", "), brands.join(", "));
        for (k, e) in p.sizes.iter().enumerate() {
            let domain = e.category.rsplit(" > ").next().unwrap_or(&e.category);
            let label = if k == 0 { "sizes" } else { "" };
            let _ = writeln!(s, "  {label:<9} {}: {}", domain.to_lowercase(), e.summary);
        }
        let _ = writeln!(
            s,
            "  last seen {}   last order {}",
            date(&p.last_activity_at),
            date(&p.last_order_at)
        );
    }
    if !c.recent_browsing.is_empty() {
        let _ = writeln!(s, "\nRecent browsing");
        for b in &c.recent_browsing {
            let mut flags = Vec::new();
            if b.abandoned_cart {
                flags.push("IN CART, NOT BOUGHT".to_owned());
            }
            if b.wishlisted {
                flags.push("wishlisted".to_owned());
            }
            let _ = writeln!(
                s,
                "  {}  {}  viewed {}x {}",
                date(&b.last_seen_at),
                product(&b.product),
                b.view_count,
                flags.join(", ")
            );
        }
    }
    if !c.recent_searches.is_empty() {
        let q: Vec<String> = c
            .recent_searches
            .iter()
            .map(|r| format!("\"{}\"", r.query))
            .collect();
        let _ = writeln!(s, "\nSearched  {}", q.join(", "));
    }
    if !c.recent_orders.is_empty() {
        let _ = writeln!(s, "\nRecent orders");
        for o in &c.recent_orders {
            let _ = writeln!(
                s,
                "  {}  {}  {}  {}",
                date(&o.placed_at),
                o.order_id,
                label(pb::OrderStatus::try_from(o.status)),
                money(&o.total)
            );
            for l in &o.lines {
                let returned = if l.returned_quantity > 0 {
                    format!("  (returned {})", l.returned_quantity)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    s,
                    "      {} x {}{returned}",
                    l.quantity,
                    product(&l.product)
                );
            }
        }
    }
    if !c.returns.is_empty() {
        let _ = writeln!(s, "\nReturns");
        for r in &c.returns {
            let items: Vec<String> = r.lines.iter().map(|l| product(&l.product)).collect();
            let _ = writeln!(
                s,
                "  {}  {}  {}  {} \"{}\"  {}",
                date(&r.requested_at),
                r.return_id,
                label(pb::ReturnStatus::try_from(r.status)),
                r.reason_code,
                r.reason_text,
                items.join(", ")
            );
        }
    }
    if !c.open_tickets.is_empty() {
        let _ = writeln!(s, "\nOpen support issues");
        for t in &c.open_tickets {
            let _ = writeln!(
                s,
                "  {}  {}  [{} / {}]  {}{}",
                date(&t.updated_at),
                t.ticket_id,
                label(pb::TicketStatus::try_from(t.status)),
                label(pb::TicketPriority::try_from(t.priority)),
                t.subject,
                if t.order_id.is_empty() {
                    String::new()
                } else {
                    format!("  (order {})", t.order_id)
                }
            );
        }
    }
    if let Some(sg) = c.suggestions.as_ref().filter(|sg| !sg.items.is_empty()) {
        let variant = if sg.experiment.is_empty() {
            String::new()
        } else {
            format!("  [{} / {}]", sg.experiment, sg.variant)
        };
        let _ = writeln!(s, "\nSuggested for them{variant}");
        if !sg.note.is_empty() {
            let _ = writeln!(s, "  ({})", sg.note);
        }
        for item in &sg.items {
            let name = item
                .product
                .as_ref()
                .map_or(String::new(), |p| p.name.clone());
            let why = item.reason.as_ref().map_or("", |r| r.text.as_str());
            let _ = writeln!(s, "  {}. {name}: {why}", item.rank);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::CustomerContext {
        pb::CustomerContext {
            customer_id: "c1".into(),
            as_of: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            agent_brief: "Maya Chen, customer since Mar 2023.".into(),
            profile: Some(pb::Profile {
                display_name: "Maya Chen".into(),
                order_count: 7,
                lifetime_spend: vec![pb::Money {
                    currency_code: "USD".into(),
                    amount_minor: 84_250,
                }],
                ..Default::default()
            }),
            open_tickets: vec![pb::TicketSummary {
                ticket_id: "t1".into(),
                subject: "Refund?".into(),
                status: pb::TicketStatus::Pending.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn json_follows_the_protobuf_mapping() {
        let json: serde_json::Value = serde_json::from_str(&to_json(&sample()).unwrap()).unwrap();
        assert_eq!(json["customer_id"], "c1");
        assert_eq!(json["as_of"], "2023-11-14T22:13:20Z");
        assert_eq!(
            json["profile"]["order_count"], "7",
            "64-bit integers are strings in protobuf JSON"
        );
        assert_eq!(
            json["profile"]["lifetime_spend"][0]["amount_minor"],
            "84250"
        );
        assert_eq!(json["open_tickets"][0]["status"], "TICKET_STATUS_PENDING");
    }

    #[test]
    fn text_shows_the_brief_and_sections() {
        let text = to_text(&sample());
        assert!(text.starts_with("== customer c1"), "{text}");
        assert!(text.contains("Maya Chen, customer since Mar 2023."));
        assert!(text.contains("$842.50"));
        assert!(
            text.contains("t1  [pending / unspecified]  Refund?"),
            "{text}"
        );
    }
}
