use super::*;
use serde_json::json;

fn render(source: &str, messages: Json) -> Result<String> {
    render_with(source, messages, &RenderOptions::default())
}

fn render_with(source: &str, messages: Json, opts: &RenderOptions<'_>) -> Result<String> {
    let t = GoTemplate::new(source, Limits::default())?;
    t.render(messages.as_array().map_or(&[][..], Vec::as_slice), opts)
}

const CHATML: &str =
    "{{- range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ if and $last (ne .Role \"assistant\") }}<|im_start|>assistant
{{ end }}{{ end }}";

#[test]
fn a_messages_template_renders_the_conversation() {
    let out = render(
        CHATML,
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]),
    )
    .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn messages_of_one_role_in_a_row_are_joined_and_system_collected() {
    let t = "{{ .System }}|{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}";
    let out = render(
        t,
        json!([
            {"role": "system", "content": "a"}, {"role": "system", "content": "b"},
            {"role": "user", "content": "x"}, {"role": "user", "content": [{"type": "text", "text": "y"}]},
            {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}
        ]),
    )
    .unwrap();
    assert_eq!(out, "a\n\nb|[system:a\n\nb][user:x\n\ny][tool:1][tool:2]");
}

const LEGACY: &str =
    "{{ if .System }}<s>{{ .System }}</s>{{ end }}<u>{{ .Prompt }}</u><a>{{ .Response }}</a>";

#[test]
fn a_prompt_response_template_runs_once_a_turn_and_stops_at_the_last_response() {
    let out = render(
        LEGACY,
        json!([
            {"role": "system", "content": "S"}, {"role": "user", "content": "one"},
            {"role": "assistant", "content": "reply"}, {"role": "user", "content": "two"}
        ]),
    )
    .unwrap();
    assert_eq!(out, "<s>S</s><u>one</u><a>reply</a><u>two</u><a>");
    // No .Response at all: one is appended, and the last turn ends there.
    let out = render(
        "[INST] {{ .Prompt }} [/INST]",
        json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]),
    )
    .unwrap();
    assert_eq!(out, "[INST] a [/INST]b[INST] c [/INST]");
    // A cut inside a block keeps the block's end.
    let t = "{{ if .Prompt }}<u>{{ .Prompt }}</u>{{ if .Response }}<a>{{ .Response }}</a>{{ end }}{{ end }}<eos>";
    let out = render(t, json!([{"role": "user", "content": "q"}])).unwrap();
    assert_eq!(out, "<u>q</u>");
}

#[test]
fn tools_and_tool_calls_print_as_json() {
    let tools = json!([{"type": "function", "function": {"name": "weather", "description": "Weather <now>",
        "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string", "description": "A city"}}}}}]);
    let t = "{{ range .Tools }}{{ . }}\n{{ .Function.Name }}:{{ range $k, $v := .Function.Parameters.Properties }}{{ $k }}={{ toTypeScriptType $v }}{{ end }}\n{{ end }}\
{{- range .Messages }}{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}|{{ json .Function.Arguments }}{{ end }}{{ end }}";
    let opts = RenderOptions {
        tools: Some(&tools),
        ..Default::default()
    };
    let out = render_with(
        t,
        json!([{"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\", \"days\": 2}"}}]}]),
        &opts,
    )
    .unwrap();
    assert_eq!(
        out,
        "{\"type\":\"function\",\"function\":{\"name\":\"weather\",\"description\":\"Weather \\u003cnow\\u003e\",\"parameters\":{\"type\":\"object\",\"required\":[\"city\"],\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"A city\"}}}}}\nweather:city=string\n\
{\"name\": \"weather\", \"arguments\": {\"city\":\"Paris\",\"days\":2}}|{\"city\":\"Paris\",\"days\":2}"
    );
    // No tools: .Tools is empty and falsy.
    assert_eq!(
        render(
            "{{ if .Tools }}T{{ else }}none{{ end }}{{ .Messages }}",
            json!([])
        )
        .unwrap(),
        "none[]"
    );
}

#[test]
fn thinking_options_reach_the_template() {
    let t = "{{ if .IsThinkSet }}{{ if .Think }}think{{ else }}no{{ end }}{{ end }}{{ .ThinkLevel }}{{ range .Messages }}{{ .Thinking }}{{ end }}";
    let extra = json!({"enable_thinking": true, "reasoning_effort": "high"});
    let opts = RenderOptions {
        extra: extra.as_object(),
        ..Default::default()
    };
    let out = render_with(
        t,
        json!([{"role": "assistant", "content": "x", "reasoning_content": "r"}]),
        &opts,
    )
    .unwrap();
    assert_eq!(out, "thinkhighr");
    assert_eq!(render(t, json!([])).unwrap(), "");
}

#[test]
fn go_syntax_is_told_from_jinja() {
    for go in [
        CHATML,
        LEGACY,
        "{{- if .System }}x{{ end }}",
        "{{ $x := 1 }}",
        "{{ json .Tools }}",
        "{{ printf \"%s\" (len $.Messages) }}",
    ] {
        assert!(is_go_template(go), "{go}");
    }
    for jinja in [
        "{% for m in messages %}{{ m.content }}{% endfor %}",
        "{{ bos_token }}{% if add_generation_prompt %}x{% endif %}",
        "{{- messages[0]['content'] }}{{ range(3) | list }}",
        "{{ message.content | trim }}{{ ' .x' }}",
    ] {
        assert!(!is_go_template(jinja), "{jinja}");
    }
}

#[test]
fn hostile_templates_stop_with_an_error() {
    // Never closed: an error, not a hang.
    assert!(matches!(
        GoTemplate::new("{{ .Prompt ", Limits::default()),
        Err(TemplateError::Syntax(_))
    ));
    for unbalanced in [
        "{{ if .X }}",
        "{{ range .Messages }}{{ if .Content }}{{ end }}",
        "a{{ end }}",
    ] {
        let e = GoTemplate::new(unbalanced, Limits::default());
        assert!(
            matches!(e, Err(TemplateError::Syntax(_))),
            "{unbalanced}: {e:?}"
        );
    }
    // Endless loops and huge outputs are bounded.
    let small = Limits {
        max_output_bytes: 1000,
        fuel: 10_000,
        ..Limits::default()
    };
    let t = GoTemplate::new("{{ range 100000000000 }}x{{ end }}", small).unwrap();
    assert!(matches!(
        t.render(&[], &RenderOptions::default()),
        Err(TemplateError::LimitExceeded(_))
    ));
    let t = GoTemplate::new("{{ range 5000 }}xx{{ end }}", small).unwrap();
    assert!(matches!(
        t.render(&[], &RenderOptions::default()),
        Err(TemplateError::LimitExceeded(_))
    ));
    // A template that calls itself.
    let t = GoTemplate::new(
        "{{ define \"a\" }}{{ template \"a\" . }}{{ end }}{{ template \"a\" . }}",
        small,
    );
    if let Ok(t) = t {
        assert!(t.render(&[], &RenderOptions::default()).is_err());
    }
    // A function that does not exist fails when the template runs.
    assert!(render(
        "{{ nonsense .Prompt }}",
        json!([{"role": "user", "content": "x"}])
    )
    .is_err());
}

#[test]
fn dates_are_days() {
    let out = render("{{ currentDate }} {{ yesterdayDate }}", json!([])).unwrap();
    let (today, yesterday) = out.split_once(' ').unwrap();
    for d in [today, yesterday] {
        assert_eq!(d.len(), 10, "{d}");
        assert_eq!(&d[4..5], "-");
        assert_eq!(&d[7..8], "-");
    }
    assert!(yesterday < today || today.ends_with("-01"), "{out}");
}

#[test]
fn a_property_type_prints_as_ollama_prints_it_and_template_needs_data() {
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
        "properties": {"b": {"type": ["integer"], "default": 1}, "a": {"type": ["string", "null"]}}}}}]);
    let opts = RenderOptions {
        tools: Some(&tools),
        ..Default::default()
    };
    let t = "{{ range .Tools }}{{ range $k, $p := .Function.Parameters.Properties }}{{ $k }}:{{ $p.Type }};{{ end }}{{ . }}{{ end }}{{ .Messages }}";
    let out = render_with(t, json!([]), &opts).unwrap();
    assert_eq!(
        out,
        "a:[string null];b:integer;{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":[\"string\",\"null\"]},\"b\":{\"type\":\"integer\"}}}}}[]"
    );
    assert!(GoTemplate::new(
        "{{ define \"x\" }}X{{ end }}{{ template \"x\" }}",
        Limits::default()
    )
    .is_err());
    assert!(GoTemplate::new(
        "{{ define \"x\" }}X{{ end }}{{ template \"x\" . }}",
        Limits::default()
    )
    .is_ok());
}

#[test]
fn a_suffix_template_fills_in_the_middle() {
    let t = GoTemplate::new(
        "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{- else }}{{ .Prompt }}{{- end }}",
        Limits::default(),
    )
    .unwrap();
    assert!(t.uses_suffix());
    assert_eq!(
        t.render_infill("def add(", "    return c").unwrap(),
        "<PRE> def add( <SUF>    return c <MID>"
    );
    let plain = t.render(
        &[json!({"role": "user", "content": "def add("})],
        &RenderOptions::default(),
    );
    assert_eq!(plain.unwrap(), "def add(");
    assert!(!GoTemplate::new(CHATML, Limits::default())
        .unwrap()
        .uses_suffix());
}

#[test]
fn multibyte_text_after_an_escape_does_not_panic() {
    // Found by the fuzzer: an escape in a string literal followed by a multi-byte character.
    for source in [
        "{{ \"\\é\" }}",
        "{{ '\\日' }}x",
        "{{ `é` }}{{ /* ü */ }}",
        "{{ .X \"\\",
    ] {
        let _ = GoTemplate::new(source, Limits::default());
        let _ = is_go_template(source);
    }
    // The fuzzer's crashes (fuzz/regressions/chat_template/): the template is the input up to
    // its first NUL byte.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/regressions/chat_template"
    );
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let data = std::fs::read(entry.path()).unwrap();
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        let _ = crate::ChatTemplate::new(&String::from_utf8_lossy(&data[..end]), "", "");
    }
}
