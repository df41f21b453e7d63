//! The feed state (heads and revocations), kept in the store's index.

use super::repo::Repo;
use anyhow::{Context, Result};
use tamizdat_sign::TrustState;

const NAME: &str = "trust";

pub fn load(store: &Repo) -> Result<TrustState> {
    match store.state_get(NAME)? {
        None => Ok(TrustState::default()),
        Some(bytes) => TrustState::decode(&bytes).context("the stored feed state is damaged"),
    }
}

pub fn save(store: &Repo, state: &TrustState) -> Result<()> {
    store.state_put(NAME, &state.encode())?;
    Ok(())
}
