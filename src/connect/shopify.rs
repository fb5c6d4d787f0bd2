//! Shopify webhooks (REST resources, API 2024-01 and later) mapped onto the
//! import's own forms: orders and refunds become Segment-spec calls,
//! variants become catalogue objects, so they pass the same validation and
//! bounds as an import. Pure: no I/O.
//!
//! Ids are Shopify's own, as text: a customer's id is their Shopify
//! customer id, a product's is its variant id (the style is the product
//! id), an order's is the order id, a return's is the refund id.

use serde_json::{Map, Value, json};

use super::{Item, Mapped, Meta, guest_id, num_text, text};
use crate::domain::{CustomerId, Email, Identity, Phone, Timestamp};

type Obj = Map<String, Value>;

/// The topics this receiver maps (anything else is kept as failed).
pub const TOPICS: &[&str] = &[
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/fulfilled",
    "orders/cancelled",
    "refunds/create",
    "customers/create",
    "customers/update",
    "products/create",
    "products/update",
    "products/delete",
    "inventory_levels/update",
    "inventory_levels/connect",
    "customers/redact",
    "customers/data_request",
    "shop/redact",
];

/// The delivery's identity and the resource version it carries, from the
/// headers and the body. Orders, products, customers and inventory levels
/// are versioned by `updated_at`, so an older one arriving late never wins.
pub fn meta(topic: &str, event_id: Option<&str>, body: &Value, body_hash: &str) -> Meta {
    let o = body.as_object();
    let id = o.and_then(|o| num_text(o, "id"));
    let updated = o
        .and_then(|o| text(o, "updated_at"))
        .and_then(|t| Timestamp::parse_rfc3339(&t).ok())
        .map_or(0, Timestamp::millis);
    let resource = match topic.split('/').next().unwrap_or_default() {
        "orders" => id.map(|i| format!("order:{i}")),
        "products" => id.map(|i| format!("product:{i}")),
        "customers" if topic != "customers/redact" && topic != "customers/data_request" => {
            id.map(|i| format!("customer:{i}"))
        }
        "inventory_levels" => o.and_then(|o| {
            Some(format!(
                "inventory:{}:{}",
                num_text(o, "inventory_item_id")?,
                num_text(o, "location_id")?
            ))
        }),
        _ => None,
    };
    let version = if topic == "products/delete" {
        i64::MAX
    } else {
        updated
    };
    Meta {
        topic: topic.to_owned(),
        event_key: format!("{topic}|{}", event_id.unwrap_or(body_hash)),
        version: if resource.is_some() { version } else { 0 },
        resource,
    }
}

/// The webhook topic a REST resource (as the Admin API returns it) would
/// come with, told by its shape.
pub fn topic_of_resource(v: &Value) -> Result<&'static str, String> {
    let o = v.as_object().ok_or("not a JSON object")?;
    Ok(if o.contains_key("line_items") {
        "orders/updated"
    } else if o.contains_key("refund_line_items") {
        "refunds/create"
    } else if o.contains_key("variants") {
        "products/update"
    } else if o.contains_key("inventory_item_id") && o.contains_key("location_id") {
        "inventory_levels/update"
    } else if o.contains_key("first_name")
        || o.contains_key("orders_count")
        || o.contains_key("email")
    {
        "customers/update"
    } else {
        return Err("not a Shopify order, refund, product, inventory level or customer".into());
    })
}

/// Maps one delivery of `topic`.
pub fn map(
    topic: &str,
    body: &Value,
    hash_key: &[u8; 32],
    shop_currency: &str,
) -> Result<Mapped, String> {
    let o = body.as_object().ok_or("the body is not a JSON object")?;
    match topic {
        "orders/create" | "orders/updated" | "orders/paid" | "orders/fulfilled"
        | "orders/cancelled" => order(o, hash_key),
        "refunds/create" => refund(o),
        "customers/create" | "customers/update" => {
            let (item, subject) = customer(o, hash_key)?;
            Ok(Mapped {
                items: vec![item],
                subject,
            })
        }
        "products/create" | "products/update" => product(o, shop_currency),
        "products/delete" => Ok(Mapped {
            items: vec![Item::ProductGone {
                product: num_text(o, "id").ok_or("id: is required")?,
            }],
            subject: None,
        }),
        "inventory_levels/update" | "inventory_levels/connect" => inventory(o),
        "customers/redact" | "customers/data_request" => {
            let (customer, identities) = person(o);
            let item = if topic == "customers/redact" {
                Item::Erase {
                    customer,
                    identities: identities.clone(),
                }
            } else {
                Item::DataRequest {
                    customer,
                    identities: identities.clone(),
                }
            };
            Ok(Mapped {
                items: vec![item],
                subject: identities.into_iter().next(),
            })
        }
        "shop/redact" => Ok(Mapped {
            items: vec![Item::ForgetSource],
            subject: None,
        }),
        other => Err(format!(
            "topic {other:?} is not mapped; subscribe to: {}",
            TOPICS.join(", ")
        )),
    }
}

fn email_of(o: &Obj) -> Option<Identity> {
    text(o, "email")
        .and_then(|e| Email::parse(&e).ok())
        .map(Identity::from)
}

/// The customer of a compliance request: their id and the identities given.
fn person(o: &Obj) -> (Option<CustomerId>, Vec<Identity>) {
    let empty = Obj::new();
    let c = o
        .get("customer")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let id = num_text(c, "id").and_then(|i| CustomerId::parse(&i).ok());
    let mut identities: Vec<Identity> = email_of(c).into_iter().collect();
    if let Some(p) = text(c, "phone").and_then(|p| Phone::parse(&p).ok()) {
        identities.push(p.into());
    }
    (id, identities)
}

/// A Shopify customer as an `identify` call: id, name, email, phone, since;
/// the guest id of their email links the orders they placed as a guest.
fn customer(c: &Obj, hash_key: &[u8; 32]) -> Result<(Item, Option<Identity>), String> {
    let id = num_text(c, "id").ok_or("customer.id: is required")?;
    let email = email_of(c);
    let mut traits = Obj::new();
    let name = [text(c, "first_name"), text(c, "last_name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    traits.insert("name".into(), name.into());
    if let Some(e) = &email {
        traits.insert("email".into(), e.value().into());
    }
    if let Some(p) = text(c, "phone").filter(|p| Phone::parse(p).is_ok()) {
        traits.insert("phone".into(), p.into());
    }
    if let Some(since) = text(c, "created_at") {
        traits.insert("createdAt".into(), since.into());
    }
    let mut call = json!({
        "type": "identify",
        "userId": id,
        "traits": traits,
        "timestamp": text(c, "updated_at").or_else(|| text(c, "created_at")),
    });
    if let Some(e) = &email {
        call["anonymousId"] = guest_id(hash_key, e).into();
    }
    if call["timestamp"].is_null() {
        call.as_object_mut().expect("an object").remove("timestamp");
    }
    Ok((Item::Call(call), email))
}

/// An order's status as the import reads it.
fn order_status(o: &Obj) -> &'static str {
    if text(o, "cancelled_at").is_some() {
        "cancelled"
    } else if text(o, "financial_status").as_deref() == Some("refunded") {
        "refunded"
    } else if text(o, "fulfillment_status").as_deref() == Some("fulfilled") {
        "shipped"
    } else {
        "placed"
    }
}

/// A line's product: the variant (our product id), else the product, else
/// (a deleted product) the line itself, so the order keeps its lines.
fn line_product(l: &Obj) -> Option<String> {
    num_text(l, "variant_id")
        .or_else(|| num_text(l, "product_id"))
        .or_else(|| num_text(l, "id").map(|id| format!("shopify-line-{id}")))
}

fn order(o: &Obj, hash_key: &[u8; 32]) -> Result<Mapped, String> {
    let id = num_text(o, "id").ok_or("id: is required")?;
    let lines = o
        .get("line_items")
        .and_then(Value::as_array)
        .ok_or("line_items: is required")?;
    let products: Vec<Value> = lines
        .iter()
        .filter_map(Value::as_object)
        .map(|l| {
            json!({
                "product_id": line_product(l),
                "quantity": l.get("quantity").cloned().unwrap_or(Value::Null),
                "price": text(l, "price"),
                "name": text(l, "name").or_else(|| text(l, "title")),
                "brand": text(l, "vendor"),
            })
        })
        .collect();
    let status = order_status(o);
    let mut call = json!({
        "type": "track",
        "event": if status == "cancelled" { "Order Cancelled" } else { "Order Completed" },
        "messageId": format!("shopify-order-{id}"),
        "timestamp": text(o, "processed_at").or_else(|| text(o, "created_at")),
        "properties": {
            "order_id": id,
            "status": status,
            "total": text(o, "total_price"),
            "currency": text(o, "currency").unwrap_or_else(|| "USD".into()),
            "affiliation": text(o, "source_name"),
            "products": products,
        },
    });
    let empty = Obj::new();
    let buyer = o
        .get("customer")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut items = Vec::new();
    let email = email_of(o).or_else(|| email_of(buyer));
    match num_text(buyer, "id") {
        Some(customer_id) => {
            call["userId"] = customer_id.into();
            let (identify, _) = customer(buyer, hash_key)?;
            items.push(identify);
            items.push(Item::Call(call));
        }
        None => match &email {
            Some(e) => {
                call["anonymousId"] = guest_id(hash_key, e).into();
                items.push(Item::GuestOrder {
                    call,
                    email: e.clone(),
                });
            }
            None => {
                call["anonymousId"] = text(o, "cart_token")
                    .map(|t| format!("shopify-cart-{t}"))
                    .unwrap_or_else(|| format!("shopify-order-{id}"))
                    .into();
                items.push(Item::Call(call));
            }
        },
    }
    Ok(Mapped {
        items,
        subject: email,
    })
}

/// A refund's note as a return reason code: the size words first (fit
/// learns from them), then the common others.
pub fn reason_code(note: &str) -> &'static str {
    let n = note.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&[
        "too small",
        "runs small",
        "too tight",
        "size up",
        "bigger size",
        "larger size",
    ]) {
        "too_small"
    } else if has(&[
        "too big",
        "too large",
        "runs large",
        "runs big",
        "too loose",
        "size down",
        "smaller size",
    ]) {
        "too_large"
    } else if has(&["damaged", "broken", "defect", "faulty", "torn"]) {
        "damaged"
    } else if has(&[
        "wrong item",
        "wrong size sent",
        "not what i ordered",
        "wrong colour",
        "wrong color",
    ]) {
        "wrong_item"
    } else if has(&[
        "changed my mind",
        "no longer",
        "don't want",
        "do not want",
        "unwanted",
    ]) {
        "changed_mind"
    } else if n.trim().is_empty() {
        "refunded"
    } else {
        "other"
    }
}

fn refund(r: &Obj) -> Result<Mapped, String> {
    let id = num_text(r, "id").ok_or("id: is required")?;
    let order_id = num_text(r, "order_id").ok_or("order_id: is required")?;
    let products: Vec<Value> = r
        .get("refund_line_items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_object)
        .filter_map(|rl| {
            let line = rl.get("line_item").and_then(Value::as_object)?;
            Some(json!({"product_id": line_product(line), "quantity": rl.get("quantity")}))
        })
        .collect();
    if products.is_empty() {
        // Money back without goods back (shipping, a goodwill credit) is
        // not a return; nothing to store.
        return Ok(Mapped::default());
    }
    let transactions = r
        .get("transactions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let refunded: Vec<&Obj> = transactions
        .iter()
        .filter_map(Value::as_object)
        .filter(|t| {
            text(t, "kind").as_deref() == Some("refund")
                && text(t, "status").as_deref() != Some("failure")
        })
        .collect();
    let total: Option<f64> = (!refunded.is_empty()).then(|| {
        refunded
            .iter()
            .filter_map(|t| text(t, "amount")?.parse::<f64>().ok())
            .sum()
    });
    let note = text(r, "note").unwrap_or_default();
    let mut props = json!({
        "return_id": format!("shopify-refund-{id}"),
        "order_id": order_id,
        "reason_code": reason_code(&note),
        "reason": note,
        "products": products,
    });
    if let Some(total) = total {
        props["total"] = total.into();
        if let Some(c) = refunded.iter().find_map(|t| text(t, "currency")) {
            props["currency"] = c.into();
        }
    }
    let call = json!({
        "type": "track",
        "event": "Order Refunded",
        "messageId": format!("shopify-refund-{id}"),
        "timestamp": text(r, "created_at").or_else(|| text(r, "processed_at")),
        "properties": props,
    });
    Ok(Mapped {
        items: vec![Item::Call(call)],
        subject: None,
    })
}

/// The value of a variant's option named "Size" (any case), if any.
fn size_of(p: &Obj, v: &Obj) -> Option<String> {
    let options = p.get("options").and_then(Value::as_array)?;
    let position = options
        .iter()
        .filter_map(Value::as_object)
        .find_map(|opt| {
            let name = text(opt, "name")?.to_lowercase();
            matches!(
                name.as_str(),
                "size" | "größe" | "taille" | "talla" | "taglia"
            )
            .then(|| opt.get("position").and_then(Value::as_u64))
            .flatten()
        })?;
    text(v, &format!("option{position}"))
}

fn image_of(p: &Obj) -> Option<String> {
    p.get("image")
        .and_then(Value::as_object)
        .and_then(|i| text(i, "src"))
        .or_else(|| {
            p.get("images")
                .and_then(Value::as_array)?
                .first()?
                .as_object()
                .and_then(|i| text(i, "src"))
        })
}

fn product(p: &Obj, currency: &str) -> Result<Mapped, String> {
    let id = num_text(p, "id").ok_or("id: is required")?;
    let title = text(p, "title").unwrap_or_default();
    let variants = p
        .get("variants")
        .and_then(Value::as_array)
        .ok_or("variants: is required")?;
    let active = text(p, "status").is_none_or(|s| s == "active");
    let mut items = Vec::new();
    let mut inventory = Vec::new();
    let mut styles = Vec::new();
    for v in variants.iter().filter_map(Value::as_object) {
        let variant_id = num_text(v, "id").ok_or("variants[].id: is required")?;
        let variant_title = text(v, "title").filter(|t| t != "Default Title");
        let name = match variant_title {
            Some(t) if variants.len() > 1 => format!("{title} - {t}"),
            _ => title.clone(),
        };
        let tracked = text(v, "inventory_management").as_deref() == Some("shopify")
            && text(v, "inventory_policy").as_deref() != Some("continue");
        let mut catalog = json!({
            "product_id": variant_id,
            "name": name,
            "brand": text(p, "vendor"),
            "category": text(p, "product_type").unwrap_or_else(|| "Uncategorised".into()),
            "price": text(v, "price"),
            "currency": currency,
            "group_id": id,
            "active": active,
            "image_url": image_of(p),
        });
        match (tracked, v.get("inventory_quantity").and_then(Value::as_i64)) {
            (true, Some(q)) => catalog["stock_quantity"] = q.into(),
            _ => catalog["in_stock"] = true.into(),
        }
        if let Some(size) = size_of(p, v) {
            catalog["size"] = size.into();
        }
        items.push(Item::Product(catalog));
        if let Some(item) = num_text(v, "inventory_item_id") {
            inventory.push((item, variant_id.clone()));
        }
        styles.push((variant_id, id.clone()));
    }
    items.push(Item::Links {
        kind: "inventory_item",
        links: inventory,
    });
    items.push(Item::Links {
        kind: "variant",
        links: styles,
    });
    Ok(Mapped {
        items,
        subject: None,
    })
}

fn inventory(o: &Obj) -> Result<Mapped, String> {
    let at = text(o, "updated_at")
        .map(|t| Timestamp::parse_rfc3339(&t).map_err(|e| format!("updated_at: {e}")))
        .transpose()?
        .unwrap_or(Timestamp::MIN);
    let available = match o.get("available") {
        Some(Value::Null) | None => 0,
        Some(v) => v.as_i64().ok_or("available: must be a whole number")?,
    };
    Ok(Mapped {
        items: vec![Item::Stock {
            item: num_text(o, "inventory_item_id").ok_or("inventory_item_id: is required")?,
            location: num_text(o, "location_id").ok_or("location_id: is required")?,
            available: available.clamp(
                -crate::domain::MAX_STOCK_QUANTITY,
                crate::domain::MAX_STOCK_QUANTITY,
            ),
            at,
        }],
        subject: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn refund_notes_become_reason_codes() {
        assert_eq!(reason_code("Runs small, need a size up"), "too_small");
        assert_eq!(reason_code("The jacket was TOO BIG"), "too_large");
        assert_eq!(reason_code("Things were damaged"), "damaged");
        assert_eq!(reason_code(""), "refunded");
        assert_eq!(reason_code("meh"), "other");
    }

    #[test]
    fn a_guest_order_is_linked_by_its_email_and_keeps_a_deleted_products_line() {
        let body = json!({
            "id": 1001, "email": "Guest@Example.com", "created_at": "2026-11-01T10:00:00-05:00",
            "updated_at": "2026-11-01T10:00:00-05:00", "currency": "EUR", "total_price": "30.00",
            "customer": null,
            "line_items": [
                {"id": 1, "variant_id": 11, "product_id": 10, "quantity": 1, "price": "10.00", "title": "Tee"},
                {"id": 2, "variant_id": null, "product_id": null, "quantity": 2, "price": "10.00", "title": "Gone"}
            ]
        });
        let mapped = map("orders/create", &body, &KEY, "USD").unwrap();
        let [Item::GuestOrder { call, email }] = mapped.items.as_slice() else {
            panic!("one guest order: {:?}", mapped.items)
        };
        assert_eq!(email.value(), "guest@example.com");
        assert!(call["anonymousId"].as_str().unwrap().starts_with("guest-"));
        assert_eq!(
            call["properties"]["products"][1]["product_id"],
            "shopify-line-2"
        );
        let m = meta("orders/create", Some("e1"), &body, "h");
        assert_eq!(m.resource.as_deref(), Some("order:1001"));
        assert_eq!(m.event_key, "orders/create|e1");
    }

    #[test]
    fn variants_carry_their_size_stock_and_inventory_item() {
        let body = json!({
            "id": 5, "title": "Trail Runner", "vendor": "Acme", "product_type": "Shoes", "status": "active",
            "options": [{"name": "Color", "position": 1}, {"name": "Size", "position": 2}],
            "variants": [{"id": 51, "title": "Blue / 9", "price": "120.00", "option1": "Blue", "option2": "9",
                          "inventory_management": "shopify", "inventory_quantity": 0, "inventory_item_id": 510}],
        });
        let mapped = map("products/update", &body, &KEY, "EUR").unwrap();
        let Item::Product(p) = &mapped.items[0] else {
            panic!("a product")
        };
        assert_eq!(p["size"], "9");
        assert_eq!(p["stock_quantity"], 0);
        assert_eq!(p["group_id"], "5");
        assert_eq!(p["currency"], "EUR");
        assert!(
            matches!(&mapped.items[1], Item::Links { kind: "inventory_item", links } if links == &vec![("510".to_owned(), "51".to_owned())])
        );
    }
}
