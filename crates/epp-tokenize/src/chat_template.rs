//! A Hugging Face chat template (Jinja), loaded once and rendered with `minijinja`.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::{Value as JinjaValue, ValueKind};
use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde_json::Value;

use crate::body::Chat;

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template and the special tokens it may print.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Reads `path`: a `tokenizer_config.json` (its `chat_template`, `bos_token`,
    /// `eos_token`) or, if the file is not a JSON object, the template text itself.
    /// Errors are one message without the path (the caller adds it).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(config)) => Self::from_config(&config),
            _ => Self::new(text, String::new(), String::new()),
        }
    }

    /// A template from its text and the tokens it may print as `bos_token` / `eos_token`.
    pub fn new(source: String, bos_token: String, eos_token: String) -> Result<Self, String> {
        let mut env = Environment::new();
        env.add_function("raise_exception", raise_exception);
        env.set_unknown_method_callback(python_methods);
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| format!("the chat template does not compile: {e}"))?;
        Ok(ChatTemplate {
            env,
            bos_token,
            eos_token,
        })
    }

    fn from_config(config: &serde_json::Map<String, Value>) -> Result<Self, String> {
        let source = match config.get("chat_template") {
            Some(Value::String(template)) => template.clone(),
            // The newer list form: `[{"name": "default", "template": "..."}, ...]`.
            Some(Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template")?.as_str())
                .map(str::to_owned)
                .ok_or("`chat_template` is a list without a \"default\" template")?,
            _ => return Err("the JSON file has no `chat_template` string".to_owned()),
        };
        Self::new(
            source,
            special_token(config.get("bos_token")),
            special_token(config.get("eos_token")),
        )
    }

    /// The prompt text of `chat`, as Hugging Face's `apply_chat_template` renders it: the
    /// special tokens and `chat_template_kwargs` as variables, then `messages`, `tools` and
    /// `add_generation_prompt`; with `continue_final_message`, cut after the last message's
    /// text so the model continues it.
    pub fn render(&self, chat: &Chat) -> Result<String, String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| e.to_string())?;
        let mut context = BTreeMap::from([
            (
                "bos_token".to_owned(),
                JinjaValue::from(self.bos_token.as_str()),
            ),
            (
                "eos_token".to_owned(),
                JinjaValue::from(self.eos_token.as_str()),
            ),
        ]);
        for (name, value) in chat.template_kwargs.iter().flatten() {
            context.insert(name.clone(), to_jinja(value));
        }
        let messages: Vec<JinjaValue> = chat.messages.iter().map(to_jinja).collect();
        context.insert("messages".to_owned(), JinjaValue::from(messages));
        context.insert(
            "tools".to_owned(),
            chat.tools.as_ref().map_or(JinjaValue::from(()), to_jinja),
        );
        context.insert(
            "add_generation_prompt".to_owned(),
            JinjaValue::from(chat.add_generation_prompt),
        );
        let mut text = template
            .render(JinjaValue::from(context))
            .map_err(|e| format!("the chat template failed: {e}"))?;
        if chat.continue_final_message {
            cut_after_final_message(&mut text, &chat.messages);
        }
        Ok(text)
    }
}

/// Drops what the template wrote after the last message's text (its end-of-turn tokens).
/// A last message without string content is left as rendered.
fn cut_after_final_message(text: &mut String, messages: &[Value]) {
    let Some(last) = messages
        .last()
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|content| !content.is_empty())
    else {
        return;
    };
    if let Some(start) = text.rfind(last) {
        text.truncate(start + last.len());
    }
}

/// A special token in `tokenizer_config.json`: a string, or an added-token object with a
/// `content` string (older files).
fn special_token(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(token)) => token.clone(),
        Some(Value::Object(token)) => token
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// JSON → template value (minijinja is built without serde).
fn to_jinja(value: &Value) -> JinjaValue {
    match value {
        Value::Null => JinjaValue::from(()),
        Value::Bool(b) => JinjaValue::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => JinjaValue::from(i),
            (None, Some(f)) => JinjaValue::from(f),
            (None, None) => JinjaValue::from(n.to_string()),
        },
        Value::String(s) => JinjaValue::from(s.as_str()),
        Value::Array(items) => JinjaValue::from(items.iter().map(to_jinja).collect::<Vec<_>>()),
        Value::Object(fields) => JinjaValue::from(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_jinja(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

/// Templates call `raise_exception("...")` to refuse a conversation shape.
fn raise_exception(message: String) -> Result<JinjaValue, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

/// The Python methods chat templates use most (`strip`, `startswith`, `items`, `get`, ...),
/// which minijinja does not have.
fn python_methods(
    state: &mut minijinja::State,
    value: &JinjaValue,
    method: &str,
    args: &[JinjaValue],
) -> Result<JinjaValue, JinjaError> {
    if value.kind() == ValueKind::Map {
        return python_dict_methods(state, value, method, args);
    }
    let Some(text) = value.as_str() else {
        return Err(JinjaError::from(ErrorKind::UnknownMethod));
    };
    let arg = |i: usize| args.get(i).and_then(JinjaValue::as_str);
    let result = match (method, arg(0)) {
        ("strip", None) => JinjaValue::from(text.trim()),
        ("lstrip", None) => JinjaValue::from(text.trim_start()),
        ("rstrip", None) => JinjaValue::from(text.trim_end()),
        ("strip", Some(chars)) => JinjaValue::from(text.trim_matches(|c| chars.contains(c))),
        ("lstrip", Some(chars)) => JinjaValue::from(text.trim_start_matches(|c| chars.contains(c))),
        ("rstrip", Some(chars)) => JinjaValue::from(text.trim_end_matches(|c| chars.contains(c))),
        ("startswith", Some(prefix)) => JinjaValue::from(text.starts_with(prefix)),
        ("endswith", Some(suffix)) => JinjaValue::from(text.ends_with(suffix)),
        ("upper", None) => JinjaValue::from(text.to_uppercase()),
        ("lower", None) => JinjaValue::from(text.to_lowercase()),
        ("split", Some(separator)) if !separator.is_empty() => JinjaValue::from(
            text.split(separator)
                .map(JinjaValue::from)
                .collect::<Vec<_>>(),
        ),
        ("split", None) => JinjaValue::from(
            text.split_whitespace()
                .map(JinjaValue::from)
                .collect::<Vec<_>>(),
        ),
        _ => return Err(JinjaError::from(ErrorKind::UnknownMethod)),
    };
    Ok(result)
}

/// `dict.items()` and `dict.get(key[, default])`.
fn python_dict_methods(
    state: &mut minijinja::State,
    value: &JinjaValue,
    method: &str,
    args: &[JinjaValue],
) -> Result<JinjaValue, JinjaError> {
    match (method, args) {
        ("items", []) => state.apply_filter("items", std::slice::from_ref(value)),
        ("get", [key]) | ("get", [key, _]) => {
            let found = value.get_item(key)?;
            Ok(match args.get(1) {
                Some(default) if found.is_undefined() => default.clone(),
                _ if found.is_undefined() => JinjaValue::from(()),
                _ => found,
            })
        }
        _ => Err(JinjaError::from(ErrorKind::UnknownMethod)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(json: &str) -> Chat {
        match serde_json::from_str(json) {
            Ok(Value::Array(messages)) => Chat::new(messages),
            other => panic!("bad test JSON: {other:?}"),
        }
    }

    #[test]
    fn renders_a_config_template_with_its_special_tokens() {
        let config = serde_json::json!({
            "bos_token": {"content": "<s>", "lstrip": false},
            "eos_token": "</s>",
            "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content | trim }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
        });
        let Value::Object(config) = config else {
            panic!("object")
        };
        let template = ChatTemplate::from_config(&config).expect("a valid config");
        let text = template
            .render(&messages(
                r#"[{"role":"system","content":" be brief "},{"role":"user","content":"hi"}]"#,
            ))
            .expect("renders");
        assert_eq!(text, "<s>[system] be brief</s>[user] hi</s>[assistant]");
    }

    #[test]
    fn supports_python_string_methods_and_raise_exception() {
        let source = "{% for m in messages %}{% if not m.content.startswith('ok') %}{{ raise_exception('bad ' ~ m.role) }}{% endif %}{{ m.content.upper().rstrip('!') }}{% endfor %}";
        let template =
            ChatTemplate::new(source.into(), String::new(), String::new()).expect("compiles");
        assert_eq!(
            template.render(&messages(r#"[{"role":"user","content":"ok go!!"}]"#)),
            Ok("OK GO".to_owned())
        );
        let refused = template.render(&messages(r#"[{"role":"tool","content":"no"}]"#));
        assert!(refused.is_err_and(|e| e.contains("bad tool")));
    }

    #[test]
    fn passes_tools_kwargs_and_flags_and_cuts_a_prefill() {
        let source = "{% if enable_thinking is false %}/no_think {% endif %}{% if tools %}{{ tools | length }} tools {% endif %}{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
        let template =
            ChatTemplate::new(source.into(), String::new(), String::new()).expect("compiles");
        let mut chat = messages(r#"[{"role":"user","content":"q"}]"#);
        chat.tools = Some(serde_json::json!([{"type": "function"}]));
        chat.template_kwargs = serde_json::json!({"enable_thinking": false})
            .as_object()
            .cloned();
        assert_eq!(
            template.render(&chat),
            Ok("/no_think 1 tools <user>q</user><assistant>".to_owned())
        );
        // Prefill: the assistant's partial answer is continued, not closed.
        let mut prefill = messages(
            r#"[{"role":"user","content":"q"},{"role":"assistant","content":"The answer"}]"#,
        );
        prefill.add_generation_prompt = false;
        prefill.continue_final_message = true;
        assert_eq!(
            template.render(&prefill),
            Ok("<user>q</user><assistant>The answer".to_owned())
        );
    }

    #[test]
    fn supports_python_dict_methods() {
        let source = "{% for m in messages %}{{ m.get('name', 'anon') }}/{{ m.get('role') }}/{{ m.get('x') is none }}{% for k, v in m.items() %} {{ k }}={{ v }}{% endfor %}{% endfor %}";
        let template =
            ChatTemplate::new(source.into(), String::new(), String::new()).expect("compiles");
        assert_eq!(
            template.render(&messages(r#"[{"role":"user","content":"c"}]"#)),
            Ok("anon/user/True content=c role=user".to_owned())
        );
    }

    #[test]
    fn picks_the_default_of_a_template_list_and_rejects_a_config_without_one() {
        let with_list = serde_json::json!({"chat_template": [
            {"name": "tool_use", "template": "tools"},
            {"name": "default", "template": "plain"},
        ]});
        let Value::Object(with_list) = with_list else {
            panic!("object")
        };
        let template = ChatTemplate::from_config(&with_list).expect("a default template");
        assert_eq!(template.render(&messages("[{}]")), Ok("plain".to_owned()));
        let Value::Object(without) = serde_json::json!({"eos_token": "x"}) else {
            panic!("object")
        };
        assert!(ChatTemplate::from_config(&without).is_err_and(|e| e.contains("chat_template")));
        assert!(ChatTemplate::new("{% if %}".into(), String::new(), String::new()).is_err());
    }
}
