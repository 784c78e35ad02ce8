use super::*;
use serde_json::json;
use std::sync::Arc;

fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
        stats: None,
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sub/minerva.db")).unwrap();
    (dir, store)
}

#[test]
fn create_get_update_delete() {
    let (_dir, store) = temp_store();
    let created = store
        .create(Changes {
            model: Some(Some("qwen".into())),
            settings: Some(json!({"temperature": 0.5})),
            ..Changes::default()
        })
        .unwrap();
    assert_eq!(created.summary.title, "New chat");
    assert_eq!(created.summary.model.as_deref(), Some("qwen"));
    assert!(created.messages.is_empty());
    let id = created.summary.id.clone();

    let stats = json!({"completion_tokens": 7, "ttft_ms": 120});
    let updated = store
        .update(
            &id,
            Changes {
                title: Some("Rust lifetimes".into()),
                messages: Some(vec![
                    message("user", "hi"),
                    Message {
                        stats: Some(stats.clone()),
                        ..message("assistant", "hello")
                    },
                ]),
                ..Changes::default()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(updated.summary.title, "Rust lifetimes");
    assert_eq!(updated.summary.settings, json!({"temperature": 0.5}));
    assert!(updated.summary.updated_ms > created.summary.updated_ms);
    assert_eq!(updated.messages.len(), 2);
    assert_eq!(updated.messages[1].stats, Some(stats));

    // Messages are replaced as a whole: a regenerated reply drops what followed.
    let cut = store
        .update(
            &id,
            Changes {
                messages: Some(vec![message("user", "hi again")]),
                model: Some(None),
                ..Changes::default()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(cut.messages, vec![message("user", "hi again")]);
    assert_eq!(cut.summary.model, None);
    assert_eq!(store.get(&id).unwrap(), Some(cut));

    assert!(store.delete(&id).unwrap());
    assert_eq!(store.get(&id).unwrap(), None);
    assert!(!store.delete(&id).unwrap());
    assert!(store.update(&id, Changes::default()).unwrap().is_none());
    // The messages went with it.
    let conn = store.conn().unwrap();
    let left: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn list_orders_by_update_and_searches_titles_and_messages() {
    let (_dir, store) = temp_store();
    let a = store
        .create(Changes {
            title: Some("About SQLite".into()),
            ..Changes::default()
        })
        .unwrap();
    let b = store
        .create(Changes {
            title: Some("Other".into()),
            messages: Some(vec![message("user", "what is 100% of a borrow_checker?")]),
            ..Changes::default()
        })
        .unwrap();
    let ids = |list: Vec<Summary>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list(None).unwrap()),
        vec![b.summary.id.clone(), a.summary.id.clone()]
    );
    store.update(&a.summary.id, Changes::default()).unwrap();
    assert_eq!(
        ids(store.list(Some("  ")).unwrap()),
        vec![a.summary.id.clone(), b.summary.id.clone()]
    );
    assert_eq!(
        ids(store.list(Some("sqlite")).unwrap()),
        vec![a.summary.id.clone()]
    );
    assert_eq!(
        ids(store.list(Some("BORROW_")).unwrap()),
        vec![b.summary.id.clone()]
    );
    // LIKE's wildcards are searched for literally.
    assert_eq!(ids(store.list(Some("100%")).unwrap()), vec![b.summary.id]);
    assert!(store.list(Some("o_h")).unwrap().is_empty());
}

#[test]
fn invalid_input_is_refused_and_changes_nothing() {
    let (_dir, store) = temp_store();
    let c = store.create(Changes::default()).unwrap();
    let bad = store.update(
        &c.summary.id,
        Changes {
            title: Some("kept?".into()),
            messages: Some(vec![message("tool", "x")]),
            ..Changes::default()
        },
    );
    assert!(matches!(bad, Err(Error::Invalid(_))), "{bad:?}");
    assert_eq!(
        store.get(&c.summary.id).unwrap().unwrap().summary.title,
        "New chat"
    );
    let bad = store.create(Changes {
        settings: Some(json!([1, 2])),
        ..Changes::default()
    });
    assert!(matches!(bad, Err(Error::Invalid(_))), "{bad:?}");
    assert_eq!(store.list(None).unwrap().len(), 1);
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minerva.db");
    let saved = {
        let store = Store::open(&path).unwrap();
        store
            .create(Changes {
                title: Some("kept".into()),
                system: Some("be brief".into()),
                messages: Some(vec![message("user", "1"), message("assistant", "2")]),
                ..Changes::default()
            })
            .unwrap()
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get(&saved.summary.id).unwrap(), Some(saved.clone()));
    assert_eq!(store.list(None).unwrap(), vec![saved.summary]);
}

#[test]
fn two_writers_at_once_lose_nothing() {
    // Two stores on one file are two connections, as two server processes would have: each
    // writes while the other does, and every write lands.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minerva.db");
    let first = Arc::new(Store::open(&path).unwrap());
    let second = Arc::new(Store::open(&path).unwrap());
    let shared = first.create(Changes::default()).unwrap().summary.id;
    let writers: Vec<_> = [first.clone(), second.clone(), first.clone(), second.clone()]
        .into_iter()
        .enumerate()
        .map(|(w, store)| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..25 {
                    let c = store
                        .create(Changes {
                            title: Some(format!("w{w} c{i}")),
                            messages: Some(vec![message("user", &format!("{w}/{i}"))]),
                            ..Changes::default()
                        })
                        .unwrap();
                    mine.push(c.summary.id);
                    store
                        .update(
                            &shared,
                            Changes {
                                messages: Some(vec![message("user", &format!("{w}/{i}"))]),
                                ..Changes::default()
                            },
                        )
                        .unwrap()
                        .unwrap();
                }
                mine
            })
        })
        .collect();
    let mut created = Vec::new();
    for w in writers {
        created.extend(w.join().unwrap());
    }
    assert_eq!(created.len(), 100);
    let listed = second.list(None).unwrap();
    assert_eq!(listed.len(), 101);
    for id in &created {
        let c = first.get(id).unwrap().unwrap();
        assert_eq!(c.messages.len(), 1);
    }
    // The shared conversation holds exactly one writer's last write, never a mix.
    let last = second.get(&shared).unwrap().unwrap();
    assert_eq!(last.messages.len(), 1);
    assert!(
        last.messages[0].content.text().ends_with("/24"),
        "{:?}",
        last.messages
    );
}

/// A user message with text and an image, as the UI sends it.
fn with_image(text: &str, data: &str) -> Message {
    Message {
        role: "user".into(),
        content: Content::Parts(vec![
            json!({"type": "text", "text": text}),
            json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}}),
        ]),
        stats: None,
    }
}

#[test]
fn content_parts_are_kept_and_searched_by_their_text() {
    let (_dir, store) = temp_store();
    let messages = vec![
        with_image("describe the cat", "iVBORw0KGgoSECRETBASE64"),
        message("assistant", "a grey cat"),
    ];
    let c = store
        .create(Changes {
            messages: Some(messages.clone()),
            ..Changes::default()
        })
        .unwrap();
    assert_eq!(c.messages, messages);
    assert_eq!(
        store.get(&c.summary.id).unwrap().unwrap().messages,
        messages
    );
    assert_eq!(messages[0].content.text(), "describe the cat");
    // Search reads the text parts, never the image's base64.
    assert_eq!(store.list(Some("THE CAT")).unwrap().len(), 1);
    assert!(store.list(Some("SECRETBASE64")).unwrap().is_empty());
    assert!(store.list(Some("image_url")).unwrap().is_empty());
    // As JSON: the parts as given, next to text content.
    let value = serde_json::to_value(&c.messages).unwrap();
    assert_eq!(value[0]["content"][1]["type"], "image_url");
    assert_eq!(value[1]["content"], "a grey cat");
    let back: Vec<Message> = serde_json::from_value(value).unwrap();
    assert_eq!(back, messages);
}

#[test]
fn content_parts_the_ui_cannot_show_are_refused() {
    let (_dir, store) = temp_store();
    let c = store.create(Changes::default()).unwrap();
    let parts = |parts: Vec<Value>| Message {
        role: "user".into(),
        content: Content::Parts(parts),
        stats: None,
    };
    for (bad, says) in [
        (parts(vec![]), "no parts"),
        (parts(vec![json!({"type": "text"})]), "'text'"),
        (
            parts(vec![json!({"type": "audio", "audio": {}})]),
            "type must be",
        ),
        (parts(vec![json!("text")]), "type must be"),
        (
            parts(vec![
                json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
            ]),
            "data:image/",
        ),
        (
            parts(vec![
                json!({"type": "image_url", "image_url": "data:image/png;base64,AAAA"}),
            ]),
            "data:image/",
        ),
    ] {
        let result = store.update(
            &c.summary.id,
            Changes {
                messages: Some(vec![message("user", "fine"), bad.clone()]),
                ..Changes::default()
            },
        );
        match result {
            Err(Error::Invalid(m)) => {
                assert!(m.starts_with("message 1: ") && m.contains(says), "{m}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(store
        .get(&c.summary.id)
        .unwrap()
        .unwrap()
        .messages
        .is_empty());
    // Neither text nor parts: not a message at all.
    let parsed = serde_json::from_value::<Message>(json!({"role": "user", "content": 5}));
    assert!(parsed
        .unwrap_err()
        .to_string()
        .contains("a string or an array of content parts"));
}

#[test]
fn a_file_of_schema_1_gains_parts_and_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minerva.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE conversations (
                 id TEXT PRIMARY KEY, title TEXT NOT NULL, model TEXT,
                 system TEXT NOT NULL DEFAULT '', settings TEXT NOT NULL DEFAULT '{}',
                 created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
             CREATE TABLE messages (
                 conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                 position INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, stats TEXT,
                 PRIMARY KEY (conversation_id, position));
             INSERT INTO conversations VALUES ('old', 'Old chat', NULL, '', '{}', 1, 1);
             INSERT INTO messages VALUES ('old', 0, 'user', 'from before', NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let old = store.get("old").unwrap().unwrap();
    assert_eq!(old.messages, vec![message("user", "from before")]);
    let messages = vec![
        message("user", "from before"),
        with_image("and now", "AAAA"),
    ];
    let updated = store
        .update(
            "old",
            Changes {
                messages: Some(messages.clone()),
                ..Changes::default()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(updated.messages, messages);
    let version: i64 = store
        .conn()
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(store);
    // Opening it again changes nothing.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get("old").unwrap().unwrap().messages, messages);
}
