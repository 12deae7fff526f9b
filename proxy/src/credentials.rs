//! Provider keys: read from an environment variable or a mounted Secret file,
//! re-read when the file changes, and never printed.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;
use tollgate_config::CredentialSource;

/// A key ready to put on the wire. `Debug` and `Display` print `***`.
#[derive(Clone)]
pub struct Secret {
    /// The key alone (`x-api-key`, `api-key`).
    pub raw: HeaderValue,
    /// `Bearer <key>`.
    pub bearer: HeaderValue,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    /// Builds header values from a key, refusing characters a header cannot carry.
    pub fn new(key: &str) -> Result<Secret, String> {
        let mut raw = HeaderValue::from_str(key)
            .map_err(|_| "the key contains characters not allowed in a header".to_string())?;
        raw.set_sensitive(true);
        let mut bearer = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "the key contains characters not allowed in a header".to_string())?;
        bearer.set_sensitive(true);
        Ok(Secret { raw, bearer })
    }
}

/// The current state of one provider's key.
pub(crate) type KeyState = Result<Secret, String>;

/// One provider's key and where it comes from.
pub struct Credential {
    source: CredentialSource,
    state: ArcSwap<KeyState>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Reads the key now.
    pub fn load(source: CredentialSource) -> Credential {
        let state = ArcSwap::from_pointee(read(&source));
        Credential { source, state }
    }

    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// Re-reads the key; returns true if it changed (including readability).
    pub fn refresh(&self) -> bool {
        let new = read(&self.source);
        let old = self.state.load();
        let changed = match (&**old, &new) {
            (Ok(a), Ok(b)) => a.raw != b.raw,
            (Err(a), Err(b)) => a != b,
            _ => true,
        };
        if changed {
            self.state.store(Arc::new(new));
        }
        changed
    }

    /// The current key, or why it is unavailable.
    pub fn get(&self) -> Arc<KeyState> {
        self.state.load_full()
    }
}

fn read(source: &CredentialSource) -> KeyState {
    let text = match source {
        CredentialSource::Env(name) => match std::env::var(name) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("environment variable {name} is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("environment variable {name} is not UTF-8"))
            }
        },
        CredentialSource::File(path) => match std::fs::read_to_string(path) {
            Ok(v) => v,
            Err(e) => return Err(format!("cannot read {}: {}", path.display(), e.kind())),
        },
    };
    let key = text.trim();
    if key.is_empty() {
        return Err(match source {
            CredentialSource::Env(name) => format!("environment variable {name} is empty"),
            CredentialSource::File(path) => format!("{} is empty", path.display()),
        });
    }
    Secret::new(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sk-live-123").unwrap();
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert!(s.raw.is_sensitive());
        assert_eq!(s.bearer, "Bearer sk-live-123");
    }

    #[test]
    fn file_is_reread_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let cred = Credential::load(CredentialSource::File(path.clone()));
        assert!(cred
            .get()
            .as_ref()
            .as_ref()
            .unwrap_err()
            .contains("cannot read"));
        std::fs::write(&path, "k1\n").unwrap();
        assert!(cred.refresh());
        assert_eq!(cred.get().as_ref().as_ref().unwrap().raw, "k1");
        assert!(!cred.refresh());
        std::fs::write(&path, "  \n").unwrap();
        assert!(cred.refresh());
        assert!(cred.get().as_ref().as_ref().unwrap_err().contains("empty"));
    }

    #[test]
    fn env_source() {
        let cred = Credential::load(CredentialSource::Env(
            "TOLLGATE_TEST_SURELY_UNSET_VAR".into(),
        ));
        assert!(cred
            .get()
            .as_ref()
            .as_ref()
            .unwrap_err()
            .contains("is not set"));
        assert!(Secret::new("bad\nkey").is_err());
    }
}
