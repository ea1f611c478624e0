//! The intent log of a SQLite journal: what a process has to write, durable before the store
//! has it.
//!
//! A run must not send a request before its attempt is durable. Waiting for an SQLite commit
//! before every request cost a run at concurrency 1 about 40% of its speed (a commit is a
//! transaction's locks, a B-tree and two to four pages of the write-ahead log). So a process
//! appends each group of writes to a file of its own first — durable against the process dying
//! as a commit with `synchronous = NORMAL` is; the groups of runs that go on at the same moment
//! with one `write(2)` — and its writer thread commits the groups to SQLite behind the runs, many
//! at a time. Each commit records in the `intents` table
//! how far the store has applied the log (a sequence number every group carries), in the same
//! transaction as the groups.
//!
//! Files, beside the journal `PATH`: `PATH.intent.TOKEN`, holding the process's owner id and
//! locked (`flock`) for as long as the process has the journal open; and `PATH.intent.TOKEN.N`,
//! the groups, a new `N` past [`ROTATE_AT`] bytes, a file deleted once the store has every group in it. A journal closed
//! cleanly leaves no file. Whoever opens the journal next writes the groups of a log whose lock
//! is free (its process died) into the store, past what the store had, then deletes it: a
//! resume sees every attempt the dead process made.
//!
//! A frame: the payload's length (`u32`, little-endian), the group's sequence number (`u64`,
//! little-endian), then the group as JSON (an array of [`Write`]s, as `journal/write_json.rs`
//! writes it). A torn last frame (a power
//! cut) ends the log there.

use super::{JournalError, Write};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write as _};
use std::path::{Path, PathBuf};

/// A log file is closed and the next one begun past this many bytes.
const ROTATE_AT: u64 = 4 << 20;

/// A frame's header: the payload's length and the group's sequence number.
const HEADER: usize = 12;

/// The group `writes` as a frame, its sequence number 0 until [`set_seq`] gives it one.
pub(super) fn frame(writes: &[Write]) -> Result<Vec<u8>, JournalError> {
    let mut frame = vec![0; HEADER];
    super::write_json::write_all(writes, &mut frame);
    let len = u32::try_from(frame.len() - HEADER)
        .map_err(|_| JournalError::Store("a group of writes over 4 GiB cannot be written down".into()))?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// How deep a group read back may nest: what serde_json reads (128), where the group puts it
/// (3 levels down), and a margin. A deeper one is not flowrun's (and is not parsed: the
/// parser's stack grows with the depth).
const MOST_NESTING: usize = 160;

/// The group a frame's payload holds; `None` when it cannot be read.
fn read_group(payload: &[u8]) -> Option<Vec<Write>> {
    use serde::Deserialize;
    if nesting(payload) > MOST_NESTING {
        return None;
    }
    // A value as deep as serde_json reads (a response body) is written 3 levels down: read with
    // its default limit of 128, it could not be read back.
    let mut reader = serde_json::Deserializer::from_slice(payload);
    reader.disable_recursion_limit();
    let writes = Vec::<Write>::deserialize(&mut reader).ok()?;
    reader.end().ok()?;
    Some(writes)
}

/// How deep the JSON text `bytes` nests (brackets outside strings).
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut most, mut text, mut escaped) = (0usize, 0, false, false);
    for &b in bytes {
        match (text, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => text = false,
            (true, false, _) => {}
            (false, _, b'"') => text = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                most = most.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    most
}

/// Gives `frame` its sequence number.
pub(super) fn set_seq(frame: &mut [u8], seq: u64) {
    frame[4..HEADER].copy_from_slice(&seq.to_le_bytes());
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> JournalError {
    JournalError::Store(format!("cannot {what} the intent log `{}`: {e}", path.display()))
}

/// Where the logs of the journal at `db` are: `db.intent.`
fn prefix(db: &str) -> String {
    format!("{db}.intent.")
}

/// This process's intent log.
pub(super) struct IntentLog {
    /// The journal file's permissions, which the log's files take.
    mode: u32,
    /// `PATH.intent.TOKEN`.
    lock_path: PathBuf,
    token: String,
    /// The lock that tells other processes this log is in use.
    _lock: File,
    file: File,
    number: u32,
    len: u64,
    /// The last sequence number in the file being written.
    last: u64,
    /// Files written to the end, with the last sequence number of each.
    full: Vec<(u32, u64)>,
}

impl IntentLog {
    /// A new log for the journal at `db`.
    pub(super) fn create(db: &str) -> Result<IntentLog, JournalError> {
        // The journal file's own permissions: the log holds what the file will.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(db).map_or(0o600, |m| m.permissions().mode() & 0o666);
        let token = format!("{:016x}", fastrand::u64(..));
        let lock_path = PathBuf::from(format!("{}{token}", prefix(db)));
        // Locked before it has its name: a process opening the journal meanwhile never finds
        // it unlocked and takes it for a dead process's.
        let new = suffixed(&lock_path, ".new");
        let mut lock = open_new(&new, mode)?;
        lock.try_lock().map_err(|e| io_error("lock", &new, e.into()))?;
        // Whose writes the log holds: written back, they are this process's (its runs' writes
        // go in only while it owns them).
        lock.write_all(super::owner_here().as_bytes())
            .map_err(|e| io_error("write", &new, e))?;
        std::fs::rename(&new, &lock_path).map_err(|e| io_error("create", &lock_path, e))?;
        Ok(IntentLog {
            file: open_new(&data_path(&lock_path, 0), mode)?,
            mode,
            lock_path,
            token,
            _lock: lock,
            number: 0,
            len: 0,
            last: 0,
            full: Vec::new(),
        })
    }

    /// The log's token, its key in the `intents` table.
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// Appends `frames`, whose last sequence number is `last`.
    pub(super) fn append(&mut self, frames: &[u8], last: u64) -> Result<(), JournalError> {
        if self.len >= ROTATE_AT {
            let next = data_path(&self.lock_path, self.number + 1);
            self.file = open_new(&next, self.mode)?;
            self.full.push((self.number, self.last));
            self.number += 1;
            self.len = 0;
        }
        let path = || data_path(&self.lock_path, self.number);
        if let Err(e) = self.file.write_all(frames) {
            // Part of it may be in the file: cut back, so that what the file holds is whole
            // frames only.
            let _ = self.file.set_len(self.len);
            return Err(io_error("write", &path(), e));
        }
        self.len += frames.len() as u64;
        self.last = last;
        Ok(())
    }

    /// The store has every group up to `seq`: the files they filled go.
    pub(super) fn applied(&mut self, seq: u64) {
        let lock_path = &self.lock_path;
        self.full
            .retain(|&(number, last)| !(last <= seq && remove(&data_path(lock_path, number))));
    }

    /// Deletes the log's files, the store having every group in them (the journal closes);
    /// whether they are all gone. The lock file goes last (see [`DeadLog::remove`]).
    pub(super) fn remove_files(&self) -> bool {
        let numbers = self.full.iter().map(|(n, _)| *n).chain([self.number]);
        remove_all(numbers.map(|n| data_path(&self.lock_path, n)))
    }

    /// Deletes the lock file: the last step of closing the log.
    pub(super) fn remove_lock(&self) {
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Deletes every one of `paths`, whether or not one before it went; whether they are all gone.
fn remove_all(paths: impl Iterator<Item = PathBuf>) -> bool {
    paths.fold(true, |all, path| remove(&path) & all)
}

/// Deletes `path`; whether it is gone.
fn remove(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn data_path(lock_path: &Path, number: u32) -> PathBuf {
    suffixed(lock_path, &format!(".{number}"))
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn open_new(path: &Path, mode: u32) -> Result<File, JournalError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_error("create", path, e))
}

/// The log of a process that died with the journal open: its lock taken, its groups to write.
pub(super) struct DeadLog {
    lock_path: PathBuf,
    token: String,
    /// The process that wrote it, as [`super::owner_here`] named it.
    owner: String,
    /// The journal file's owner, whose files alone are read.
    uid: u32,
    _lock: File,
    /// Its files, in order.
    files: Vec<PathBuf>,
}

/// How long a process opening the journal waits for another that is writing back a dead
/// process's log (see [`dead_logs`]).
const WRITE_BACK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The names in the directory of the journal at `db` that begin with `db.intent.`, and the
/// directory and that beginning.
fn listed(db: &str) -> Option<(PathBuf, String, Vec<String>)> {
    let prefix = PathBuf::from(prefix(db));
    let dir = match prefix.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let start = prefix.file_name()?.to_str()?.to_string();
    // A directory that cannot be listed has no log this process could write back.
    let names = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(&start))
        .collect();
    Some((dir, start, names))
}

/// What a process writing a log back adds to its lock file: others opening the journal wait
/// for it rather than take the log for a live process's.
const WRITING_BACK: &str = "\nwriting back";

/// Opens `path` only when it is a regular file of `uid` (the journal file's owner): a file
/// another user put beside the journal is not written back, and a pipe there never blocks
/// an open.
fn open_own(path: &Path, uid: u32, write: bool) -> Option<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && meta.uid() == uid).then_some(file)
}

/// Takes the lock of the log at `lock_path` when its process is gone (`None` while it lives),
/// marking it as being written back; the lock and the process that wrote the log. A log
/// another process is writing back is waited for, a while: that process deletes it, or
/// leaves it (failing) to this one.
fn take_lock(lock_path: &Path, uid: u32) -> Result<Option<(File, String)>, JournalError> {
    let Some(mut lock) = open_own(lock_path, uid, true) else {
        return Ok(None);
    };
    let read = |lock: &mut File| {
        let mut text = String::new();
        let _ = std::io::Seek::rewind(lock);
        let _ = lock.take(4096).read_to_string(&mut text);
        text
    };
    let text = read(&mut lock);
    let owner = text.lines().next().unwrap_or_default().to_string();
    if lock.try_lock().is_err() {
        // Another journal of this process holds it (written as `owner_here()` names it).
        let mine = owner == super::owner_here();
        if mine || super::alive_elsewhere(&owner).is_some() {
            return Ok(None);
        }
        // Held, by a process this one cannot see (another PID namespace) or one writing the
        // log back, which marks it at once.
        let started = std::time::Instant::now();
        while lock.try_lock().is_err() {
            let marked = read(&mut lock).contains(WRITING_BACK);
            if !marked && started.elapsed() > std::time::Duration::from_millis(100) {
                return Ok(None);
            }
            if started.elapsed() > WRITE_BACK_WAIT {
                return Err(JournalError::Store(format!(
                    "another flowrun process has been writing back the intent log `{}` for {} s; try again",
                    lock_path.display(),
                    WRITE_BACK_WAIT.as_secs()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    // Written back and deleted meanwhile: the name is gone, or names another log's file.
    use std::os::unix::fs::MetadataExt;
    let (Ok(held), Ok(named)) = (lock.metadata(), std::fs::metadata(lock_path)) else {
        return Ok(None);
    };
    if held.ino() != named.ino() || held.dev() != named.dev() {
        return Ok(None);
    }
    let _ = std::io::Seek::seek(&mut lock, std::io::SeekFrom::End(0));
    let _ = lock.write_all(WRITING_BACK.as_bytes());
    Ok(Some((lock, owner)))
}

/// The logs beside the journal at `db` whose process is gone. A lock file left by a process
/// that died before it gave it its name goes.
pub(super) fn dead_logs(db: &str) -> Result<Vec<DeadLog>, JournalError> {
    let Some((dir, start, names)) = listed(db) else {
        return Ok(Vec::new());
    };
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(db).map(|m| m.uid()) else {
        return Ok(Vec::new());
    };
    let is_token = |t: &str| t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit());
    // A minute old and unlocked: its process died before it named it (a process creating
    // one names it at once).
    let stale = |f: &File| {
        f.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
            t.elapsed()
                .is_ok_and(|age| age > std::time::Duration::from_secs(60))
        })
    };
    for name in &names {
        if let Some(token) = name.strip_prefix(&start).and_then(|r| r.strip_suffix(".new"))
            && is_token(token)
            && let Some(file) = open_own(&dir.join(name), uid, false)
            && stale(&file)
            && file.try_lock().is_ok()
        {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    let mut tokens: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix(&start))
        .filter(|t| is_token(t))
        .collect();
    tokens.sort();
    let mut dead = Vec::new();
    for token in tokens {
        let lock_path = dir.join(format!("{start}{token}"));
        let Some((lock, owner)) = take_lock(&lock_path, uid)? else {
            continue;
        };
        // Listed again now that the log is this process's: another may have deleted files.
        let data = format!("{start}{token}.");
        let mut numbered: Vec<(u32, PathBuf)> = listed(db)
            .map(|(_, _, names)| names)
            .unwrap_or_default()
            .iter()
            .filter_map(|name| Some((name.strip_prefix(&data)?.parse().ok()?, dir.join(name))))
            .collect();
        numbered.sort();
        dead.push(DeadLog {
            lock_path,
            token: token.to_string(),
            owner,
            uid,
            _lock: lock,
            files: numbered.into_iter().map(|(_, p)| p).collect(),
        });
    }
    Ok(dead)
}

impl DeadLog {
    /// The log's token, its key in the `intents` table.
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// The process that wrote the log.
    pub(super) fn owner(&self) -> &str {
        &self.owner
    }

    /// Calls `each` with every group of the log, in order, with its sequence number; a torn
    /// frame ends the log.
    pub(super) fn groups(
        &self,
        mut each: impl FnMut(u64, Vec<Write>) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        for path in &self.files {
            // Gone (written back meanwhile), or not a file of the journal's owner.
            let Some(file) = open_own(path, self.uid, false) else {
                continue;
            };
            let size = file.metadata().map_err(|e| io_error("read", path, e))?.len();
            let mut reader = BufReader::new(file);
            let mut at = 0u64;
            loop {
                let mut header = [0u8; HEADER];
                if reader.read_exact(&mut header).is_err() {
                    // The end of the file, or a torn header: the next file (a new one is
                    // begun only after a whole frame) or the end of the log.
                    break;
                }
                let len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as u64;
                let seq = u64::from_le_bytes(header[4..].try_into().unwrap_or_default());
                // Zeros where a frame was to be (a power cut before the data reached the disk).
                if len == 0 && seq == 0 {
                    return Ok(());
                }
                at += HEADER as u64;
                // Longer than what is left: torn (and never read into memory).
                if len > size.saturating_sub(at) {
                    return Ok(());
                }
                let mut payload = vec![0; len as usize];
                if reader.read_exact(&mut payload).is_err() {
                    return Ok(());
                }
                at += len;
                match read_group(&payload) {
                    Some(writes) => each(seq, writes)?,
                    // Zeros (a power cut): the log ends there.
                    None if payload.iter().all(|b| *b == 0) => return Ok(()),
                    // A whole frame that cannot be read: not skipped (the groups after it
                    // would be written back without it), the log is kept.
                    None => {
                        return Err(JournalError::Store(format!(
                            "`{}` holds a group of writes this flowrun cannot read (frame {seq}); the log is kept: \
                             open the journal with the flowrun that wrote it, or move the log away to go on \
                             without what it holds (attempts a resume would then not know were sent)",
                            path.display()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes the log's files (the store has every group in them); whether they are all
    /// gone. Until they are, the store keeps how far it has them.
    pub(super) fn remove_files(&self) -> bool {
        remove_all(self.files.iter().cloned())
    }

    /// Deletes the lock file: the last step, after the store forgot the log.
    pub(super) fn remove(self) {
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// A journal's intent log and what came of the groups that went ahead of the store.
pub(super) struct Ahead {
    log: IntentLog,
    /// Frames not in the log yet, appended all together by the first run that needs its own
    /// there (see [`Ahead::write_through`]): groups queued (nothing waits for them), and
    /// groups of runs that went ahead at the same moment.
    buffered: Vec<u8>,
    /// The last sequence number given.
    seq: u64,
    /// Every group up to this sequence number is in the log or in the store.
    durable: u64,
    /// Every group up to this sequence number went through the store (in it, or refused).
    stored: u64,
    /// Runs whose groups the store refused after they went ahead (another process took the
    /// run over): their next group is refused before anything more is sent.
    refused: std::collections::HashMap<String, JournalError>,
    /// The groups themselves, by sequence number, until their runs settle them (see
    /// `Inner::settle`): a run's refusal may be forgotten meanwhile (another run of its id
    /// starting), its group's is not.
    refused_groups: std::collections::HashMap<u64, JournalError>,
    /// The store failed a transaction with groups of the log in it: nothing more goes ahead
    /// or into the store, and the log stays for the next process that opens the journal.
    broken: Option<JournalError>,
    /// The log could not be written to (a full disk): runs wait for the store again, and
    /// what the log holds stays valid.
    failed: Option<JournalError>,
}

impl Ahead {
    pub(super) fn new(log: IntentLog) -> Ahead {
        Ahead {
            log,
            buffered: Vec::new(),
            seq: 0,
            durable: 0,
            stored: 0,
            refused: Default::default(),
            refused_groups: Default::default(),
            broken: None,
            failed: None,
        }
    }

    /// Why a group of `run` cannot go ahead now, if it cannot.
    pub(super) fn refusal(&self, run: &str) -> Option<JournalError> {
        self.broken.clone().or_else(|| self.refused.get(run).cloned())
    }

    /// Gives `frame` the next sequence number and keeps it for the log (at once once the store
    /// failed: nothing else would write it down). The sequence number; 0 once the log failed
    /// (the store alone will have the group).
    pub(super) fn enter(&mut self, mut frame: Vec<u8>) -> u64 {
        if self.failed.is_some() {
            return 0;
        }
        self.seq += 1;
        set_seq(&mut frame, self.seq);
        self.buffered.extend_from_slice(&frame);
        if self.broken.is_some() {
            let _ = self.append_buffered();
        }
        self.seq
    }

    /// Whether the store went through the group `seq` (it has it, or refused it).
    pub(super) fn stored(&self, seq: u64) -> bool {
        self.stored >= seq
    }

    /// Makes sure the group `seq` is in the log (or already in the store), with every frame
    /// kept before it: one `write(2)` for all the groups entered since the last.
    pub(super) fn write_through(&mut self, seq: u64) -> Result<(), JournalError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.durable >= seq {
            return Ok(());
        }
        self.append_buffered()
    }

    /// Appends the frames kept to the log. They go either way: a log that cannot be written to
    /// is given up (the store still takes them), and keeping them would only grow.
    fn append_buffered(&mut self) -> Result<(), JournalError> {
        if self.buffered.is_empty() {
            self.durable = self.seq;
            return Ok(());
        }
        let result = self.log.append(&self.buffered, self.seq);
        self.buffered.clear();
        match &result {
            Ok(()) => self.durable = self.seq,
            Err(e) => self.failed = Some(e.clone()),
        }
        result
    }

    /// Makes the log's file refuse writes (a full disk), for tests.
    #[cfg(test)]
    pub(super) fn fail_for_test(&mut self) {
        let path = data_path(&self.log.lock_path, self.log.number);
        self.log.file = File::open(path).expect("the log's file");
    }

    /// Whether the log could not be written to: runs wait for the store.
    pub(super) fn failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The write that records, in the transaction of the groups up to `last`, that the store
    /// has them.
    pub(super) fn marker(&self, last: u64) -> Option<Write> {
        (last > 0 && self.broken.is_none()).then(|| Write::Applied {
            token: self.log.token().to_string(),
            seq: Some(last),
        })
    }

    /// Whether the store failed a transaction of the log's groups.
    pub(super) fn broken(&self) -> Option<&JournalError> {
        self.broken.as_ref()
    }

    /// The store failed a transaction with groups of the log in it. The frames kept go into
    /// the log: the next process that opens the journal has them.
    pub(super) fn break_on(&mut self, e: JournalError) {
        self.broken = Some(e);
        if !self.buffered.is_empty() {
            let _ = self.append_buffered();
        }
    }

    /// The store refused the group `seq` of `run`, which went ahead.
    pub(super) fn refuse(&mut self, run: &str, seq: u64, e: JournalError) {
        self.refused_groups.insert(seq, e.clone());
        self.refused.insert(run.to_string(), e);
    }

    /// Why the store refused the group `seq`, if it did (told once).
    pub(super) fn take_refused(&mut self, seq: u64) -> Option<JournalError> {
        if self.refused_groups.is_empty() {
            return None;
        }
        self.refused_groups.remove(&seq)
    }

    /// Forgets a refusal of `run` (its run ended); whether there was one.
    pub(super) fn forget(&mut self, run: &str) {
        self.refused.remove(run);
    }

    /// The store has every group up to `last`: the frames kept for them and the files they
    /// filled go.
    pub(super) fn applied(&mut self, last: u64) {
        let mut at = 0;
        while at + HEADER <= self.buffered.len() {
            let seq = u64::from_le_bytes(self.buffered[at + 4..at + HEADER].try_into().unwrap_or_default());
            if seq > last {
                break;
            }
            let len = u32::from_le_bytes(self.buffered[at..at + 4].try_into().unwrap_or_default());
            at += HEADER + len as usize;
        }
        self.buffered.drain(..at.min(self.buffered.len()));
        // The store took the groups in order: every one up to `last` is in it, or was refused
        // (the refusal is recorded before this).
        self.durable = self.durable.max(last);
        self.stored = self.stored.max(last);
        self.log.applied(last);
    }

    /// Closes the log of a journal whose every group is in the store: its files go, then
    /// (once `forget` took its row out of the store) its lock file.
    pub(super) fn close(self, forget: impl FnOnce(Write) -> Result<(), JournalError>) {
        if self.broken.is_some() || !self.log.remove_files() {
            return;
        }
        let token = self.log.token().to_string();
        if forget(Write::Applied { token, seq: None }).is_ok() {
            self.log.remove_lock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::sqlite::tests::{sent, started};
    use crate::journal::{Journal, SqliteStore, Store};
    use futures_util::FutureExt;

    fn journal(db: &Path) -> Journal {
        let store = SqliteStore::open(db.to_str().unwrap()).unwrap();
        Journal::new(Box::new(store)).with_writer().unwrap()
    }

    /// A journal in `dir` with its writer and intent log, and run `r1` started: the journal
    /// file's path and the journal.
    fn running(dir: &Path) -> (PathBuf, Journal) {
        let db = dir.join("j.db");
        let open = journal(&db);
        open.commit(started("r1")).unwrap();
        (db, open)
    }

    /// Writes `writes` ahead of the store: the future ends when they are durable.
    fn going(journal: &Journal, writes: Vec<Write>) -> crate::journal::AheadDone {
        journal
            .durable_ahead(writes)
            .unwrap_or_else(|(e, _)| Box::pin(std::future::ready(Err(e))))
    }

    /// Writes `writes` ahead of the store (the future is ready at once).
    fn ahead(journal: &Journal, writes: Vec<Write>) -> Result<(), JournalError> {
        let mut done = going(journal, writes);
        at_once(&mut done).expect("ready at once")
    }

    /// What `done` ends with when it does not wait for the store: it lets the other runs of
    /// the moment go first (one poll), then writes the log.
    fn at_once<F: Future + Unpin>(done: &mut F) -> Option<F::Output> {
        done.now_or_never().or_else(|| done.now_or_never())
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(".intent."))
            .collect();
        names.sort();
        names
    }

    fn attempts(db: &Path, run: &str) -> Vec<(String, u32)> {
        let store = SqliteStore::open(db.to_str().unwrap()).unwrap();
        let detail = store.run(run).unwrap().unwrap();
        detail
            .attempts
            .iter()
            .map(|a| (a.step.clone(), a.number))
            .collect()
    }

    /// A journal in `dir` whose run `r1` another process took over (`runs resume --force`).
    fn taken_over(dir: &Path) -> Journal {
        let journal = journal(&dir.join("j.db"));
        journal.commit(started("r1")).unwrap();
        journal
            .commit(Write::Claimed {
                run: "r1".into(),
                owner: "elsewhere".into(),
            })
            .unwrap();
        journal
    }

    #[test]
    fn a_run_the_store_refused_after_its_group_went_ahead_is_refused_its_next_group() {
        let dir = tempfile::tempdir().unwrap();
        let journal = taken_over(dir.path());
        // The group went ahead: the run was not told yet.
        assert_eq!(ahead(&journal, vec![sent("r1", "route", 1)]), Ok(()));
        journal.flush().unwrap();
        // The store refused it: the next group is refused before anything more is sent.
        let refused = ahead(&journal, vec![sent("r1", "route", 2)])
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("run `r1` was taken over by another flowrun process"),
            "{refused}"
        );
        // Another run goes on.
        journal.commit(started("r2")).unwrap();
        assert_eq!(ahead(&journal, vec![sent("r2", "route", 1)]), Ok(()));
    }

    #[test]
    fn a_group_the_store_refused_while_its_run_let_others_go_first_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let journal = taken_over(dir.path());
        // The run enters its group and lets the others go first; meanwhile the writer takes
        // the group into the store, which refuses it.
        let mut done = going(&journal, vec![sent("r1", "route", 1)]);
        assert!(done.as_mut().now_or_never().is_none());
        journal.flush().unwrap();
        // Another run of the id starting in this process forgets the run's refusal: the
        // group's own stays.
        journal.forget_refusal("r1");
        let refused = done
            .as_mut()
            .now_or_never()
            .expect("settled")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("was taken over"), "{refused}");
    }

    #[test]
    fn a_group_the_log_could_not_take_while_the_store_wrote_it_waits_for_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (db, journal) = running(dir.path());
        // The writer's next transaction waits: another connection holds the write lock.
        let lock = rusqlite::Connection::open(&db).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        journal.fail_intent_log_for_test();
        let mut done = going(&journal, vec![sent("r1", "route", 1)]);
        assert!(done.as_mut().now_or_never().is_none());
        // The writer takes the group (after gathering for 2 ms) and waits for the lock.
        assert!(eventually(|| journal
            .inner
            .backlog
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0));
        // The log cannot take the group: the run waits for the transaction under way.
        assert!(
            done.as_mut().now_or_never().is_none(),
            "sent before it was durable"
        );
        lock.execute_batch("ROLLBACK").unwrap();
        assert_eq!(futures_executor::block_on(done), Ok(()));
        assert_eq!(attempts(&db, "r1"), [("route".to_string(), 1)]);
    }

    #[test]
    fn a_journal_closed_cleanly_leaves_no_log_and_one_that_failed_keeps_its_log_for_the_next_process() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let clean = journal(&db);
        clean.commit(started("r1")).unwrap();
        assert_eq!(ahead(&clean, vec![sent("r1", "route", 1)]), Ok(()));
        assert_eq!(files(dir.path()).len(), 2, "a lock file and a log");
        drop(clean);
        assert_eq!(files(dir.path()), Vec::<String>::new());
        assert_eq!(attempts(&db, "r1"), [("route".to_string(), 1)]);

        // Another connection holds the file's write lock past the busy timeout: the
        // transaction with the group that went ahead fails.
        let failing = journal(&db);
        let lock = rusqlite::Connection::open(&db).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert_eq!(ahead(&failing, vec![sent("r1", "route", 2)]), Ok(()));
        let failed = failing.flush().unwrap_err().to_string();
        assert!(failed.contains("database is locked"), "{failed}");
        // Nothing more goes ahead; what is queued still goes into the log, which stays when
        // the journal goes.
        let refused = ahead(&failing, vec![sent("r1", "route", 3)]).unwrap_err();
        assert_eq!(refused.to_string(), failed);
        failing.queue(finished("r1"));
        drop(failing);
        assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));
        lock.execute_batch("ROLLBACK").unwrap();

        // The next process that opens the journal writes the group in and deletes the log.
        assert_eq!(
            attempts(&db, "r1"),
            [("route".to_string(), 1), ("route".to_string(), 2)]
        );
        let store = SqliteStore::open(db.to_str().unwrap()).unwrap();
        assert_eq!(store.run("r1").unwrap().unwrap().row.status, "passed");
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    /// The sequence numbers of the frames in the intent log's files in `dir`.
    fn logged(dir: &Path) -> Vec<u64> {
        let mut seqs = Vec::new();
        for name in files(dir).iter().filter(|n| n.ends_with(".0")) {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let mut at = 0;
            while at + HEADER <= bytes.len() {
                let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                seqs.push(u64::from_le_bytes(bytes[at + 4..at + HEADER].try_into().unwrap()));
                at += HEADER + len;
            }
        }
        seqs
    }

    #[test]
    fn groups_of_runs_that_go_on_at_the_same_moment_reach_the_log_together() {
        let dir = tempfile::tempdir().unwrap();
        let (db, journal) = running(dir.path());
        // The writer cannot take them into the store meanwhile: another connection holds the
        // file's write lock.
        let lock = rusqlite::Connection::open(&db).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Three runs go on in one turn of the runtime: each enters its group and lets the
        // others go first.
        let mut done: Vec<_> = (1..=3)
            .map(|n| going(&journal, vec![sent("r1", "route", n)]))
            .collect();
        for d in &mut done {
            assert!(d.as_mut().now_or_never().is_none());
        }
        assert_eq!(logged(dir.path()), Vec::<u64>::new(), "nothing written yet");
        // The first back writes all three; the others find theirs written.
        assert_eq!(done[0].as_mut().now_or_never(), Some(Ok(())));
        assert_eq!(logged(dir.path()), [1, 2, 3]);
        for d in &mut done[1..] {
            assert_eq!(d.as_mut().now_or_never(), Some(Ok(())));
        }
        assert_eq!(logged(dir.path()), [1, 2, 3]);
        lock.execute_batch("ROLLBACK").unwrap();
        journal.flush().unwrap();
        assert_eq!(attempts(&db, "r1").len(), 3);
    }

    #[test]
    fn runs_that_go_ahead_faster_than_the_store_takes_their_writes_wait_past_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (db, journal) = running(dir.path());
        // The writer is stuck: another connection holds the file's write lock.
        let lock = rusqlite::Connection::open(&db).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let most = super::super::MOST_AHEAD;
        let mut waiting = None;
        for n in 1..=(2 * most as u32 + 100) {
            let mut done = going(&journal, vec![sent("r1", "route", n)]);
            if at_once(&mut done).is_none() {
                waiting = Some((n, done));
                break;
            }
        }
        let (n, done) = waiting.expect("a run waits once the backlog is full");
        assert!(n as usize > most, "{n}");
        // The store takes the backlog once it can; the run that waited goes on.
        lock.execute_batch("ROLLBACK").unwrap();
        assert_eq!(futures_executor::block_on(done), Ok(()));
        journal.flush().unwrap();
        assert_eq!(attempts(&db, "r1").len(), n as usize);
    }

    #[test]
    fn the_log_has_the_journal_files_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        drop(journal(&db));
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
        let open = journal(&db);
        let names = files(dir.path());
        assert_eq!(names.len(), 2);
        for name in names {
            let mode = std::fs::metadata(dir.path().join(&name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        drop(open);
    }

    #[test]
    fn a_group_nested_as_deep_as_serde_json_reads_comes_back_and_a_deeper_one_is_not_parsed() {
        let deep: serde_json::Value =
            serde_json::from_str(&format!("{}{}", "[".repeat(127), "]".repeat(127))).unwrap();
        let mut write = started("r1");
        if let Write::RunStarted(start) = &mut write {
            start.inputs = serde_json::json!({ "deep": deep });
        }
        let group = read_group(&framed(1, write)[HEADER..]).expect("read back");
        assert!(matches!(&group[..], [Write::RunStarted(s)] if s.inputs["deep"] == deep));
        // A frame nesting far deeper is not flowrun's: refused before it is parsed.
        let hostile = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(read_group(hostile.as_bytes()).is_none());
        assert_eq!(nesting(br#"["[[[", {"a": "\"[["}]"#), 2);
    }

    /// A journal in `dir` whose run `r1` belongs to a process that died, and that process's
    /// log's lock file (`token`), with no frame yet: the journal file's path and the lock's.
    fn dead_run(dir: &Path, token: &str) -> (PathBuf, String) {
        const DEAD: &str = "boot:4242:0000abcd";
        let db = dir.join("j.db");
        drop(journal(&db));
        let store = SqliteStore::open(db.to_str().unwrap()).unwrap();
        let dead = Write::Claimed {
            run: "r1".into(),
            owner: DEAD.into(),
        };
        assert_eq!(store.apply(&[&[started("r1"), dead]]), [Ok(())]);
        drop(store);
        let lock = format!("{}.intent.{token}", db.display());
        std::fs::write(&lock, DEAD).unwrap();
        (db, lock)
    }

    /// Run `run`'s end, passed.
    fn finished(run: &str) -> Write {
        Write::RunFinished {
            run: run.into(),
            status: "passed".into(),
            outputs: serde_json::json!({}),
            error: None,
            at_ms: 9,
        }
    }

    /// Whether `done` holds within 10 s (asked every 10 ms).
    fn eventually(done: impl Fn() -> bool) -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        done()
    }

    /// `write` as frame number `seq`.
    fn framed(seq: u64, write: Write) -> Vec<u8> {
        let mut f = frame(&[write]).unwrap();
        set_seq(&mut f, seq);
        f
    }

    #[test]
    fn a_log_another_process_is_writing_back_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let (db, lock) = dead_run(dir.path(), "00000000000000bb");
        let path = db.to_str().unwrap().to_string();
        std::fs::write(format!("{lock}.0"), framed(1, sent("r1", "route", 1))).unwrap();
        // Another process holds the dead process's lock and has marked it: it is writing the
        // log back.
        let mut held = OpenOptions::new().append(true).open(&lock).unwrap();
        held.lock().unwrap();
        held.write_all(WRITING_BACK.as_bytes()).unwrap();
        let opening = std::thread::spawn(move || SqliteStore::open(&path).map(drop));
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!opening.is_finished(), "the opener waits for the lock");
        // That process stopped without finishing: this one writes the log back.
        drop(held);
        opening.join().unwrap().unwrap();
        assert_eq!(attempts(&db, "r1"), [("route".to_string(), 1)]);
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_log_locked_by_a_process_this_one_cannot_see_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (db, lock) = dead_run(dir.path(), "00000000000000cc");
        std::fs::write(format!("{lock}.0"), framed(1, sent("r1", "route", 1))).unwrap();
        // Locked and not marked: a live process in another PID namespace (a container).
        let held = File::open(&lock).unwrap();
        held.lock().unwrap();
        let started = std::time::Instant::now();
        assert_eq!(attempts(&db, "r1"), []);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(files(dir.path()).len(), 2);
        drop(held);
    }

    #[test]
    fn a_whole_frame_that_cannot_be_read_keeps_the_log_and_fails_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let (db, lock) = dead_run(dir.path(), "00000000000000dd");
        let mut unknown = framed(2, sent("r1", "route", 2));
        let at = unknown.len() - 10;
        unknown[at..].copy_from_slice(b"!!!!!!!!!!");
        let bytes = [
            framed(1, sent("r1", "route", 1)),
            unknown,
            framed(3, sent("r1", "route", 3)),
        ]
        .concat();
        std::fs::write(format!("{lock}.0"), bytes).unwrap();
        let e = SqliteStore::open(db.to_str().unwrap()).err().unwrap().to_string();
        assert!(
            e.contains("holds a group of writes this flowrun cannot read (frame 2); the log is kept"),
            "{e}"
        );
        assert_eq!(files(dir.path()).len(), 2);
        // Zeros where frames were to be (a power cut) end the log instead.
        let zeros = [framed(1, sent("r1", "route", 1)), vec![0; 64]].concat();
        std::fs::write(format!("{lock}.0"), zeros).unwrap();
        assert_eq!(attempts(&db, "r1"), [("route".to_string(), 1)]);
    }

    #[test]
    fn a_pipe_or_a_claim_in_a_dead_log_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (db, lock) = dead_run(dir.path(), "00000000000000ee");
        // A pipe named as a log file would block an open for ever; a claim is not a run's.
        let made = std::process::Command::new("mkfifo")
            .arg(format!("{lock}.0"))
            .status()
            .unwrap();
        assert!(made.success());
        let claim = Write::Claimed {
            run: "r1".into(),
            owner: "someone-else".into(),
        };
        let bytes = [framed(1, claim), framed(2, sent("r1", "route", 1))].concat();
        std::fs::write(format!("{lock}.1"), bytes).unwrap();
        assert_eq!(attempts(&db, "r1"), [("route".to_string(), 1)]);
        let store = SqliteStore::open(db.to_str().unwrap()).unwrap();
        assert_eq!(
            store.run("r1").unwrap().unwrap().owner.as_deref(),
            Some("boot:4242:0000abcd")
        );
    }

    #[test]
    fn a_process_that_dies_beside_an_open_journal_is_written_back_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let open = journal(&db);
        // Another process on the file starts a run, then dies.
        let store = SqliteStore::open(db.to_str().unwrap()).unwrap();
        let dead = Write::Claimed {
            run: "r9".into(),
            owner: "boot:4242:0000abcd".into(),
        };
        assert_eq!(store.apply(&[&[started("r9"), dead]]), [Ok(())]);
        drop(store);
        let lock = format!("{}.intent.00000000000000ff", db.display());
        std::fs::write(&lock, "boot:4242:0000abcd").unwrap();
        std::fs::write(format!("{lock}.0"), framed(1, sent("r9", "route", 1))).unwrap();
        // The open journal's writer writes it back within a few seconds.
        let rows = || -> i64 {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.query_row("SELECT count(*) FROM log WHERE run_id = 'r9'", [], |r| r.get(0))
                .unwrap()
        };
        assert!(eventually(|| rows() == 1), "{}", rows());
        drop(open);
    }

    #[test]
    fn a_queued_write_with_nothing_after_it_reaches_the_file_without_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let (db, open) = running(dir.path());
        open.queue(finished("r1"));
        let status = || -> String {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.query_row("SELECT status FROM runs WHERE id = 'r1'", [], |r| r.get(0))
                .unwrap()
        };
        assert!(eventually(|| status() == "passed"), "{}", status());
        drop(open);
    }

    #[test]
    fn a_log_that_cannot_be_written_to_is_given_up_and_runs_wait_for_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (db, open) = running(dir.path());
        assert_eq!(ahead(&open, vec![sent("r1", "route", 1)]), Ok(()));
        // The log's file stops taking writes (a full disk). The run whose group it failed to
        // take waits for the store instead, and so do the runs after it.
        open.fail_intent_log_for_test();
        let failed = going(&open, vec![sent("r1", "route", 2)]);
        assert_eq!(futures_executor::block_on(failed), Ok(()));
        let next = going(&open, vec![sent("r1", "route", 3)]);
        assert_eq!(futures_executor::block_on(next), Ok(()));
        open.flush().unwrap();
        let numbers: Vec<u32> = attempts(&db, "r1").iter().map(|a| a.1).collect();
        assert_eq!(numbers, [1, 2, 3]);
        drop(open);
    }

    #[test]
    fn a_torn_or_hostile_frame_ends_a_dead_log_and_nothing_past_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        // The run of a process that died: its log's writes go in as that process's.
        let (db, lock) = dead_run(dir.path(), "00000000000000aa");
        // Its log: two whole frames, then a frame that says it is 4 GiB long.
        let mut bytes = [
            framed(1, sent("r1", "route", 1)),
            framed(2, sent("r1", "route", 2)),
        ]
        .concat();
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend(3u64.to_le_bytes());
        bytes.extend(b"[{\"Vars\"");
        std::fs::write(format!("{lock}.0"), &bytes).unwrap();
        assert_eq!(
            attempts(&db, "r1"),
            [("route".to_string(), 1), ("route".to_string(), 2)]
        );
        assert_eq!(files(dir.path()), Vec::<String>::new());

        // A log cut in the middle of a frame: the frames before it.
        std::fs::write(&lock, "boot:4242:0000abcd").unwrap();
        let whole = framed(1, sent("r1", "route", 3));
        let mut f = whole.clone();
        f.truncate(f.len() - 3);
        std::fs::write(format!("{lock}.0"), [whole, f].concat()).unwrap();
        let numbers: Vec<u32> = attempts(&db, "r1").iter().map(|a| a.1).collect();
        assert_eq!(numbers, [1, 2, 3]);
    }

    #[test]
    fn a_long_log_goes_on_in_new_files_and_those_the_store_has_go() {
        let dir = tempfile::tempdir().unwrap();
        let (db, journal) = running(dir.path());
        let body = "x".repeat(4096);
        let mut most = 0;
        for n in 1..=1500u32 {
            let mut write = sent("r1", "route", n);
            if let Write::AttemptSent { request, .. } = &mut write {
                *request = crate::base::secrets::raw(&serde_json::json!({ "body": body }));
            }
            assert_eq!(ahead(&journal, vec![write]), Ok(()));
            if n % 100 == 0 {
                journal.flush().unwrap();
                most = most.max(files(dir.path()).len());
            }
        }
        // 6 MB written: a second file was begun, and the first went once the store had it.
        assert!(
            files(dir.path()).iter().any(|f| f.ends_with(".1")),
            "{:?}",
            files(dir.path())
        );
        assert!(
            !files(dir.path()).iter().any(|f| f.ends_with(".0")),
            "{:?}",
            files(dir.path())
        );
        assert!(most <= 3, "{most}");
        drop(journal);
        assert_eq!(files(dir.path()), Vec::<String>::new());
        assert_eq!(attempts(&db, "r1").len(), 1500);
    }
}
