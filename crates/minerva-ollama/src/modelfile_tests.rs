use super::*;

#[test]
fn reads_every_instruction_as_ollama_does() {
    let text = "\u{feff}# a comment\nfrom qwen2.5-coder:0.5b\n\nPARAMETER temperature 0.7\nPARAMETER num_ctx 2048\nPARAMETER stop <|im_end|>\nPARAMETER stop \"User:\"\n  SYSTEM \"\"\"\nYou are Mario.\n\"\"\"\nTEMPLATE \"{{ messages }}\"\nMESSAGE user Is it hot?\nMESSAGE assistant \"yes, it is\"\nLICENSE MIT\nLICENSE \"\"\"line one\nline two\"\"\"\nREQUIRES 0.6.0\nPARAMETER mirostat 1\n";
    let req = read(text).unwrap();
    assert_eq!(req.from, vec![(2, "qwen2.5-coder:0.5b".to_string())]);
    assert_eq!(req.system, Some((8, "\nYou are Mario.\n".to_string())));
    assert_eq!(req.template, Some((11, "{{ messages }}".to_string())));
    assert_eq!(
        Value::Object(req.parameters.clone()),
        json!({"temperature": 0.7, "num_ctx": 2048, "stop": ["<|im_end|>", "User:"]})
    );
    assert_eq!(
        req.messages,
        vec![
            json!({"role": "user", "content": "Is it hot?"}),
            json!({"role": "assistant", "content": "yes, it is"})
        ]
    );
    assert_eq!(req.license[1].1, "line one\nline two");
    assert_eq!(req.ignored, vec![(18, "mirostat".to_string())]);
    assert_eq!(req.line_of("parameters"), Some(4));
    assert_eq!(req.line_of("messages"), Some(12));
}

#[test]
fn errors_name_the_line() {
    let line = |text: &str| read(text).unwrap_err();
    let e = line("FROM x\nFORM y\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("unknown instruction 'FORM'"), "{e}");
    assert_eq!(e.to_string().split(':').next(), Some("Modelfile line 2"));
    assert_eq!(line("FROM x\nPARAMETER temperature hot\n").line, 2);
    assert!(line("FROM x\nPARAMETER temperature hot")
        .message
        .contains("not a number"));
    assert!(line("FROM x\nPARAMETER num_ctx 1.5")
        .message
        .contains("not an integer"));
    assert!(line("FROM x\nPARAMETER bogus 1")
        .message
        .contains("unknown parameter 'bogus'"));
    assert!(line("FROM x\nPARAMETER use_mmap maybe")
        .message
        .contains("true or false"));
    assert!(line("FROM x\nMESSAGE tool hi")
        .message
        .contains("role must be"));
    assert!(line("FROM x\nPARAMETER temperature")
        .message
        .contains("needs a name and a value"));
    assert_eq!(line("FROM x\n\nSYSTEM \"\"\"open\nstill open\n").line, 3);
    assert!(line("FROM\n").message.contains("FROM needs a value"));
    assert!(line("DRAFT small\nFROM x")
        .message
        .contains("DRAFT is not supported"));
    let e = line("SYSTEM hi\n");
    assert_eq!(e.line, 0);
    assert!(e.to_string().contains("no FROM line"));
    assert!(line("FROM x\nPARAMETER temperature inf")
        .message
        .contains("not a number"));
}

#[test]
fn values_are_bare_or_quoted() {
    let one = |v: &str| {
        parse(&format!("FROM x\nSYSTEM {v}\n")).unwrap()[1]
            .value
            .clone()
    };
    assert_eq!(one("  plain words  "), "plain words");
    assert_eq!(one("\"  kept  \""), "  kept  ");
    assert_eq!(one("\"\"\"say \"hi\"\"\"\""), "say \"hi\"");
    assert_eq!(one("\"\"\"\"\"\""), "");
    assert_eq!(one("\"two\nlines\""), "two\nlines");
    assert_eq!(one("a \"quote\" inside"), "a \"quote\" inside");
    // CRLF line ends read as LF.
    assert_eq!(
        parse("FROM x\r\nSYSTEM \"\"\"a\r\nb\"\"\"\r\n").unwrap()[1].value,
        "a\nb"
    );
}

#[test]
fn what_is_written_reads_back_the_same() {
    let values = [
        "plain",
        "  padded ",
        "two\nlines",
        "say \"hi\"",
        "\"starts with a quote",
        "",
        "<|im_end|>",
        "tab\tinside",
    ];
    for v in values {
        let text = format!("FROM x\nSYSTEM {}\nPARAMETER stop {}\n", quote(v), quote(v));
        let parsed = read(&text).unwrap();
        assert_eq!(parsed.system.unwrap().1, v, "{text}");
        assert_eq!(parsed.parameters["stop"], json!([v]), "{text}");
    }
    let parameters = json!({"temperature": 0.25, "stop": ["a b", "\"q\""], "num_ctx": 512});
    let messages = [json!({"role": "user", "content": "hi\nthere"})];
    let license = ["MIT".to_string()];
    let text = ModelfileText {
        from: "base:latest",
        comments: vec!["made by a test".into()],
        template: Some("{{ x }}"),
        system: Some("be brief"),
        parameters: parameters.as_object(),
        messages: &messages,
        license: &license,
    }
    .render();
    let back = read(&text).unwrap();
    assert_eq!(back.from[0].1, "base:latest");
    assert_eq!(Value::Object(back.parameters), parameters);
    assert_eq!(back.messages, messages);
    assert_eq!(back.template.unwrap().1, "{{ x }}");
    assert_eq!(back.license[0].1, "MIT");
}
