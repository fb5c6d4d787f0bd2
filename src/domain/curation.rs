//! Stylists' curations: hand-picked items that go with an anchor, served
//! within a window.

use super::{CategoryPath, CustomerId, ProductId, Timestamp};

/// Most items in a curation.
pub const MAX_CURATED_ITEMS: usize = 50;
/// Most anchor products.
pub const MAX_ANCHOR_PRODUCTS: usize = 50;
/// Most anchor customers.
pub const MAX_ANCHOR_CUSTOMERS: usize = 500;
/// Longest title.
pub const MAX_TITLE_LEN: usize = 200;
/// Longest stylist name.
pub const MAX_STYLIST_LEN: usize = 128;
/// Longest curation note.
pub const MAX_CURATION_NOTE_LEN: usize = 1000;
/// Longest item note.
pub const MAX_ITEM_NOTE_LEN: usize = 500;

/// What a curation goes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// Products (any variant of their styles).
    Products(Vec<ProductId>),
    /// Products whose category path starts with these levels.
    Category(CategoryPath),
    /// Named customers.
    Customers(Vec<CustomerId>),
}

/// One curated item: a style named by any of its variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CuratedItem {
    /// A variant of the style.
    pub product_id: ProductId,
    /// What to say about it ("" uses the curation's note).
    pub note: String,
}

/// A curation as written by a stylist (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurationDraft {
    /// Title.
    pub title: String,
    /// Who curated it.
    pub stylist: String,
    /// Note for agents.
    pub note: String,
    /// What it goes with.
    pub anchor: Anchor,
    /// Items in order, each a different style (checked against the
    /// catalogue when stored).
    pub items: Vec<CuratedItem>,
    /// Served from (inclusive).
    pub starts_at: Option<Timestamp>,
    /// Served until (exclusive).
    pub ends_at: Option<Timestamp>,
}

/// A stored curation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curation {
    /// Its id.
    pub curation_id: String,
    /// Its content.
    pub draft: CurationDraft,
    /// Each item's style, in item order (as the catalogue said when it was
    /// written).
    pub item_groups: Vec<String>,
    /// Archived: never served.
    pub archived: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Where a curation stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurationState {
    /// Served now.
    Active,
    /// Its window has not started.
    Scheduled,
    /// Its window has ended.
    Ended,
    /// Archived.
    Archived,
}

impl Curation {
    /// Its state at `now`.
    pub fn state(&self, now: Timestamp) -> CurationState {
        if self.archived {
            CurationState::Archived
        } else if self.draft.starts_at.is_some_and(|s| now < s) {
            CurationState::Scheduled
        } else if self.draft.ends_at.is_some_and(|e| now >= e) {
            CurationState::Ended
        } else {
            CurationState::Active
        }
    }
}

/// A curation id from 10 random bytes: "cur_" and 20 hex digits.
pub fn curation_id_from(bytes: [u8; 10]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("cur_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_the_window() {
        let t = |ms| Timestamp::from_millis(ms).unwrap();
        let mut c = Curation {
            curation_id: curation_id_from([7; 10]),
            draft: CurationDraft {
                title: "t".into(),
                stylist: "s".into(),
                note: String::new(),
                anchor: Anchor::Customers(vec![]),
                items: vec![],
                starts_at: Some(t(100)),
                ends_at: Some(t(200)),
            },
            item_groups: vec![],
            archived: false,
            created_at: t(0),
            updated_at: t(0),
        };
        assert_eq!(c.state(t(99)), CurationState::Scheduled);
        assert_eq!(c.state(t(100)), CurationState::Active);
        assert_eq!(c.state(t(200)), CurationState::Ended);
        c.archived = true;
        assert_eq!(c.state(t(150)), CurationState::Archived);
        assert_eq!(c.curation_id.len(), 24);
    }
}
