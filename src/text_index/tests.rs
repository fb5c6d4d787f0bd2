use super::*;

fn row(
    id: &str,
    name: &str,
    brand: &str,
    category: &str,
    price: i64,
    available: bool,
) -> CatalogRow {
    CatalogRow {
        product_id: id.into(),
        name: name.into(),
        group_id: id.into(),
        category_path: category.into(),
        price_minor: price,
        available,
        brand: brand.into(),
        replenish_days: None,
        merchandise: None,
        size: None,
    }
}

/// The shop's tee at another price or stock.
fn tee(price: i64, available: bool) -> CatalogRow {
    row(
        "tee",
        "Organic Cotton Tee",
        "Basics",
        "Apparel > Tops",
        price,
        available,
    )
}

fn shop() -> TextIndex {
    let index = TextIndex::new().unwrap();
    index.start_load();
    index
        .load(&[
            row(
                "rain",
                "Waterproof Hiking Jacket",
                "Northwind",
                "Apparel > Jackets",
                12_900,
                true,
            ),
            row(
                "fleece",
                "Polar Fleece Jacket",
                "Northwind",
                "Apparel > Jackets",
                5_900,
                true,
            ),
            row(
                "runner",
                "Trail Runner Shoe",
                "Fleet",
                "Footwear > Running",
                8_900,
                true,
            ),
            row(
                "boot",
                "Leather Hiking Boot",
                "Fleet",
                "Footwear > Boots",
                15_900,
                false,
            ),
            row(
                "tee",
                "Organic Cotton Tee",
                "Basics",
                "Apparel > Tops",
                1_900,
                true,
            ),
            row(
                "sock",
                "Merino Hiking Socks",
                "Basics",
                "Apparel > Socks",
                1_500,
                true,
            ),
        ])
        .unwrap();
    index.finish_load().unwrap();
    index
}

/// Products naming every word, then those naming some (as the search
/// service asks).
fn ids(index: &TextIndex, text: &str, filters: &Filters) -> Vec<String> {
    let words = Words::parse(text);
    let mut out: Vec<String> = Vec::new();
    for all_words in [true, false] {
        for h in index.search(&words, filters, 10, all_words).unwrap().iter() {
            if !out.contains(&h.product_id) {
                out.push(h.product_id.clone());
            }
        }
    }
    out
}

#[test]
fn words_in_any_order_and_stems_find_the_product_naming_them_all_first() {
    let index = shop();
    assert!(index.is_ready());
    assert_eq!(index.len(), 6);
    let found = ids(&index, "jackets hiking waterproof ", &Filters::default());
    assert_eq!(found[0], "rain", "{found:?}");
    // Products naming only some words follow.
    assert!(found.contains(&"fleece".to_owned()), "{found:?}");
    assert!(found.contains(&"boot".to_owned()), "{found:?}");
}

#[test]
fn a_typo_and_a_prefix_still_find_the_product() {
    let index = shop();
    assert_eq!(ids(&index, "waterprof ", &Filters::default()), ["rain"]);
    assert_eq!(ids(&index, "merino hik", &Filters::default())[0], "sock");
    // A finished word is not a prefix.
    assert!(ids(&index, "tra ", &Filters::default()).is_empty());
    assert_eq!(ids(&index, "tra", &Filters::default()), ["runner"]);
}

#[test]
fn filters_hold_for_every_hit() {
    let index = shop();
    let hiking = |f: Filters| ids(&index, "hiking ", &f);
    let footwear = Filters {
        category: Some(vec!["footwear".into()]),
        ..Filters::default()
    };
    assert_eq!(hiking(footwear), ["boot"]);
    let in_stock = Filters {
        in_stock: true,
        ..Filters::default()
    };
    let found = hiking(in_stock);
    assert!(!found.contains(&"boot".to_owned()), "{found:?}");
    assert_eq!(found.len(), 2);
    let cheap = Filters {
        max_price: Some(2_000),
        ..Filters::default()
    };
    assert_eq!(hiking(cheap), ["sock"]);
    let brand = Filters {
        brand: Some("NORTHWIND".into()),
        min_price: Some(10_000),
        ..Filters::default()
    };
    assert_eq!(hiking(brand), ["rain"]);
}

#[test]
fn an_upsert_replaces_the_product_and_a_load_never_overwrites_a_newer_row() {
    let index = shop();
    index
        .upsert(&[row(
            "boot",
            "Leather Hiking Boot",
            "Fleet",
            "Footwear > Boots",
            15_900,
            true,
        )])
        .unwrap();
    let in_stock = Filters {
        in_stock: true,
        ..Filters::default()
    };
    assert!(ids(&index, "boot ", &in_stock).contains(&"boot".to_owned()));
    assert_eq!(index.len(), 6);
    // The feed upserts a product while a load reads an older row of it.
    index.start_load();
    index.upsert(&[tee(2_500, false)]).unwrap();
    index.load(&[tee(1_900, true)]).unwrap();
    index.finish_load().unwrap();
    assert!(ids(&index, "tee ", &in_stock).is_empty());
    assert_eq!(index.len(), 6);
}

#[test]
fn punctuation_only_has_no_words_and_long_queries_keep_their_first_words() {
    assert!(Words::parse("?!  -- ").is_empty());
    let many = (0..40)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(Words::parse(&many).len(), MAX_WORDS);
}

#[test]
fn a_typo_in_a_plural_is_matched_against_its_stem() {
    let index = TextIndex::new().unwrap();
    index.start_load();
    index
        .load(&[row(
            "banana",
            "Bananas",
            "Fresh",
            "Produce > Fruit",
            99,
            true,
        )])
        .unwrap();
    index.finish_load().unwrap();
    // Two edits from "bananas", one from its stem "banana".
    assert_eq!(ids(&index, "bananna ", &Filters::default()), ["banana"]);
}

#[test]
fn a_whole_word_still_being_typed_is_also_a_prefix() {
    let index = TextIndex::new().unwrap();
    index.start_load();
    index
        .load(&[
            row("butts", "Pork Butts", "Farm", "Meat > Pork", 899, true),
            row(
                "pb",
                "Peanut Butter",
                "Farm",
                "Grocery > Spreads",
                399,
                true,
            ),
        ])
        .unwrap();
    index.finish_load().unwrap();
    assert_eq!(ids(&index, "peanut butt", &Filters::default())[0], "pb");
    // Finished with a space, "butt" is the word meant.
    assert_eq!(ids(&index, "butt ", &Filters::default()), ["butts"]);
}

#[test]
fn a_repeated_search_is_answered_from_memory_until_the_index_changes() {
    let index = shop();
    let in_stock = Filters {
        in_stock: true,
        ..Filters::default()
    };
    let first = ids(&index, "organic tee", &in_stock);
    assert_eq!(index.answered(), (0, 2));
    assert_eq!(ids(&index, "organic tee", &in_stock), first);
    assert_eq!(index.answered(), (2, 2));
    // The tee sells out: the same question is computed afresh.
    assert!(first.contains(&"tee".to_owned()));
    index.upsert(&[tee(2_500, false)]).unwrap();
    let after = ids(&index, "organic tee", &in_stock);
    assert!(!after.contains(&"tee".to_owned()), "{after:?}");
    assert_eq!(index.answered(), (2, 4));
}
