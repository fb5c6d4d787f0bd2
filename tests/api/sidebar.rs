//! The sidebar page in a real headless browser (Debian's Chromium through
//! ChromeDriver): it renders a customer's brief and suggestions, follows a
//! Chatwoot `appContext` message to another contact, and a thumbs down is
//! stored and removes the item. Without `chromedriver` on the PATH the test
//! says so and passes, unless `CC_REQUIRE_BROWSER=1` (CI sets it).

use std::{process::Stdio, time::Duration};

use customer_context::{domain::Role, proto as pb};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::{
    fixtures::*,
    harness::{Backend, spawn_app},
    http::maya,
    suggestions::for_customer,
};

/// Longest wait for the page to reach a state (a bound, not an assertion).
const PATIENCE: Duration = Duration::from_secs(60);

struct Driver {
    process: std::process::Child,
    client: Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn browser() -> Option<Driver> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let process = match std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => {
            assert!(
                std::env::var("CC_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "CC_REQUIRE_BROWSER=1 but chromedriver cannot start: {e}"
            );
            eprintln!(
                "\n*** SKIPPED: browser test (chromedriver: {e}). Install Debian's chromium and \
                 chromium-driver; CI sets CC_REQUIRE_BROWSER=1. ***\n"
            );
            return None;
        }
    };
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("CC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=360,1400"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let url = format!("http://127.0.0.1:{port}");
    // ChromeDriver takes a moment to listen: try until it does.
    let started = std::time::Instant::now();
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Some(Driver { process, client }),
            Err(e) if started.elapsed() < PATIENCE => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no browser session: {e}"),
        }
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn wait_for(client: &Client, css: &str) {
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("the page never showed {css}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidebar_shows_a_customer_follows_chatwoot_and_records_a_thumbs_down() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    maya(&app).await;
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("c2", "Chris Doe", "chris@example.com", "", "")],
        })
        .await
        .expect("customer");
    let Some(driver) = browser().await else {
        return;
    };
    let b = &driver.client;
    let agent = app.key(Role::Agent).await;
    let page = format!("http://{}/sidebar", app.addr);

    b.goto(&format!("{page}?email=maya.chen%40example.com#key={agent}"))
        .await
        .expect("the page opens");
    wait_for(b, r#"body[data-loaded="email:maya.chen@example.com"]"#).await;
    assert_eq!(text_of(b, "#title").await, "Maya Chen");
    assert!(text_of(b, "#brief").await.starts_with("Maya Chen"));
    assert_eq!(text_of(b, "#orders li strong").await, "o-maya-1");
    let url = b.current_url().await.expect("url");
    assert!(
        !url.as_str().contains(&agent),
        "the key leaves the address bar: {url}"
    );
    let offered = b
        .find_all(Locator::Css("#suggestions li[data-product-id]"))
        .await
        .expect("items");
    assert!(!offered.is_empty(), "suggestions are listed");
    for item in &offered {
        assert!(!item.text().await.expect("text").is_empty());
    }

    // Chatwoot hands the app another conversation's contact.
    let message =
        json!({"event": "appContext", "data": {"contact": {"email": "chris@example.com"}}});
    b.execute(
        "window.postMessage(arguments[0], '*')",
        vec![json!(message.to_string())],
    )
    .await
    .expect("posted");
    wait_for(b, r#"body[data-loaded="email:chris@example.com"]"#).await;
    assert_eq!(text_of(b, "#title").await, "Chris Doe");

    // Back to Maya through the same message; the key came from the tab's storage.
    let message =
        json!({"event": "appContext", "data": {"contact": {"email": "maya.chen@example.com"}}});
    b.execute("window.postMessage(arguments[0], '*')", vec![message])
        .await
        .expect("posted");
    wait_for(b, r#"body[data-loaded="email:maya.chen@example.com"]"#).await;
    let first = b
        .find(Locator::Css("#suggestions li[data-product-id]"))
        .await
        .expect("an item");
    let product = first
        .attr("data-product-id")
        .await
        .expect("attr")
        .expect("an id");
    first
        .find(Locator::Css(r#"button[data-kind="THUMBS_DOWN"]"#))
        .await
        .expect("a thumbs-down button")
        .click()
        .await
        .expect("clicked");
    b.wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(
            "//p[@id='status' and starts-with(., 'Removed')]",
        ))
        .await
        .expect("the removal is announced");
    let left = b
        .find_all(Locator::Css(&format!(
            r#"#suggestions li[data-product-id="{product}"]"#
        )))
        .await
        .expect("query");
    assert!(left.is_empty(), "{product} left the list");

    // The page follows the customer live: a view ingested now appears.
    app.ingest
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![view("live-1", "maya", "bottle", 0)],
        })
        .await
        .expect("a view");
    b.wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(
            "//ul[@id='browsing']/li/span[contains(., 'Bottle')]",
        ))
        .await
        .expect("the new view appears without a reload");

    let s = for_customer(&app, "maya").await;
    assert!(
        s.items
            .iter()
            .all(|i| i.product.as_ref().is_some_and(|p| p.product_id != product)),
        "the thumbs down was stored: {product} is not offered again"
    );
    driver.client.clone().close().await.expect("closed");
}
