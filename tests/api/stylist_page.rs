//! The stylists' workspace page (`/stylist`) in headless Chromium at a
//! laptop's width: a stylist creates a curation by searching and picking
//! items, sees it listed, previews it for a customer in her sizes (with
//! what is left out and why), and archives it.

use customer_context::domain::Role;
use fantoccini::{Client, Locator};

use crate::{
    harness::{Backend, spawn_app},
    sidebar::{browser_sized, screenshot, status_starting, text_of, wait_for},
};

/// Types `text` into the field `css` (cleared first).
async fn fill(b: &Client, css: &str, text: &str) {
    let field = b.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("cleared");
    field.send_keys(text).await.expect("typed");
}

async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("clicked");
}

/// Searches the catalogue and adds the first result as an item.
async fn pick(b: &Client, words: &str) -> String {
    fill(b, "#search-input", words).await;
    click(b, "#search-form button[type=submit]").await;
    wait_for(b, &format!(r#"body[data-searched="{words}"]"#)).await;
    let first = b
        .find(Locator::Css("#search-results li[data-product-id]"))
        .await
        .expect("a result");
    let id = first
        .attr("data-product-id")
        .await
        .expect("attr")
        .expect("an id");
    first
        .find(Locator::Css(r#"button[data-action="add-item"]"#))
        .await
        .expect("an add button")
        .click()
        .await
        .expect("added");
    wait_for(b, &format!(r#"#items li[data-product-id="{id}"]"#)).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stylist_curates_by_search_previews_for_a_customer_and_archives() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    crate::search::shop(&app).await;
    let Some(driver) = browser_sized(1280, 1500).await else {
        return;
    };
    let b = &driver.client;
    let key = app.key(Role::Stylist).await;
    b.goto(&format!("http://{}/stylist#key={key}", app.addr))
        .await
        .expect("the page opens");
    wait_for(b, r#"body[data-listed="0"]"#).await;

    fill(b, "#title", "Trail layers").await;
    fill(b, "#stylist", "Ana").await;
    fill(b, "#note", "Layers for wet trail days").await;
    click(b, r#"input[name="anchor-kind"][value="customers"]"#).await;
    fill(b, "#anchor-customers", "maya").await;
    let fleece = pick(b, "polar fleece").await;
    pick(b, "windbreaker").await;
    pick(b, "insulated parka").await;
    fill(
        b,
        &format!(r#"#items li[data-product-id="{fleece}"] .item-note"#),
        "Warm under the shell",
    )
    .await;
    click(b, "#save").await;
    wait_for(b, r#"body[data-listed="1"]"#).await;
    let card = text_of(b, "#curations li[data-curation-id]").await;
    assert!(card.contains("Trail layers"), "{card}");
    assert!(card.contains("For maya"), "{card}");
    assert!(card.contains("0 shown"), "{card}");

    // Preview for Maya: the fleece in her L, the rest left out and why.
    fill(b, "#preview-customer", "maya@example.com").await;
    click(b, "#preview-form button[type=submit]").await;
    wait_for(b, r#"body[data-previewed="maya@example.com"]"#).await;
    let shown = text_of(b, r#"#preview-results li[data-shown="true"]"#).await;
    assert!(shown.contains("Polar Fleece Jacket (L)"), "{shown}");
    assert!(
        shown.contains("In L, the size you kept in jackets."),
        "{shown}"
    );
    assert!(shown.contains("Warm under the shell"), "{shown}");
    let left_out = b
        .find_all(Locator::Css(r#"#preview-results li[data-shown="false"]"#))
        .await
        .expect("items left out");
    let mut why = Vec::new();
    for li in &left_out {
        why.push(li.text().await.expect("text"));
    }
    let why = why.join("\n");
    assert!(why.contains("Left out: they already bought it."), "{why}");
    assert!(
        why.contains("Left out: not in stock in their size."),
        "{why}"
    );
    assert!(
        text_of(b, "#preview-note")
            .await
            .contains("It names this customer.")
    );
    screenshot(b, "stylist.png").await;

    // Archive it: it leaves the list of curations not archived.
    click(
        b,
        r#"#curations li[data-curation-id] button[data-action="archive"]"#,
    )
    .await;
    b.accept_alert().await.expect("confirmed");
    wait_for(b, r#"body[data-listed="0"]"#).await;
    let status = status_starting(b, "Archived").await;
    assert!(status.text().await.expect("text").contains("Trail layers"));
    driver.client.clone().close().await.expect("closed");
}
