//! The generated catalogue (styles with power-law popularity, sized in
//! apparel and footwear) and the browsing sessions drawn from it.

use super::{History, MINUTE, id};
use crate::{domain::*, rng::Rng};

/// (department, categories, nouns, share of products in %, base price in
/// cents, sizes; empty for one size)
type Department = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    usize,
    i64,
    &'static [&'static str],
);

const DEPARTMENTS: [Department; 5] = [
    (
        "Apparel",
        &["Jackets", "Tops", "Knitwear", "Trousers"],
        &["Shell", "Tee", "Sweater", "Chinos", "Hoodie", "Parka"],
        35,
        6900,
        &["XS", "S", "M", "L", "XL", "XXL"],
    ),
    (
        "Footwear",
        &["Running", "Hiking", "Casual"],
        &["Runner", "Boot", "Sneaker", "Trail Shoe"],
        20,
        11900,
        &["6", "7", "8", "9", "10", "11", "12"],
    ),
    (
        "Accessories",
        &["Bags", "Socks", "Hats"],
        &["Daypack", "Socks", "Cap", "Belt Bag"],
        15,
        2900,
        &[],
    ),
    (
        "Home",
        &["Kitchen", "Decor", "Bedding"],
        &["Mug", "Lamp", "Throw", "Kettle"],
        15,
        3900,
        &[],
    ),
    (
        "Electronics",
        &["Audio", "Wearables", "Chargers"],
        &["Earbuds", "Watch", "Power Bank", "Speaker"],
        15,
        8900,
        &[],
    ),
];
const BRANDS: &[&str] = &[
    "Northpeak",
    "Kestrel",
    "Alder",
    "Brightline",
    "Solace",
    "Tern",
];
const ADJECTIVES: &[&str] = &[
    "Classic", "Trail", "Urban", "Light", "Merino", "Pro", "Everyday",
];
/// The department a basket's complement comes from.
const COMPLEMENT: [usize; 5] = [2, 2, 0, 3, 4];

/// One department's styles: the first variant of each and how many.
struct Styles {
    first: Vec<usize>,
    variants: usize,
    /// Cumulative popularity (1 / rank), for sampling.
    cumulative: Vec<f64>,
}

/// The products and what sampling them needs.
pub struct Catalog {
    /// Every product, id `gen-p<index>`.
    pub products: Vec<Product>,
    departments: Vec<Styles>,
}

impl Catalog {
    /// Departments (always five).
    pub fn departments(&self) -> usize {
        self.departments.len()
    }

    fn product(&self, p: &ProductId) -> Option<&Product> {
        let n: usize = p.as_str().strip_prefix("gen-p")?.parse().ok()?;
        self.products.get(n)
    }

    /// Whether a product comes in sizes.
    pub fn is_sized(&self, p: &ProductId) -> bool {
        self.product(p).is_some_and(|p| p.size.0.is_some())
    }

    /// A style of `department` by popularity, then one of its variants.
    fn draw(&self, rng: &mut Rng, department: usize) -> &Product {
        let d = &self.departments[department];
        let total = d.cumulative.last().copied().unwrap_or(1.0);
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let style = d
            .cumulative
            .partition_point(|c| *c < u)
            .min(d.first.len() - 1);
        &self.products[d.first[style] + rng.below(d.variants)]
    }
}

/// The catalogue of `products` products (rounded to whole styles).
pub fn catalog(seed: u64, products: usize) -> Catalog {
    let mut rng = Rng::new(seed ^ 0xca7a_1065);
    let usd = Currency::parse("USD").expect("USD");
    let mut out = Catalog {
        products: Vec::with_capacity(products),
        departments: Vec::new(),
    };
    for (dept, categories, nouns, share, base, sizes) in DEPARTMENTS {
        let variants = sizes.len().max(1);
        let styles = (products * share / 100 / variants).max(1);
        let mut d = Styles {
            first: Vec::with_capacity(styles),
            variants,
            cumulative: Vec::with_capacity(styles),
        };
        let mut sum = 0.0;
        for s in 0..styles {
            sum += 1.0 / (s + 1) as f64;
            d.cumulative.push(sum);
            d.first.push(out.products.len());
            let category = categories[s % categories.len()];
            let brand = BRANDS[rng.below(BRANDS.len())];
            let style = format!(
                "{brand} {} {} {s}",
                ADJECTIVES[rng.below(ADJECTIVES.len())],
                nouns[rng.below(nouns.len())]
            );
            let price = (base + (rng.below(9) as i64 - 4) * base / 10) / 100 * 100 - 1;
            let group = format!("gen-s{}-{s}", dept.to_lowercase());
            for v in 0..variants {
                let size = sizes.get(v).copied().unwrap_or("");
                let n = out.products.len();
                let name = if size.is_empty() {
                    style.clone()
                } else {
                    format!("{style} ({size})")
                };
                out.products.push(Product {
                    product_id: id(ProductId::parse, &format!("gen-p{n}")),
                    name,
                    brand: brand.into(),
                    category: CategoryPath::parse(&[dept, category], true).expect("a category"),
                    price: Money::non_negative(usd, price).expect("a price"),
                    stock: Stock::Quantity(if rng.chance(10) {
                        0
                    } else {
                        1 + rng.below(200) as i64
                    }),
                    group_id: id(GroupId::parse, &group),
                    active: true,
                    url: format!("https://shop.example.com/p/gen-p{n}"),
                    image_url: String::new(),
                    replenish_after_days: (category == "Socks").then_some(90),
                    merchandise: Default::default(),
                    size: ProductSize(Size::parse_optional(size, None).expect("a size")),
                });
            }
        }
        out.departments.push(d);
    }
    out
}

fn event(
    h: &mut History,
    index: usize,
    actor: &Actor,
    kind: EventKind,
    target: EventTarget,
    at: i64,
    now: Timestamp,
) {
    let n = h.events.len();
    let when = Timestamp::from_millis(at.min(now.millis())).unwrap_or(now);
    let message = id(MessageId::parse, &format!("gen-e{index}-{n}"));
    let e = BrowsingEvent::new(
        message,
        actor.clone(),
        kind,
        target,
        "web".into(),
        when,
        now,
    )
    .unwrap_or_else(|(f, e)| panic!("generated event: {f} {e}"));
    h.events.push(e);
}

fn line(p: &Product) -> OrderLine {
    OrderLine {
        product_id: p.product_id.clone(),
        quantity: 1,
        unit_price_minor: p.price.minor,
        name: p.name.clone(),
        brand: p.brand.clone(),
        category: p.category.clone(),
    }
}

/// One browsing session of customer `index`: views by popularity (mostly
/// in their favourite department), some cart adds, sometimes a search, and
/// for a signed-in customer with a cart, sometimes an order with a
/// complement from the matching department, then its returns and tickets.
#[allow(clippy::too_many_arguments)]
pub fn session(
    rng: &mut Rng,
    catalog: &Catalog,
    h: &mut History,
    customer: &CustomerId,
    actor: &Actor,
    favourite: usize,
    index: usize,
    number: usize,
    start: i64,
    now: Timestamp,
    target: usize,
) {
    let dept = if rng.chance(70) {
        favourite
    } else {
        rng.below(catalog.departments())
    };
    let mut at = start;
    let mut cart: Vec<&Product> = Vec::new();
    if rng.chance(10) {
        let term = DEPARTMENTS[dept].2[rng.below(DEPARTMENTS[dept].2.len())].to_lowercase();
        event(
            h,
            index,
            actor,
            EventKind::Searched,
            EventTarget::Search(term),
            at,
            now,
        );
    }
    for _ in 0..1 + rng.below(5) {
        if h.events.len() >= target {
            break;
        }
        at += (1 + rng.below(4) as i64) * MINUTE;
        let p = catalog.draw(rng, dept);
        event(
            h,
            index,
            actor,
            EventKind::ProductViewed,
            EventTarget::Product(p.product_id.clone()),
            at,
            now,
        );
        if rng.chance(25)
            && h.events.len() < target
            && !cart.iter().any(|c| c.product_id == p.product_id)
        {
            event(
                h,
                index,
                actor,
                EventKind::AddedToCart,
                EventTarget::Product(p.product_id.clone()),
                at + 30_000,
                now,
            );
            cart.push(p);
        }
    }
    if cart.is_empty() || actor.customer_id().is_none() || !rng.chance(45) {
        return;
    }
    let mut lines: Vec<OrderLine> = cart.iter().map(|p| line(p)).collect();
    if rng.chance(30) {
        let extra = catalog.draw(rng, COMPLEMENT[dept]);
        if !lines.iter().any(|l| l.product_id == extra.product_id) {
            lines.push(line(extra));
        }
    }
    let placed = Timestamp::from_millis((at + 2 * MINUTE).min(now.millis())).unwrap_or(now);
    let age = now.millis() - placed.millis();
    let status = crate::demo::status_by_age(rng, age);
    let order = Order {
        order_id: id(OrderId::parse, &format!("gen-o{index}-{number}")),
        actor: Actor::new(Some(customer.clone()), None).expect("an actor"),
        status,
        placed_at: placed,
        currency: Currency::parse("USD").expect("USD"),
        total_minor: lines.iter().map(|l| l.unit_price_minor).sum(),
        channel: "web".into(),
        lines,
    };
    if status == OrderStatus::Delivered {
        super::aftermath(rng, h, &order, catalog, now);
    }
    h.orders.push(order);
}
