//! The memory store's file: spend per window and rate-limit arrival times
//! as JSON, written to a temporary file and renamed so a crash never leaves
//! half a file. In-flight reservations are not saved: after a restart their
//! requests are gone.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Calendar, Rolling, State};
use crate::budget::BudgetError;

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Snapshot {
    version: u32,
    saved_at_ms: i64,
    calendar: Vec<CalendarEntry>,
    rolling: Vec<RollingEntry>,
    rates: Vec<RateEntry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CalendarEntry {
    key: String,
    usd: u64,
    tokens: u64,
    expires_ms: i64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RollingEntry {
    key: String,
    slot_ms: i64,
    /// `[slot, usd, tokens]`, oldest first.
    slots: Vec<(i64, u64, u64)>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateEntry {
    key: String,
    tat_us: f64,
}

impl Snapshot {
    pub(super) fn of(st: &State, now_ms: i64) -> Snapshot {
        let mut calendar: Vec<_> = st
            .calendar
            .iter()
            .map(|(k, c)| CalendarEntry {
                key: k.clone(),
                usd: c.usd,
                tokens: c.tokens,
                expires_ms: c.expires_ms,
            })
            .collect();
        calendar.sort_by(|a, b| a.key.cmp(&b.key));
        let mut rolling: Vec<_> = st
            .rolling
            .iter()
            .map(|(k, r)| RollingEntry {
                key: k.clone(),
                slot_ms: r.slot_ms,
                slots: r.slots.clone(),
            })
            .collect();
        rolling.sort_by(|a, b| a.key.cmp(&b.key));
        let mut rates: Vec<_> = st
            .rates
            .iter()
            .map(|(k, t)| RateEntry {
                key: k.clone(),
                tat_us: *t,
            })
            .collect();
        rates.sort_by(|a, b| a.key.cmp(&b.key));
        Snapshot {
            version: VERSION,
            saved_at_ms: now_ms,
            calendar,
            rolling,
            rates,
        }
    }

    pub(super) fn into_state(self, st: &mut State) {
        for c in self.calendar {
            st.calendar.insert(
                c.key,
                Calendar {
                    usd: c.usd,
                    tokens: c.tokens,
                    expires_ms: c.expires_ms,
                },
            );
        }
        for r in self.rolling {
            st.rolling.insert(
                r.key,
                Rolling {
                    slots: r.slots,
                    slot_ms: r.slot_ms,
                },
            );
        }
        for r in self.rates {
            st.rates.insert(r.key, r.tat_us);
        }
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Snapshot, BudgetError> {
    let snap: Snapshot = serde_json::from_slice(bytes).map_err(|e| BudgetError::StateFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if snap.version != VERSION {
        return Err(BudgetError::StateFile {
            path: path.to_path_buf(),
            reason: format!("unknown version {}", snap.version),
        });
    }
    Ok(snap)
}

/// `Ok(None)` when there is no file yet.
pub(super) async fn load(path: &Path) -> Result<Option<Snapshot>, BudgetError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => decode(path, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BudgetError::Persist {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

pub(super) async fn save(path: &Path, snap: &Snapshot) -> Result<(), BudgetError> {
    let bytes = serde_json::to_vec(snap).expect("snapshot serializes");
    let tmp = temp_path(path);
    let res = async {
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    res.map_err(|source| BudgetError::Persist {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn save_blocking(path: &Path, snap: &Snapshot) -> Result<(), BudgetError> {
    let bytes = serde_json::to_vec(snap).expect("snapshot serializes");
    let tmp = temp_path(path);
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| BudgetError::Persist {
            path: path.to_path_buf(),
            source,
        })
}

/// Keeps an unreadable file for inspection as `<name>.corrupt`.
pub(super) async fn move_aside(path: &Path) {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".corrupt");
    let _ = tokio::fs::rename(path, path.with_file_name(name)).await;
}
