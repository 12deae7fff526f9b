//! Hot reload of the config file, of credential files and of the Redis
//! stores' password and TLS files.
//!
//! Watches the directories that hold them, the way Kubernetes updates a
//! mounted ConfigMap or Secret (an atomic swap of the `..data` symlink), and
//! in-place writes too; polls as a backstop. A valid new config is swapped
//! in atomically; an invalid one is refused, logged and counted, and the last
//! good config keeps serving. Changed Redis files (a rotated password, a
//! renewed client certificate) rebuild the runtime from the same config:
//! the stores whose files changed connect again with them, the rest (and
//! every cache entry and counter) carry over.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::{Runtime, Shared};

/// The result of one reload check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reload {
    Unchanged,
    Applied { hash: String },
    Failed { reason: String },
}

/// Reloads one config file into a [`Shared`].
pub(crate) struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
    digest: [u8; 32],
    /// What the Redis stores' password and TLS files held when the running
    /// stores read them.
    redis_files: [u8; 32],
}

impl Reloader {
    /// `text` is the config text the proxy started with.
    pub(crate) fn new(path: PathBuf, shared: Arc<Shared>, text: &str) -> Reloader {
        let redis_files = files_digest(&shared.runtime.load().redis_secret_files());
        Reloader {
            path,
            shared,
            digest: Sha256::digest(text.as_bytes()).into(),
            redis_files,
        }
    }

    /// Rebuilds the runtime from the active config when the Redis stores'
    /// password or TLS files changed on disk. Files that cannot be used (a
    /// half-written certificate) are refused with an error line and the
    /// stores keep their connections; the next change is tried again.
    pub(crate) async fn check_redis_files(&mut self) -> bool {
        let current = self.shared.runtime.load_full();
        let digest = files_digest(&current.redis_secret_files());
        if digest == self.redis_files {
            return false;
        }
        self.redis_files = digest;
        match Runtime::build((*current.config).clone(), Some(&current)).await {
            Ok(runtime) => {
                self.shared.runtime.store(Arc::new(runtime));
                tracing::info!(
                    "Redis password or TLS files changed on disk; the stores connect again with them"
                );
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "Redis password or TLS files changed on disk but cannot be used; the stores keep their connections");
                false
            }
        }
    }

    /// Reads the file and applies it if its content changed.
    pub(crate) async fn check(&mut self) -> Reload {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => return self.failed(format!("cannot read {}: {e}", self.path.display())),
        };
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if digest == self.digest {
            return Reload::Unchanged;
        }
        // Remember the text even if invalid, so one bad edit is counted once.
        self.digest = digest;
        let config = match tollgate_config::from_yaml_str(&text) {
            Ok(c) => c,
            Err(e) => return self.failed(e.to_string()),
        };
        let current = self.shared.runtime.load_full();
        if config.hash == current.config.hash {
            // The file holds the active config again (a bad edit reverted):
            // this reload ends valid, so the last one did not fail.
            self.restored();
            return Reload::Unchanged;
        }
        let old = &current.config;
        if config.server.listen != old.server.listen || config.admin.listen != old.admin.listen {
            tracing::warn!("listen addresses changed in config; they take effect after a restart");
        }
        if config.server.runtime != old.server.runtime {
            tracing::warn!("server.runtime changed in config; it takes effect after a restart");
        }
        if (&config.logging.format, &config.logging.level)
            != (&old.logging.format, &old.logging.level)
        {
            tracing::warn!(
                "logging format or level changed in config; they take effect after a restart"
            );
        }
        let runtime = match Runtime::build(config, Some(&current)).await {
            Ok(r) => r,
            Err(e) => return self.failed(e.to_string()),
        };
        let hash = runtime.config.hash.clone();
        let name = runtime.config.name.clone().unwrap_or_default();
        self.redis_files = files_digest(&runtime.redis_secret_files());
        self.shared.runtime.store(Arc::new(runtime));
        let m = &self.shared.metrics;
        m.set_active_config(&hash, &name);
        m.config_reloads.with_label_values(&["success"]).inc();
        m.config_last_reload_success.set(1);
        m.config_last_reload_timestamp
            .with_label_values(&["success"])
            .set(unix_now());
        self.shared.publish_credential_state();
        tracing::info!(hash = %hash, "config reloaded");
        Reload::Applied { hash }
    }

    /// Clears a failure once the file holds the active config again.
    fn restored(&self) {
        let m = &self.shared.metrics;
        if m.config_last_reload_success.get() == 0 {
            m.config_last_reload_success.set(1);
            m.config_last_reload_timestamp
                .with_label_values(&["success"])
                .set(unix_now());
            tracing::info!(path = %self.path.display(), "config file holds the active config again");
        }
    }

    fn failed(&self, reason: String) -> Reload {
        let m = &self.shared.metrics;
        m.config_reloads.with_label_values(&["failure"]).inc();
        m.config_last_reload_success.set(0);
        m.config_last_reload_timestamp
            .with_label_values(&["failure"])
            .set(unix_now());
        tracing::error!(path = %self.path.display(), error = %reason, "config reload refused; the last good config keeps serving");
        Reload::Failed { reason }
    }

    /// Directories to watch: the config's, every credential file's and
    /// every Redis password or TLS file's.
    fn watched_dirs(&self) -> BTreeSet<PathBuf> {
        let mut dirs = BTreeSet::new();
        dirs.insert(parent(&self.path));
        let rt = self.shared.runtime.load();
        for f in rt
            .credential_files()
            .into_iter()
            .chain(rt.redis_secret_files())
        {
            dirs.insert(parent(&f));
        }
        dirs
    }
}

/// One digest of what `files` hold (an unreadable file counts as its
/// error), so a change in any of them shows.
fn files_digest(files: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        match std::fs::read(f) {
            Ok(bytes) => {
                h.update(b"\x00ok\x00");
                h.update(Sha256::digest(&bytes));
            }
            Err(e) => {
                h.update(b"\x00err\x00");
                h.update(e.kind().to_string().as_bytes());
            }
        }
    }
    h.finalize().into()
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// True for events that may change what a file holds (not mere access).
fn changes(kind: &notify::EventKind) -> bool {
    !matches!(kind, notify::EventKind::Access(_))
}

/// Runs the watch loop until `stop` is cancelled.
pub(crate) async fn watch(mut reloader: Reloader, poll: Duration, stop: CancellationToken) {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher =
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Our own reads of the files raise access events; reacting to
            // them would re-read the config in a loop.
            if res.is_ok_and(|e| changes(&e.kind)) {
                let _ = tx.try_send(());
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "file watching unavailable; polling only");
                None
            }
        };
    let mut watching = BTreeSet::new();
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(w) = watcher.as_mut() {
            let want = reloader.watched_dirs();
            for d in want.difference(&watching) {
                if let Err(e) = w.watch(d, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory; polling it");
                }
            }
            for d in watching.difference(&want) {
                let _ = w.unwatch(d);
            }
            watching = want;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            Some(()) = rx.recv() => {
                // Let a burst of events (a symlink swap is several) settle.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = ticker.tick() => {}
        }
        reloader.check().await;
        reloader.check_redis_files().await;
        if reloader.shared.runtime.load().refresh_credentials() {
            tracing::info!("provider credentials changed on disk; reloaded");
            reloader.shared.publish_credential_state();
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind};
    use notify::EventKind;

    #[test]
    fn reads_of_the_config_do_not_trigger_a_reload() {
        assert!(!super::changes(&EventKind::Access(AccessKind::Read)));
        assert!(!super::changes(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(super::changes(&EventKind::Modify(ModifyKind::Any)));
        assert!(super::changes(&EventKind::Create(CreateKind::File)));
        assert!(super::changes(&EventKind::Remove(RemoveKind::File)));
    }
}
