//! Stage 1c: route a token to its pool by the exact string of its unverified `iss`.
//!
//! An unknown issuer is rejected here, before any key is looked up or fetched.

use std::collections::HashMap;
use std::sync::Arc;

use crate::token::pool::Pool;

/// The trusted pools, by issuer.
#[derive(Debug)]
pub struct Issuers {
    by_issuer: HashMap<String, Arc<Pool>>,
}

impl Issuers {
    /// Indexes `pools` by issuer and listed alternative issuers; the configuration guarantees
    /// they are unique.
    pub fn new(pools: impl IntoIterator<Item = Arc<Pool>>) -> Self {
        let mut by_issuer = HashMap::new();
        for pool in pools {
            let settings = pool.settings();
            for issuer in std::iter::once(&settings.issuer).chain(&settings.alternative_issuers) {
                by_issuer.insert(issuer.clone(), Arc::clone(&pool));
            }
        }
        Self { by_issuer }
    }

    /// The pool whose issuer is exactly `iss`: no normalisation of case, scheme or slashes.
    pub fn route(&self, iss: &str) -> Option<&Arc<Pool>> {
        self.by_issuer.get(iss)
    }

    /// Every trusted pool, once each.
    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.by_issuer.iter().filter(|(issuer, pool)| **issuer == pool.settings().issuer).map(|(_, pool)| pool)
    }
}
