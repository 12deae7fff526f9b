//! Validation of a `redis:` block, shared by `budgets.store` and
//! `cache.store`: URLs, key prefix, timeout, Cluster or Sentinel, and how
//! the proxy authenticates (ACL user, password file, TLS files). Files are
//! not read here: the operator validates configs whose files exist only in
//! the sidecar; the proxy reads them when it opens the store.

use std::path::PathBuf;
use std::time::Duration;

use super::Validator;
use crate::model::*;
use crate::raw::{RawRedisStore, RawRedisTls};

impl Validator {
    pub(super) fn redis(
        &mut self,
        at: &str,
        r: &RawRedisStore,
        fail_mode: FailMode,
    ) -> BudgetStore {
        if let Err(e) = check_redis_url(&r.url) {
            self.err(&format!("{at}.url"), e);
        }
        if matches!(&r.password_file, Some(p) if p.trim().is_empty()) {
            self.err(&format!("{at}.passwordFile"), "must not be empty".into());
        }
        let key_prefix = r.key_prefix.clone().unwrap_or_else(|| "tollgate".into());
        if key_prefix.is_empty()
            || key_prefix.len() > 64
            || key_prefix
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            self.err(
                &format!("{at}.keyPrefix"),
                "must be 1 to 64 characters without spaces".into(),
            );
        }
        let timeout = self.dur_min(
            &format!("{at}.timeout"),
            r.timeout.as_deref(),
            Duration::from_millis(100),
            Duration::from_millis(1),
        );
        if timeout > Duration::from_secs(10) {
            self.err(
                &format!("{at}.timeout"),
                "must be at most 10s: admission waits for it".into(),
            );
        }
        let cluster = r.cluster.unwrap_or(false);
        let sentinel_master = r
            .sentinel
            .as_ref()
            .map(|s| s.master_name.trim().to_string());
        if !cluster && sentinel_master.is_none() && !r.nodes.is_empty() {
            self.err(
                &format!("{at}.nodes"),
                "only applies with `cluster: true` or `sentinel`".into(),
            );
        }
        if cluster && sentinel_master.is_some() {
            self.err(
                &format!("{at}.sentinel"),
                "cannot be combined with `cluster: true` (a cluster fails over by itself)".into(),
            );
        }
        if sentinel_master.as_deref() == Some("") {
            self.err(
                &format!("{at}.sentinel.masterName"),
                "must not be empty".into(),
            );
        }
        for (i, n) in r.nodes.iter().enumerate() {
            if let Err(e) = check_redis_url(n) {
                self.err(&format!("{at}.nodes[{i}]"), e);
            }
        }
        if cluster && key_prefix.contains(['{', '}']) {
            self.err(
                &format!("{at}.keyPrefix"),
                "must not contain `{` or `}` with `cluster: true` (the prefix becomes the keys' hash tag)".into(),
            );
        }
        let username = self.redis_username(at, r);
        let tls = self.redis_tls(at, r);
        BudgetStore::Redis(RedisStore {
            url: r.url.clone(),
            password_file: r.password_file.as_ref().map(PathBuf::from),
            key_prefix,
            timeout,
            fail_mode,
            cluster,
            nodes: r.nodes.clone(),
            sentinel_master,
            username,
            tls,
        })
    }

    /// `username`, else the user named in `url`; not both.
    fn redis_username(&mut self, at: &str, r: &RawRedisStore) -> Option<String> {
        let in_url = url_user(&r.url);
        let Some(name) = &r.username else {
            return in_url;
        };
        if name.is_empty()
            || name.len() > 256
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == ':')
        {
            self.err(
                &format!("{at}.username"),
                "must be 1 to 256 characters without spaces, `@` or `:`".into(),
            );
        }
        if in_url.is_some() {
            self.err(
                &format!("{at}.username"),
                "the URL names a user too; set one of them".into(),
            );
        }
        Some(name.clone())
    }

    /// The TLS files, which need `rediss://` URLs; every URL (seeds and
    /// Sentinels) uses the same scheme.
    fn redis_tls(&mut self, at: &str, r: &RawRedisStore) -> Option<Box<RedisTls>> {
        let tls_urls = std::iter::once(&r.url)
            .chain(&r.nodes)
            .filter(|u| u.starts_with("rediss://"))
            .count();
        if tls_urls != 0 && tls_urls != 1 + r.nodes.len() {
            self.err(
                &format!("{at}.nodes"),
                "mixes redis:// and rediss:// URLs; every node is reached the same way".into(),
            );
        }
        let t: &RawRedisTls = r.tls.as_ref()?;
        let at = format!("{at}.tls");
        if tls_urls == 0 {
            self.err(
                &at,
                "needs a `rediss://` URL (TLS); with `redis://` the connection is plain TCP".into(),
            );
        }
        let mut file = |field: &str, v: &Option<String>| -> Option<PathBuf> {
            let v = v.as_ref()?;
            if v.trim().is_empty() {
                self.err(&format!("{at}.{field}"), "must not be empty".into());
            }
            Some(PathBuf::from(v))
        };
        let ca_file = file("caFile", &t.ca_file);
        let cert = file("certFile", &t.cert_file);
        let key = file("keyFile", &t.key_file);
        let client = match (cert, key) {
            (Some(cert_file), Some(key_file)) => Some(ClientCertFiles {
                cert_file,
                key_file,
            }),
            (Some(_), None) => {
                self.err(
                    &format!("{at}.keyFile"),
                    "required with `certFile` (the client certificate's private key)".into(),
                );
                None
            }
            (None, Some(_)) => {
                self.err(
                    &format!("{at}.certFile"),
                    "required with `keyFile` (a key without its certificate)".into(),
                );
                None
            }
            (None, None) => None,
        };
        Some(Box::new(RedisTls { ca_file, client }))
    }
}

/// The user in `redis://user@host`, if any.
fn url_user(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (user, _) = authority.rsplit_once('@')?;
    let user = user.split(':').next().unwrap_or_default();
    (!user.is_empty()).then(|| user.to_string())
}

/// `redis://[user@]host[:port][/db]` or `rediss://...`; a password in the
/// URL is refused because `/config` shows the URL.
fn check_redis_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{url}` is not a URL (expected redis://host:port/db)"
        ));
    };
    if scheme != "redis" && scheme != "rediss" {
        return Err(format!("`{url}`: scheme must be redis or rediss"));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if userinfo.contains(':') {
            return Err(
                "the URL must not carry a password; use `passwordFile` instead".to_string(),
            );
        }
    }
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("`{url}` has no host"));
    }
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    if let Some(db) = path.split_once('/').map(|(_, db)| db) {
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(format!("`{url}`: the path must be a database number"));
        }
    }
    Ok(())
}
