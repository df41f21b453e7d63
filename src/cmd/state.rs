//! The feed state (heads and revocations), kept in the store's index.

use anyhow::{Context, Result};
use tamizdat_sign::TrustState;
use tamizdat_store::Store;

const NAME: &str = "trust";

pub fn load(store: &Store) -> Result<TrustState> {
    match store.state_get(NAME)? {
        None => Ok(TrustState::default()),
        Some(bytes) => TrustState::decode(&bytes).context("the stored feed state is damaged"),
    }
}

pub fn save(store: &Store, state: &TrustState) -> Result<()> {
    store.state_put(NAME, &state.encode())?;
    Ok(())
}
