//! Support tickets.

use sqlx::Row;
use tracing::instrument;

use super::{
    Store,
    batch::{BatchWrite, Names, Writing},
    customers::touch_customer,
};
use crate::domain::{Change, ChangeKind, Error, Ticket, WriteOutcome, fingerprint};

impl Store {
    /// Creates or updates tickets in one transaction. An update older than
    /// the stored one (a late delivery) is acknowledged as a duplicate and
    /// ignored, so a ticket never rolls back.
    #[instrument(skip_all, fields(count = tickets.len()))]
    pub async fn upsert_tickets(&self, tickets: &[Ticket]) -> Result<Vec<WriteOutcome>, Error> {
        self.write_batch(&Tickets, tickets).await
    }
}

/// Tickets, written in a batch.
struct Tickets;

impl BatchWrite for Tickets {
    type Item = Ticket;
    type Answer = WriteOutcome;
    const NAMES: Names = Names::People;

    fn key(t: &Ticket) -> impl Ord + '_ {
        (t.customer_id.as_str(), t.ticket_id.as_str())
    }

    fn names(t: &Ticket) -> Vec<String> {
        super::trust::suppression_keys(Some(&t.customer_id), &[])
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        tickets: Vec<&Ticket>,
    ) -> Result<Vec<WriteOutcome>, Error> {
        let mut outcomes = Vec::with_capacity(tickets.len());
        for t in tickets {
            if w.suppressed(&Self::names(t)).await? {
                outcomes.push(WriteOutcome::Suppressed);
                continue;
            }
            let hash = fingerprint(t);
            let stored =
                sqlx::query("SELECT content_hash, updated_at FROM tickets WHERE ticket_id = $1")
                    .bind(t.ticket_id.as_str())
                    .fetch_optional(&mut *w.tx)
                    .await?;
            let existed = match stored {
                Some(row) => {
                    let stored_hash: i64 = row.try_get(0)?;
                    let stored_updated: i64 = row.try_get(1)?;
                    if stored_hash == hash || stored_updated > t.updated_at.millis() {
                        outcomes.push(WriteOutcome::Duplicate);
                        continue;
                    }
                    true
                }
                None => false,
            };
            touch_customer(w.tx, &t.customer_id, t.created_at, t.updated_at).await?;
            sqlx::query(
                "INSERT INTO tickets (ticket_id, customer_id, subject, status, priority, channel, order_id, \
                 created_at, updated_at, content_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (ticket_id) DO UPDATE SET customer_id = excluded.customer_id, \
                 subject = excluded.subject, status = excluded.status, priority = excluded.priority, \
                 channel = excluded.channel, order_id = excluded.order_id, created_at = excluded.created_at, \
                 updated_at = excluded.updated_at, content_hash = excluded.content_hash",
            )
            .bind(t.ticket_id.as_str())
            .bind(t.customer_id.as_str())
            .bind(&t.subject)
            .bind(t.status.as_str())
            .bind(t.priority.as_str())
            .bind(&t.channel)
            .bind(t.order_id.as_ref().map(|o| o.as_str()))
            .bind(t.created_at.millis())
            .bind(t.updated_at.millis())
            .bind(hash)
            .execute(&mut *w.tx)
            .await?;
            w.changes
                .push(Change::customer(ChangeKind::Ticket, t.customer_id.as_str()));
            outcomes.push(if existed {
                WriteOutcome::Updated
            } else {
                WriteOutcome::Created
            });
        }
        Ok(outcomes)
    }
}
