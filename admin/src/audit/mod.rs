//! `scimfleet audit verify|export`: what an auditor runs over the audit
//! trail (see `scimfleet_runtime::audit` for how it is written).
//!
//! Both read the Redis stream page by page (`XRANGE`) or, for `verify`, a
//! JSON Lines export; records are kept as stored, so an export is
//! byte-for-byte what the writers hashed and signed, and `verify` checks a
//! file exactly as it checks the stream (without the head).

mod export;
mod verify;

pub use export::{export, export_dir};
pub use verify::{VerifyOptions, verify};

use scimfleet_runtime::Store;
use scimfleet_runtime::store::StoreError;

/// Stream entries read per round trip.
const PAGE: usize = 1000;

/// Every record of the stream, as stored, in order; `visit` sees each.
async fn scan(store: &Store, mut visit: impl FnMut(&str)) -> Result<u64, StoreError> {
    let mut after: Option<String> = None;
    let mut seen = 0;
    loop {
        let page = store.audit().page(after.as_deref(), PAGE).await?;
        let Some((last, _)) = page.last() else { return Ok(seen) };
        after = Some(last.clone());
        for (_, record) in &page {
            visit(record);
            seen += 1;
        }
    }
}
