//! The name each Redis connection of this process gives itself
//! (`CLIENT SETNAME`), so that `CLIENT LIST` on a Redis shows which pod's
//! sidecar (or operator) holds it: `tollgate-proxy:<pod>`.

use std::sync::OnceLock;

use redis::aio::ConnectionLike;
use redis::RedisResult;

static NAME: OnceLock<String> = OnceLock::new();

/// Names every Redis connection this process makes from now on
/// `{program}:{pod}`; without `pod`, the pod is `TOLLGATE_POD_NAME` (the
/// downward API) or else `HOSTNAME` (a pod's name in Kubernetes), and the
/// name `{program}` alone without either. The first call wins; without
/// one, connections stay unnamed.
pub fn name_connections(program: &str, pod: Option<&str>) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let pod = pod
        .map(str::to_string)
        .or_else(|| env("TOLLGATE_POD_NAME"))
        .or_else(|| env("HOSTNAME"));
    let _ = NAME.set(client_name(program, pod.as_deref()));
}

/// `program:pod`, with what Redis refuses in a name (spaces, newlines,
/// anything outside `!`..=`~`) made `_`.
fn client_name(program: &str, pod: Option<&str>) -> String {
    let mut name = program.to_string();
    if let Some(pod) = pod {
        name.push(':');
        name.push_str(pod);
    }
    name.chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .collect()
}

/// Names a new connection. A refusal (an ACL user without
/// `+client|setname`, a proxy in front of Redis that lacks the command)
/// leaves it unnamed and in use; a transport failure fails the connect.
pub(super) async fn set(conn: &mut impl ConnectionLike) -> RedisResult<()> {
    let Some(name) = NAME.get() else {
        return Ok(());
    };
    let r = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name)
        .query_async::<()>(conn)
        .await;
    match r {
        Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::client_name;

    #[test]
    fn a_name_is_the_program_and_pod_in_characters_redis_takes() {
        assert_eq!(
            client_name("tollgate-proxy", Some("web-7d9f-x2x")),
            "tollgate-proxy:web-7d9f-x2x"
        );
        assert_eq!(client_name("tollgate-proxy", None), "tollgate-proxy");
        assert_eq!(
            client_name("tollgate-proxy", Some("a host\nname")),
            "tollgate-proxy:a_host_name"
        );
    }
}
