//! A stylist's preview of one curation for one customer: each item as the
//! agent would be shown it (in the customer's size, with the same reason
//! and signed id), or why it is left out for them.

use std::{collections::HashMap, sync::Arc};

use super::{
    Blocked, Reason, SuggestService, SuggestedItem, Suggestion,
    curated::{self, Match, Verdict},
    experiment::Assignment,
    reasons,
    signals::{self, Ask},
};
use crate::{
    domain::{Curation, CustomerId, CustomerKey, Error, Timestamp},
    store::Subject,
};

/// Why a curated item is not shown to this customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOut {
    /// They bought the style.
    Owned,
    /// They returned it within the return window.
    Returned,
    /// They gave it a thumbs down.
    ThumbedDown,
    /// It is in their cart now.
    InCart,
    /// Not active or out of stock (every size).
    Unavailable,
    /// In stock, but not in the size they keep.
    NotInTheirSize,
    /// Not merchandise (the shop's own settings).
    NotMerchandise,
    /// No longer in the catalogue.
    NotInCatalogue,
}

impl LeftOut {
    /// A sentence for the stylist.
    pub fn text(self) -> &'static str {
        match self {
            LeftOut::Owned => "Left out: they already bought it.",
            LeftOut::Returned => "Left out: they returned it.",
            LeftOut::ThumbedDown => "Left out: they said it is not for them.",
            LeftOut::InCart => "Left out: it is in their cart.",
            LeftOut::Unavailable => "Left out: not in stock in any size.",
            LeftOut::NotInTheirSize => "Left out: not in stock in their size.",
            LeftOut::NotMerchandise => "Left out: not merchandise.",
            LeftOut::NotInCatalogue => "Left out: no longer in the catalogue.",
        }
    }
}

/// One curated item in a preview.
#[derive(Debug, Clone)]
pub struct PreviewItem {
    /// The product the stylist picked.
    pub product_id: String,
    /// As the agent would be shown it, when it is.
    pub shown: Option<SuggestedItem>,
    /// Why not, when it is not.
    pub left_out: Option<LeftOut>,
}

/// A curation as one customer would see it.
#[derive(Debug, Clone)]
pub struct CurationPreview {
    /// The customer, when the identity is one.
    pub customer_id: Option<CustomerId>,
    /// How the curation reaches them (`None`: its anchor matches nothing of
    /// theirs, so agents would not be shown it for them).
    pub matched: Option<Match>,
    /// Shaped by their own data (sizes, what they own).
    pub personalised: bool,
    /// Why not, when it is not.
    pub note: String,
    /// Each item, in the stylist's order.
    pub items: Vec<PreviewItem>,
}

impl SuggestService {
    /// `curation`'s items for the customer `key` names, as an agent would
    /// be shown them; an identity nobody has is NOT_FOUND.
    pub async fn preview(
        &self,
        curation: &Curation,
        key: &CustomerKey,
    ) -> Result<CurationPreview, Error> {
        let now = Timestamp::now();
        let ((), subject) = tokio::try_join!(
            self.live.ensure_current(&self.store),
            self.store.resolve(key)
        )?;
        let subject = subject.ok_or_else(|| Error::NotFound("no such customer".into()))?;
        let consents = match &subject {
            Subject::Customer(c) => self.consents(c).await?,
            Subject::Anonymous(_) => Arc::new(Vec::new()),
        };
        let (history_allowed, personal) = self.allowed(&consents);
        let customer = match &subject {
            Subject::Customer(c) if history_allowed => Some(c),
            _ => None,
        };
        let memo_key = customer.filter(|_| personal).map(CustomerId::as_str);
        let history = self
            .remembered_history(Some(&subject), customer, personal, memo_key, now, None)
            .await?;
        let ask = Ask {
            personal,
            now,
            customer: customer.map(CustomerId::as_str),
            curations: vec![curation],
            ..Ask::default()
        };
        let (ranked, verdicts, matched) = self.live.read(|m| {
            let s = signals::signals(m, &history, &ask);
            let verdicts = curated::preview(m, &s, curation);
            let matched = s.matched.first().copied().flatten();
            let shown: Vec<Suggestion> = verdicts
                .iter()
                .filter_map(|v| match *v {
                    Verdict::Shown(item, fit) => Some(Suggestion {
                        item,
                        score: 1.0,
                        reason: Reason::Curated {
                            curation: 0,
                            anchor: matched.and_then(|m| m.1),
                        },
                        fit,
                    }),
                    _ => None,
                })
                .collect();
            let ranked = reasons::to_ids(m, &shown, &s, &ask.curations);
            let verdicts: Vec<(Verdict, String)> = verdicts
                .into_iter()
                .map(|v| {
                    let id = match v {
                        Verdict::Shown(item, _) => m.products.names[item as usize].clone(),
                        _ => String::new(),
                    };
                    (v, id)
                })
                .collect();
            (ranked, verdicts, matched.map(|m| m.0))
        });
        let limit = ranked.len();
        let mut shown: HashMap<String, SuggestedItem> = self
            .finish(
                Some(&subject),
                &Assignment::default_strategy(),
                &history,
                &[],
                &ranked,
                limit,
                now,
            )
            .await?
            .into_iter()
            .map(|i| (i.product.product_id.clone(), i))
            .collect();
        let items = verdicts
            .into_iter()
            .zip(&curation.draft.items)
            .map(|((v, id), picked)| {
                let (shown, left_out) = match v {
                    // The catalogue read drops what went out of stock since
                    // the model saw it.
                    Verdict::Shown(..) => match shown.remove(&id) {
                        Some(item) => (Some(item), None),
                        None => (None, Some(LeftOut::Unavailable)),
                    },
                    Verdict::NotInTheirSize => (None, Some(LeftOut::NotInTheirSize)),
                    Verdict::Unknown => (None, Some(LeftOut::NotInCatalogue)),
                    Verdict::Blocked(b) => (None, Some(left_out(b))),
                };
                PreviewItem {
                    product_id: picked.product_id.as_str().to_owned(),
                    shown,
                    left_out,
                }
            })
            .collect();
        let personalised = personal && customer.is_some();
        Ok(CurationPreview {
            customer_id: match subject {
                Subject::Customer(c) => Some(c),
                Subject::Anonymous(_) => None,
            },
            matched,
            personalised,
            note: if !history_allowed {
                "The customer withdrew consent for using their history: what they bought, \
                 browse and wear is not used, and curations naming them do not reach them."
            } else if !personal {
                "The customer has not agreed to personalised suggestions: curations \
                 anchored on their purchases or naming them do not reach them."
            } else {
                ""
            }
            .to_owned(),
            items,
        })
    }
}

fn left_out(b: Blocked) -> LeftOut {
    match b {
        Blocked::AlreadyBought => LeftOut::Owned,
        Blocked::Returned => LeftOut::Returned,
        Blocked::Rejected => LeftOut::ThumbedDown,
        Blocked::Excluded => LeftOut::InCart,
        Blocked::Unavailable => LeftOut::Unavailable,
        Blocked::NotMerchandise => LeftOut::NotMerchandise,
    }
}
