//! A realistic small retailer, so that `serve --demo` is useful at once:
//! ~300 products across apparel, footwear, accessories and electronics,
//! 2,000 customers with browsing, orders, returns and tickets, and 200
//! anonymous visitors. Generated deterministically (fixed seed), with times
//! relative to the moment of loading. Loaded through the same store calls
//! as ingestion; loading again is skipped.
//!
//! The showcase customer is Maya Chen (`maya.chen@example.com`, customer
//! id `demo-c0001`): a rain shell returned as too small, an open ticket
//! about its refund, and the larger size in her cart right now. Sized
//! styles carry their sizes (letters for apparel, numbers for shoes); she
//! keeps 9 in shoes, M in tops and L in jackets.

use anyhow::Context as _;

use crate::rng::Rng;
use crate::{domain::*, store::Store};

/// The showcase customer's email, used by the README.
pub const SHOWCASE_EMAIL: &str = "maya.chen@example.com";
/// Customers generated besides the showcase one.
const CUSTOMERS: usize = 2000;
/// Anonymous visitors (browsing only).
const VISITORS: usize = 200;

/// (department, category, style names, brands, base price in cents, sizes)
type Line = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    i64,
    &'static [&'static str],
);

const APPAREL_SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL"];
const SHOE_SIZES: &[&str] = &["6", "7", "8", "9", "10", "11", "12"];
const BELT_SIZES: &[&str] = &["S", "M", "L"];
const ONE_SIZE: &[&str] = &[""];

const RANGE: &[Line] = &[
    (
        "Apparel",
        "Jackets",
        &[
            "Rain Shell",
            "Down Jacket",
            "Fleece Jacket",
            "Softshell Jacket",
        ],
        &["Northpeak", "Kestrel"],
        12900,
        APPAREL_SIZES,
    ),
    (
        "Apparel",
        "Tops",
        &[
            "Merino Tee",
            "Linen Shirt",
            "Pullover Hoodie",
            "Running Singlet",
            "Oxford Shirt",
        ],
        &["Urbanline", "Northpeak"],
        3900,
        APPAREL_SIZES,
    ),
    (
        "Apparel",
        "Bottoms",
        &[
            "Slim Chinos",
            "Trail Pants",
            "Straight Jeans",
            "Running Shorts",
        ],
        &["Urbanline", "Kestrel"],
        5900,
        APPAREL_SIZES,
    ),
    (
        "Apparel",
        "Dresses",
        &["Wrap Dress", "Shirt Dress", "Knit Dress"],
        &["Solace"],
        7900,
        APPAREL_SIZES,
    ),
    (
        "Apparel",
        "Knitwear",
        &[
            "Merino Crew Sweater",
            "Cable Knit Cardigan",
            "Wool Turtleneck",
            "Zip Fleece Pullover",
        ],
        &["Northpeak", "Solace"],
        8900,
        APPAREL_SIZES,
    ),
    (
        "Apparel",
        "Swimwear",
        &["Swim Shorts", "One-Piece Swimsuit", "Rash Guard"],
        &["Solace", "Kestrel"],
        4900,
        APPAREL_SIZES,
    ),
    (
        "Footwear",
        "Running",
        &["Trail Runner 2", "Road Racer", "Tempo Trainer"],
        &["Kestrel", "Northpeak"],
        13900,
        SHOE_SIZES,
    ),
    (
        "Footwear",
        "Boots",
        &["Hiking Boot", "Chelsea Boot", "Winter Boot"],
        &["Northpeak", "Solace"],
        16900,
        SHOE_SIZES,
    ),
    (
        "Footwear",
        "Sneakers",
        &["Court Sneaker", "Canvas Low"],
        &["Urbanline"],
        8900,
        SHOE_SIZES,
    ),
    (
        "Footwear",
        "Sandals",
        &["Trail Sandal", "Leather Slide", "Recovery Sandal"],
        &["Kestrel", "Solace"],
        5900,
        SHOE_SIZES,
    ),
    (
        "Accessories",
        "Bags",
        &["Daypack 20L", "Canvas Tote", "Hip Pack", "Weekender Duffel"],
        &["Kestrel", "Urbanline"],
        6900,
        ONE_SIZE,
    ),
    (
        "Accessories",
        "Hats",
        &["Wool Beanie", "Trail Cap", "Sun Hat"],
        &["Northpeak", "Solace"],
        2900,
        ONE_SIZE,
    ),
    (
        "Accessories",
        "Socks",
        &["Merino Hiking Socks", "Running Socks 3-Pack"],
        &["Kestrel"],
        1900,
        ONE_SIZE,
    ),
    (
        "Accessories",
        "Belts",
        &["Leather Belt", "Webbing Belt"],
        &["Urbanline"],
        3900,
        BELT_SIZES,
    ),
    (
        "Accessories",
        "Sunglasses",
        &["Polarized Sport Sunglasses", "Classic Aviators"],
        &["Solace"],
        9900,
        ONE_SIZE,
    ),
    (
        "Electronics",
        "Laptops",
        &["Aero 14 Laptop", "Aero 16 Laptop", "Studio 13 Laptop"],
        &["Voltix"],
        119900,
        ONE_SIZE,
    ),
    (
        "Electronics",
        "Audio",
        &[
            "Noise-Cancelling Headphones",
            "Sport Earbuds",
            "Bluetooth Speaker",
        ],
        &["Voltix", "Solace"],
        14900,
        ONE_SIZE,
    ),
    (
        "Electronics",
        "Accessories",
        &[
            "Wireless Mouse",
            "USB-C Charger 65W",
            "Laptop Sleeve 14\"",
            "USB-C Hub",
        ],
        &["Voltix"],
        3900,
        ONE_SIZE,
    ),
    (
        "Electronics",
        "Cameras",
        &["Action Camera", "Compact Camera", "Camera Backpack"],
        &["Voltix"],
        29900,
        ONE_SIZE,
    ),
    (
        "Electronics",
        "Wearables",
        &["GPS Running Watch", "Fitness Band"],
        &["Voltix", "Kestrel"],
        24900,
        ONE_SIZE,
    ),
];

const FIRST: &[&str] = &[
    "Alex", "Sam", "Jordan", "Priya", "Lucas", "Emma", "Noah", "Aisha", "Mateo", "Lena", "Kenji",
    "Sofia", "Omar", "Chloe", "Ivan", "Grace", "Diego", "Hana", "Ethan", "Zoe",
];
const LAST: &[&str] = &[
    "Smith", "Garcia", "Kim", "Patel", "Müller", "Rossi", "Nguyen", "Okafor", "Silva", "Cohen",
    "Ivanova", "Brown", "Tanaka", "Dubois", "Haddad", "Larsen",
];
const RETURN_REASONS: &[(&str, &str)] = &[
    ("too_small", "Runs small, I need a size up"),
    ("too_large", "Too big in the shoulders"),
    ("damaged", "Arrived with a torn seam"),
    ("not_as_described", "Colour is different from the photos"),
    ("changed_mind", ""),
    ("late_delivery", "Arrived after the trip"),
];
const TICKET_SUBJECTS: &[&str] = &[
    "Where is my order?",
    "Refund not received",
    "Wrong size delivered",
    "Discount code did not apply",
    "Change delivery address",
    "Product stopped working",
];
const SEARCHES: &[&str] = &[
    "rain jacket",
    "trail shoes",
    "merino",
    "laptop bag",
    "headphones",
    "summer dress",
    "boots waterproof",
];

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// An order's status from its age: placed for 3 days, shipped until the
/// 7th, then delivered (3 % cancelled). Shared with `generate`.
pub(crate) fn status_by_age(rng: &mut Rng, age_ms: i64) -> OrderStatus {
    if age_ms < 3 * DAY {
        OrderStatus::Placed
    } else if age_ms < 7 * DAY {
        OrderStatus::Shipped
    } else if rng.chance(3) {
        OrderStatus::Cancelled
    } else {
        OrderStatus::Delivered
    }
}

fn at(now: Timestamp, ago_ms: i64) -> Timestamp {
    Timestamp::from_millis((now.millis() - ago_ms).max(0)).unwrap_or(now)
}

fn id<T>(parse: fn(&str) -> Result<T, String>, s: &str) -> anyhow::Result<T> {
    parse(s).map_err(|e| anyhow::anyhow!("demo id {s:?} {e}"))
}

/// Builds the catalog.
fn catalog(rng: &mut Rng) -> anyhow::Result<Vec<Product>> {
    let usd = Currency::parse("USD").map_err(anyhow::Error::msg)?;
    let mut products = Vec::new();
    for (dept, cat, styles, brands, base, sizes) in RANGE {
        for (si, style) in styles.iter().enumerate() {
            let brand = brands[si % brands.len()];
            let group = format!("demo-{}", style.to_lowercase().replace([' ', '"', '-'], ""));
            let price = base + (rng.below(8) as i64 - 3) * base / 20;
            let price = price / 100 * 100 - 1;
            for size in *sizes {
                let (pid, name) = if size.is_empty() {
                    (group.clone(), style.to_string())
                } else {
                    (
                        format!("{group}-{}", size.to_lowercase()),
                        format!("{style} ({size})"),
                    )
                };
                let stock = if rng.chance(12) {
                    0
                } else {
                    1 + rng.below(40) as i64
                };
                products.push(Product {
                    product_id: id(ProductId::parse, &pid)?,
                    name,
                    brand: brand.to_string(),
                    category: CategoryPath::parse(&[*dept, *cat], true)
                        .map_err(anyhow::Error::msg)?,
                    price: Money::non_negative(usd, price).map_err(anyhow::Error::msg)?,
                    stock: Stock::Quantity(stock),
                    group_id: id(GroupId::parse, &group)?,
                    active: !rng.chance(2),
                    url: format!("https://shop.example.com/p/{pid}"),
                    image_url: format!("https://shop.example.com/img/{group}.jpg"),
                    // Socks wear out: they may be offered again after a season.
                    replenish_after_days: (*cat == "Socks").then_some(90),
                    merchandise: Default::default(),
                    size: ProductSize(
                        Size::parse_optional(size, None).map_err(anyhow::Error::msg)?,
                    ),
                });
            }
        }
    }
    Ok(products)
}

struct Built {
    customers: Vec<Customer>,
    events: Vec<BrowsingEvent>,
    orders: Vec<Order>,
    returns: Vec<Return>,
    tickets: Vec<Ticket>,
}

fn line(p: &Product, quantity: i64) -> OrderLine {
    OrderLine {
        product_id: p.product_id.clone(),
        quantity,
        unit_price_minor: p.price.minor,
        name: p.name.clone(),
        brand: p.brand.clone(),
        category: p.category.clone(),
    }
}

fn order(
    order_id: &str,
    customer: &CustomerId,
    placed: Timestamp,
    status: OrderStatus,
    lines: Vec<OrderLine>,
    channel: &str,
) -> anyhow::Result<Order> {
    let total = lines.iter().map(|l| l.quantity * l.unit_price_minor).sum();
    Ok(Order {
        order_id: id(OrderId::parse, order_id)?,
        actor: Actor::new(Some(customer.clone()), None).map_err(anyhow::Error::msg)?,
        status,
        placed_at: placed,
        currency: Currency::parse("USD").map_err(anyhow::Error::msg)?,
        total_minor: total,
        channel: channel.into(),
        lines,
    })
}

fn event(
    n: &mut usize,
    actor: &Actor,
    kind: EventKind,
    target: EventTarget,
    when: Timestamp,
    now: Timestamp,
) -> anyhow::Result<BrowsingEvent> {
    *n += 1;
    BrowsingEvent::new(
        id(MessageId::parse, &format!("demo-ev-{n:07}"))?,
        actor.clone(),
        kind,
        target,
        "web".into(),
        when,
        now,
    )
    .map_err(|(f, e)| anyhow::anyhow!("demo event {f} {e}"))
}

fn product_named<'a>(catalog: &'a [Product], pid: &str) -> anyhow::Result<&'a Product> {
    catalog
        .iter()
        .find(|p| p.product_id.as_str() == pid)
        .with_context(|| format!("demo product {pid}"))
}

/// Maya Chen's story.
fn showcase(
    catalog: &[Product],
    now: Timestamp,
    n: &mut usize,
    b: &mut Built,
) -> anyhow::Result<()> {
    let c = id(CustomerId::parse, "demo-c0001")?;
    b.customers.push(Customer {
        customer_id: c.clone(),
        display_name: "Maya Chen".into(),
        email: Some(Email::parse(SHOWCASE_EMAIL).map_err(anyhow::Error::msg)?),
        phone: Some(Phone::parse("+1 555 010 2001").map_err(anyhow::Error::msg)?),
        loyalty_id: Some(id(LoyaltyId::parse, "L-100001")?),
        customer_since: Some(at(now, 3 * 365 * DAY)),
        anonymous_ids: vec![id(AnonymousId::parse, "demo-anon-maya-laptop")?],
        consents: Purpose::ALL
            .into_iter()
            .map(|purpose| ConsentRecord {
                purpose,
                granted: true,
                source: "ingest".into(),
                updated_at: at(now, 3 * 365 * DAY),
            })
            .collect(),
    });
    let p = |pid: &str| product_named(catalog, pid);
    // Sizes: 9 in shoes, M in tops, L in jackets (the M rain shell she
    // sent back was too small).
    b.orders.push(order(
        "demo-o-maya-1",
        &c,
        at(now, 400 * DAY),
        OrderStatus::Delivered,
        vec![
            line(p("demo-hikingboot-9")?, 1),
            line(p("demo-merinohikingsocks")?, 2),
            line(p("demo-downjacket-l")?, 1),
        ],
        "web",
    )?);
    b.orders.push(order(
        "demo-o-maya-0",
        &c,
        at(now, 300 * DAY),
        OrderStatus::Delivered,
        vec![line(p("demo-oxfordshirt-m")?, 1)],
        "app",
    )?);
    b.orders.push(order(
        "demo-o-maya-2",
        &c,
        at(now, 210 * DAY),
        OrderStatus::Delivered,
        vec![line(p("demo-daypack20l")?, 1)],
        "app",
    )?);
    b.orders.push(order(
        "demo-o-maya-3",
        &c,
        at(now, 120 * DAY),
        OrderStatus::Delivered,
        vec![
            line(p("demo-merinotee-m")?, 2),
            line(p("demo-trailcap")?, 1),
        ],
        "web",
    )?);
    b.orders.push(order(
        "demo-o-maya-4",
        &c,
        at(now, 45 * DAY),
        OrderStatus::Delivered,
        vec![line(p("demo-trailrunner2-9")?, 1)],
        "web",
    )?);
    b.orders.push(order(
        "demo-o-maya-5",
        &c,
        at(now, 20 * DAY),
        OrderStatus::Delivered,
        vec![
            line(p("demo-rainshell-m")?, 1),
            line(p("demo-runningsocks3pack")?, 1),
        ],
        "web",
    )?);
    b.returns.push(Return {
        return_id: id(ReturnId::parse, "demo-r-maya-1")?,
        order_id: id(OrderId::parse, "demo-o-maya-5")?,
        customer_id: Some(c.clone()),
        status: ReturnStatus::Received,
        reason_code: "too_small".into(),
        reason_text: "Sleeves too short, the rain shell runs small".into(),
        requested_at: at(now, 10 * DAY),
        lines: vec![ReturnLine {
            product_id: id(ProductId::parse, "demo-rainshell-m")?,
            quantity: 1,
        }],
        refund: None,
    });
    b.tickets.push(Ticket {
        ticket_id: id(TicketId::parse, "demo-t-maya-1")?,
        customer_id: c.clone(),
        subject: "Refund for returned rain shell not received".into(),
        status: TicketStatus::Open,
        priority: TicketPriority::High,
        channel: "email".into(),
        order_id: Some(id(OrderId::parse, "demo-o-maya-5")?),
        created_at: at(now, 3 * DAY),
        updated_at: at(now, 2 * DAY),
    });
    b.tickets.push(Ticket {
        ticket_id: id(TicketId::parse, "demo-t-maya-0")?,
        customer_id: c.clone(),
        subject: "Change delivery address".into(),
        status: TicketStatus::Solved,
        priority: TicketPriority::Normal,
        channel: "chat".into(),
        order_id: Some(id(OrderId::parse, "demo-o-maya-2")?),
        created_at: at(now, 211 * DAY),
        updated_at: at(now, 210 * DAY),
    });
    let me = Actor::new(
        Some(c.clone()),
        Some(id(AnonymousId::parse, "demo-anon-maya-laptop")?),
    )
    .map_err(anyhow::Error::msg)?;
    let product = |pid: &str| -> anyhow::Result<EventTarget> {
        Ok(EventTarget::Product(id(ProductId::parse, pid)?))
    };
    let story: [(EventKind, EventTarget, i64); 9] = [
        (
            EventKind::ProductViewed,
            product("demo-merinotee-m")?,
            26 * HOUR,
        ),
        (
            EventKind::Searched,
            EventTarget::Search("rain jacket large".into()),
            55 * 60_000,
        ),
        (
            EventKind::ProductViewed,
            product("demo-rainshell-l")?,
            50 * 60_000,
        ),
        (
            EventKind::ProductViewed,
            product("demo-softshelljacket-l")?,
            40 * 60_000,
        ),
        (
            EventKind::ProductViewed,
            product("demo-rainshell-l")?,
            30 * 60_000,
        ),
        (
            EventKind::AddedToWishlist,
            product("demo-softshelljacket-l")?,
            28 * 60_000,
        ),
        (
            EventKind::ProductViewed,
            product("demo-rainshell-l")?,
            15 * 60_000,
        ),
        (
            EventKind::AddedToCart,
            product("demo-rainshell-l")?,
            10 * 60_000,
        ),
        (
            EventKind::ProductViewed,
            product("demo-polarizedsportsunglasses")?,
            4 * 60_000,
        ),
    ];
    for (kind, target, ago) in story {
        b.events
            .push(event(n, &me, kind, target, at(now, ago), now)?);
    }
    Ok(())
}

fn build(catalog: &[Product], now: Timestamp) -> anyhow::Result<Built> {
    let mut rng = Rng::new(0x5eed_c0de);
    let mut b = Built {
        customers: Vec::new(),
        events: Vec::new(),
        orders: Vec::new(),
        returns: Vec::new(),
        tickets: Vec::new(),
    };
    let mut n = 0usize;
    showcase(catalog, now, &mut n, &mut b)?;
    let sellable: Vec<&Product> = catalog.iter().filter(|p| p.active).collect();
    for i in 2..=CUSTOMERS + 1 {
        let c = id(CustomerId::parse, &format!("demo-c{i:04}"))?;
        let first = *rng.pick(FIRST);
        let last = *rng.pick(LAST);
        let email_local = format!(
            "{}.{}{}",
            first.to_lowercase(),
            last.to_lowercase().replace('ü', "u"),
            i
        );
        b.customers.push(Customer {
            customer_id: c.clone(),
            display_name: format!("{first} {last}"),
            email: Some(
                Email::parse(&format!("{email_local}@example.com")).map_err(anyhow::Error::msg)?,
            ),
            phone: if rng.chance(60) {
                Some(
                    Phone::parse(&format!("+1555{:07}", 1_000_000 + i))
                        .map_err(anyhow::Error::msg)?,
                )
            } else {
                None
            },
            loyalty_id: if i % 3 == 0 {
                Some(id(LoyaltyId::parse, &format!("L-{:06}", 100_000 + i))?)
            } else {
                None
            },
            customer_since: Some(at(now, (30 + rng.below(5 * 365)) as i64 * DAY)),
            anonymous_ids: Vec::new(),
            consents: Vec::new(),
        });
        let actor = Actor::new(Some(c.clone()), None).map_err(anyhow::Error::msg)?;
        // Orders: most customers have a few; a share of lines come back.
        let orders = [0, 0, 1, 1, 2, 2, 3, 4, 5, 8][rng.below(10)];
        for k in 0..orders {
            let ago = (2 + rng.below(700)) as i64 * DAY;
            let mut lines = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let p = *rng.pick(&sellable);
                if !lines
                    .iter()
                    .any(|l: &OrderLine| l.product_id == p.product_id)
                {
                    lines.push(line(p, 1 + i64::from(rng.chance(15))));
                }
            }
            let status = status_by_age(&mut rng, ago);
            let order_id = format!("demo-o{i:04}-{k}");
            if status == OrderStatus::Delivered && rng.chance(14) {
                let (code, text) = *rng.pick(RETURN_REASONS);
                let returned = &lines[rng.below(lines.len())];
                b.returns.push(Return {
                    return_id: id(ReturnId::parse, &format!("demo-r{i:04}-{k}"))?,
                    order_id: id(OrderId::parse, &order_id)?,
                    customer_id: Some(c.clone()),
                    status: *rng.pick(&[
                        ReturnStatus::Requested,
                        ReturnStatus::Received,
                        ReturnStatus::Refunded,
                        ReturnStatus::Refunded,
                        ReturnStatus::Rejected,
                    ]),
                    reason_code: code.into(),
                    reason_text: text.into(),
                    requested_at: at(now, ago - 5 * DAY),
                    lines: vec![ReturnLine {
                        product_id: returned.product_id.clone(),
                        quantity: 1,
                    }],
                    refund: None,
                });
            }
            if rng.chance(6) {
                let open = rng.chance(50);
                b.tickets.push(Ticket {
                    ticket_id: id(TicketId::parse, &format!("demo-t{i:04}-{k}"))?,
                    customer_id: c.clone(),
                    subject: (*rng.pick(TICKET_SUBJECTS)).into(),
                    status: if open {
                        *rng.pick(&[TicketStatus::Open, TicketStatus::Pending])
                    } else {
                        *rng.pick(&[TicketStatus::Solved, TicketStatus::Closed])
                    },
                    priority: *rng.pick(&[
                        TicketPriority::Low,
                        TicketPriority::Normal,
                        TicketPriority::Normal,
                        TicketPriority::High,
                        TicketPriority::Urgent,
                    ]),
                    channel: (*rng.pick(&["email", "chat", "phone"])).into(),
                    order_id: Some(id(OrderId::parse, &order_id)?),
                    created_at: at(now, ago - DAY),
                    updated_at: at(now, (ago - 2 * DAY).max(HOUR)),
                });
            }
            b.orders.push(order(
                &order_id,
                &c,
                at(now, ago),
                status,
                lines,
                if rng.chance(30) { "app" } else { "web" },
            )?);
        }
        browse(&mut rng, &mut n, &actor, catalog, now, &mut b.events)?;
    }
    for v in 1..=VISITORS {
        let actor = Actor::new(
            None,
            Some(id(AnonymousId::parse, &format!("demo-anon-{v:04}"))?),
        )
        .map_err(anyhow::Error::msg)?;
        browse(&mut rng, &mut n, &actor, catalog, now, &mut b.events)?;
    }
    Ok(b)
}

/// A few sessions of browsing in the last 60 days.
fn browse(
    rng: &mut Rng,
    n: &mut usize,
    actor: &Actor,
    catalog: &[Product],
    now: Timestamp,
    out: &mut Vec<BrowsingEvent>,
) -> anyhow::Result<()> {
    for _ in 0..rng.below(4) {
        let start = (HOUR as usize + rng.below(60 * DAY as usize)) as i64;
        if rng.chance(40) {
            let q = *rng.pick(SEARCHES);
            out.push(event(
                n,
                actor,
                EventKind::Searched,
                EventTarget::Search(q.into()),
                at(now, start),
                now,
            )?);
        }
        for step in 0..1 + rng.below(6) {
            let p = rng.pick(catalog);
            let when = at(now, start - step as i64 * 90_000);
            out.push(event(
                n,
                actor,
                EventKind::ProductViewed,
                EventTarget::Product(p.product_id.clone()),
                when,
                now,
            )?);
            if rng.chance(15) {
                out.push(event(
                    n,
                    actor,
                    EventKind::AddedToCart,
                    EventTarget::Product(p.product_id.clone()),
                    at(now, start - step as i64 * 90_000 - 30_000),
                    now,
                )?);
            } else if rng.chance(5) {
                out.push(event(
                    n,
                    actor,
                    EventKind::AddedToWishlist,
                    EventTarget::Product(p.product_id.clone()),
                    at(now, start - step as i64 * 90_000 - 30_000),
                    now,
                )?);
            }
        }
    }
    Ok(())
}

/// A stylist's curations: one anchored on a shoe, one on a category, one
/// for Maya, and one that starts next month.
async fn curations(store: &Store, now: Timestamp) -> anyhow::Result<()> {
    let p = |s: &str| id(ProductId::parse, s);
    let item = |s: &str, note: &str| -> anyhow::Result<CuratedItem> {
        Ok(CuratedItem {
            product_id: p(s)?,
            note: note.into(),
        })
    };
    let looks = [
        (
            "Trail day kit",
            "Grounded for long trail runs: what our runners pack.",
            Anchor::Products(vec![p("demo-trailrunner2-9")?, p("demo-roadracer-9")?]),
            vec![
                item("demo-runningsocks3pack", "Cushioned where trail shoes rub.")?,
                item("demo-trailcap", "Light, and it dries in minutes.")?,
                item("demo-hippack", "Keys, phone and a gel, nothing bounces.")?,
                item("demo-gpsrunningwatch", "")?,
            ],
            None,
        ),
        (
            "Rain-ready layers",
            "For a customer buying a jacket: finish the outfit for wet days.",
            Anchor::Category(
                CategoryPath::parse(&["Apparel", "Jackets"], true).map_err(anyhow::Error::msg)?,
            ),
            vec![
                item("demo-woolbeanie", "Warm even when damp.")?,
                item("demo-trailpants-m", "Quick-drying; pairs with any shell.")?,
                item("demo-merinohikingsocks", "")?,
            ],
            None,
        ),
        (
            "After the rain shell",
            "Maya sent the rain shell back as too small: layers that fit her.",
            Anchor::Customers(vec![id(CustomerId::parse, "demo-c0001")?]),
            vec![
                item("demo-fleecejacket-m", "Roomy enough over a tee.")?,
                item("demo-merinocrewsweater-m", "")?,
            ],
            None,
        ),
        (
            "Winter layering",
            "Starts next month.",
            Anchor::Category(
                CategoryPath::parse(&["Apparel", "Knitwear"], true).map_err(anyhow::Error::msg)?,
            ),
            vec![item("demo-winterboot-9", "")?],
            Some(at(now, -30 * DAY)),
        ),
    ];
    for (n, (title, note, anchor, items, starts_at)) in looks.into_iter().enumerate() {
        let draft = CurationDraft {
            title: title.into(),
            stylist: "Ines Moreau".into(),
            note: note.into(),
            anchor,
            items,
            starts_at,
            ends_at: None,
        };
        let mut bytes = [0u8; 10];
        bytes[9] = n as u8 + 1;
        store
            .create_curation(
                &curation_id_from(bytes),
                Some(&format!("demo-curation-{n}")),
                &draft,
            )
            .await
            .map_err(|e| anyhow::anyhow!("demo curation {title}: {e:?}"))?;
    }
    Ok(())
}

fn count_rejected(results: &[ItemResult], what: &str) -> anyhow::Result<()> {
    if let Some(Err(v)) = results.iter().find(|r| r.is_err()) {
        anyhow::bail!("demo {what} rejected: {v}");
    }
    Ok(())
}

/// Loads the demo retailer unless it is already there.
pub async fn load(store: &Store, model: &crate::suggest::ModelConfig) -> anyhow::Result<()> {
    // The showcase email is linked by the very last write, so finding it
    // means an earlier load ran to completion.
    let showcase = CustomerKey::Identity(
        Identity::parse(IdentityKind::Email, SHOWCASE_EMAIL).map_err(anyhow::Error::msg)?,
    );
    if store.resolve(&showcase).await?.is_some() {
        tracing::info!("demo data already loaded");
        return Ok(());
    }
    let started = std::time::Instant::now();
    let now = Timestamp::now();
    let mut rng = Rng::new(0xca7a_1065);
    let catalog = catalog(&mut rng)?;
    let built = build(&catalog, now)?;
    for chunk in catalog.chunks(1000) {
        store.upsert_products(chunk).await?;
    }
    curations(store, now).await?;
    // Customers last: the showcase customer marks the load as complete.
    let (showcase_customer, others) = built.customers.split_at(1);
    for chunk in others.chunks(1000) {
        count_rejected(&store.upsert_customers(chunk).await?, "customer")?;
    }
    for chunk in built.orders.chunks(1000) {
        count_rejected(&store.record_orders(chunk).await?, "order")?;
    }
    for chunk in built.returns.chunks(1000) {
        count_rejected(&store.record_returns(chunk).await?, "return")?;
    }
    for chunk in built.tickets.chunks(1000) {
        store.upsert_tickets(chunk).await?;
    }
    for chunk in built.events.chunks(1000) {
        store.record_events(chunk).await?;
    }
    // Co-views, category transitions and "also bought" come from a build.
    crate::suggest::live::build_and_save(store, model)
        .await
        .map_err(|e| anyhow::anyhow!("building the suggestion model: {e:?}"))?;
    count_rejected(
        &store.upsert_customers(showcase_customer).await?,
        "customer",
    )?;
    tracing::info!(
        products = catalog.len(),
        customers = built.customers.len(),
        orders = built.orders.len(),
        returns = built.returns.len(),
        tickets = built.tickets.len(),
        events = built.events.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "demo data loaded"
    );
    Ok(())
}
