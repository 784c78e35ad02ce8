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
        last.messages[0].content.ends_with("/24"),
        "{:?}",
        last.messages
    );
}
