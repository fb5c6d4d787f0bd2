//! Roles, what each may do, and which permission each RPC needs.

use std::fmt;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read a customer's context.
    ReadContext,
    /// Read suggestions (the suggestions API).
    ReadSuggestions,
    /// Send feedback on suggestions.
    SendFeedback,
    /// Curate cross-sell lists.
    Curate,
    /// Write the retailer's data.
    Ingest,
    /// Consent, erasure, export, access log.
    Privacy,
    /// Configure A/B experiments.
    ManageExperiments,
}

/// A key's role. Roles are fixed sets of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Support agents' chat tools: context, suggestions, feedback.
    Agent,
    /// CRM plugins: suggestions and feedback only.
    Crm,
    /// Stylists: agent rights plus curations.
    Stylist,
    /// The shop's systems: write data, read nothing.
    Ingest,
    /// The privacy team: consent, erasure, export, access log.
    Privacy,
    /// Everything (the bootstrap key).
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Agent,
        Role::Crm,
        Role::Stylist,
        Role::Ingest,
        Role::Privacy,
        Role::Admin,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Crm => "crm",
            Role::Stylist => "stylist",
            Role::Ingest => "ingest",
            Role::Privacy => "privacy",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a role; use one of agent, crm, stylist, ingest, privacy, admin"
                )
            })
    }

    /// Whether the role grants `p`.
    pub fn allows(self, p: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            Role::Agent => matches!(p, P::ReadContext | P::ReadSuggestions | P::SendFeedback),
            Role::Crm => matches!(p, P::ReadSuggestions | P::SendFeedback),
            Role::Stylist => matches!(
                p,
                P::ReadContext | P::ReadSuggestions | P::SendFeedback | P::Curate
            ),
            Role::Ingest => matches!(p, P::Ingest),
            // Reading the context lets the privacy team verify a data subject;
            // they are the one role that sees contact details whole.
            Role::Privacy => matches!(p, P::Privacy | P::ReadContext),
        }
    }

    /// Whether the role sees emails and phone numbers whole (others see
    /// them masked).
    pub fn sees_contact_details(self) -> bool {
        matches!(self, Role::Privacy | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a gRPC method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open to anyone (health, reflection).
    Open,
    /// Needs a key whose role grants the permission.
    Needs(Permission),
    /// Needs a valid key; the adapter checks each operation's permission
    /// (`/mcp`, where one call names the tool inside its body).
    Authenticated,
    /// Not a method of this server.
    Unknown,
}

/// The rules of the HTTP routes: each JSON route needs what its RPC needs;
/// the sidebar page (it holds no data), the metrics (no personal data) and
/// the webhook receivers (signed by their senders) are open; the
/// receivers' status and replay are for ingest keys.
fn http_access(path: &str) -> Option<Access> {
    Some(match path {
        "/v1/context" | "/v1/context:watch" => Access::Needs(Permission::ReadContext),
        "/v1/suggestions" | "/v1/curated-cross-sells" | "/v1/search" => {
            Access::Needs(Permission::ReadSuggestions)
        }
        "/v1/feedback" => Access::Needs(Permission::SendFeedback),
        // Each path one method, so each has one rule: listing as
        // ListCurations; writes and previews need curation rights.
        "/v1/curations" => Access::Needs(Permission::ReadSuggestions),
        "/v1/curations:create"
        | "/v1/curations:update"
        | "/v1/curations:archive"
        | "/v1/curations:preview" => Access::Needs(Permission::Curate),
        "/mcp" => Access::Authenticated,
        "/" | "/sidebar" | "/stylist" | "/metrics" => Access::Open,
        // Senders prove themselves with their own signatures or tokens.
        "/webhooks/shopify"
        | "/webhooks/segment"
        | "/webhooks/rudderstack"
        | "/webhooks/zendesk"
        | "/webhooks/chatwoot"
        | "/webhooks/gorgias"
        | "/webhooks/freshdesk" => Access::Open,
        "/v1/webhooks" | "/v1/webhooks:replay" => Access::Needs(Permission::Ingest),
        _ => return None,
    })
}

/// The access rule for a request path (`/package.Service/Method`). Ingest
/// and privacy methods are covered by their service's rule; the customer
/// context service has one rule per method. A service or method without a
/// rule is `Unknown`, which the gate refuses.
pub fn access_for(path: &str) -> Access {
    if let Some(access) = http_access(path) {
        return access;
    }
    let service = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Access::Open,
        "customer_context.v1.IngestService" => Access::Needs(Permission::Ingest),
        "customer_context.v1.StylistService" => {
            let method = path.rsplit('/').next().unwrap_or_default();
            match method {
                "CreateCuration" | "UpdateCuration" | "ArchiveCuration" | "PreviewCuration" => {
                    Access::Needs(Permission::Curate)
                }
                // Agents and CRM plugins read curations and serve them.
                "ListCurations" | "GetCuratedCrossSells" => {
                    Access::Needs(Permission::ReadSuggestions)
                }
                _ => Access::Unknown,
            }
        }
        "customer_context.v1.PrivacyService" => Access::Needs(Permission::Privacy),
        "customer_context.v1.CustomerContextService" => {
            let method = path.rsplit('/').next().unwrap_or_default();
            match method {
                "GetCustomerContext" | "WatchCustomerContext" => {
                    Access::Needs(Permission::ReadContext)
                }
                "SuggestCrossSells" | "SearchProducts" => {
                    Access::Needs(Permission::ReadSuggestions)
                }
                "RecordSuggestionFeedback" => Access::Needs(Permission::SendFeedback),
                // Merchandising numbers: for stylists (who curate) and admins.
                "GetSuggestionStats" => Access::Needs(Permission::Curate),
                "SetExperiment" => Access::Needs(Permission::ManageExperiments),
                _ => Access::Unknown,
            }
        }
        _ => Access::Unknown,
    }
}

/// Who is calling, attached to each authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id (not secret).
    pub key_id: String,
    /// The key's name.
    pub key_name: String,
    /// The key's role.
    pub role: Role,
}

impl Caller {
    /// The caller used when authentication is disabled for development.
    pub fn development() -> Self {
        Caller {
            key_id: "dev".into(),
            key_name: "auth disabled (development)".into(),
            role: Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_grant_what_the_issue_says() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert!(Role::parse("root").is_err());
        assert!(
            Role::Agent.allows(Permission::ReadContext) && !Role::Agent.allows(Permission::Curate)
        );
        assert!(
            !Role::Crm.allows(Permission::ReadContext)
                && Role::Crm.allows(Permission::SendFeedback)
        );
        assert!(Role::Stylist.allows(Permission::Curate));
        assert!(
            !Role::Ingest.allows(Permission::ReadContext)
                && Role::Ingest.allows(Permission::Ingest)
        );
        assert!(
            Role::Privacy.allows(Permission::Privacy) && !Role::Privacy.allows(Permission::Ingest)
        );
        assert!(Role::Privacy.sees_contact_details() && !Role::Agent.sees_contact_details());
    }

    #[test]
    fn paths_map_to_rules() {
        assert_eq!(access_for("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(
            access_for("/customer_context.v1.CustomerContextService/GetCustomerContext"),
            Access::Needs(Permission::ReadContext)
        );
        assert_eq!(
            access_for("/customer_context.v1.IngestService/RecordOrders"),
            Access::Needs(Permission::Ingest)
        );
        assert_eq!(
            access_for("/customer_context.v1.CustomerContextService/SuggestCrossSells"),
            Access::Needs(Permission::ReadSuggestions)
        );
        assert_eq!(
            access_for("/customer_context.v1.CustomerContextService/SetExperiment"),
            Access::Needs(Permission::ManageExperiments)
        );
        assert_eq!(
            access_for("/customer_context.v1.CustomerContextService/Unknown"),
            Access::Unknown
        );
        assert_eq!(access_for("/evil.Service/Do"), Access::Unknown);
        assert_eq!(
            access_for("/customer_context.v1.StylistService/CreateCuration"),
            Access::Needs(Permission::Curate)
        );
        assert_eq!(
            access_for("/customer_context.v1.StylistService/GetCuratedCrossSells"),
            Access::Needs(Permission::ReadSuggestions)
        );
    }
}
