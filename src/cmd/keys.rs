//! `key new|delegate|revoke|list|show`, and the key directory they share
//! with `publish`.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::repo::Repo;
use anyhow::{Context, Result, bail};
use tamizdat_sign::{
    Delegation, KeyFileInfo, KeyKind, PublicKey, Revocation, RevocationTarget, SecretKey, Signed,
    key_file_info, read_key_file, verify_delegation, write_key_file,
};
use zeroize::Zeroizing;

use crate::cli::{KeyCommand, PassArgs};

use super::state;

/// Longest passphrase file read.
const MAX_PASSPHRASE_FILE: u64 = 4096;
/// Pin holding delegations and revocations in the store.
pub const KEYS_PIN: &str = "keys";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `DATA_DIR/keys/`: `NAME.key` (secret, mode 0600), `NAME.delegation`
/// (a signing key's delegation), `revocations/ID.revocation`.
pub struct KeyDir {
    dir: PathBuf,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!("invalid key name {name:?}: 1 to 64 of A-Z a-z 0-9 . _ - (not starting with .)");
    }
    Ok(())
}

/// Reads a file of at most `max` bytes. It is opened without blocking, so a
/// FIFO or a device put in its place cannot hang the command, and it must be
/// a regular file within the limit, both judged on the opened descriptor
/// (what was checked is what is read).
fn read_checked(path: &Path, max: u64) -> Result<(Vec<u8>, fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if meta.len() > max {
        bail!(
            "{} is {} bytes, over the {max}-byte limit",
            path.display(),
            meta.len()
        );
    }
    // Room for all of it at once: a secret is never left behind in a
    // smaller buffer that grew.
    let mut bytes = Vec::with_capacity(usize::try_from(max)?.saturating_add(1));
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{} is over the {max}-byte limit", path.display());
    }
    Ok((bytes, meta))
}

/// [`read_checked`], for a file that is not secret.
pub(super) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    Ok(read_checked(path, max)?.0)
}

/// [`read_checked`], for a secret (a key, a passphrase): a warning on stderr
/// when group or others may read it.
pub(super) fn read_secret(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>> {
    let (bytes, meta) = read_checked(path, max)?;
    let bytes = Zeroizing::new(bytes);
    if meta.mode() & 0o077 != 0 {
        eprintln!(
            "tamizdat: warning: {} is a secret readable by others (mode {:03o}): \
             run `chmod 600 {}`",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        );
    }
    Ok(bytes)
}

/// Writes a new file durably with mode 0600; refuses to overwrite.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (does it exist already?)", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

impl KeyDir {
    pub fn open(data: &Path) -> Result<Self> {
        let dir = data.join("keys");
        fs::create_dir_all(dir.join("revocations"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        Ok(Self { dir })
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{name}.{ext}"))
    }

    /// The key file's bytes (zeroized when dropped) and its header.
    fn read(&self, name: &str) -> Result<(Zeroizing<Vec<u8>>, KeyFileInfo)> {
        check_name(name)?;
        let path = self.path(name, "key");
        if !path.exists() {
            bail!("no key named {name:?} (see `tamizdat key list`)");
        }
        let bytes = read_secret(&path, 1024)?;
        let info = key_file_info(&bytes).with_context(|| format!("key file {}", path.display()))?;
        Ok((bytes, info))
    }

    fn info(&self, name: &str) -> Result<KeyFileInfo> {
        Ok(self.read(name)?.1)
    }

    /// Loads and decrypts a secret key.
    pub fn load(&self, name: &str, pass: &PassArgs) -> Result<(KeyKind, SecretKey)> {
        let (bytes, info) = self.read(name)?;
        let passphrase = if info.encrypted {
            if pass.no_passphrase {
                bail!("key {name:?} is encrypted: give --passphrase-file or type it");
            }
            Some(existing_passphrase(pass, name)?)
        } else {
            None
        };
        read_key_file(&bytes, passphrase.as_deref().map(String::as_str))
            .with_context(|| format!("key file {}", self.path(name, "key").display()))
    }

    /// The delegation stored for a signing key.
    pub fn delegation(&self, name: &str) -> Result<Signed<Delegation>> {
        let path = self.path(name, "delegation");
        let bytes = read_bounded(&path, 1024)
            .with_context(|| format!("signing key {name:?} has no delegation"))?;
        verify_delegation(&bytes).with_context(|| format!("delegation {}", path.display()))
    }

    fn create(
        &self,
        name: &str,
        key: &SecretKey,
        kind: KeyKind,
        passphrase: Option<&str>,
    ) -> Result<()> {
        check_name(name)?;
        if self.path(name, "key").exists() {
            bail!("a key named {name:?} exists already");
        }
        let bytes = Zeroizing::new(write_key_file(key, kind, passphrase)?);
        write_new(&self.path(name, "key"), &bytes)
    }

    fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".key").map(str::to_owned)
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

fn read_passphrase_file(path: &Path) -> Result<Zeroizing<String>> {
    let bytes = read_secret(path, MAX_PASSPHRASE_FILE)?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("passphrase file {} is not UTF-8", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("passphrase file {} is empty", path.display());
    }
    Ok(Zeroizing::new(line.to_owned()))
}

fn existing_passphrase(pass: &PassArgs, name: &str) -> Result<Zeroizing<String>> {
    if let Some(f) = &pass.passphrase_file {
        return read_passphrase_file(f);
    }
    let p = rpassword::prompt_password(format!("Passphrase for key {name:?}: ")).context(
        "no terminal to ask for the passphrase: use --passphrase-file FILE (or --no-passphrase)",
    )?;
    Ok(Zeroizing::new(p))
}

fn new_passphrase(
    no_passphrase: bool,
    file: Option<&Path>,
    name: &str,
) -> Result<Option<Zeroizing<String>>> {
    if no_passphrase {
        return Ok(None);
    }
    if let Some(f) = file {
        return read_passphrase_file(f).map(Some);
    }
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt).map(Zeroizing::new).context(
            "no terminal to ask for a passphrase: use --passphrase-file FILE or --no-passphrase",
        )
    };
    let first = ask(format!("New passphrase for key {name:?}: "))?;
    if first.is_empty() {
        bail!("empty passphrase: use --no-passphrase to store the key unencrypted");
    }
    let second = ask("Repeat the passphrase: ".into())?;
    if *first != *second {
        bail!("the two passphrases differ; nothing was created");
    }
    Ok(Some(first))
}

fn parse_duration(s: &str) -> Result<u64> {
    let d: Duration = humantime::parse_duration(s)
        .with_context(|| format!("invalid duration {s:?}: try 90d, 12h or 1y"))?;
    if d.as_secs() == 0 {
        bail!("a delegation must last at least a second");
    }
    Ok(d.as_secs())
}

fn stamp(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

pub fn run(data: &Path, store: impl Fn() -> Result<Repo>, cmd: KeyCommand) -> Result<ExitCode> {
    let keys = KeyDir::open(data)?;
    match cmd {
        KeyCommand::New { name, pass } => {
            let key = SecretKey::generate()?;
            let passphrase =
                new_passphrase(pass.no_passphrase, pass.passphrase_file.as_deref(), &name)?;
            keys.create(
                &name,
                &key,
                KeyKind::Root,
                passphrase.as_deref().map(String::as_str),
            )?;
            let pk = key.public();
            // Its feeds start here: the first article needs no proof of place.
            super::heads::mark_created(&keys.dir, &pk)?;
            println!("{pk}");
            eprintln!(
                "root key {name:?} created, fingerprint {}. Give readers the public key above; keep {} offline.",
                pk.fingerprint(),
                keys.path(&name, "key").display()
            );
        }
        KeyCommand::Delegate {
            root,
            name,
            valid_for,
            feed,
            pass,
            new_passphrase_file,
        } => {
            let secs = parse_duration(&valid_for)?;
            if pass.passphrase_file.is_some()
                && new_passphrase_file.is_none()
                && !pass.no_passphrase
            {
                bail!(
                    "give the new signing key its own passphrase with --new-passphrase-file: \
                     it lives online and must not unlock the root"
                );
            }
            if let Some(f) = &feed {
                tamizdat_sign::check_feed_name("delegation", f)?;
            }
            check_name(&name)?;
            if keys.path(&name, "key").exists() {
                bail!("a key named {name:?} exists already");
            }
            let (kind, root_key) = keys.load(&root, &pass)?;
            if kind != KeyKind::Root {
                bail!("{root:?} is a signing key; only a root key can delegate");
            }
            let signing = SecretKey::generate()?;
            let start = now();
            let d = Signed::sign(
                Delegation {
                    root: root_key.public(),
                    key: signing.public(),
                    not_before: start,
                    not_after: start.saturating_add(secs),
                    feed,
                },
                &root_key,
            )?;
            let new_pass =
                new_passphrase(pass.no_passphrase, new_passphrase_file.as_deref(), &name)?;
            let same_as_root = match (&new_pass, &pass.passphrase_file) {
                (Some(new), Some(root_file)) => **new == *read_passphrase_file(root_file)?,
                _ => false,
            };
            if same_as_root {
                bail!("the signing key's passphrase must differ from the root's");
            }
            keys.create(
                &name,
                &signing,
                KeyKind::Signing,
                new_pass.as_deref().map(String::as_str),
            )?;
            write_new(&keys.path(&name, "delegation"), d.bytes())?;
            let store = store()?;
            let added = store.add_bytes(d.bytes())?;
            store.pin(KEYS_PIN, &added.hash)?;
            println!("{}", signing.public());
            eprintln!(
                "signing key {name:?} delegated by {root:?} until {}; delegation {}",
                stamp(d.body().not_after),
                added.hash
            );
        }
        KeyCommand::Revoke {
            root,
            key,
            reason,
            pass,
        } => {
            let target: PublicKey = match key.parse() {
                Ok(pk) => pk,
                Err(_) => {
                    keys.info(&key)
                        .with_context(|| format!("{key:?} is neither a key name nor a public key"))?
                        .public
                }
            };
            let (kind, root_key) = keys.load(&root, &pass)?;
            if kind != KeyKind::Root {
                bail!("{root:?} is a signing key; only a root key can revoke");
            }
            let rev = Signed::sign(
                Revocation {
                    root: root_key.public(),
                    target: RevocationTarget::Key(target),
                    created: now(),
                    reason,
                },
                &root_key,
            )?;
            let store = store()?;
            let added = store.add_bytes(rev.bytes())?;
            store.pin(KEYS_PIN, &added.hash)?;
            let path = keys
                .dir
                .join("revocations")
                .join(format!("{}.revocation", added.hash));
            if !path.exists() {
                write_new(&path, rev.bytes())?;
            }
            // A running node applies it to the feed state it holds and tells
            // the publisher's followers; otherwise it is applied here.
            if store.announce_key(rev.bytes())? {
                eprintln!("announced to the publisher's followers by the running node");
            } else {
                let mut trust = state::load(&store)?;
                trust.add_revocation(&rev)?;
                state::save(&store, &trust)?;
            }
            println!("{}", added.hash);
            eprintln!(
                "signing key {target} revoked here. Carry {} to your online nodes and run \
                 `tamizdat key import` there.",
                path.display()
            );
        }
        KeyCommand::Import { files } => {
            let store = store()?;
            let mut trust = state::load(&store)?;
            for file in files {
                let bytes = read_bounded(&file, 1024)?;
                if let Ok(rev) = Signed::<Revocation>::decode(&bytes) {
                    let new = trust
                        .add_revocation(&rev)
                        .with_context(|| format!("revocation {}", file.display()))?;
                    let hash = keep_key_object(&store, rev.bytes())?;
                    let RevocationTarget::Key(k) = rev.body().target else {
                        eprintln!("{}: revocation of a delegation {hash}", file.display(),);
                        continue;
                    };
                    eprintln!(
                        "{}: signing key {k} revoked by {}{}",
                        file.display(),
                        rev.body().root.fingerprint(),
                        if new { "" } else { " (already known)" }
                    );
                } else {
                    let d = verify_delegation(&bytes).with_context(|| {
                        format!(
                            "{} is neither a valid revocation nor a delegation",
                            file.display()
                        )
                    })?;
                    let hash = keep_key_object(&store, d.bytes())?;
                    eprintln!(
                        "{}: delegation {hash} from {} to {}",
                        file.display(),
                        d.body().root.fingerprint(),
                        d.body().key.fingerprint()
                    );
                }
            }
            // A running node applied each as it was announced; its feed state
            // must not be replaced with this copy.
            if let Repo::Local(_) = store {
                state::save(&store, &trust)?;
            }
        }
        KeyCommand::List { json } => {
            for name in keys.names()? {
                if json {
                    let line = match keys.info(&name) {
                        Ok(i) => serde_json::json!({
                            "name": name,
                            "kind": kind_name(i.kind),
                            "public": i.public.to_string(),
                            "fingerprint": i.public.fingerprint(),
                            "encrypted": i.encrypted,
                        }),
                        Err(e) => serde_json::json!({ "name": name, "error": format!("{e:#}") }),
                    };
                    println!("{line}");
                    continue;
                }
                match keys.info(&name) {
                    Ok(i) => println!(
                        "{name}  {}  {}  {}{}",
                        kind_name(i.kind),
                        i.public,
                        i.public.fingerprint(),
                        if i.encrypted { "" } else { "  unencrypted" }
                    ),
                    Err(e) => println!("{name}  unreadable: {e:#}"),
                }
            }
        }
        KeyCommand::Show { name } => {
            let info = keys.info(&name)?;
            println!("name         {name}");
            println!("kind         {}", kind_name(info.kind));
            println!("public key   {}", info.public);
            println!("fingerprint  {}", info.public.fingerprint());
            println!("encrypted    {}", if info.encrypted { "yes" } else { "no" });
            let trust = state::load(&store()?)?;
            let mut shown = 0;
            for other in keys.names()? {
                let Ok(d) = keys.delegation(&other) else {
                    continue;
                };
                let b = d.body();
                if b.root != info.public && b.key != info.public {
                    continue;
                }
                let revoked = trust.revoked(&b.root, &b.key, Some(&d.id())).is_some();
                println!(
                    "delegation   {} -> {} ({other}) from {} until {}{}{}",
                    b.root.fingerprint(),
                    b.key.fingerprint(),
                    stamp(b.not_before),
                    stamp(b.not_after),
                    b.feed
                        .as_ref()
                        .map(|f| format!(", feed {f}"))
                        .unwrap_or_default(),
                    if revoked { ", REVOKED" } else { "" }
                );
                shown += 1;
            }
            if shown == 0 {
                println!("delegation   none");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps a checked revocation or delegation under the `keys` pin, where
/// followers fetch it from. Through a running node it is also applied
/// (a revocation) and announced; without one, the caller applies a
/// revocation to the feed state it saves.
pub(super) fn keep_key_object(store: &Repo, envelope: &[u8]) -> Result<tamizdat_store::Hash> {
    let added = store.add_bytes(envelope)?;
    store.pin(KEYS_PIN, &added.hash)?;
    store.announce_key(envelope)?;
    Ok(added.hash)
}

fn kind_name(k: KeyKind) -> &'static str {
    match k {
        KeyKind::Root => "root",
        KeyKind::Signing => "signing",
    }
}

pub fn format_time(t: u64) -> String {
    stamp(t)
}
