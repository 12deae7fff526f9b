//! The second stage of a semantic hit: a chat model, asked whether the
//! stored prompt and the new one ask for the same thing, so one answer
//! serves both. Only the best candidate is asked; "no", an answer that is
//! neither, an error or a timeout is a miss (never a failed request).

use http::header::HeaderValue;
use serde_json::{json, Value};
use tollgate_config::Judge;

use super::embed::{PostError, Upstream};
use crate::api::Operation;
use crate::upstream::UpstreamError;

const INSTRUCTIONS: &str =
    "You decide whether two requests to an assistant ask for the same thing, \
so that one answer is right for both. Different numbers, names, units, times, negations or \
directions make them different. Answer with one word: yes or no.";

/// What the judge said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Same,
    Different,
}

/// Why there is no verdict (a miss).
#[derive(Debug, thiserror::Error)]
pub(crate) enum JudgeError {
    #[error("no judgment within {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("the judge answered {0}")]
    Status(u16),
    #[error("unexpected judge answer: {0}")]
    Malformed(String),
}

/// The chat request that asks `judge` about `stored` and `asked`.
fn body(judge: &Judge, stored: &str, asked: &str) -> Value {
    json!({
        "model": judge.model,
        "temperature": 0,
        "max_tokens": 2,
        "messages": [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": format!("Request A:\n{stored}\n\nRequest B:\n{asked}")},
        ],
    })
}

/// Reads the verdict from a chat completion.
fn verdict(answer: &Value) -> Result<Verdict, JudgeError> {
    let text = answer
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| JudgeError::Malformed("no message content".into()))?;
    let word = text
        .trim()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_ascii_lowercase();
    match word.split(|c: char| !c.is_alphanumeric()).next() {
        Some("yes") => Ok(Verdict::Same),
        Some("no") => Ok(Verdict::Different),
        _ => Err(JudgeError::Malformed("neither yes nor no".into())),
    }
}

/// Asks `judge` whether `stored` and `asked` are the same request.
pub(crate) async fn ask(
    up: &Upstream<'_>,
    judge: &Judge,
    stored: &str,
    asked: &str,
    request_id: &HeaderValue,
) -> Result<Verdict, JudgeError> {
    let call = async {
        let (status, bytes) = up
            .post_json(
                judge.provider,
                Operation::ChatCompletions,
                &judge.model,
                &body(judge, stored, asked),
                request_id,
                1 << 20,
            )
            .await
            .map_err(|e| match e {
                PostError::Upstream(u) => JudgeError::Upstream(u),
                PostError::Body(b) => JudgeError::Malformed(b),
            })?;
        if !status.is_success() {
            return Err(JudgeError::Status(status.as_u16()));
        }
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|e| JudgeError::Malformed(e.to_string()))?;
        verdict(&v)
    };
    tokio::time::timeout(judge.timeout, call)
        .await
        .map_err(|_| JudgeError::Timeout(judge.timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Value {
        json!({"choices": [{"message": {"role": "assistant", "content": text}}]})
    }

    #[test]
    fn the_first_word_is_the_verdict() {
        assert_eq!(verdict(&answer("Yes")).unwrap(), Verdict::Same);
        assert_eq!(verdict(&answer(" yes.")).unwrap(), Verdict::Same);
        assert_eq!(
            verdict(&answer("No, they differ")).unwrap(),
            Verdict::Different
        );
        assert!(verdict(&answer("Maybe")).is_err());
        assert!(verdict(&answer("")).is_err());
        assert!(verdict(&json!({"choices": []})).is_err());
        assert!(
            verdict(&answer("yesterday")).is_err(),
            "a word, not a prefix"
        );
    }

    #[test]
    fn the_judge_sees_both_prompts_and_its_model() {
        let j = Judge {
            provider: 0,
            model: "gpt-4o-mini".into(),
            timeout: std::time::Duration::from_secs(1),
        };
        let b = body(&j, "Is 7 prime?", "Is 8 prime?");
        assert_eq!(b["model"], "gpt-4o-mini");
        assert_eq!(b["temperature"], 0);
        let user = b["messages"][1]["content"].as_str().unwrap();
        assert!(
            user.contains("Request A:\nIs 7 prime?") && user.contains("Request B:\nIs 8 prime?")
        );
    }
}
