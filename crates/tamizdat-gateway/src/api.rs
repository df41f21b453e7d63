//! `GET /api/v1/...`: the pages' data as JSON, for scripts and other
//! readers. Documented in `docs/gateway.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tamizdat_node::feeds::{Followed, Standing};
use tamizdat_sign::{PublicKey, TrustState};
use tamizdat_store::Hash;

use crate::app::{App, Failure, parse_hash};
use crate::index::{Article, Index};
use crate::render;
use crate::server::ClientIp;

fn error(f: Failure) -> Response {
    (f.status, Json(json!({ "error": f.message }))).into_response()
}

fn feeds_of(trust: &TrustState, key: &PublicKey) -> Vec<Value> {
    trust
        .feeds()
        .filter(|(p, _, _)| *p == key)
        .map(|(_, feed, head)| {
            json!({
                "feed": feed,
                "seq": head.seq,
                "head": Hash::from_bytes(head.hash).to_string(),
                "created": head.created,
            })
        })
        .collect()
}

fn publisher_json(
    following: &[Followed],
    counts: &BTreeMap<PublicKey, usize>,
    trust: &TrustState,
    key: &PublicKey,
) -> Value {
    let followed = following.iter().find(|f| &f.key == key);
    json!({
        "key": key.to_string(),
        "fingerprint": key.fingerprint(),
        "name": followed.as_ref().and_then(|f| f.name.clone()),
        "followed": followed.is_some(),
        "articles": counts.get(key).copied().unwrap_or(0),
        "feeds": feeds_of(trust, key),
    })
}

fn article_json(index: &Index, a: &Article) -> Value {
    let m = &a.manifest;
    json!({
        "id": a.id.to_string(),
        "title": m.title,
        "lang": m.lang,
        "feed": m.feed,
        "seq": m.seq,
        "created": m.created,
        "created_rfc3339": render::time(m.created),
        "summary": m.summary,
        "supersedes": a.supersedes().map(|h| h.to_string()),
        "superseded_by": index.superseded_by(&a.id).map(|h| h.to_string()),
    })
}

pub(crate) async fn status(State(app): State<Arc<App>>) -> Response {
    let connected = app.node.connected().await.map(|c| c.len()).unwrap_or(0);
    let usage = app.blocking(|s| s.usage()).await;
    let (stored, quota) = match usage {
        Ok(Ok(u)) => (u.used, u.quota),
        _ => (0, None),
    };
    Json(json!({
        "peer_id": app.node.peer_id().to_string(),
        "listen": app.node.listen_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "connected": connected,
        "state": if connected == 0 { "alone" } else { "connected" },
        "nat": format!("{:?}", app.node.nat_status()),
        "following": app.node.following().len(),
        "conflicts": app.node.conflicts().into_iter().map(|c| c.detail).collect::<Vec<_>>(),
        "stored_bytes": stored,
        "quota": quota,
        "gateway": format!("http://{}", app.addr),
    }))
    .into_response()
}

pub(crate) async fn publishers(State(app): State<Arc<App>>) -> Response {
    let index = match app.index.get(&app).await {
        Ok(i) => i,
        Err(f) => return error(f),
    };
    let trust = app.node.trust();
    let following = app.node.following();
    let counts = index.publishers();
    let mut keys: BTreeSet<PublicKey> = following.iter().map(|f| f.key).collect();
    keys.extend(counts.keys().copied());
    let list: Vec<Value> = keys
        .iter()
        .map(|k| publisher_json(&following, &counts, &trust, k))
        .collect();
    Json(json!({ "publishers": list })).into_response()
}

pub(crate) async fn publisher(State(app): State<Arc<App>>, Path(raw): Path<String>) -> Response {
    let key = match crate::app::parse_key(&raw) {
        Ok(k) => k,
        Err(f) => return error(f),
    };
    let index = match app.index.get(&app).await {
        Ok(i) => i,
        Err(f) => return error(f),
    };
    let trust = app.node.trust();
    let mut out = publisher_json(&app.node.following(), &index.publishers(), &trust, &key);
    out["items"] = index.of(&key).map(|a| article_json(&index, a)).collect();
    Json(out).into_response()
}

pub(crate) async fn manifest(
    State(app): State<Arc<App>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(raw): Path<String>,
) -> Response {
    let id = match parse_hash(&raw) {
        Ok(h) => h,
        Err(Ok(canonical)) => {
            return axum::response::Redirect::permanent(&format!("/api/v1/manifests/{canonical}"))
                .into_response();
        }
        Err(Err(f)) => return error(f),
    };
    let (v, standing) = match crate::pages::load_verified(&app, ip, id, &Default::default()).await {
        Ok(v) => v,
        Err(f) => return error(f),
    };
    let m = v.manifest();
    let placed = match &standing {
        Standing::Accepted => "accepted",
        Standing::Fits(_) => "fits",
        _ => "unplaced",
    };
    let superseded_by = app
        .index
        .get(&app)
        .await
        .ok()
        .and_then(|i| i.superseded_by(&id));
    Json(json!({
        "id": id.to_string(),
        "verified": true,
        "feed_standing": placed,
        "publisher": m.publisher.to_string(),
        "fingerprint": m.publisher.fingerprint(),
        "signer": m.signer.to_string(),
        "delegation": v.delegation().map(|d| json!({
            "id": hex::encode(d.id()),
            "key": d.body().key.to_string(),
            "not_before": d.body().not_before,
            "not_after": d.body().not_after,
            "feed": d.body().feed,
        })),
        "feed": m.feed,
        "seq": m.seq,
        "prev": m.prev.map(hex::encode),
        "created": m.created,
        "title": m.title,
        "lang": m.lang,
        "summary": m.summary,
        "supersedes": m.supersedes.map(hex::encode),
        "superseded_by": superseded_by.map(|h| h.to_string()),
        "entries": m.entries.iter().map(|e| json!({
            "path": e.path,
            "hash": hex::encode(e.hash),
            "size": e.size,
            "media_type": e.media_type,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}
