//! What the pages list: the manifests this node keeps under its feed pins,
//! read from the store and kept in memory, refreshed at most every
//! [`FRESH`]. A manifest is listed only once it verifies here (signature,
//! delegation, revocations) and sits under its own feed's pin: a file that
//! merely decodes as a manifest lists nothing. Revocations are checked again
//! at every refresh. A refresh reads only blobs it has not seen before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tamizdat_sign::{Digest, Entry, MAX_MANIFEST_LEN, Manifest, PublicKey, TrustState, Verifier};
use tamizdat_store::{Hash, Store};

use crate::app::{App, Failure};
use crate::blob::{MANIFEST_TYPE, clean_media};

/// How long a built index is used before the store is looked at again.
const FRESH: Duration = Duration::from_secs(2);

/// One recorded article, as the pages show it.
#[derive(Debug)]
pub(crate) struct Article {
    pub id: Hash,
    pub manifest: Manifest,
    /// The id of the delegation it was signed under, if any.
    pub delegation: Option<Digest>,
}

impl Article {
    pub fn supersedes(&self) -> Option<Hash> {
        self.manifest.supersedes.map(Hash::from_bytes)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Every manifest that verified when first seen, revoked ones included.
    verified: HashMap<Hash, Arc<Article>>,
    /// Those listed: not revoked since.
    articles: HashMap<Hash, Arc<Article>>,
    /// Ids, newest signing time first.
    newest: Vec<Hash>,
    superseded_by: HashMap<Hash, Hash>,
    /// Blob → (media type, path) from the manifests that list it.
    media: HashMap<Hash, (String, String)>,
    /// Blobs under feed pins that are not manifests of that feed (the
    /// files, and anything that failed to verify): never read again.
    files: HashSet<Hash>,
}

impl Index {
    /// Articles, newest first.
    pub fn newest(&self) -> impl Iterator<Item = &Arc<Article>> {
        self.newest.iter().filter_map(|id| self.articles.get(id))
    }

    /// One publisher's articles, newest first.
    pub fn of(&self, publisher: &PublicKey) -> impl Iterator<Item = &Arc<Article>> {
        self.newest()
            .filter(move |a| &a.manifest.publisher == publisher)
    }

    /// Publishers with articles here, and how many.
    pub fn publishers(&self) -> BTreeMap<PublicKey, usize> {
        let mut out = BTreeMap::new();
        for a in self.articles.values() {
            *out.entry(a.manifest.publisher).or_insert(0) += 1;
        }
        out
    }

    /// The articles that arrived here genuine and were withdrawn since.
    pub fn withdrawn_articles(&self) -> impl Iterator<Item = &Arc<Article>> {
        self.verified
            .iter()
            .filter(|(id, _)| !self.articles.contains_key(*id))
            .map(|(_, a)| a)
    }

    /// How many articles arrived here genuine and were withdrawn since (the
    /// publisher revoked the key that signed them), per publisher.
    pub fn withdrawn(&self) -> BTreeMap<PublicKey, usize> {
        let mut out = BTreeMap::new();
        for a in self.withdrawn_articles() {
            *out.entry(a.manifest.publisher).or_insert(0) += 1;
        }
        out
    }

    /// A recorded article that says it supersedes `id`.
    pub fn superseded_by(&self, id: &Hash) -> Option<Hash> {
        self.superseded_by.get(id).copied()
    }

    /// The media type and path a recorded manifest gives a blob.
    pub fn media(&self, hash: &Hash) -> Option<(String, Option<String>)> {
        if self.articles.contains_key(hash) {
            return Some((
                MANIFEST_TYPE.into(),
                Some(format!("{}.manifest", hash.short())),
            ));
        }
        self.media
            .get(hash)
            .map(|(m, p)| (m.clone(), Some(p.clone())))
    }

    fn build(store: &Store, old: Option<&Index>, trust: &TrustState) -> Result<Index, String> {
        let mut verified = HashMap::new();
        let mut files = HashSet::new();
        let verifier = Verifier::new();
        for (pin, hashes) in store.pins().map_err(|e| e.to_string())? {
            if !pin.starts_with("feed/") {
                continue;
            }
            for id in hashes {
                if let Some(old) = old {
                    if let Some(a) = old.verified.get(&id) {
                        verified.insert(id, a.clone());
                        continue;
                    }
                    if old.files.contains(&id) {
                        files.insert(id);
                        continue;
                    }
                }
                let Some(info) = store.info_without_pins(&id).map_err(|e| e.to_string())? else {
                    continue;
                };
                if !info.complete {
                    continue;
                }
                if info.size > MAX_MANIFEST_LEN as u64 {
                    files.insert(id);
                    continue;
                }
                let Ok(bytes) = store.read_to_vec(&id) else {
                    continue;
                };
                // Checked without revocations: a withdrawn article is still
                // known as one (its page says so, and links to what
                // replaced it); the lists leave it out below.
                match verifier.verify(&bytes, &TrustState::default()) {
                    Ok(v) if tamizdat_node::feeds::feed_pin(v.manifest()) == pin => {
                        verified.insert(
                            id,
                            Arc::new(Article {
                                id,
                                manifest: v.manifest().clone(),
                                delegation: v.delegation().map(|d| d.id()),
                            }),
                        );
                    }
                    _ => {
                        files.insert(id);
                    }
                }
            }
        }
        let articles: HashMap<Hash, Arc<Article>> = verified
            .iter()
            .filter(|(_, a)| {
                let m = &a.manifest;
                trust
                    .revoked(&m.publisher, &m.signer, a.delegation.as_ref())
                    .is_none()
            })
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        let mut newest: Vec<Hash> = articles.keys().copied().collect();
        newest.sort_by(|a, b| {
            let (ma, mb) = (&articles[a].manifest, &articles[b].manifest);
            (mb.created, mb.seq, b).cmp(&(ma.created, ma.seq, a))
        });
        let mut superseded_by = HashMap::new();
        let mut media = HashMap::new();
        // Oldest first, so the newest manifest naming a blob wins.
        for id in newest.iter().rev() {
            let a = &articles[id];
            // Only the publisher's own later article in the same feed can
            // say it corrects one (a withdrawn one too).
            if let Some(old) = a.supersedes()
                && verified.get(&old).is_some_and(|o: &Arc<Article>| {
                    o.manifest.publisher == a.manifest.publisher
                        && o.manifest.feed == a.manifest.feed
                })
            {
                superseded_by.insert(old, *id);
            }
            for Entry {
                path,
                hash,
                media_type,
                ..
            } in &a.manifest.entries
            {
                let media_type = clean_media(media_type).unwrap_or("application/octet-stream");
                media.insert(
                    Hash::from_bytes(*hash),
                    (media_type.to_owned(), path.clone()),
                );
            }
        }
        Ok(Index {
            verified,
            articles,
            newest,
            superseded_by,
            media,
            files,
        })
    }
}

/// The index, rebuilt when it is older than [`FRESH`]; one rebuild at a
/// time, the others wait for it.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    /// The current index, read by every request without waiting.
    current: std::sync::RwLock<Option<(Instant, Arc<Index>)>>,
    /// Held by the one request rebuilding it.
    rebuild: tokio::sync::Mutex<()>,
}

impl Cache {
    fn fresh(&self) -> Option<Arc<Index>> {
        let current = self.current.read().unwrap();
        current
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH)
            .map(|(_, i)| i.clone())
    }

    pub async fn get(&self, app: &Arc<App>) -> Result<Arc<Index>, Failure> {
        if let Some(index) = self.fresh() {
            return Ok(index);
        }
        let _rebuilding = self.rebuild.lock().await;
        // Someone else may have rebuilt it while we waited.
        if let Some(index) = self.fresh() {
            return Ok(index);
        }
        let slot = self.current.read().unwrap().clone();
        if let Some((at, index)) = slot.as_ref()
            && at.elapsed() < FRESH
        {
            return Ok(index.clone());
        }
        let old = slot.map(|(_, i)| i);
        let trust = app.node.trust();
        let index = app
            .blocking(move |s| Index::build(s, old.as_deref(), &trust))
            .await?
            .map_err(|e| Failure::internal(format!("listing the store: {e}")))?;
        let index = Arc::new(index);
        *self.current.write().unwrap() = Some((Instant::now(), index.clone()));
        Ok(index)
    }
}
