//! Categories, aggregate ids, and the streams and subjects they map to.
//!
//! An aggregate `order-17` of category `orders` lives on subject
//! `orders.order-17` inside the category's stream (`ES_orders` by
//! default), so one stream holds every order and each order is the
//! subset of the stream on its own subject.

use std::fmt;

use crate::{Error, Result};

/// Longest category or aggregate id.
pub const NAME_LEN_MAX: usize = 128;

/// One aggregate: its category and its id within the category.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateId {
    category: String,
    id: String,
}

impl AggregateId {
    /// Checks both parts: one subject token each (`A-Z a-z 0-9 - _ =`,
    /// no dots or wildcards), at most [`NAME_LEN_MAX`] bytes.
    pub fn new(category: impl Into<String>, id: impl Into<String>) -> Result<AggregateId> {
        let category = category.into();
        let id = id.into();
        check_token("category", &category)?;
        check_token("aggregate id", &id)?;
        Ok(AggregateId { category, id })
    }

    /// Checks a category name alone (the rules of [`AggregateId::new`]).
    pub fn check_category(category: &str) -> Result<()> {
        check_token("category", category)
    }

    /// Parses `<category>.<id>`, e.g. a stored event's subject.
    pub fn parse_subject(subject: &str) -> Result<AggregateId> {
        let (category, id) = subject.split_once('.').ok_or_else(|| {
            Error::invalid("aggregate subject", format!("{subject:?} is not <category>.<id>"))
        })?;
        AggregateId::new(category, id)
    }

    /// The category, e.g. `orders`.
    pub fn category(&self) -> &str {
        &self.category
    }

    /// The id within the category, e.g. `order-17`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The subject its events are stored on: `<category>.<id>`.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.category, self.id)
    }
}

impl fmt::Display for AggregateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.category, self.id)
    }
}

/// Checks one subject token used as a name.
pub(crate) fn check_token(what: &'static str, token: &str) -> Result<()> {
    if token.is_empty() || token.len() > NAME_LEN_MAX {
        return Err(Error::invalid(
            what,
            format!("{token:?} must be 1 to {NAME_LEN_MAX} bytes"),
        ));
    }
    // Also valid as a KV key (snapshots are keyed by aggregate id).
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=');
    if let Some(bad) = token.chars().find(|c| !allowed(*c)) {
        return Err(Error::invalid(
            what,
            format!("{token:?} contains {bad:?}; use letters, digits, '-', '_' or '='"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_ids_map_to_one_subject_token_each() {
        let id = AggregateId::new("orders", "order-17").unwrap();
        assert_eq!(id.subject(), "orders.order-17");
        assert_eq!(AggregateId::parse_subject("orders.order-17").unwrap(), id);
        for bad in ["", "a.b", "a*", ">", "a b", "ä"] {
            assert!(AggregateId::new("orders", bad).is_err(), "{bad:?}");
            assert!(AggregateId::new(bad, "x").is_err(), "{bad:?}");
        }
        assert!(AggregateId::parse_subject("orders").is_err());
        assert!(AggregateId::parse_subject("orders.a.b").is_err());
    }
}
