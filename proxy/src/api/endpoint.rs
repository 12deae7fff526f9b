//! Classifies an incoming request by method and path.

use http::Method;

use super::Family;

/// What an app asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models`
    ListModels,
    /// `GET /v1/models/{id}`
    GetModel,
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
    /// Any other `/v1/*` path: forwarded to the default provider.
    Other,
}

impl Operation {
    /// OpenTelemetry `gen_ai.operation.name`.
    pub fn otel_name(self) -> &'static str {
        match self {
            Operation::ChatCompletions | Operation::Messages => "chat",
            Operation::Completions => "text_completion",
            Operation::Embeddings => "embeddings",
            Operation::CountTokens => "count_tokens",
            Operation::ListModels | Operation::GetModel => "list_models",
            Operation::Other => "other",
        }
    }

    /// True when the request body names a model that routing must resolve.
    pub fn routes_on_model(self) -> bool {
        matches!(
            self,
            Operation::ChatCompletions
                | Operation::Completions
                | Operation::Embeddings
                | Operation::Messages
                | Operation::CountTokens
        )
    }
}

/// A classified request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub family: Family,
    pub operation: Operation,
}

/// Why a path is not an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmatched {
    /// Not under `/v1/`.
    NotFound,
    /// A known path with the wrong method.
    MethodNotAllowed,
}

impl Endpoint {
    /// Classifies `method path`. `anthropic_hint` is true when the request
    /// carries Anthropic headers (`anthropic-version` or `x-api-key`), which
    /// picks the error and list shape for paths both APIs share.
    pub(crate) fn classify(
        method: &Method,
        path: &str,
        anthropic_hint: bool,
    ) -> Result<Endpoint, Unmatched> {
        let hinted = if anthropic_hint {
            Family::Anthropic
        } else {
            Family::OpenAi
        };
        let (family, operation, want) = match path {
            "/v1/chat/completions" => (Family::OpenAi, Operation::ChatCompletions, Method::POST),
            "/v1/completions" => (Family::OpenAi, Operation::Completions, Method::POST),
            "/v1/embeddings" => (Family::OpenAi, Operation::Embeddings, Method::POST),
            "/v1/messages" => (Family::Anthropic, Operation::Messages, Method::POST),
            "/v1/messages/count_tokens" => {
                (Family::Anthropic, Operation::CountTokens, Method::POST)
            }
            "/v1/models" => (hinted, Operation::ListModels, Method::GET),
            p if p.starts_with("/v1/models/") && p.len() > "/v1/models/".len() => {
                (hinted, Operation::GetModel, Method::GET)
            }
            p if p.starts_with("/v1/") => {
                return Ok(Endpoint {
                    family: hinted,
                    operation: Operation::Other,
                });
            }
            _ => return Err(Unmatched::NotFound),
        };
        if *method != want {
            return Err(Unmatched::MethodNotAllowed);
        }
        Ok(Endpoint { family, operation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let c = |m: Method, p: &str, h| Endpoint::classify(&m, p, h);
        assert_eq!(
            c(Method::POST, "/v1/chat/completions", false)
                .unwrap()
                .operation,
            Operation::ChatCompletions
        );
        assert_eq!(
            c(Method::POST, "/v1/messages", false).unwrap().family,
            Family::Anthropic
        );
        assert_eq!(
            c(Method::GET, "/v1/models", true).unwrap().family,
            Family::Anthropic
        );
        assert_eq!(
            c(Method::GET, "/v1/models/gpt-4o", false)
                .unwrap()
                .operation,
            Operation::GetModel
        );
        assert_eq!(
            c(Method::POST, "/v1/files", false).unwrap().operation,
            Operation::Other
        );
        assert_eq!(
            c(Method::GET, "/v1/chat/completions", false),
            Err(Unmatched::MethodNotAllowed)
        );
        assert_eq!(c(Method::GET, "/healthz", false), Err(Unmatched::NotFound));
    }
}
