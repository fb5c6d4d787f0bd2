//! Helpdesk webhooks mapped onto tickets: Zendesk ticket events (and user
//! events, which tell whose requester id is whose email), Chatwoot
//! conversation events, and the templated body Gorgias HTTP integrations,
//! Freshdesk rules and Zendesk triggers send (docs/connectors.md has the
//! template to paste). Each ticket becomes the import's `Ticket Updated`
//! call once its customer is known. Pure: no I/O.

use serde_json::{Map, Value, json};

use super::{Item, Mapped, Who, num_text, text};
use crate::domain::{CustomerId, Email, Identity, Phone, Timestamp};

type Obj = Map<String, Value>;

/// A helpdesk's status word as the import's: open, pending, solved, closed.
pub fn status(raw: &str) -> Result<&'static str, String> {
    Ok(
        match raw.trim().to_lowercase().replace(['_', '-'], " ").as_str() {
            "" | "new" | "open" => "open",
            "pending"
            | "hold"
            | "on hold"
            | "snoozed"
            | "waiting on customer"
            | "waiting on third party" => "pending",
            "solved" | "resolved" => "solved",
            "closed" => "closed",
            other => {
                return Err(format!(
                    "status: {:?} is not a ticket status (open, pending, solved, closed)",
                    crate::domain::clip(other, 40)
                ));
            }
        },
    )
}

/// A helpdesk's priority word as the import's: low, normal, high, urgent.
pub fn priority(raw: Option<&str>) -> &'static str {
    match raw.unwrap_or("").trim().to_lowercase().as_str() {
        "low" | "1" => "low",
        "high" | "3" => "high",
        "urgent" | "4" | "critical" => "urgent",
        _ => "normal",
    }
}

/// A time written as RFC 3339 or as Unix seconds (a number or its text).
fn time(v: Option<&Value>) -> Option<Timestamp> {
    match v? {
        Value::String(s) => Timestamp::parse_rfc3339(s)
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().and_then(secs)),
        Value::Number(n) => n.as_f64().and_then(secs),
        _ => None,
    }
}

fn secs(s: f64) -> Option<Timestamp> {
    Timestamp::from_millis((s * 1000.0) as i64).ok()
}

/// The ticket call, without its customer (added once resolved).
fn ticket_call(
    ticket_id: String,
    subject: String,
    status: &str,
    priority: &str,
    channel: String,
    created: Option<Timestamp>,
    updated: Timestamp,
) -> Value {
    let created = created.unwrap_or(updated).min(updated);
    json!({
        "type": "track",
        "event": "Ticket Updated",
        "timestamp": updated.to_rfc3339(),
        "properties": {
            "ticket_id": ticket_id,
            "subject": subject,
            "status": status,
            "priority": priority,
            "channel": channel,
            "created_at": created.to_rfc3339(),
        },
    })
}

fn identity_of(o: &Obj) -> Option<Who> {
    if let Some(id) = text(o, "customer_id").and_then(|c| CustomerId::parse(&c).ok()) {
        return Some(Who::Customer(id));
    }
    if let Some(e) = text(o, "email").and_then(|e| Email::parse(&e).ok()) {
        return Some(Who::Identity(Identity::from(e)));
    }
    text(o, "phone")
        .or_else(|| text(o, "phone_number"))
        .and_then(|p| Phone::parse(&p).ok())
        .map(|p| Who::Identity(Identity::from(p)))
}

/// The subject (identity) a `Who` names, for erasure.
fn subject(who: &Who) -> Option<Identity> {
    match who {
        Who::Identity(i) => Some(i.clone()),
        _ => None,
    }
}

/// A Zendesk event (`zen:event-type:ticket.*` or `zen:event-type:user.*`),
/// or the templated body from a Zendesk trigger.
pub fn zendesk(body: &Value, now: Timestamp) -> Result<Mapped, String> {
    let o = body.as_object().ok_or("the body is not a JSON object")?;
    if o.contains_key("ticket") {
        return templated("zendesk", body, now);
    }
    let kind = text(o, "type").ok_or("type: is required")?;
    let empty = Obj::new();
    let d = o.get("detail").and_then(Value::as_object).unwrap_or(&empty);
    if kind.starts_with("zen:event-type:user.") {
        let id = num_text(d, "id").ok_or("detail.id: is required")?;
        let who = identity_of(d).ok_or("detail.email: a user event needs the user's email")?;
        return Ok(Mapped {
            subject: subject(&who),
            items: vec![Item::Person { external: id, who }],
        });
    }
    if !kind.starts_with("zen:event-type:ticket.") {
        return Err(format!(
            "type: {:?} is not a ticket or user event",
            crate::domain::clip(&kind, 80)
        ));
    }
    let id = num_text(d, "id").ok_or("detail.id: is required")?;
    let updated = time(d.get("updated_at"))
        .or_else(|| time(o.get("time")))
        .unwrap_or(now);
    let call = ticket_call(
        format!("zendesk-{id}"),
        text(d, "subject").unwrap_or_else(|| format!("Zendesk ticket {id}")),
        status(&text(d, "status").unwrap_or_default())?,
        priority(text(d, "priority").as_deref()),
        d.get("via")
            .and_then(Value::as_object)
            .and_then(|v| text(v, "channel"))
            .unwrap_or_default(),
        time(d.get("created_at")),
        updated,
    );
    let who = match d
        .get("requester")
        .and_then(Value::as_object)
        .and_then(identity_of)
    {
        Some(who) => who,
        None => {
            Who::External(num_text(d, "requester_id").ok_or("detail.requester_id: is required")?)
        }
    };
    Ok(Mapped {
        subject: subject(&who),
        items: vec![Item::Ticket { call, who }],
    })
}

/// A Chatwoot conversation event (`conversation_created`, `_updated`,
/// `_status_changed`). The contact's `identifier` is taken as the shop's
/// customer id (what the chat widget's `setUser` sets), else their email or
/// phone.
pub fn chatwoot(body: &Value, now: Timestamp) -> Result<Mapped, String> {
    let o = body.as_object().ok_or("the body is not a JSON object")?;
    let event = text(o, "event").ok_or("event: is required")?;
    if !event.starts_with("conversation_") {
        return Err(format!(
            "event: {:?} is not a conversation event (conversation_created, conversation_updated, conversation_status_changed)",
            crate::domain::clip(&event, 80)
        ));
    }
    let id = num_text(o, "id").ok_or("id: is required")?;
    let account = o
        .get("account")
        .and_then(Value::as_object)
        .and_then(|a| num_text(a, "id"));
    let empty = Obj::new();
    let sender = o
        .get("meta")
        .and_then(Value::as_object)
        .and_then(|m| m.get("sender"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let who = text(sender, "identifier")
        .and_then(|c| CustomerId::parse(&c).ok())
        .map(Who::Customer)
        .or_else(|| identity_of(sender))
        .ok_or("meta.sender: the contact has no identifier, email or phone")?;
    let channel = text(o, "channel")
        .map(|c| c.trim_start_matches("Channel::").to_lowercase())
        .unwrap_or_default();
    let updated = time(o.get("updated_at"))
        .or_else(|| time(o.get("timestamp")))
        .unwrap_or(now);
    let call = ticket_call(
        match account {
            Some(a) => format!("chatwoot-{a}-{id}"),
            None => format!("chatwoot-{id}"),
        },
        format!("Chatwoot conversation {id}"),
        status(&text(o, "status").unwrap_or_default())?,
        priority(text(o, "priority").as_deref()),
        channel,
        time(o.get("created_at")),
        updated,
    );
    Ok(Mapped {
        subject: subject(&who),
        items: vec![Item::Ticket { call, who }],
    })
}

/// The documented template (Gorgias, Freshdesk, Zendesk triggers):
/// `{"ticket": {"id", "subject", "status", "priority", "channel",
/// "created_at", "updated_at", "order_id"}, "customer": {"id", "email",
/// "phone"}}`. Times that are not RFC 3339 or Unix seconds (Freshdesk's
/// placeholders are prose) count as the time of receipt.
pub fn templated(source: &str, body: &Value, now: Timestamp) -> Result<Mapped, String> {
    let o = body.as_object().ok_or("the body is not a JSON object")?;
    let t = o
        .get("ticket")
        .and_then(Value::as_object)
        .ok_or("ticket: is required (see the template in docs/connectors.md)")?;
    let id = num_text(t, "id").ok_or("ticket.id: is required")?;
    let empty = Obj::new();
    let c = o
        .get("customer")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let who = num_text(c, "id")
        .and_then(|c| CustomerId::parse(&c).ok())
        .map(Who::Customer)
        .or_else(|| identity_of(c))
        .ok_or("customer: needs an id, email or phone")?;
    let mut call = ticket_call(
        format!("{source}-{id}"),
        text(t, "subject").unwrap_or_else(|| format!("{source} ticket {id}")),
        status(&text(t, "status").unwrap_or_default())?,
        priority(text(t, "priority").as_deref()),
        text(t, "channel").unwrap_or_default(),
        time(t.get("created_at")),
        time(t.get("updated_at")).unwrap_or(now),
    );
    if let Some(order) = num_text(t, "order_id") {
        call["properties"]["order_id"] = order.into();
    }
    Ok(Mapped {
        subject: subject(&who),
        items: vec![Item::Ticket { call, who }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-12-04T12:00:00Z").unwrap()
    }

    #[test]
    fn helpdesk_words_map_onto_ours() {
        assert_eq!(status("Resolved").unwrap(), "solved");
        assert_eq!(status("Waiting on Customer").unwrap(), "pending");
        assert_eq!(status("HOLD").unwrap(), "pending");
        assert!(status("exploded").is_err());
        assert_eq!(priority(Some("Medium")), "normal");
        assert_eq!(priority(Some("URGENT")), "urgent");
    }

    #[test]
    fn a_zendesk_ticket_event_names_its_requester_by_zendesk_id() {
        let body = json!({
            "type": "zen:event-type:ticket.status_changed", "id": "e-1", "time": "2026-12-04T11:00:00Z",
            "detail": {"id": "35", "subject": "Where is my parcel?", "status": "PENDING", "priority": "HIGH",
                        "requester_id": "9001", "created_at": "2026-12-03T10:00:00Z",
                        "updated_at": "2026-12-04T11:00:00Z", "via": {"channel": "email"}}
        });
        let m = zendesk(&body, now()).unwrap();
        let [Item::Ticket { call, who }] = m.items.as_slice() else {
            panic!("a ticket")
        };
        assert_eq!(who, &Who::External("9001".into()));
        assert_eq!(call["properties"]["ticket_id"], "zendesk-35");
        assert_eq!(call["properties"]["status"], "pending");
        assert_eq!(call["properties"]["priority"], "high");
    }

    #[test]
    fn chatwoot_takes_the_contact_identifier_as_the_customer() {
        let body = json!({
            "event": "conversation_created", "id": 7, "status": "open", "channel": "Channel::WebWidget",
            "created_at": 1764849600, "account": {"id": 1},
            "meta": {"sender": {"id": 3, "identifier": "cust-42", "email": "a@b.co"}}
        });
        let m = chatwoot(&body, now()).unwrap();
        let [Item::Ticket { call, who }] = m.items.as_slice() else {
            panic!("a ticket")
        };
        assert_eq!(who, &Who::Customer(CustomerId::parse("cust-42").unwrap()));
        assert_eq!(call["properties"]["channel"], "webwidget");
        assert_eq!(call["properties"]["ticket_id"], "chatwoot-1-7");
    }

    #[test]
    fn templated_bodies_accept_prose_times_as_the_time_of_receipt() {
        let body = json!({
            "ticket": {"id": 12, "subject": "Refund?", "status": "Open", "priority": "Low",
                       "created_at": "Thu, 3 Dec 2026 at 9:00 AM"},
            "customer": {"email": "Maya@Example.com"}
        });
        let m = templated("freshdesk", &body, now()).unwrap();
        let [Item::Ticket { call, who }] = m.items.as_slice() else {
            panic!("a ticket")
        };
        assert!(matches!(who, Who::Identity(i) if i.value() == "maya@example.com"));
        assert_eq!(call["timestamp"], now().to_rfc3339());
        assert!(templated("gorgias", &json!({"ticket": {"id": 1}}), now()).is_err());
    }
}
