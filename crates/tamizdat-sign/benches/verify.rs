//! Manifest verification rate, each figure against a baseline measured in
//! the same run.
//!
//! The machine this runs on is shared and noisy, so absolute numbers mean
//! little: every figure is paired with a baseline, the two are run
//! interleaved, and their ratio (ours / baseline rate) is what counts.
//!
//! The workload: 64 manifests of one feed (seq 1..=64, each linked to the
//! one before), all signed by one delegated signing key and carrying the
//! same delegation, with 3 to 5 entries, a title and a summary.
//!
//! Run: `cargo bench -p tamizdat-sign --bench verify`

use std::{
    error::Error,
    hint::black_box,
    time::{Duration, Instant},
};

use ed25519_dalek::VerifyingKey;
use tamizdat_sign::{
    Delegation, Entry, Manifest, SecretKey, Signed, TrustState, VerifiedManifest, Verifier,
    VerifyError,
};

#[path = "../../../support/bench_harness.rs"]
mod harness;
use harness::{Row, Samples, items_rate, machine_facts, table};

const REPS: usize = 5;
/// Each repetition runs whole passes over the manifests until this long.
const MIN_REP: Duration = Duration::from_millis(200);
const MANIFESTS: u64 = 64;
const NOW: u64 = 1_780_000_000;
const DAY: u64 = 86_400;

/// Runs `f` (one pass over the manifests) until [`MIN_REP`] has passed and
/// records the time of one pass.
fn time_passes<T>(s: &mut Samples, mut f: impl FnMut() -> T) {
    let (t, mut n) = (Instant::now(), 0u32);
    while t.elapsed() < MIN_REP {
        black_box(f());
        n += 1;
    }
    s.0.push(t.elapsed() / n);
}

/// Times both sides `REPS` times, interleaved so neither always goes first.
fn run<A, B>(mut row: Row, mut ours: impl FnMut() -> A, mut base: impl FnMut() -> B) -> Row {
    for i in 0..REPS * 2 {
        // Order base, ours, ours, base, base, ours, ...
        if (i + i / 2) % 2 == 0 {
            time_passes(&mut row.base, &mut base);
        } else {
            time_passes(&mut row.ours, &mut ours);
        }
    }
    row.log();
    row
}

/// The feed's delegation: the root lets `signer` sign `main` for 20 days.
fn delegation(root: &SecretKey, signer: &SecretKey) -> Result<Vec<u8>, Box<dyn Error>> {
    let d = Delegation {
        root: root.public(),
        key: signer.public(),
        not_before: NOW - 10 * DAY,
        not_after: NOW + 10 * DAY,
        feed: Some("main".into()),
    };
    Ok(Signed::sign(d, root)?.bytes().to_vec())
}

/// An article as a newsroom would publish it: text, a few images, 3 to 5 files.
fn manifest(
    root: &SecretKey,
    signer: &SecretKey,
    deleg: &[u8],
    seq: u64,
    prev: Option<[u8; 32]>,
) -> Manifest {
    let files = [
        ("index.md", "text/markdown", 9_412),
        ("img/cover.jpg", "image/jpeg", 284_113),
        ("img/map.png", "image/png", 91_877),
        ("img/photo-2.jpg", "image/jpeg", 412_530),
        ("docs/statement.pdf", "application/pdf", 1_204_771),
    ];
    let count = 3 + (seq % 3) as usize;
    let entries = files[..count]
        .iter()
        .map(|&(path, media_type, size)| Entry {
            path: path.into(),
            hash: *blake3::hash(format!("{seq}/{path}").as_bytes()).as_bytes(),
            size: size + seq,
            media_type: media_type.into(),
        })
        .collect();
    Manifest {
        publisher: root.public(),
        signer: signer.public(),
        delegation: Some(deleg.to_vec()),
        feed: "main".into(),
        seq,
        prev,
        created: NOW + seq * 3_600,
        title: format!("Суд продлил арест журналиста: выпуск {seq}"),
        lang: "ru".into(),
        summary: Some(format!(
            "Заседание прошло в закрытом режиме, адвокаты обжалуют решение ({seq})."
        )),
        supersedes: None,
        entries,
    }
}

/// The 64 manifest envelopes, chained by id.
fn feed(root: &SecretKey, signer: &SecretKey) -> Result<Vec<Vec<u8>>, Box<dyn Error>> {
    let deleg = delegation(root, signer)?;
    let (mut out, mut prev) = (Vec::new(), None);
    for seq in 1..=MANIFESTS {
        let s = Signed::sign(manifest(root, signer, &deleg, seq, prev), signer)?;
        prev = Some(s.id());
        out.push(s.bytes().to_vec());
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    machine_facts();
    let (root, signer) = (
        SecretKey::from_seed(&[1; 32]),
        SecretKey::from_seed(&[2; 32]),
    );
    let envelopes = feed(&root, &signer)?;
    let items: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
    let sizes = items.iter().map(|b| b.len());
    let (min, max) = (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0));
    println!(
        "{MANIFESTS} manifests, envelopes {min}..={max} bytes, delegated key, \
         reps {REPS} of >= {} ms each",
        MIN_REP.as_millis()
    );
    assert!((600..=900).contains(&min) && (600..=900).contains(&max));

    // The raw library's view of the same signatures: the signing key's
    // VerifyingKey (decoded once), the signed bytes, the signature.
    let vk = VerifyingKey::from_bytes(signer.public().as_bytes())?;
    let mut msgs: Vec<&[u8]> = Vec::new();
    let mut sigs = Vec::new();
    for b in &items {
        let (m, s) = b.split_at(b.len() - 64);
        msgs.push(m);
        sigs.push(ed25519_dalek::Signature::from_slice(s)?);
    }
    let keys = vec![vk; msgs.len()];
    let strict_all = || -> Result<(), ed25519_dalek::SignatureError> {
        for (m, s) in msgs.iter().zip(&sigs) {
            vk.verify_strict(m, s)?;
        }
        Ok(())
    };
    let raw_batch = || ed25519_dalek::verify_batch(&msgs, &sigs, &keys);

    // A warm verifier: the delegation is already in its cache, as for any
    // feed after its first manifest.
    let trust = TrustState::default();
    let warm = Verifier::new();
    warm.verify(items[0], &trust)?;
    let single_all = || -> Result<(), VerifyError> {
        for b in &items {
            black_box(warm.verify(b, &trust)?);
        }
        Ok(())
    };
    let all_ok = |v: Vec<Result<VerifiedManifest, VerifyError>>| {
        v.len() == items.len() && v.iter().all(Result::is_ok)
    };
    let batch_warm = || all_ok(warm.verify_batch(&items, &trust));
    let batch_cold = || all_ok(Verifier::new().verify_batch(&items, &trust));

    // Everything verifies before anything is timed.
    strict_all()?;
    raw_batch()?;
    single_all()?;
    assert!(batch_warm() && batch_cold());

    let n = MANIFESTS;
    let unwrap = |r: Result<(), VerifyError>| r.unwrap();
    let mut rows = Vec::new();
    // 1. Verifier::verify, warm, vs verify_strict over the same bytes.
    let row = Row::new("verify (warm) / verify_strict", n, ">= 0.90");
    rows.push(run(row, || unwrap(single_all()), || strict_all().unwrap()));
    // 2. verify_batch of 64, warm, vs Verifier::verify one by one.
    let row = Row::new("verify_batch 64 (warm) / verify", n, ">= 1.80");
    rows.push(run(row, || assert!(batch_warm()), || unwrap(single_all())));
    // Info: the same, cold (the delegation's signature joins the batch).
    let row = Row::new("verify_batch 64 (cold) / verify", n, "info");
    rows.push(run(row, || assert!(batch_cold()), || unwrap(single_all())));
    // Info: the library's ceiling, dalek's batch vs its verify_strict.
    let row = Row::new("dalek verify_batch 64 / verify_strict", n, "info");
    rows.push(run(row, || raw_batch().unwrap(), || strict_all().unwrap()));

    table(&rows, items_rate);
    Ok(())
}
