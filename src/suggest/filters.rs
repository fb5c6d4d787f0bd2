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

    /// The same filters for ranking many candidates of one request: every
    /// blocked style in one bit set, so each candidate costs one look at
    /// its catalogue entry and one bit rather than five hash lookups.
    pub fn compile<'a>(&'a self, catalog: &'a Catalog) -> Compiled<'a> {
        let blocked = [
            &self.excluded_groups,
            &self.bought_groups,
            &self.returned_groups,
            &self.rejected_groups,
        ];
        let most = blocked.iter().flat_map(|s| s.iter()).max();
        let mut groups = vec![0u64; most.map_or(0, |&g| g as usize / 64 + 1)];
        for &g in blocked.iter().flat_map(|s| s.iter()) {
            groups[g as usize / 64] |= 1 << (g % 64);
        }
        Compiled {
            catalog,
            excluded: &self.excluded,
            groups,
        }
    }
}

/// [`Filters`] compiled for one request ([`Filters::compile`]): whether an
/// item may be suggested, without saying why.
pub struct Compiled<'a> {
    catalog: &'a Catalog,
    excluded: &'a IxSet,
    /// Bit `g` set: style `g` is blocked.
    groups: Vec<u64>,
}

impl Compiled<'_> {
    /// Whether `item` may be suggested: `Filters::check(..).is_ok()`.
    pub fn allows(&self, item: super::ItemIx) -> bool {
        let Some(it) = self.catalog.items.get(item as usize) else {
            return false;
        };
        let g = it.group as usize;
        let blocked = self
            .groups
            .get(g / 64)
            .is_some_and(|w| w & (1 << (g % 64)) != 0);
        it.merchandise
            && it.available
            && !blocked
            && (self.excluded.is_empty() || !self.excluded.contains(&item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suggest::ItemInfo;

    fn item(group: u32, available: bool, merchandise: bool) -> ItemInfo {
        ItemInfo {
            product_id: format!("p-{group}"),
            group,
            category: 0,
            price_minor: 100,
            available,
            merchandise,
            brand: None,
            replenish_days: None,
            size: None,
            alike: group,
        }
    }

    #[test]
    fn compiled_filters_allow_exactly_what_the_check_allows() {
        // Styles 0..200, two variants each; some unavailable or not
        // merchandise; styles blocked for every reason, some beyond 64.
        let items: Vec<ItemInfo> = (0..400u32)
            .map(|i| item(i / 2, i % 7 != 3, i % 11 != 5))
            .collect();
        let catalog = Catalog {
            items,
            ..Catalog::default()
        };
        let set = |v: &[u32]| v.iter().copied().collect::<IxSet>();
        let filters = Filters {
            bought_groups: set(&[1, 64, 65, 130]),
            returned_groups: set(&[2, 127]),
            rejected_groups: set(&[3, 128]),
            excluded: set(&[8, 9, 399]),
            excluded_groups: set(&[5, 199]),
        };
        let compiled = filters.compile(&catalog);
        for i in 0..410 {
            assert_eq!(
                compiled.allows(i),
                filters.check(&catalog, i).is_ok(),
                "item {i}"
            );
        }
        assert!(compiled.allows(0) && !compiled.allows(2) && !compiled.allows(401));
        let none = Filters::default();
        let compiled = none.compile(&catalog);
        assert!((0..400).all(|i| compiled.allows(i) == none.check(&catalog, i).is_ok()));
    }
}
