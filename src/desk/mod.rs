//! The desk: what every face (gRPC, the JSON endpoint, MCP, the pages)
//! calls to read a customer. Each read is shaped for the caller's role
//! (contact details masked where the role may not see them) and put on
//! record in the access log before it is answered, so no face can forget
//! either. Knows nothing of gRPC or HTTP.

pub mod watch;

use crate::{
    audit::AccessLog,
    context::{ContextQuery, ContextService, CustomerContext, policy},
    curate::CurateService,
    domain::{Caller, CustomerId, CustomerKey, Error},
    privacy::{Export, PrivacyService},
    search::{SearchOutcome, SearchQuery, SearchService},
    suggest::{SuggestOutcome, SuggestQuery, SuggestService, preview::CurationPreview},
};

/// The operations that read a customer's data, by the names the access
/// log records (the RPC's full name, whichever face was used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// The agent's view of a customer.
    GetCustomerContext,
    /// A context pushed on a watch.
    WatchCustomerContext,
    /// Suggestions computed from the customer's history.
    SuggestCrossSells,
    /// A search personalised by the customer's history.
    SearchProducts,
    /// Curated items for the customer.
    GetCuratedCrossSells,
    /// A stylist's preview of a curation for a customer.
    PreviewCuration,
    /// Everything stored about a customer, for the customer's own request.
    ExportCustomerData,
}

impl Operation {
    /// The name the access log records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetCustomerContext => {
                "/customer_context.v1.CustomerContextService/GetCustomerContext"
            }
            Self::WatchCustomerContext => {
                "/customer_context.v1.CustomerContextService/WatchCustomerContext"
            }
            Self::SuggestCrossSells => {
                "/customer_context.v1.CustomerContextService/SuggestCrossSells"
            }
            Self::SearchProducts => "/customer_context.v1.CustomerContextService/SearchProducts",
            Self::GetCuratedCrossSells => {
                "/customer_context.v1.StylistService/GetCuratedCrossSells"
            }
            Self::PreviewCuration => "/customer_context.v1.StylistService/PreviewCuration",
            Self::ExportCustomerData => "/customer_context.v1.PrivacyService/ExportCustomerData",
        }
    }
}

/// The core services behind every face, with the access log.
#[derive(Clone, Debug)]
pub struct Desk {
    context: ContextService,
    suggest: SuggestService,
    search: SearchService,
    curate: CurateService,
    privacy: PrivacyService,
    audit: AccessLog,
}

impl Desk {
    /// A desk over the core services, recording reads in `audit`.
    pub fn new(
        context: ContextService,
        suggest: SuggestService,
        search: SearchService,
        curate: CurateService,
        privacy: PrivacyService,
        audit: AccessLog,
    ) -> Self {
        Self {
            context,
            suggest,
            search,
            curate,
            privacy,
            audit,
        }
    }

    /// Suggestions' writes and reports (feedback, stats, experiments):
    /// nothing personal is read.
    pub fn suggest(&self) -> &SuggestService {
        &self.suggest
    }

    /// Curations' writes and lists: nothing personal is read.
    pub fn curate(&self) -> &CurateService {
        &self.curate
    }

    /// Consent, erasure and the access log's pages: they read no customer
    /// data beyond what the request names (the export, which does, is
    /// [`Desk::export`]).
    pub fn privacy(&self) -> &PrivacyService {
        &self.privacy
    }

    /// Everything stored about the customer `key` names, on record.
    pub async fn export(&self, caller: &Caller, key: &CustomerKey) -> Result<Export, Error> {
        let customer = self.privacy.customer(key).await?;
        let tables = self.privacy.export(&customer).await?;
        self.record(caller, Operation::ExportCustomerData, Some(&customer), None)
            .await?;
        Ok(tables)
    }

    /// Whether `caller`'s key is still valid (a development caller always
    /// is).
    pub async fn key_is_valid(&self, caller: &Caller) -> Result<bool, Error> {
        if *caller == Caller::development() {
            return Ok(true);
        }
        self.context.key_is_valid(&caller.key_id).await
    }

    /// The context for `query` as `caller` may see it, on record.
    pub async fn context(
        &self,
        caller: &Caller,
        query: &ContextQuery,
    ) -> Result<CustomerContext, Error> {
        // A customer nobody read here lately takes milliseconds to read.
        // While the replica has cores to spare, their entry is committed
        // meanwhile, and the answer still waits for it. Under load it is
        // handed over after the read, to be committed with the entries of
        // the reads ending then: fewer commits serve more reads. (Should
        // the read fail, the attempt stays on record; the writer keeps no
        // entry naming a customer not stored.)
        if let Some(customer) = self.context.first_read(&query.key) {
            let operation = Operation::GetCustomerContext.as_str();
            let committing = self
                .audit
                .submit(caller, operation, Some(customer.as_str()), None)
                .await?;
            let context = self.unrecorded_context(caller, query).await?;
            committing.committed().await?;
            return Ok(context);
        }
        let context = self.unrecorded_context(caller, query).await?;
        self.record_context(caller, Operation::GetCustomerContext, &context)
            .await?;
        Ok(context)
    }

    /// The context as `caller` may see it, not yet on record: for a watch,
    /// which records only the contexts it sends ([`Desk::record_context`]).
    pub async fn unrecorded_context(
        &self,
        caller: &Caller,
        query: &ContextQuery,
    ) -> Result<CustomerContext, Error> {
        let context = self.context.get(query).await?;
        Ok(policy::for_audience(
            context,
            caller.role.sees_contact_details(),
        ))
    }

    /// Records that `caller` was shown `context` through `operation`.
    pub async fn record_context(
        &self,
        caller: &Caller,
        operation: Operation,
        context: &CustomerContext,
    ) -> Result<(), Error> {
        let customer = context.customer_id.as_ref();
        let anonymous = context.anonymous_id.as_ref().map(|a| a.as_str());
        let anonymous = anonymous.filter(|_| customer.is_none());
        self.record(caller, operation, customer, anonymous).await
    }

    /// SuggestCrossSells; on record when it read a customer's history.
    pub async fn suggestions(
        &self,
        caller: &Caller,
        query: &SuggestQuery,
    ) -> Result<SuggestOutcome, Error> {
        let out = self.suggest.suggest(query).await?;
        let (customer, anonymous) = (out.customer_id.as_ref(), out.anonymous_id.as_deref());
        self.record(caller, Operation::SuggestCrossSells, customer, anonymous)
            .await?;
        Ok(out)
    }

    /// GetCuratedCrossSells; on record when it read a customer.
    pub async fn curated(
        &self,
        caller: &Caller,
        query: &SuggestQuery,
    ) -> Result<SuggestOutcome, Error> {
        let out = self.curate.curated(query).await?;
        let (customer, anonymous) = (out.customer_id.as_ref(), out.anonymous_id.as_deref());
        self.record(caller, Operation::GetCuratedCrossSells, customer, anonymous)
            .await?;
        Ok(out)
    }

    /// SearchProducts; on record when personalised by a customer's data.
    pub async fn search(
        &self,
        caller: &Caller,
        query: &SearchQuery,
    ) -> Result<SearchOutcome, Error> {
        let out = self.search.search(query).await?;
        if out.personalised {
            let (customer, anonymous) = (out.customer_id.as_ref(), out.anonymous_id.as_deref());
            self.record(caller, Operation::SearchProducts, customer, anonymous)
                .await?;
        }
        Ok(out)
    }

    /// PreviewCuration for the customer `key` names, on record.
    pub async fn preview(
        &self,
        caller: &Caller,
        curation_id: &str,
        key: &CustomerKey,
    ) -> Result<CurationPreview, Error> {
        let out = self.curate.preview(curation_id, key).await?;
        // Without a customer, the key is the anonymous visitor's id.
        let anonymous = match key {
            CustomerKey::Identity(i) if out.customer_id.is_none() => Some(i.value()),
            _ => None,
        };
        self.record(
            caller,
            Operation::PreviewCuration,
            out.customer_id.as_ref(),
            anonymous,
        )
        .await?;
        Ok(out)
    }

    /// Puts `caller`'s read of a customer or an anonymous visitor on
    /// record (committed before this returns); a read of neither read
    /// anyone's data and is not recorded.
    async fn record(
        &self,
        caller: &Caller,
        operation: Operation,
        customer: Option<&CustomerId>,
        anonymous: Option<&str>,
    ) -> Result<(), Error> {
        let customer = customer.map(CustomerId::as_str);
        if customer.is_none() && anonymous.is_none() {
            return Ok(());
        }
        self.audit
            .record(caller, operation.as_str(), customer, anonymous)
            .await
    }
}
