//! Catalogue search (placeholder while building).
