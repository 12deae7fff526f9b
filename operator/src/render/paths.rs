//! Proxy config paths → `LlmPolicy` spec paths, so an error names the
//! field the user wrote.

/// Maps a path in the rendered config (`routing.routes[0].targets[1]`) to
/// the spec field it came from (`spec.routes[0].targets[1]`).
pub(crate) fn to_spec(path: &str) -> String {
    const MAP: &[(&str, &str)] = &[
        ("routing.routes", "spec.routes"),
        ("routing.defaults", "spec.routeDefaults"),
        ("server.listen", "spec.sidecar.port"),
        ("admin.listen", "spec.sidecar.adminPort"),
        ("logging.level", "spec.sidecar.logLevel"),
        ("logging.format", "spec.sidecar.logFormat"),
        ("logging.access", "spec.sidecar.accessLog"),
        (
            "metrics.perModelHistograms",
            "spec.sidecar.perModelHistograms",
        ),
        (
            "budgets.store.redis.passwordFile",
            "spec.budgets.store.redis.passwordSecretRef",
        ),
        (
            "budgets.store.redis.tls.caFile",
            "spec.budgets.store.redis.tls.caSecretRef",
        ),
        (
            "budgets.store.redis.tls.certFile",
            "spec.budgets.store.redis.tls.certSecretRef",
        ),
        (
            "budgets.store.redis.tls.keyFile",
            "spec.budgets.store.redis.tls.keySecretRef",
        ),
        (
            "cache.store.redis.tls.caFile",
            "spec.cache.store.redis.tls.caSecretRef",
        ),
        (
            "cache.store.redis.tls.certFile",
            "spec.cache.store.redis.tls.certSecretRef",
        ),
        (
            "cache.store.redis.tls.keyFile",
            "spec.cache.store.redis.tls.keySecretRef",
        ),
        ("budgets.store.persistPath", "spec.budgets.store"),
    ];
    let path = path.trim_start_matches('.');
    for (from, to) in MAP {
        if let Some(rest) = path.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    // `providers[0].credentials` came from `credentialsSecretRef`.
    if let Some(i) = path.find(".credentials") {
        if path.starts_with("providers[") {
            let rest = &path[i + ".credentials".len()..];
            let rest = rest.trim_start_matches(".file");
            return format!("spec.{}.credentialsSecretRef{rest}", &path[..i]);
        }
    }
    if path.is_empty() || path == "(root)" {
        return "spec".into();
    }
    format!("spec.{path}")
}
