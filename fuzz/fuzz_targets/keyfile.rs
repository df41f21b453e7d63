//! Key files (protocol.md §6): no panic; a plain file that reads back
//! writes again to the same bytes; an encrypted one is opened only when
//! its Argon2 costs are tiny (the real limits allow a 1 GiB derivation,
//! which is a hang here, not a bug), and then its header agrees with the
//! key inside.

use afl::fuzz;
use tamizdat_sign::{key_file_info, read_key_file, write_key_file};

fn main() {
    fuzz!(|data: &[u8]| {
        let Ok(info) = key_file_info(data) else {
            assert!(read_key_file(data, Some("x")).is_err());
            return;
        };
        if !info.encrypted {
            // Refused when the seed does not give the stored public key.
            if let Ok((kind, key)) = read_key_file(data, None) {
                assert_eq!((kind, key.public()), (info.kind, info.public));
                assert_eq!(write_key_file(&key, kind, None).unwrap(), data);
            }
            return;
        }
        assert!(
            read_key_file(data, None).is_err(),
            "encrypted needs a passphrase"
        );
        let le = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap());
        if le(50) <= 64 && le(54) <= 2 && le(58) <= 2 {
            if let Ok((kind, key)) = read_key_file(data, Some("fuzz")) {
                assert_eq!((kind, key.public()), (info.kind, info.public));
            }
        }
    });
}
