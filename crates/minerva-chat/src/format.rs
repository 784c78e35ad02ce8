//! Which tool-call format a model writes, read from its chat template.

/// How a model family writes tool calls. Whatever the format, a reply that opens with a bare
/// JSON object naming one of the offered tools (`{"name": ..., "arguments": {...}}`, or
/// `"parameters"` for Llama 3.x) is read as a call too: small models often skip the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// Hermes 2 Pro / Qwen 2.5 / Qwen 3: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
    /// once per call (llama.cpp's `COMMON_CHAT_FORMAT_HERMES_2_PRO`).
    Hermes,
    /// Llama 3.1-3.3: `<|python_tag|>` followed by one or more JSON calls separated by `;`, or
    /// a bare `{"name": ..., "parameters": {...}}` (llama.cpp's `LLAMA_3_X`). The built-in
    /// `brave_search.call(...)` form is not parsed.
    Llama3,
    /// Mistral Nemo / v0.3: `[TOOL_CALLS]` followed by a JSON array of calls
    /// (llama.cpp's `MISTRAL_NEMO`).
    Mistral,
    /// Any other template: only the bare JSON object form is read (Minerva's fallback;
    /// llama.cpp's `GENERIC` asks for `{"tool_call": ...}`, which no model writes unprompted).
    Generic,
}

impl ToolFormat {
    /// The format a chat template's tool branch asks for, as llama.cpp decides it: by the
    /// marker text the template contains.
    pub fn detect(template: &str) -> ToolFormat {
        if template.contains("<tool_call>") {
            ToolFormat::Hermes
        } else if template.contains("[TOOL_CALLS]") {
            ToolFormat::Mistral
        } else if template.contains("<|python_tag|>")
            || (template.contains("<|start_header_id|>") && template.contains("ipython"))
        {
            ToolFormat::Llama3
        } else {
            ToolFormat::Generic
        }
    }

    /// True when the template renders the `tools` it is given (its tool branch exists; `.Tools`
    /// in an Ollama Go template), which is what Ollama's `tools` capability says.
    pub fn template_handles_tools(template: &str) -> bool {
        // `tools` used inside a Jinja statement or expression, as a whole word.
        let bytes = template.as_bytes();
        let word = |i: usize| {
            let before = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            let end = i + "tools".len();
            let after =
                end >= bytes.len() || !(bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_');
            before && after
        };
        let mut rest = template;
        while let Some(open) = rest.find(['{']) {
            let tail = &rest[open..];
            let close = if tail.starts_with("{%") {
                "%}"
            } else if tail.starts_with("{{") {
                "}}"
            } else {
                rest = &rest[open + 1..];
                continue;
            };
            let Some(end) = tail.find(close) else { break };
            let inner = &tail[..end];
            let base = template.len() - tail.len();
            // Or, in an Ollama Go template, its `.Tools` field.
            if inner.match_indices("tools").any(|(i, _)| word(base + i))
                || (close == "}}" && inner.contains(".Tools"))
            {
                return true;
            }
            rest = &tail[end + close.len()..];
        }
        false
    }

    /// The text that opens a tagged call (`None`: only bare JSON).
    pub fn opener(self) -> Option<&'static str> {
        match self {
            ToolFormat::Hermes => Some("<tool_call>"),
            ToolFormat::Llama3 => Some("<|python_tag|>"),
            ToolFormat::Mistral => Some("[TOOL_CALLS]"),
            ToolFormat::Generic => None,
        }
    }

    /// The text that closes a tagged call, when the format has one.
    pub fn closer(self) -> Option<&'static str> {
        match self {
            ToolFormat::Hermes => Some("</tool_call>"),
            _ => None,
        }
    }

    /// The key the format's calls carry their arguments under.
    pub fn arguments_key(self) -> &'static str {
        match self {
            ToolFormat::Llama3 => "parameters",
            _ => "arguments",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_their_markers() {
        assert_eq!(
            ToolFormat::detect("{{- '<tool_call>\\n' }}{{ tool_call.name }}"),
            ToolFormat::Hermes
        );
        assert_eq!(
            ToolFormat::detect("{{ '[TOOL_CALLS]' }}{{ tool_calls|tojson }}"),
            ToolFormat::Mistral
        );
        assert_eq!(
            ToolFormat::detect("<|start_header_id|>ipython<|end_header_id|>"),
            ToolFormat::Llama3
        );
        assert_eq!(ToolFormat::detect("{{ messages }}"), ToolFormat::Generic);
    }

    #[test]
    fn a_template_handles_tools_when_it_uses_them() {
        assert!(ToolFormat::template_handles_tools(
            "{%- if tools %}x{% endif %}"
        ));
        assert!(ToolFormat::template_handles_tools("{{ tools | tojson }}"));
        assert!(!ToolFormat::template_handles_tools(
            "Use the tools wisely {{ messages }}"
        ));
        assert!(!ToolFormat::template_handles_tools(
            "{% if my_tools_x %}{% endif %}"
        ));
        assert!(!ToolFormat::template_handles_tools(""));
        // Ollama's Go templates.
        assert!(ToolFormat::template_handles_tools(
            "{{- if .Tools }}{{ range $.Tools }}{{ . }}{{ end }}{{ end }}"
        ));
        assert!(!ToolFormat::template_handles_tools("{{ .Prompt }} Tools"));
    }
}
