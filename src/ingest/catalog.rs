//! Catalog lines (JSON Lines or CSV with a header) mapped onto products.
//!
//! Columns/keys: `product_id` (or `id`, `sku`), `name`, `brand`, `category`
//! ("A > B > C"), `price` (decimal, e.g. 19.99) or `price_minor`
//! (integer cents), `currency` (default USD), `stock_quantity` or `in_stock`
//! (true/false; default true), `group_id`, `active` (default true), `url`,
//! `image_url`, `size` (or Segment's product property `variant`) and
//! `size_system` (alpha, numeric, waist_length, other; recognised from the
//! label when absent). Unknown keys are ignored.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::segment::category_of;
use crate::domain::*;

fn text(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key) {
        Some(Value::String(v)) if !v.trim().is_empty() => Some(v.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn boolean(o: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match text(o, key)
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => Ok(default),
        Some("true" | "1" | "yes" | "y" | "t") => Ok(true),
        Some("false" | "0" | "no" | "n" | "f") => Ok(false),
        Some(other) => Err(format!("{key}: {other:?} is not true or false")),
    }
}

/// Maps one JSON object.
pub fn product_from_json(o: &Map<String, Value>) -> Result<Product, String> {
    let key = ["product_id", "id", "sku"]
        .into_iter()
        .find(|k| text(o, k).is_some())
        .unwrap_or("product_id");
    let product_id =
        ProductId::parse(&text(o, key).unwrap_or_default()).map_err(|e| format!("{key}: {e}"))?;
    let name = bounded_text(&text(o, "name").unwrap_or_default(), MAX_NAME_LEN, true)
        .map_err(|e| format!("name: {e}"))?;
    let brand = bounded_text(&text(o, "brand").unwrap_or_default(), MAX_NAME_LEN, false)
        .map_err(|e| format!("brand: {e}"))?;
    let category = category_of(
        o.get("category").or_else(|| o.get("category_path")),
        "category",
    )?;
    if category.is_empty() {
        return Err("category: is required".into());
    }
    let currency = Currency::parse(&text(o, "currency").unwrap_or_else(|| "USD".into()))
        .map_err(|e| format!("currency: {e}"))?;
    let price = if let Some(minor) = text(o, "price_minor") {
        let minor: i64 = minor
            .parse()
            .map_err(|_| "price_minor: must be a whole number".to_string())?;
        Money::non_negative(currency, minor).map_err(|e| format!("price_minor: {e}"))?
    } else {
        let raw = text(o, "price").ok_or("price: is required")?;
        let amount: f64 = raw
            .trim()
            .parse()
            .map_err(|_| "price: must be a number".to_string())?;
        Money::from_decimal(currency, amount).map_err(|e| format!("price: {e}"))?
    };
    let stock = match text(o, "stock_quantity") {
        Some(q) => Stock::Quantity(
            q.trim()
                .parse::<i64>()
                .ok()
                .filter(|q| q.abs() <= MAX_STOCK_QUANTITY)
                .ok_or_else(|| {
                    format!(
                        "stock_quantity: must be a whole number between -{0} and {0}",
                        MAX_STOCK_QUANTITY
                    )
                })?,
        ),
        None => Stock::Flag(boolean(o, "in_stock", true)?),
    };
    let group_id = match text(o, "group_id") {
        Some(g) => GroupId::parse(&g).map_err(|e| format!("group_id: {e}"))?,
        None => GroupId::parse(product_id.as_str()).map_err(|e| format!("product_id: {e}"))?,
    };
    Ok(Product {
        product_id,
        name,
        brand,
        category,
        price,
        stock,
        group_id,
        active: boolean(o, "active", true)?,
        url: bounded_text(&text(o, "url").unwrap_or_default(), MAX_URL_LEN, false)
            .map_err(|e| format!("url: {e}"))?,
        image_url: bounded_text(
            &text(o, "image_url").unwrap_or_default(),
            MAX_URL_LEN,
            false,
        )
        .map_err(|e| format!("image_url: {e}"))?,
        replenish_after_days: match text(o, "replenish_after_days") {
            Some(d) => {
                let days: u32 = d.trim().parse().map_err(|_| {
                    "replenish_after_days: must be a whole number of days".to_string()
                })?;
                if days > crate::domain::MAX_REPLENISH_DAYS {
                    return Err(format!(
                        "replenish_after_days: at most {} days",
                        crate::domain::MAX_REPLENISH_DAYS
                    ));
                }
                (days > 0).then_some(days)
            }
            None => None,
        },
        merchandise: crate::domain::MerchandiseFlag(match text(o, "merchandise") {
            Some(_) => Some(boolean(o, "merchandise", true)?),
            None => None,
        }),
        size: size_of(o)?,
    })
}

/// `size` (or Segment's `variant`) with `size_system`.
fn size_of(o: &Map<String, Value>) -> Result<ProductSize, String> {
    let system = text(o, "size_system")
        .map(|s| SizeSystem::parse(&s).map_err(|e| format!("size_system: {e}")))
        .transpose()?;
    let (key, label) = match (text(o, "size"), text(o, "variant")) {
        (Some(s), _) => ("size", s),
        (None, Some(v)) => ("variant", v),
        (None, None) => return Ok(ProductSize(None)),
    };
    Size::parse_optional(&label, system)
        .map(ProductSize)
        .map_err(|e| format!("{key}: {e}"))
}

/// Maps one JSON Lines line.
pub fn product_from_line(line: &str) -> Result<Product, String> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(o)) => product_from_json(&o),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not a JSON object: {e}")),
    }
}

/// Maps one CSV record, given the header.
pub fn product_from_csv(
    header: &csv::StringRecord,
    record: &csv::StringRecord,
) -> Result<Product, String> {
    let map: HashMap<&str, &str> = header.iter().zip(record.iter()).collect();
    let mut o = Map::new();
    for (k, v) in map {
        if !v.trim().is_empty() {
            o.insert(k.trim().to_owned(), Value::String(v.to_owned()));
        }
    }
    product_from_json(&o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_come_from_size_or_variant() {
        let line = |extra: &str| {
            product_from_line(&format!(
                r#"{{"product_id": "p", "name": "Shell", "category": "Apparel > Jackets", "price": 1{extra}}}"#
            ))
        };
        let size = |p: Product| p.size.0.map(|s| (s.label().to_owned(), s.system()));
        assert_eq!(
            size(line(r#", "size": "xl""#).unwrap()),
            Some(("XL".into(), SizeSystem::Alpha))
        );
        assert_eq!(
            size(line(r#", "variant": "9.5""#).unwrap()),
            Some(("9.5".into(), SizeSystem::Numeric))
        );
        assert_eq!(size(line(r#", "variant": "One Size""#).unwrap()), None);
        assert_eq!(size(line("").unwrap()), None);
        let err = line(r#", "size": "M", "size_system": "numeric""#).unwrap_err();
        assert!(err.starts_with("size: "), "{err}");
        let err = line(r#", "size": "M", "size_system": "cups""#).unwrap_err();
        assert!(err.starts_with("size_system: "), "{err}");
    }

    #[test]
    fn shared_data_set_line() {
        let p = product_from_line(r#"{"product_id": "26093", "name": "Bread:Italian/French", "brand": "Private", "manufacturer_id": "69", "category": "PASTRY > BREAD > BREAD:ITALIAN/FRENCH", "price": 1.59, "currency": "USD", "in_stock": true}"#).unwrap();
        assert_eq!(p.price.minor, 159);
        assert_eq!(
            p.category.levels(),
            ["PASTRY", "BREAD", "BREAD:ITALIAN/FRENCH"]
        );
        assert_eq!(p.group_id.as_str(), "26093");
        assert!(p.stock.in_stock());
    }

    #[test]
    fn csv_record() {
        let header = csv::StringRecord::from(vec![
            "sku",
            "name",
            "category",
            "price_minor",
            "stock_quantity",
            "active",
        ]);
        let p = product_from_csv(
            &header,
            &csv::StringRecord::from(vec!["s1", "Tee", "Apparel > Tops", "1999", "0", "yes"]),
        )
        .unwrap();
        assert_eq!(p.price.minor, 1999);
        assert!(!p.stock.in_stock());
        let err = product_from_csv(
            &header,
            &csv::StringRecord::from(vec!["s1", "Tee", "", "1999", "0", "yes"]),
        )
        .unwrap_err();
        assert!(err.starts_with("category"), "{err}");
    }
}
