//! Catalog writes.

use sqlx::Row;
use tracing::instrument;

use super::{
    Store,
    batch::{BatchWrite, Names, Writing},
    flag,
};
use crate::domain::{Change, Error, Product, Timestamp, WriteOutcome, fingerprint};

impl Store {
    /// Creates or replaces products, in one transaction.
    #[instrument(skip_all, fields(count = products.len()))]
    pub async fn upsert_products(&self, products: &[Product]) -> Result<Vec<WriteOutcome>, Error> {
        self.write_batch(&Products, products).await
    }
}

/// Products, written in a batch.
struct Products;

impl BatchWrite for Products {
    type Item = Product;
    type Answer = WriteOutcome;
    const NAMES: Names = Names::NoOne;

    fn key(p: &Product) -> impl Ord + '_ {
        p.product_id.as_str()
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        products: Vec<&Product>,
    ) -> Result<Vec<WriteOutcome>, Error> {
        let now = Timestamp::now().millis();
        let mut outcomes = Vec::with_capacity(products.len());
        for p in products {
            let hash = fingerprint(p);
            let stored = sqlx::query("SELECT content_hash FROM products WHERE product_id = $1")
                .bind(p.product_id.as_str())
                .fetch_optional(&mut *w.tx)
                .await?;
            let stored_hash = match stored {
                Some(row) => Some(row.try_get::<i64, _>(0)?),
                None => None,
            };
            if stored_hash == Some(hash) {
                outcomes.push(WriteOutcome::Duplicate);
                continue;
            }
            sqlx::query(
                "INSERT INTO products (product_id, name, brand, category_path, top_category, price_minor, \
                 currency, stock_quantity, in_stock, group_id, active, url, image_url, content_hash, updated_at, replenish_days, \
                 merchandise, size_label, size_system) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
                 ON CONFLICT (product_id) DO UPDATE SET name = excluded.name, brand = excluded.brand, \
                 category_path = excluded.category_path, top_category = excluded.top_category, \
                 price_minor = excluded.price_minor, currency = excluded.currency, \
                 stock_quantity = excluded.stock_quantity, in_stock = excluded.in_stock, \
                 group_id = excluded.group_id, active = excluded.active, url = excluded.url, \
                 image_url = excluded.image_url, content_hash = excluded.content_hash, \
                 updated_at = excluded.updated_at, replenish_days = excluded.replenish_days, \
                 merchandise = excluded.merchandise, size_label = excluded.size_label, \
                 size_system = excluded.size_system",
            )
            .bind(p.product_id.as_str())
            .bind(&p.name)
            .bind(&p.brand)
            .bind(p.category.to_stored())
            .bind(p.category.top())
            .bind(p.price.minor)
            .bind(p.price.currency.as_str())
            .bind(p.stock.quantity())
            .bind(flag(p.stock.in_stock()))
            .bind(p.group_id.as_str())
            .bind(flag(p.active))
            .bind(&p.url)
            .bind(&p.image_url)
            .bind(hash)
            .bind(now)
            .bind(p.replenish_after_days.map(i64::from))
            .bind(p.merchandise.0.map(flag))
            .bind(p.size.0.as_ref().map(|s| s.label().to_owned()))
            .bind(p.size.0.as_ref().map(|s| s.system().as_str()))
            .execute(&mut *w.tx)
            .await?;
            w.changes.push(Change::product(p.product_id.as_str()));
            outcomes.push(if stored_hash.is_some() {
                WriteOutcome::Updated
            } else {
                WriteOutcome::Created
            });
        }
        Ok(outcomes)
    }
}
