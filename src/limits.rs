//! The request limits every front end enforces, in one place so that the error messages, the
//! middleware and the handlers quote the same numbers.

/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 64;

/// Most bytes (names and values) a request's headers may add up to: room for two 8 KiB tokens.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Most items one batch may hold (`/v1/check/batch` items, `/v1/permissions` resources).
pub const MAX_BATCH_ITEMS: usize = 100;

/// Most results one AuthZEN search page holds, and most registered subjects one subject search
/// judges (`page.limit` defaults to it, and a larger one is lowered to it).
pub const MAX_SEARCH_RESULTS: usize = 1000;
