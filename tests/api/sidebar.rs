//! The sidebar page in a real headless browser (Debian's Chromium through
//! ChromeDriver): it renders a customer's brief and suggestions, follows a
//! Chatwoot `appContext` message to another contact, and a thumbs down is
//! stored and removes the item; framed by an allowed helpdesk, it follows
//! the helpdesk's messages and ignores those of a frame from another
//! origin. Without `chromedriver` on the PATH the test
//! says so and passes, unless `CC_REQUIRE_BROWSER=1` (CI sets it).

use std::{process::Stdio, time::Duration};

use customer_context::{domain::Role, proto as pb};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::{
    fixtures::*,
    harness::{Backend, spawn_app, spawn_framed},
    http::maya,
    suggestions::for_customer,
};

/// Longest wait for the page to reach a state (a bound, not an assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Driver {
    process: std::process::Child,
    pub client: Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn browser() -> Option<Driver> {
    browser_sized(360, 1400).await
}

/// A headless Chromium with a window of `width` x `height`, or `None` (the
/// test passes, saying why) without chromedriver unless CI requires it.
pub async fn browser_sized(width: u32, height: u32) -> Option<Driver> {
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
                     "--disable-component-update", "--disable-sync",
                     format!("--window-size={width},{height}")]
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

pub async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// The page's status line once it starts with `prefix` (waiting for it).
pub async fn status_starting(client: &Client, prefix: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(&format!(
            "//p[@id='status' and starts-with(., '{prefix}')]"
        )))
        .await
        .unwrap_or_else(|e| panic!("the status never said {prefix:?}: {e}"))
}

pub async fn wait_for(client: &Client, css: &str) {
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
    status_starting(b, "Removed").await;
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

/// A listener on a free port of 127.0.0.1.
fn free_listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.set_nonblocking(true).expect("non-blocking");
    listener
}

/// Serves `pages` (path → HTML) on `listener`, every request answered at
/// once and the connection closed; returns the port.
fn pages(listener: std::net::TcpListener, pages: Vec<(&'static str, String)>) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let port = listener.local_addr().expect("an address").port();
    let pages = std::sync::Arc::new(pages);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split(' ').nth(1).unwrap_or("/");
                let body = pages
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map_or(String::new(), |(_, html)| html.clone());
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    port
}

async fn number_at(client: &Client, script: &str) -> i64 {
    client
        .execute(script, vec![])
        .await
        .expect("a script")
        .as_i64()
        .unwrap_or(-1)
}

/// A helpdesk page (an allowed origin) frames the sidebar beside a frame
/// from another origin that keeps posting a Chatwoot `appContext` for
/// another customer: the sidebar follows the helpdesk's own message and
/// never even asks for the other frame's customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_from_an_unlisted_origin_cannot_switch_the_customer() {
    // The helpdesk's port is taken before the service is told about it.
    let helpdesk_listener = free_listener();
    let helpdesk_port = helpdesk_listener.local_addr().expect("an address").port();
    let helpdesk = format!("http://127.0.0.1:{helpdesk_port}");
    let Some(app) = spawn_framed(Backend::Sqlite, vec![helpdesk.clone()]).await else {
        return;
    };
    maya(&app).await;
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![
                customer("c2", "Chris Doe", "chris@example.com", "", ""),
                customer("c3", "Dana Roe", "dana@example.com", "", ""),
            ],
        })
        .await
        .expect("customers");
    let Some(driver) = browser().await else {
        return;
    };
    let agent = app.key(Role::Agent).await;
    // The page from another origin (localhost is not 127.0.0.1 to a browser).
    let evil_port = pages(
        free_listener(),
        vec![(
        "/evil",
        r#"<!doctype html><body data-sent="0"><script>
let n = 0;
setInterval(() => {
  parent.frames[0].postMessage(JSON.stringify({event: "appContext", data: {contact: {email: "chris@example.com"}}}), "*");
  n += 1;
  document.body.dataset.sent = String(n);
}, 20);
</script></body>"#
            .to_owned(),
        )],
    );
    let helpdesk_page = format!(
        r#"<!doctype html><body>
<iframe id="sidebar" src="http://{addr}/sidebar?email=maya.chen%40example.com#key={agent}" width="360" height="900"></iframe>
<iframe id="evil" src="http://localhost:{evil_port}/evil"></iframe>
<script>
window.switchTo = (email) => document.getElementById("sidebar").contentWindow
  .postMessage(JSON.stringify({{event: "appContext", data: {{contact: {{email}}}}}}), "*");
</script></body>"#,
        addr = app.addr
    );
    pages(helpdesk_listener, vec![("/helpdesk", helpdesk_page)]);
    let b = &driver.client;
    b.goto(&format!("{helpdesk}/helpdesk"))
        .await
        .expect("the helpdesk opens");

    // The sidebar, framed by an allowed origin, loads Maya.
    b.enter_frame(0).await.expect("the sidebar's frame");
    wait_for(b, r#"body[data-loaded="email:maya.chen@example.com"]"#).await;
    // Every request the page makes from now on is noted.
    b.execute(
        "window.asked = []; const f = window.fetch; \
         window.fetch = function (u) { window.asked.push(String(u)); return f.apply(this, arguments); };",
        vec![],
    )
    .await
    .expect("the hook");
    let sent = "return Number(document.body.dataset.sent)";
    b.enter_parent_frame().await.expect("back");
    b.enter_frame(1).await.expect("the other frame");
    b.wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath("//body[number(@data-sent) >= 10]"))
        .await
        .expect("the other frame posts");

    // The helpdesk's own message is followed.
    b.enter_parent_frame().await.expect("back");
    b.execute("switchTo('dana@example.com')", vec![])
        .await
        .expect("posted");
    b.enter_frame(0).await.expect("the sidebar's frame");
    wait_for(b, r#"body[data-loaded="email:dana@example.com"]"#).await;

    // Ten more of the other frame's messages arrive; none is followed.
    b.enter_parent_frame().await.expect("back");
    b.enter_frame(1).await.expect("the other frame");
    let so_far = number_at(b, sent).await;
    b.wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(&format!(
            "//body[number(@data-sent) >= {}]",
            so_far + 10
        )))
        .await
        .expect("the other frame goes on posting");
    b.enter_parent_frame().await.expect("back");
    b.enter_frame(0).await.expect("the sidebar's frame");
    let asked = b
        .execute("return window.asked", vec![])
        .await
        .expect("the requests");
    let asked: Vec<String> = serde_json::from_value(asked).expect("strings");
    assert!(
        asked.iter().any(|u| u.contains("dana")),
        "the helpdesk's switch was requested: {asked:?}"
    );
    assert!(
        !asked.iter().any(|u| u.contains("chris")),
        "the other origin's customer was never requested: {asked:?}"
    );
    assert_eq!(
        b.find(Locator::Css("body"))
            .await
            .expect("body")
            .attr("data-loaded")
            .await
            .expect("attr")
            .as_deref(),
        Some("email:dana@example.com")
    );
    driver.client.clone().close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidebars_search_box_finds_a_product_in_her_size() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    crate::search::shop(&app).await;
    let Some(driver) = browser().await else {
        return;
    };
    let b = &driver.client;
    let agent = app.key(Role::Agent).await;
    b.goto(&format!(
        "http://{}/sidebar?email=maya%40example.com#key={agent}",
        app.addr
    ))
    .await
    .expect("the page opens");
    wait_for(b, r#"body[data-loaded="email:maya@example.com"]"#).await;
    let input = b
        .find(Locator::Css("#search-input"))
        .await
        .expect("a search box");
    input.send_keys("polar flee").await.expect("typed");
    b.find(Locator::Css("#search-form button[type=submit]"))
        .await
        .expect("a search button")
        .click()
        .await
        .expect("clicked");
    wait_for(b, r#"body[data-searched="polar flee"]"#).await;
    b.execute(
        "document.getElementById('h-search').scrollIntoView()",
        vec![],
    )
    .await
    .expect("scrolled");
    screenshot(b, "sidebar-search.png").await;
    let found = b
        .find(Locator::Css(
            r#"#search-results li[data-product-id="fleece-L"]"#,
        ))
        .await
        .expect("the fleece in her L");
    let said = found.text().await.expect("text");
    assert!(
        said.contains("In L, the size you kept in jackets."),
        "{said}"
    );
    assert!(said.contains("In stock"), "{said}");
    found
        .find(Locator::Css(r#"button[data-kind="SENT_TO_CUSTOMER"]"#))
        .await
        .expect("the same buttons as suggestions")
        .click()
        .await
        .expect("clicked");
    status_starting(b, "Recorded").await;
    // What she owns is marked.
    input.clear().await.expect("cleared");
    input.send_keys("windbreaker").await.expect("typed");
    wait_for(b, r#"body[data-searched="windbreaker"]"#).await;
    let owned = text_of(b, "#search-results li").await;
    assert!(owned.contains("Owns this"), "{owned}");
    driver.client.clone().close().await.expect("closed");
}

/// Saves a screenshot of the page as `name` in `CC_SCREENSHOTS` when set
/// (`CC_SCREENSHOTS=docs/screenshots cargo test --test api sidebar`
/// refreshes the docs' pictures); does nothing otherwise.
pub async fn screenshot(client: &Client, name: &str) {
    if let Ok(dir) = std::env::var("CC_SCREENSHOTS") {
        let png = client.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(&dir).expect("the screenshot folder");
        std::fs::write(std::path::Path::new(&dir).join(name), png).expect("saved");
    }
}
