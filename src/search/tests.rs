use super::place::{Personal, place};
use std::collections::{HashMap, HashSet};

use crate::{
    domain::{Size, Timestamp},
    fit::{Evidence, Outcome},
    store::{CatalogRow, ModelInputs, PurchasedLine},
    suggest::{
        Fit, Model, ModelConfig,
        signals::{Ask, History, signals},
    },
    text_index::Hit,
};

fn row(id: &str, group: &str, category: &str, size: Option<&str>, available: bool) -> CatalogRow {
    CatalogRow {
        product_id: id.into(),
        name: id.into(),
        group_id: group.into(),
        category_path: category.into(),
        price_minor: 5_000,
        available,
        brand: if group == "parka" {
            "Northwind".into()
        } else {
            String::new()
        },
        replenish_days: None,
        merchandise: None,
        size: size.map(|s| Size::parse(s, None).expect("a size")),
    }
}

/// A shell jacket in S, M (sold out) and L; a parka in M; a vest in S and
/// L (sold out); a tee in S;
/// socks without sizes; a gift card.
fn model() -> Model {
    let catalog = vec![
        row("shell-s", "shell", "Apparel > Jackets", Some("S"), true),
        row("shell-m", "shell", "Apparel > Jackets", Some("M"), false),
        row("shell-l", "shell", "Apparel > Jackets", Some("L"), true),
        row("parka-m", "parka", "Apparel > Jackets", Some("M"), true),
        row("vest-s", "vest", "Apparel > Jackets", Some("S"), true),
        row("vest-l", "vest", "Apparel > Jackets", Some("L"), false),
        row("tee-s", "tee", "Apparel > Tops", Some("S"), true),
        row("socks", "socks", "Apparel > Socks", None, true),
        CatalogRow {
            name: "Chocolate Milk 1 GA".into(),
            ..row("milk-ga", "milk-ga", "Dairy > Milk", None, true)
        },
        CatalogRow {
            name: "Chocolate Milk".into(),
            ..row("milk", "milk", "Dairy > Milk", None, true)
        },
        row("card", "card", "Gift Cards > Cards", None, true),
    ];
    let inputs = ModelInputs {
        as_of_seq: 0,
        catalog,
        purchases: Vec::new(),
        views: Vec::new(),
    };
    Model::build(&inputs, &ModelConfig::default(), 0)
}

fn hit(id: &str, score: f32, all_words: bool) -> Hit {
    Hit {
        product_id: id.into(),
        score,
        all_words,
    }
}

/// A customer who kept an M jacket, bought the tee (in tops, no size
/// kept) and returned the parka: their signals as search reads them.
fn keeps_m(m: &Model) -> Personal {
    let now = Timestamp::from_millis(1_000_000).unwrap();
    let (domain, size) = m.size_of(m.item("shell-m").unwrap()).unwrap();
    let history = History {
        lines: vec![PurchasedLine {
            product_id: "tee-s".into(),
            category_path: "Apparel > Tops".into(),
            unit_price_minor: 2_000,
            placed_at: now,
            order_id: "o1".into(),
            quantity: 1,
        }],
        returned_groups: HashSet::from(["parka".to_owned()]),
        bought_groups: HashMap::from([("tee".to_owned(), now), ("old".to_owned(), now)]),
        size_evidence: vec![Evidence {
            domain,
            size,
            outcome: Outcome::Kept,
            at: now,
        }],
        ..History::default()
    };
    let ask = Ask {
        personal: true,
        now,
        ..Ask::default()
    };
    let bought: Vec<&str> = history.bought_groups.keys().map(String::as_str).collect();
    Personal::new(m, signals(m, &history, &ask), &bought)
}

fn ids(placed: &[super::Placed]) -> Vec<&str> {
    placed.iter().map(|p| p.product_id.as_str()).collect()
}

#[test]
fn one_result_per_style_and_never_a_non_merchandise_product() {
    let m = model();
    let hits = [
        hit("shell-s", 3.0, true),
        hit("shell-l", 2.9, true),
        hit("card", 2.8, true),
        hit("socks", 1.0, true),
    ];
    let placed = place(&m, None, &hits, false, 10);
    assert_eq!(ids(&placed), ["shell-s", "socks"]);
    assert!(placed.iter().all(|p| !p.owned && !p.returned));
}

#[test]
fn look_alikes_under_other_ids_come_once() {
    let m = model();
    let hits = [
        hit("milk-ga", 2.0, true),
        hit("milk", 1.9, true),
        hit("socks", 1.0, true),
    ];
    assert_eq!(
        ids(&place(&m, None, &hits, false, 10)),
        ["milk-ga", "socks"]
    );
}

#[test]
fn a_sized_style_comes_in_the_customers_size_with_its_stock_in_that_size() {
    let m = model();
    let p = keeps_m(&m);
    let hits = [hit("shell-s", 3.0, true), hit("parka-m", 2.0, true)];
    let placed = place(&m, Some(&p), &hits, false, 10);
    assert_eq!(ids(&placed), ["shell-m", "parka-m"]);
    assert_eq!(placed[0].fit.fit, Fit::CustomerSize);
    assert_eq!(placed[0].fit.size, "M");
    assert_eq!(placed[0].fit.text, "In M, the size you kept in jackets.");
    assert!(!placed[0].available, "M is sold out");
    assert_eq!(placed[0].fit.sizes_in_stock, ["S", "L"]);
    // In stock only: the shell is not sold in their size now.
    let in_stock = place(&m, Some(&p), &hits, true, 10);
    assert_eq!(ids(&in_stock), ["parka-m"]);
}

#[test]
fn without_their_size_an_in_stock_variant_and_the_sizes_to_ask_about() {
    let m = model();
    let hits = [hit("shell-m", 3.0, true)];
    let placed = place(&m, None, &hits, false, 10);
    assert_eq!(ids(&placed), ["shell-s"]);
    assert_eq!(placed[0].fit.fit, Fit::Unknown);
    assert!(placed[0].fit.text.contains("ask"), "{}", placed[0].fit.text);
    assert!(
        placed[0].fit.text.contains("S, L"),
        "{}",
        placed[0].fit.text
    );
}

#[test]
fn what_they_own_or_returned_is_marked() {
    let m = model();
    let p = keeps_m(&m);
    let hits = [hit("tee-s", 2.0, true), hit("parka-m", 2.0, true)];
    let placed = place(&m, Some(&p), &hits, false, 10);
    let tee = placed.iter().find(|x| x.product_id == "tee-s").unwrap();
    let parka = placed.iter().find(|x| x.product_id == "parka-m").unwrap();
    assert!(tee.owned && !tee.returned);
    assert!(parka.returned && !parka.owned);
}

#[test]
fn their_categories_lean_the_order_but_every_word_named_stays_ahead() {
    let m = model();
    let p = keeps_m(&m);
    // About equal relevance: the tee's category is the one they buy.
    let hits = [hit("socks", 2.1, true), hit("tee-s", 2.0, true)];
    assert_eq!(
        ids(&place(&m, Some(&p), &hits, false, 10)),
        ["tee-s", "socks"]
    );
    assert_eq!(ids(&place(&m, None, &hits, false, 10)), ["socks", "tee-s"]);
    // A product naming only some words never passes one naming them all.
    let hits = [hit("socks", 1.0, true), hit("tee-s", 9.0, false)];
    assert_eq!(
        ids(&place(&m, Some(&p), &hits, false, 10)),
        ["socks", "tee-s"]
    );
}

#[test]
fn a_style_not_made_in_their_size_says_so_and_tops_stay_unknown() {
    let m = model();
    let p = keeps_m(&m);
    let vest = place(&m, Some(&p), &[hit("vest-l", 1.0, true)], false, 10);
    assert_eq!(vest[0].product_id, "vest-s", "an in-stock size is shown");
    assert_eq!(vest[0].fit.fit, Fit::Unknown);
    assert_eq!(
        vest[0].fit.text,
        "Not made in M, their size in jackets. In stock in S."
    );
    // The tee: tops are another domain with no evidence of theirs.
    let tee = place(&m, Some(&p), &[hit("tee-s", 1.0, true)], false, 10);
    assert_eq!(tee[0].fit.fit, Fit::Unknown);
    assert!(tee[0].fit.text.contains("ask"), "{}", tee[0].fit.text);
}
