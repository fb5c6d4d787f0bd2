//! The hard filters. Every candidate of every source passes through
//! [`Filters::check`] before it can be suggested; there is no other path.

use super::{Catalog, IxSet};

/// Why a candidate may not be suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// The customer bought this style (any variant) already.
    AlreadyBought,
    /// The customer returned this style within the return window.
    Returned,
    /// Inactive or out of stock.
    Unavailable,
    /// Excluded by the request (e.g. in the cart).
    Excluded,
    /// The customer gave it a thumbs down.
    Rejected,
    /// Not merchandise (coupons, fees).
    NotMerchandise,
}

/// The hard filters for one customer and request.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Styles bought.
    pub bought_groups: IxSet,
    /// Styles returned within the window.
    pub returned_groups: IxSet,
    /// Styles thumbed down.
    pub rejected_groups: IxSet,
    /// Items excluded by the request.
    pub excluded: IxSet,
    /// Styles excluded by the request (every variant of what is in the
    /// cart, asked about or excluded).
    pub excluded_groups: IxSet,
}

impl Filters {
    /// Whether `item` may be suggested.
    pub fn check(&self, catalog: &Catalog, item: super::ItemIx) -> Result<(), Blocked> {
        let Some(it) = catalog.items.get(item as usize) else {
            return Err(Blocked::Unavailable);
        };
        if !it.merchandise {
            return Err(Blocked::NotMerchandise);
        }
        if !it.available {
            return Err(Blocked::Unavailable);
        }
        if self.excluded.contains(&item) || self.excluded_groups.contains(&it.group) {
            return Err(Blocked::Excluded);
        }
        if self.bought_groups.contains(&it.group) {
            return Err(Blocked::AlreadyBought);
        }
        if self.returned_groups.contains(&it.group) {
            return Err(Blocked::Returned);
        }
        if self.rejected_groups.contains(&it.group) {
            return Err(Blocked::Rejected);
        }
        Ok(())
    }
}
