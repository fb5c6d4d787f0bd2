//! A customer's privacy requests: consent on file, erasure, the export of
//! everything stored about them, and the pages of the access log that say
//! who read them. Over the store; knows nothing of gRPC. The export is a
//! read of the customer, so the desk puts it on record
//! ([`crate::desk::Desk::export`]); the rest read no customer data beyond
//! what the request names.

use crate::{
    domain::{AnonymousId, ConsentRecord, CustomerId, CustomerKey, Error, IdentityKind},
    store::{AccessEntry, ErasureReceipt, Store, Subject},
};

/// Where the next page of an access log starts: the last entry shown
/// (when, and its id), newest first.
pub type AccessCursor = (i64, String);

/// One page of a customer's access log, newest first.
#[derive(Debug, Clone)]
pub struct AccessPage {
    /// The entries of this page.
    pub entries: Vec<AccessEntry>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<AccessCursor>,
}

/// Everything stored about one customer, table by table (each row as JSON).
pub type Export = Vec<(String, Vec<serde_json::Value>)>;

/// The privacy requests over one store.
#[derive(Clone, Debug)]
pub struct PrivacyService {
    store: Store,
}

fn unknown() -> Error {
    Error::NotFound("no customer is known under this identity".into())
}

impl PrivacyService {
    /// The service over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The customer `key` names; `NotFound` for an anonymous visitor or
    /// no one.
    pub async fn customer(&self, key: &CustomerKey) -> Result<CustomerId, Error> {
        match self.store.resolve(key).await? {
            Some(Subject::Customer(c)) => Ok(c),
            Some(Subject::Anonymous(_)) | None => Err(unknown()),
        }
    }

    /// Stores `consents` for `customer` and returns every consent on file;
    /// `None` when the customer is erased (suppressed) and nothing was
    /// stored.
    pub async fn set_consents(
        &self,
        customer: &CustomerId,
        consents: &[ConsentRecord],
    ) -> Result<Option<Vec<ConsentRecord>>, Error> {
        if !self.store.set_consents(customer, consents).await? {
            return Ok(None);
        }
        Ok(Some(self.store.consents(customer).await?))
    }

    /// Erases `customer` and every identity linked to them (which stay
    /// suppressed so a late delivery cannot bring them back).
    pub async fn erase(&self, customer: &CustomerId) -> Result<ErasureReceipt, Error> {
        self.store.erase_customer(customer).await
    }

    /// Everything stored about `customer`. Not on record by itself: call
    /// it through the desk.
    pub async fn export(&self, customer: &CustomerId) -> Result<Export, Error> {
        self.store.export_customer(customer).await
    }

    /// The page of at most `size` entries of who read the customer or
    /// anonymous visitor `key` names, starting after `after`. An erased or
    /// never-seen visitor may still have entries under their anonymous id.
    pub async fn access_log(
        &self,
        key: &CustomerKey,
        after: Option<AccessCursor>,
        size: u32,
    ) -> Result<AccessPage, Error> {
        let (customer, anonymous) = match self.store.resolve(key).await? {
            Some(Subject::Customer(c)) => (Some(c), None),
            Some(Subject::Anonymous(a)) => (None, Some(a)),
            None => match key {
                CustomerKey::Identity(i) if i.kind() == IdentityKind::AnonymousId => (
                    None,
                    Some(AnonymousId::parse(i.value()).map_err(|_| unknown())?),
                ),
                _ => return Err(unknown()),
            },
        };
        let size = size as usize;
        let mut entries = self
            .store
            .list_access(
                customer.as_ref().map(CustomerId::as_str),
                anonymous.as_ref().map(AnonymousId::as_str),
                after,
                size as i64 + 1,
            )
            .await?;
        let next = if entries.len() > size {
            entries.truncate(size);
            entries.last().map(|e| (e.at.millis(), e.entry_id.clone()))
        } else {
            None
        };
        Ok(AccessPage { entries, next })
    }
}
