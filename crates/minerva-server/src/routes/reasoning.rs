//! What a request asks of a thinking model's reasoning block, in each dialect: OpenAI's
//! `reasoning_effort`, llama-server's `reasoning_format` and `chat_template_kwargs`, Minerva's
//! `reasoning_budget`, Ollama's `think`. All of it becomes an engine [`ReasoningRequest`]
//! (split the block off or not, a token budget) and template variables.
//!
//! `reasoning_effort` (and Ollama's `think` levels) are token budgets: `none` 0 (and
//! `enable_thinking: false` to the template), `minimal` 256, `low` 1024, `medium` 4096, `high`
//! and `xhigh` no limit. The level is also passed to the template as `reasoning_effort`, which
//! templates such as gpt-oss's read.

use crate::ApiError;
use minerva_engine::ReasoningRequest;
use minerva_openai::ChatCompletionRequest;
use serde_json::{Map, Value};

/// The efforts OpenAI documents, with the budget each means.
const EFFORTS: [(&str, Option<u32>); 6] = [
    ("none", Some(0)),
    ("minimal", Some(256)),
    ("low", Some(1024)),
    ("medium", Some(4096)),
    ("high", None),
    ("xhigh", None),
];

/// A request's reasoning settings: for the engine, and for the template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thinking {
    pub request: ReasoningRequest,
    pub kwargs: Map<String, Value>,
}

impl Thinking {
    /// Applies an effort level: its budget, the level as a template variable, and no thinking
    /// at all for `none`. Variables the request set itself are kept.
    fn effort(&mut self, level: &str, budget: Option<u32>) {
        self.request.budget = budget;
        self.kwargs
            .entry("reasoning_effort")
            .or_insert_with(|| Value::from(level));
        if budget == Some(0) {
            self.kwargs
                .entry("enable_thinking")
                .or_insert(Value::Bool(false));
        }
    }
}

/// The reasoning fields of an OpenAI chat request. Errors name the field.
pub fn openai(req: &ChatCompletionRequest) -> Result<Thinking, ApiError> {
    let mut thinking = Thinking::default();
    match &req.chat_template_kwargs {
        None | Some(Value::Null) => {}
        Some(Value::Object(kwargs)) => thinking.kwargs = kwargs.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "'chat_template_kwargs' must be an object",
                Some("chat_template_kwargs"),
            ))
        }
    }
    match &req.reasoning_format {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "auto" || f == "deepseek" => {}
        Some(Value::String(f)) if f == "none" => thinking.request.split = false,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("'reasoning_format' must be 'auto', 'deepseek' or 'none', got {other}"),
                Some("reasoning_format"),
            ))
        }
    }
    match &req.reasoning_effort {
        None | Some(Value::Null) => {}
        Some(value) => {
            let (level, budget) = value
                .as_str()
                .and_then(|s| EFFORTS.iter().find(|(level, _)| *level == s))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        format!(
                            "'reasoning_effort' must be one of {}, got {value}",
                            levels()
                        ),
                        Some("reasoning_effort"),
                    )
                })?;
            thinking.effort(level, *budget);
        }
    }
    match &req.reasoning_budget {
        None | Some(Value::Null) => {}
        Some(value) => thinking.request.budget = budget(value)?,
    }
    Ok(thinking)
}

/// `reasoning_budget`: a token count, or -1 for no limit.
fn budget(value: &Value) -> Result<Option<u32>, ApiError> {
    match value.as_i64() {
        Some(-1) => Ok(None),
        Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(Some(n as u32)),
        _ => Err(ApiError::bad_request(
            format!("'reasoning_budget' must be a token count (0 or more) or -1 for no limit, got {value}"),
            Some("reasoning_budget"),
        )),
    }
}

fn levels() -> String {
    EFFORTS
        .iter()
        .map(|(l, _)| format!("'{l}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ollama's `think`: absent, `null` or `true` split the reasoning into `thinking`; `false`
/// turns thinking off as Ollama does (`enable_thinking: false` to the template, and no
/// `thinking` in the reply: a model that thinks anyway has its reasoning left out); `"low"`, `"medium"`, `"high"` are effort levels. `thinks`: the
/// model's template thinks; asking a model that does not to think is refused, as Ollama does.
/// Returns the settings and whether the reasoning is shown.
pub fn ollama(think: Option<&Value>, thinks: bool, name: &str) -> Result<(Thinking, bool), String> {
    let mut thinking = Thinking::default();
    let asked = match think {
        None | Some(Value::Null) => return Ok((thinking, true)),
        Some(Value::Bool(false)) => {
            thinking
                .kwargs
                .insert("enable_thinking".into(), Value::Bool(false));
            return Ok((thinking, false));
        }
        Some(Value::Bool(true)) => true,
        Some(Value::String(level)) => {
            let (level, budget) = EFFORTS
                .iter()
                .find(|(l, _)| *l == level && matches!(*l, "low" | "medium" | "high"))
                .ok_or_else(|| {
                    format!("think must be true, false, 'low', 'medium' or 'high', got '{level}'")
                })?;
            thinking.effort(level, *budget);
            true
        }
        Some(other) => {
            return Err(format!(
                "think must be true, false, 'low', 'medium' or 'high', got {other}"
            ))
        }
    };
    if asked && !thinks {
        return Err(format!("\"{name}\" does not support thinking"));
    }
    Ok((thinking, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(fields: Value) -> ChatCompletionRequest {
        let mut body = json!({"model": "m", "messages": []});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn efforts_are_budgets() {
        let t = openai(&request(json!({"reasoning_effort": "low"}))).unwrap();
        assert_eq!(t.request.budget, Some(1024));
        assert!(t.request.split);
        assert_eq!(t.kwargs["reasoning_effort"], "low");
        let t = openai(&request(json!({"reasoning_effort": "none"}))).unwrap();
        assert_eq!(t.request.budget, Some(0));
        assert_eq!(t.kwargs["enable_thinking"], false);
        let t = openai(&request(json!({"reasoning_effort": "high"}))).unwrap();
        assert_eq!(t.request.budget, None);
    }

    #[test]
    fn an_explicit_budget_and_kwargs_win() {
        let t = openai(&request(json!({
            "reasoning_effort": "none",
            "reasoning_budget": 12,
            "chat_template_kwargs": {"enable_thinking": true},
            "reasoning_format": "none"
        })))
        .unwrap();
        assert_eq!(t.request.budget, Some(12));
        assert_eq!(t.kwargs["enable_thinking"], true);
        assert!(!t.request.split);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (field, value) in [
            ("reasoning_effort", json!("max")),
            ("reasoning_effort", json!(3)),
            ("reasoning_format", json!("deepseek-legacy")),
            ("reasoning_budget", json!(-2)),
            ("reasoning_budget", json!("8")),
            ("chat_template_kwargs", json!([1])),
        ] {
            let e = openai(&request(json!({ field: value }))).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(field), "{field} {value}");
        }
    }

    #[test]
    fn ollama_think() {
        let (t, shown) = ollama(None, false, "m").unwrap();
        assert!(shown && t.request.budget.is_none());
        let (t, shown) = ollama(Some(&json!(false)), false, "m").unwrap();
        assert!(!shown);
        assert_eq!(t.request.budget, None);
        assert_eq!(
            t.kwargs,
            json!({"enable_thinking": false})
                .as_object()
                .unwrap()
                .clone()
        );
        let (t, _) = ollama(Some(&json!("high")), true, "m").unwrap();
        assert_eq!(t.kwargs["reasoning_effort"], "high");
        assert!(ollama(Some(&json!(true)), false, "m").is_err());
        assert!(ollama(Some(&json!("none")), true, "m").is_err());
        assert!(ollama(Some(&json!(1)), true, "m").is_err());
    }
}
