//! The command line, as clap definitions only. Execution lives in `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tamizdat: keep signed journalism reachable after it is blocked.
///
/// Blobs are named by their BLAKE3 hash: the same 64 hex digits `b3sum` prints.
#[derive(Debug, Parser)]
#[command(name = "tamizdat", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The data directory (store, keys, config.toml). Created on first use.
    /// Default: the platform's data directory for tamizdat.
    #[arg(long, global = true, env = "TAMIZDAT_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store files; print `HASH  NAME` per file, exactly as `b3sum` does.
    ///
    /// A file is acknowledged (its line printed) only once its data, proof
    /// tree and index entry are on disk.
    #[command(display_order = 16)]
    Add(AddArgs),
    /// Write a blob to stdout, verifying every chunk as it is read.
    #[command(display_order = 17)]
    Cat {
        /// The blob's hash (64 lowercase hex digits).
        hash: String,
    },
    /// List blobs: hash, size, complete or partial, pins.
    #[command(display_order = 18)]
    Ls {
        /// One JSON object per line (hash, size, complete, verified_bytes, pins).
        #[arg(long)]
        json: bool,
    },
    /// Keep blobs from garbage collection under a named pin.
    #[command(display_order = 19)]
    Pin {
        /// The pin's name.
        name: String,
        /// Blobs to add to the pin.
        #[arg(required = true)]
        hashes: Vec<String>,
    },
    /// Remove blobs from a pin, or the whole pin when no hash is given.
    #[command(display_order = 20)]
    Unpin {
        /// The pin's name.
        name: String,
        /// Blobs to release (all of the pin's when none).
        hashes: Vec<String>,
    },
    /// List pins and the blobs they hold.
    #[command(display_order = 21)]
    Pins {
        /// One JSON object per line (name, blobs).
        #[arg(long)]
        json: bool,
    },
    /// Delete every blob that no pin holds.
    #[command(display_order = 22)]
    Gc {
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every blob; quarantine those whose bytes no longer match.
    ///
    /// Exits non-zero when anything was found damaged.
    #[command(display_order = 23)]
    Scrub,
    /// Rebuild a lost or damaged store index from the blob files: every
    /// blob re-verified against its name (what fails goes to quarantine),
    /// then the articles found re-pinned under their feeds, feed positions
    /// and revocations restored. The old index is kept beside. Stop the
    /// node first.
    #[command(display_order = 24)]
    Recover {
        /// Rebuild even when the index opens fine (pins made by hand are lost).
        #[arg(long)]
        force: bool,
        /// Follow again every publisher whose signed articles were found
        /// (the follow list itself was in the lost index).
        #[arg(long)]
        follow_found: bool,
    },
    /// Publisher keys: root keys, signing keys, delegations, revocations.
    #[command(subcommand)]
    #[command(display_order = 12)]
    Key(KeyCommand),
    /// Publisher cards: an outlet's name, key and addresses, signed by its
    /// root key, in one line that a newcomer pastes into `tamizdat follow`.
    #[command(subcommand)]
    #[command(display_order = 13)]
    Card(CardCommand),
    /// Sign and store an article: a file, or a directory with `index.md` or
    /// `index.html` plus its images and attachments. Prints the article's
    /// hash (its link).
    #[command(display_order = 11)]
    Publish(PublishArgs),
    /// Check an article: signature, delegation chain, revocations, feed
    /// position, and every file's bytes. Exit 0 only when all of it holds;
    /// 1 when anything is forged, tampered or revoked; 3 when the signature
    /// holds but files are missing here.
    #[command(display_order = 9)]
    Verify {
        /// The manifest's hash (in the store) or a manifest file.
        target: String,
        /// Print what was checked as one JSON object (`result`: verified,
        /// incomplete or not_verified); the exit status is the same.
        #[arg(long)]
        json: bool,
    },
    /// Print a manifest as JSON, for scripts.
    #[command(display_order = 10)]
    Show {
        /// The manifest's hash (in the store) or a manifest file.
        target: String,
    },
    /// Follow a publisher: its signed articles are replicated here, checked,
    /// kept and passed on. A node follows nobody until told to.
    ///
    /// Given the publisher's card (`tamizdat1...`, or a file holding it), the
    /// card is checked and kept, and the node joins the network through the
    /// addresses on it, now and at every start.
    #[command(display_order = 5)]
    Follow {
        /// The publisher's card (a `tamizdat1...` line or a file holding
        /// one), or its root public key (64 hex digits, as `key show` prints).
        #[arg(value_name = "CARD|PUBKEY")]
        pubkey: String,
        /// A name to show for it (default: the card's).
        #[arg(long)]
        name: Option<String>,
        /// Keep at most this much of it ("2 GiB"); its oldest articles go
        /// first. Articles you pinned yourself always stay.
        #[arg(long, value_name = "SIZE")]
        max_bytes: Option<bytesize::ByteSize>,
        /// Let its articles go this long after they were signed ("90d").
        #[arg(long, value_name = "DURATION")]
        keep: Option<humantime::Duration>,
    },
    /// Stop following a publisher (its card is dropped too). What is stored
    /// stays until unpinned.
    #[command(display_order = 7)]
    Unfollow {
        /// The publisher's root public key.
        pubkey: String,
    },
    /// List the publishers followed.
    #[command(display_order = 6)]
    Following {
        /// One JSON object per line (key, fingerprint, name, max_bytes, max_age_secs).
        #[arg(long)]
        json: bool,
    },
    /// Run the node: join the network, announce the blobs held here, and
    /// serve them. Stops cleanly on Ctrl-C or SIGTERM.
    #[command(display_order = 3)]
    Node(NodeArgs),
    /// Fetch an article (its manifest, verified, and every file) or any blob
    /// from the network into the store, verifying every chunk; an article
    /// is pinned as get/HASH. Exits 3 when files did not arrive in time.
    #[command(display_order = 8)]
    Get(GetArgs),
    /// Write chosen articles to a bundle file (`-o`) that carries them across
    /// a shutdown, or to a folder of plain HTML pages (`--html`) that any
    /// browser opens. Without a choice, every article of every feed held here.
    #[command(display_order = 14)]
    Export(ExportArgs),
    /// Import a bundle: every signature, delegation, revocation, feed rule
    /// and file hash is checked before anything of it is kept. Exit 0 when
    /// all of it imported; 1 when any part was damaged, forged or refused.
    #[command(display_order = 15)]
    Import(ImportArgs),
    /// Start a small local network (a publisher and volunteers on
    /// 127.0.0.1) with a demo outlet and a sample article, and print the
    /// article's address in a volunteer's gateway. Ctrl-C stops it and
    /// removes everything it made.
    #[command(display_order = 1)]
    Demo(DemoArgs),
    /// Show the running node: peer id, addresses (`--json` for scripts).
    #[command(display_order = 4)]
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set up a data directory: the node's key and a commented config.toml
    /// for the kind of machine. Refuses to overwrite an existing config.
    #[command(display_order = 2)]
    Init {
        /// The kind of machine the config is written for.
        #[arg(long, value_enum, default_value = "desktop")]
        profile: crate::config::Profile,
    },
    /// Check the configuration.
    #[command(subcommand)]
    #[command(display_order = 25)]
    Config(ConfigCommand),
    /// Exit 0 when this data directory's node is up and serving: its control
    /// socket answers, and its gateway's /healthz too when it runs one.
    #[command(display_order = 26)]
    Health,
    /// Print shell completions, e.g. `tamizdat completions bash >
    /// /etc/bash_completion.d/tamizdat`.
    #[command(display_order = 27)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `tamizdat man >
    /// /usr/local/share/man/man1/tamizdat.1`; `tamizdat man get` the page of
    /// one command; `--dir DIR` writes every page (tamizdat.1,
    /// tamizdat-get.1, tamizdat-key-new.1, ...) into DIR.
    #[command(display_order = 28)]
    Man {
        /// The command whose page to print (`get`, `key new`).
        #[arg(value_name = "COMMAND", conflicts_with = "dir")]
        command: Vec<String>,
        /// Write every page into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file (default DIR/config.toml): syntax, every key
    /// and every value. Prints `ok: FILE`, or names the bad key and its line.
    Check {
        /// The file to check.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Listen on this multiaddr (repeatable); replaces the config's list.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// Join through this peer (repeatable), e.g. /ip4/1.2.3.4/tcp/4001/p2p/12D3...
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// The kind of machine (default: the config's `profile`, else desktop).
    /// `server` turns off local-network discovery (unless the config sets
    /// `mdns` itself: explicit keys win over any profile).
    #[arg(long, value_enum)]
    pub profile: Option<crate::config::Profile>,
    /// Serve the reader's gateway (articles, blobs, API, metrics) on this
    /// address, e.g. 127.0.0.1:8080 (the default; port 0 picks a free one),
    /// or `off`. A non-loopback address lets anyone who reaches it read what
    /// this node holds.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<String>,
    /// Set up the data directory first when it has no config.toml (as
    /// `init` does, for the profile given): for containers.
    #[arg(long)]
    pub init: bool,
    /// When another command (`scrub`, `verify`, a cron job) holds the
    /// store, wait up to this many seconds for it to finish before giving
    /// up (0: do not wait). The holder's PID is named either way.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "TAMIZDAT_STORE_WAIT",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    pub store_wait: u64,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The hash: of an article (its manifest), or of any blob.
    pub hash: String,
    /// Also write it out: an article's files under their signed paths in the
    /// new folder PATH (or in PATH when it is a folder), any other blob as
    /// the file PATH.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Ask this peer first (repeatable; with or without /p2p/PEER_ID); it
    /// also serves as a way into the network.
    #[arg(long, value_name = "MULTIADDR")]
    pub peer: Vec<String>,
    /// Only this blob, even when it is an article's manifest (with -o, the
    /// manifest's own bytes).
    #[arg(long)]
    pub raw: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// How to get the passphrase of a key file.
#[derive(Debug, Args)]
pub struct PassArgs {
    /// Read the passphrase from the first line of FILE instead of the terminal.
    #[arg(long, value_name = "FILE", conflicts_with = "no_passphrase")]
    pub passphrase_file: Option<PathBuf>,
    /// Store new keys unencrypted (and expect existing ones to be).
    #[arg(long)]
    pub no_passphrase: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a publisher root key; prints its public key. Keep it offline.
    New {
        /// Name of the key in this data directory.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Create a signing key and the root's delegation to it.
    Delegate {
        /// The root key that delegates.
        #[arg(long)]
        root: String,
        /// Name of the new signing key.
        #[arg(long)]
        name: String,
        /// How long the delegation lasts: `90d`, `12h`, `1y`.
        #[arg(long, value_name = "DURATION")]
        valid_for: String,
        /// Limit the delegation to one feed.
        #[arg(long)]
        feed: Option<String>,
        /// The root key's passphrase.
        #[command(flatten)]
        pass: PassArgs,
        /// Passphrase for the new signing key, from the first line of FILE.
        /// It must differ from the root's: the signing key lives online.
        /// Without it, the terminal asks (twice); with --no-passphrase the
        /// new key is stored unencrypted.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Revoke a signing key: everything it signed stops verifying.
    Revoke {
        /// The root key that delegated it.
        #[arg(long)]
        root: String,
        /// The signing key: its name here, or its public key.
        key: String,
        /// A short reason, published with the revocation.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Import a revocation or delegation made on the offline root's machine
    /// (the files `key revoke` and `key delegate` leave in DIR/keys/).
    /// Revocations take effect here at once.
    Import {
        /// `.revocation` or `.delegation` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the keys in this data directory.
    List {
        /// One JSON object per line (name, kind, public, fingerprint, encrypted).
        #[arg(long)]
        json: bool,
    },
    /// Show a key: public key, fingerprint, delegations.
    Show {
        /// The key's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CardCommand {
    /// Make and sign a card; print its line on stdout. It is also kept in
    /// DIR/cards/, so the next card made here is always the newer one.
    New(CardNewArgs),
    /// Check a card and show what it says: name, key, addresses, validity.
    Show(CardShowArgs),
    /// Exit 0 when a card is genuine and valid now; 1, naming why, when not.
    Check {
        /// A `tamizdat1...` line, a file holding one, or `-` for stdin.
        card: String,
    },
}

#[derive(Debug, Args)]
pub struct CardNewArgs {
    /// The root key that signs (its name in this data directory).
    #[arg(long, required_unless_present = "node", conflicts_with = "node")]
    pub root: Option<String>,
    /// Sign with this node's own key instead: a volunteer's card, for
    /// friends to join the network through this node. It names no outlet:
    /// `follow` of it follows nobody, it only joins through its addresses.
    #[arg(long)]
    pub node: bool,
    /// The outlet's name, as readers know it (1 to 64 bytes); for --node, a
    /// name for this node.
    #[arg(long)]
    pub name: String,
    /// A public address of a node that serves the outlet, as a multiaddr
    /// (`/ip4/203.0.113.7/tcp/4001/p2p/12D3...`, `/dns4/host/udp/4001/quic-v1`):
    /// 1 to 8. Give more than one transport, so a block on one leaves others.
    /// With --node, this node's addresses (`/p2p/` and its id are added).
    #[arg(long = "addr", value_name = "MULTIADDR", required = true)]
    pub addrs: Vec<String>,
    /// How long the card is valid: `90d`, `1y` (at most 2 years).
    #[arg(long, value_name = "DURATION", default_value = "1y")]
    pub valid_for: humantime::Duration,
    /// Also draw it as a QR code, on stderr (for a terminal) or, with
    /// --qr-svg, into an SVG file.
    #[arg(long)]
    pub qr: bool,
    /// Write the QR code as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    pub qr_svg: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassArgs,
}

#[derive(Debug, Args)]
pub struct CardShowArgs {
    /// A `tamizdat1...` line, a file holding one, or `-` for stdin.
    pub card: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also draw it as a QR code on stderr.
    #[arg(long)]
    pub qr: bool,
    /// Write the QR code as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    pub qr_svg: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// A file, or a directory holding an article.
    pub path: PathBuf,
    /// The key that signs: a signing key (or the root itself).
    #[arg(long)]
    pub key: String,
    /// Feed name (default: the delegation's feed, or `main`).
    #[arg(long)]
    pub feed: Option<String>,
    /// Title (default: the first heading of `index.md`, or the file name).
    #[arg(long)]
    pub title: Option<String>,
    /// Language tag, BCP 47 (`en`, `ru`, `fa-IR`), checked against the
    /// IANA registry; default `und` (undetermined).
    #[arg(long)]
    pub lang: Option<String>,
    /// A one-paragraph summary.
    #[arg(long)]
    pub summary: Option<String>,
    /// Hash of an earlier article this one corrects or retracts.
    #[arg(long, value_name = "HASH")]
    pub supersedes: Option<String>,
    /// Continue the feed after this article (its latest), when this machine
    /// does not know where the feed stands. The article must be in the store.
    #[arg(long, value_name = "HASH", conflicts_with = "first")]
    pub after: Option<String>,
    /// This is the feed's first article. Only for a feed that no machine has
    /// published to: a second article at the same place in a feed is seen by
    /// every reader as a sign that the key was stolen.
    #[arg(long)]
    pub first: bool,
    /// Refuse to sign when the text refers to a file the article lacks or
    /// to an image on another server (without it, each is a warning).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub pass: PassArgs,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Files to add; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also pin what is added under this name.
    #[arg(long, value_name = "NAME")]
    pub pin: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("out").required(true).args(["output", "html"])))]
pub struct ExportArgs {
    /// Write a bundle to FILE (`-` for standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write plain HTML pages, the files and the manifests to DIR instead
    /// (new or empty).
    #[arg(long, value_name = "DIR")]
    pub html: Option<PathBuf>,
    /// With --html: the pages' language (`en`, `ru`). Default: each
    /// article's page in the article's language where it can be, the index
    /// in the language most articles are in, English otherwise.
    #[arg(long, value_name = "LANG", requires = "html")]
    pub lang: Option<String>,
    /// Only this publisher's articles (root public key; repeatable).
    #[arg(long, value_name = "PUBKEY")]
    pub publisher: Vec<String>,
    /// Only articles signed on or after DATE (`2025-06-01`, or RFC 3339).
    #[arg(long, value_name = "DATE", conflicts_with = "since_seq")]
    pub since: Option<String>,
    /// Only articles at sequence number N or later in their feed.
    #[arg(long, value_name = "N")]
    pub since_seq: Option<u64>,
    /// This article (its manifest hash; repeatable). With --publisher or
    /// --since as well, articles matching either are exported.
    #[arg(long, value_name = "HASH")]
    pub manifest: Vec<String>,
    /// Write the running node's peer id and addresses into the bundle, as a
    /// way into the network for whoever imports it. Off by default: a bundle
    /// found on a seized USB stick would name this machine's addresses.
    #[arg(long, conflicts_with = "html")]
    pub with_addresses: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The bundle file (`-` for standard input).
    pub file: PathBuf,
    /// One JSON object per article or record on standard output (status:
    /// imported, present, old, unfollowed or refused; id; and what applies).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Volunteer nodes besides the publisher's.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub volunteers: u8,
    /// The port of the reader's gateway (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}
