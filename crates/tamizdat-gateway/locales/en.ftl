# The reader's pages in English. Every message here must exist in every
# other locale file (a test checks). Placeables in braces are filled in by
# the gateway: plain values ($n, $time) or pieces of markup ($link, $command).

language-name = English

## Every page

site-tagline = signed articles, kept reachable
site-footer = Served by a tamizdat node. Everything here was checked against its publisher's signature before it was shown.
site-languages = Language:
alone = This node is connected to nobody: no new article can reach it, and it passes none on. Its operator can add a card ({ $command }) or a bootstrap address.
not-available = Not available

## The front page

front-title = tamizdat: articles on this node
front-heading = Articles on this node
front-publishers = Publishers followed
front-no-publisher = This node follows no publisher yet. Its operator adds one with { $command }.
front-articles =
    { $n ->
        [one] { $n } article
       *[other] { $n } articles
    }
front-withdrawn = , and { $n } withdrawn by the publisher
front-latest = Latest articles
front-all-withdrawn =
    { $n ->
        [one] One article reached this node, and it was withdrawn since by its publisher (the key that signed it was revoked). Its link says so.
       *[other] { $n } articles reached this node, and every one was withdrawn since by its publisher (the key that signed it was revoked). Their links say so.
    }
front-none = No article has reached this node yet.

## A publisher's page

publisher-unnamed = Publisher { $fingerprint }
publisher-fingerprint = Fingerprint
publisher-key = Public key
publisher-followed = Followed here
publisher-followed-yes = yes: this node keeps and passes on its articles
publisher-followed-no = no
publisher-feeds = Feeds
publisher-feed-latest = { $feed }: latest { $link }, signed { $time }
publisher-articles = Articles
publisher-no-articles = No article of this publisher is on this node.
publisher-card = Card
publisher-card-about = Signed by this publisher's key, valid until { $time }: its name and the addresses of nodes that serve it. Anyone can join with { $command }. Pass it on.

## An article's page

article-signed = ✔ Signed by { $name }
article-unplaced = ⚠ Signed by, but not placed in its feed: { $name }
article-unknown = ⚠ Signed by an unknown publisher, { $name }
article-who-signed = who signed this
article-text-failed = The article's text could not be shown: { $why }
article-text-too-large = The article's text is too large to show here. Its file: { $file }.
article-text-too-complex = The article's text is too complex to show here. Its file: { $file }.
files = Files
file-size =
    { $bytes ->
        [one] { $bytes } byte
       *[other] { $bytes } bytes
    }

badge-heading = Who signed this
badge-unplaced = ⚠ The signature is valid, but this article is older than what this node remembers of its feed, so it cannot check that it is the article the publisher placed there ({ $why }). Compare it with another copy before you rely on it.
badge-verified = ✔ This node checked this article's signature, its signing key's delegation from the publisher's root key, and the revocations it knows of, when serving this page.
badge-unknown = ⚠ Unknown publisher. The signature is valid: this article is exactly what the holder of this key signed. But this node does not follow this key, so it cannot tell you who holds it, and it may not know of its revocations. Compare the fingerprint with one you trust.
badge-publisher = Publisher
badge-no-name = (no name given on this node)
badge-not-followed = — not followed by this node
badge-corrects = Corrects
badge-corrects-text = This version replaces { $link }.
badge-corrects-link = an earlier article
badge-corrected = Corrected
badge-corrected-text = A newer version of this article exists: { $link }.
badge-corrected-link = read the correction
badge-newer = Newer articles
badge-newer-text = The feed has gone on to { $link }.
badge-newer-none = none known: this is the feed's latest
badge-manifest = Manifest
badge-check = Check it yourself, with your own copy of tamizdat:
badge-link = This article's link: { $url }

prov-fingerprint = Fingerprint
prov-key = Public key
prov-signed-by = Signed by
prov-root = the publisher's root key itself
prov-delegated = signing key { $key } ({ $fingerprint }), delegated by the root key from { $from } to { $to } (delegation { $delegation })
prov-delegated-feed = signing key { $key } ({ $fingerprint }), delegated by the root key from { $from } to { $to } for feed { $feed } (delegation { $delegation })
prov-signed-at = Signed at
prov-feed = Feed
prov-feed-place = { $feed }, article #{ $seq }
prov-language = Language

## An article its publisher withdrew

withdrawn-title = Withdrawn by its publisher
withdrawn-signed-on = This article was signed by { $name }, who has since revoked the key that signed it on { $time }. The publisher no longer vouches for it, so this node does not show it.
withdrawn-signed = This article was signed by { $name }, who has since revoked the key that signed it. The publisher no longer vouches for it, so this node does not show it.
withdrawn-reason = The reason they gave: { $reason }
withdrawn-no-reason = They gave no reason this node knows of.
withdrawn-newer = A newer version is here: { $link }.
withdrawn-newer-link = read the version that replaced it
withdrawn-no-newer = No newer version of it has reached this node.
withdrawn-was = Its title was { $title }. A revoked key may have been stolen: what it signed could be anyone's words.

## When a page cannot be shown

fail-detail = Technical detail
fail-not-found-title = Not found
fail-timeout = This node does not have { $hash }, and no node that has it answered within { $secs } s. Whoever holds it may be out of reach just now: try again later, or open the same address on another gateway.
fail-not-found = This node does not have { $hash }, and none of the nodes it could reach has it. Try again later, or open the same address on another gateway.
fail-forged-title = Not verified: do not trust it
fail-forged = This claims to be a signed article, but its signature does not hold: it is not what its publisher signed, or it was damaged on the way. Do not trust it, and do not pass it on as genuine.
fail-refused-title = Refused: do not trust it
fail-refused = This is signed with the publisher's key, but it contradicts what this node already holds of that publisher's feed (for instance, a second and different version of an article already published, or a date that cannot be right). Something like this is made with a stolen key. Do not trust it; if you know the publisher, tell them.
fail-not-article-title = Not an article
fail-not-article = This address holds a file, but not an article. Its bytes, unchecked by anyone's signature: { $link }.
fail-bad-address-title = Not a valid address
fail-bad-hash = This is not an article's address: an address here is 64 hex digits (0–9 and a–f), as the publisher gave it. Check that it was copied whole.
fail-bad-key = This is not a publisher's key: a key is 64 hex digits (0–9 and a–f), as the publisher gave it. Check that it was copied whole.
fail-busy-title = Busy
fail-busy = This node is busy fetching for other readers. Try again in a minute.

## A static export (a folder of pages for a USB stick)

export-tagline = signed articles, carried by hand
export-how-to-check = how to check them
export-verify-file = VERIFY.txt
export-footer = Exported from a tamizdat node, which checked every article's signature and every file's hash when it wrote these pages. Pages can be changed after they are written: what proves an article is its signed manifest, in { $manifests }. { $link }.
export-footer-link = How to check it yourself
export-title = tamizdat: signed articles
export-heading = Signed articles
export-intro = Each article here was signed by its publisher. Its page says who signed it and when; { $verify } says how to check that with { $command } or with the BLAKE3 hashes in { $sums }.
export-empty = This export holds no article.
export-followed = Followed
export-followed-yes = yes: the node that made this export follows this publisher
export-followed-no = no: the signatures are valid, but nobody here vouches for who holds this key
export-text-too-large = The article's text is too large to show here; it is listed below.
export-file-line = { $size } · BLAKE3 { $hash }
export-saved-as = saved as { $name }
export-renamed-txt = , so that no browser runs what it may contain; to open it with its own program, copy it and remove the added .txt
export-renamed-hash = , because its path cannot be a file name on every disk
export-verified = ✔ The node that made this export follows this publisher. It checked this article's signature, its signing key's delegation from the publisher's root key, the revocations it knew of, and every file's hash, when it wrote this page.
export-unknown = ⚠ Unknown publisher. The signature is valid: this article is exactly what the holder of this key signed. But the node that made this export does not follow this key, so nobody here vouches for who holds it, and it may not have known of its revocations. Compare the fingerprint with one you trust.
export-no-name = (no name given)
export-not-followed = — not followed by the node that made this export
export-corrects-text = This version replaces an earlier article, { $link }.
export-not-here = { $hash } (not in this export)
export-newer-text = The feed goes on to { $link } in this export.
export-check = Check it yourself, in this folder, with your own copy of tamizdat and of b3sum:
export-check-how = The first checks the signature and prints every file's BLAKE3 hash; the second checks that each file here has the hash listed. Then compare the fingerprint { $fingerprint } with the one the publisher gives out on its site or on a printed card. { $link }.
export-check-more = More in VERIFY.txt
