//! `PrivacyService`: consent, erasure, export, access log, as conversions
//! over the core (`crate::privacy`, the export through the desk so it is
//! on record).

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{caller_of, convert, invalid_argument};
use crate::{
    desk::Desk,
    domain::{CustomerId, Timestamp, Violations},
    proto as pb,
};

const PAGE_DEFAULT: u32 = 50;
const PAGE_MAX: u32 = 500;
const EXPORT_CHUNK_ROWS: usize = 500;

/// The adapter.
#[derive(Clone, Debug)]
pub struct PrivacyApi {
    desk: Desk,
}

impl PrivacyApi {
    /// An adapter over the desk (the export is a read on record).
    pub fn new(desk: Desk) -> Self {
        Self { desk }
    }
}

fn encode_page_token(at: i64, entry_id: &str) -> String {
    format!("{at}.{entry_id}")
}

fn parse_page_token(token: &str) -> Result<Option<(i64, String)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        invalid_argument(&Violations::single(
            "page_token",
            "is not a token returned by this method",
        ))
    };
    let (at, id) = token.split_once('.').ok_or_else(bad)?;
    let at: i64 = at.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(Some((at, id.to_owned())))
}

#[tonic::async_trait]
impl pb::privacy_service_server::PrivacyService for PrivacyApi {
    #[tracing::instrument(skip_all, name = "SetConsent")]
    async fn set_consent(
        &self,
        request: Request<pb::SetConsentRequest>,
    ) -> Result<Response<pb::SetConsentResponse>, Status> {
        let pb::SetConsentRequest {
            customer_id,
            consents,
        } = request.into_inner();
        let mut v = Violations::new();
        let customer = v.check("customer_id", CustomerId::parse(&customer_id));
        if consents.is_empty() {
            v.add("consents", "needs at least one consent");
        }
        let consents = convert::consent_list(&mut v, "consents", consents, "api", Timestamp::now());
        if !v.is_empty() {
            return Err(invalid_argument(&v));
        }
        let customer = customer
            .ok_or_else(|| invalid_argument(&Violations::single("customer_id", "is required")))?;
        let on_file = self
            .desk
            .privacy()
            .set_consents(&customer, &consents)
            .await?;
        let suppressed = on_file.is_none();
        Ok(Response::new(pb::SetConsentResponse {
            consents: on_file
                .unwrap_or_default()
                .into_iter()
                .map(convert::consent)
                .collect(),
            suppressed,
        }))
    }

    #[tracing::instrument(skip_all, name = "EraseCustomer")]
    async fn erase_customer(
        &self,
        request: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        let caller = caller_of(&request)?;
        let pb::EraseCustomerRequest { customer } = request.into_inner();
        let key = convert::customer_key("customer", customer).map_err(|v| invalid_argument(&v))?;
        let privacy = self.desk.privacy();
        let customer = privacy.customer(&key).await?;
        let receipt = privacy.erase(&customer).await?;
        let (seconds, nanos) = crate::domain::Timestamp::now().to_parts();
        tracing::info!(key_id = %caller.key_id, tables = receipt.deleted.len(), "customer erased");
        Ok(Response::new(pb::EraseCustomerResponse {
            customer_id: customer.as_str().to_owned(),
            erased_at: Some(prost_types::Timestamp { seconds, nanos }),
            deleted: receipt
                .deleted
                .into_iter()
                .map(|(table, rows)| pb::TableCount { table, rows })
                .collect(),
            suppressed_identities: receipt.suppressed_identities,
            storage: receipt.storage,
        }))
    }

    type ExportCustomerDataStream =
        Pin<Box<dyn Stream<Item = Result<pb::ExportChunk, Status>> + Send>>;

    #[tracing::instrument(skip_all, name = "ExportCustomerData")]
    async fn export_customer_data(
        &self,
        request: Request<pb::ExportCustomerDataRequest>,
    ) -> Result<Response<Self::ExportCustomerDataStream>, Status> {
        let caller = caller_of(&request)?;
        let pb::ExportCustomerDataRequest { customer } = request.into_inner();
        let key = convert::customer_key("customer", customer).map_err(|v| invalid_argument(&v))?;
        let tables = self.desk.export(&caller, &key).await?;
        let mut chunks = Vec::new();
        for (table, rows) in tables {
            let rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
            if rows.is_empty() {
                chunks.push(Ok(pb::ExportChunk {
                    table,
                    rows_json: Vec::new(),
                }));
                continue;
            }
            for part in rows.chunks(EXPORT_CHUNK_ROWS) {
                chunks.push(Ok(pb::ExportChunk {
                    table: table.clone(),
                    rows_json: part.to_vec(),
                }));
            }
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    #[tracing::instrument(skip_all, name = "ListAccessLog")]
    async fn list_access_log(
        &self,
        request: Request<pb::ListAccessLogRequest>,
    ) -> Result<Response<pb::ListAccessLogResponse>, Status> {
        let pb::ListAccessLogRequest {
            customer,
            page_size,
            page_token,
        } = request.into_inner();
        if page_size > PAGE_MAX {
            return Err(invalid_argument(&Violations::single(
                "page_size",
                format!("is {page_size}; at most {PAGE_MAX}"),
            )));
        }
        let size = if page_size == 0 {
            PAGE_DEFAULT
        } else {
            page_size
        };
        let before = parse_page_token(&page_token)?;
        let key = convert::customer_key("customer", customer).map_err(|v| invalid_argument(&v))?;
        let page = self.desk.privacy().access_log(&key, before, size).await?;
        let next_page_token = page
            .next
            .map(|(at, id)| encode_page_token(at, &id))
            .unwrap_or_default();
        let entries = page
            .entries
            .into_iter()
            .map(|e| {
                let (seconds, nanos) = e.at.to_parts();
                pb::AccessLogEntry {
                    at: Some(prost_types::Timestamp { seconds, nanos }),
                    key_id: e.key_id,
                    key_name: e.key_name,
                    role: e.role,
                    rpc: e.rpc,
                    customer_id: e.customer_id.unwrap_or_default(),
                    anonymous_id: e.anonymous_id.unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(pb::ListAccessLogResponse {
            entries,
            next_page_token,
        }))
    }
}
