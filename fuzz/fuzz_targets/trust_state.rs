//! The stored trust state record (protocol.md §5) and the stored follow
//! list: no panic on any bytes, and decode(encode(x)) == x for whatever
//! decodes.

use afl::fuzz;
use tamizdat_feed::Feeds;
use tamizdat_sign::TrustState;

fn main() {
    fuzz!(|data: &[u8]| {
        if let Ok(state) = TrustState::decode(data) {
            let bytes = state.encode();
            assert_eq!(TrustState::decode(&bytes).expect("re-encoded state"), state);
            // The queries a node makes of a loaded state.
            for (p, f, head) in state.feeds() {
                assert!(state.head(p, f).is_some());
                let _ = head.gaps().count();
                let _ = state.revocations_of(p).count();
            }
        }
        if let Ok(follows) = Feeds::decode_follows(data) {
            let feeds = Feeds::new(TrustState::default(), follows.clone());
            let bytes = feeds.encode_follows();
            let again = Feeds::decode_follows(&bytes).expect("re-encoded follow list");
            assert_eq!(again, feeds.following());
            assert!(again.len() <= tamizdat_feed::MAX_FOLLOWS);
        }
    });
}
